#!/usr/bin/env bash
# Make a busybox-static OCI bundle: DIR/rootfs (bin/busybox, one symlink per applet, the usual mount points)
# and DIR/config.json from `runc spec`, adjusted for non-interactive use: process.terminal false,
# process.args = ARGS (default: sh), root.readonly false. Prints DIR (absolute) as its last line.
# Usage: guest/make-bundle.sh DIR [ARG...]     e.g. guest/make-bundle.sh /tmp/b uname -a
set -euo pipefail
if (($# < 1)); then echo "usage: $0 DIR [ARG...]" >&2; exit 2; fi
dir=$1; shift
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "kata-ts: busybox not found: apt-get install busybox-static" >&2; exit 1; }
# A dynamically linked busybox would need its libraries inside the rootfs.
if command -v file >/dev/null && ! file -L "$busybox" | grep -q 'statically linked'; then
  echo "kata-ts: $busybox is not statically linked: apt-get install busybox-static" >&2; exit 1
fi
command -v runc >/dev/null || { echo "kata-ts: runc not found: apt-get install runc" >&2; exit 1; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ ! -e "$dir/config.json" ] || { echo "kata-ts: $dir/config.json already exists: pick an empty directory" >&2; exit 1; }
rootfs=$dir/rootfs
mkdir -p "$rootfs"/{bin,dev,proc,sys,tmp,etc,root,run,var}
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
(cd "$dir" && runc spec)
args_json=$(node -e 'process.stdout.write(JSON.stringify(process.argv.slice(1)))' -- "${@:-sh}")
node -e '
  const fs = require("node:fs");
  const [file, args] = process.argv.slice(1);
  const spec = JSON.parse(fs.readFileSync(file, "utf8"));
  spec.process.terminal = false;
  spec.process.args = JSON.parse(args);
  spec.root.readonly = false;
  fs.writeFileSync(file, JSON.stringify(spec, null, "\t") + "\n");
' "$dir/config.json" "$args_json"
echo "$dir"

#!/usr/bin/env bash
# Build (or reuse) the kata-ts tiny test initramfs: a static /init (guest/init/init.c)
# (freestanding, a few KiB) that writes the boot-timer byte, prints KATA_TS_INIT_OK and reboots.
#
#   bash guest/build-initrd.sh
#
# Prints the absolute path of the gzip'd newc cpio as the LAST line of stdout;
# progress goes to stderr. Cached by the hash of its inputs in
#   ${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd/test-<hash16>/initrd.cpio.gz
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$HERE/init/init.c"
log() { printf '[initrd] %s\n' "$*" >&2; }

missing=()
for p in gcc libc6-dev cpio gzip; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  printf '[initrd] missing Debian packages: %s\n  install them with:\n    apt-get install -y %s\n' "${missing[*]}" "${missing[*]}" >&2
  exit 1
fi

hash="$( {
  for f in "$HERE/build-initrd.sh" "$SRC"; do printf '== %s\n' "${f#"$HERE"/}"; cat "$f"; done
  gcc --version | head -n1
  dpkg-query -W -f='${Version}\n' libc6-dev
} | sha256sum | cut -c1-16 )"
CACHE_ROOT="${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd"
OUT="$CACHE_ROOT/test-$hash"
INITRD="$OUT/initrd.cpio.gz"
if [ -s "$INITRD" ]; then
  log "cached: $INITRD"
  printf '%s\n' "$INITRD"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.test-$hash.lock"
flock 9
if [ -s "$INITRD" ]; then printf '%s\n' "$INITRD"; exit 0; fi

WORK="$(mktemp -d "$CACHE_ROOT/.work-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root/dev" "$WORK/root/proc" "$WORK/root/sys" "$OUT"

log "compiling init.c (gcc -static -Os -nostdlib)"
gcc -static -Os -nostdlib -ffreestanding -fno-stack-protector -fno-asynchronous-unwind-tables \
    -Wall -Wextra -Werror -s -Wl,--build-id=none -o "$WORK/root/init" "$SRC"

# /dev/console must exist in the initramfs so the kernel can open fds 0-2 for
# PID 1 (init/main.c console_on_rootfs) before anything is mounted. Creating
# the node needs root; without it init mounts devtmpfs and opens it there.
if [ "$(id -u)" = 0 ]; then
  mknod -m 600 "$WORK/root/dev/console" c 5 1
else
  log "not root: /dev/console node omitted (init mounts devtmpfs instead)"
fi

log "packing newc cpio"
( cd "$WORK/root" && find . -mindepth 1 | LC_ALL=C sort | \
    cpio --quiet -o -H newc -R 0:0 --reproducible ) | gzip -9 -n >"$WORK/initrd.cpio.gz"
mv -f "$WORK/initrd.cpio.gz" "$INITRD"
log "built: $INITRD ($(stat -c %s "$INITRD") bytes)"
printf '%s\n' "$INITRD"

#!/usr/bin/env bash
# Build (or reuse) the kata-ts virtio-fs benchmark initramfs: busybox (static), guest/fsbench/fsbench.c
# (gcc -static: the timed workloads, one process each) and guest/fsbench/init, which mounts the virtio-fs
# tags named on the kernel command line, runs the workloads against each and prints `FSBENCH ...` lines on
# the console (bench/fs.ts reads them).
#
#   bash guest/build-fsbench-initrd.sh        (npm run --silent guest:initrd:fsbench)
#
# Prints the absolute path of the gzip'd newc cpio as the LAST line of stdout; progress goes to stderr.
# Cached by the hash of its inputs (this script, the init, the tool's source, the package versions) in
#   ${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd/fsbench-<hash16>/initrd.cpio.gz
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FB="$HERE/fsbench"
log() { printf '[initrd:fsbench] %s\n' "$*" >&2; }

PKGS=(gcc libc6-dev cpio gzip busybox-static)
source "$HERE/lib/cached-build.sh"
require_debs "${PKGS[@]}"

BUSYBOX=/bin/busybox

hash="$( {
  gcc --version | head -n1
  dpkg-query -W -f='${Package} ${Version}\n' "${PKGS[@]}"
} | cache_hash "$HERE/build-fsbench-initrd.sh" "$FB/init" "$FB/fsbench.c" )"
cache_begin "${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd/fsbench-$hash" initrd.cpio.gz
R="$WORK/root"
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,mnt,etc}

log "compiling fsbench.c (gcc -static)"
gcc -static -O2 -Wall -Wextra -Werror -s -o "$R/bin/fsbench" "$FB/fsbench.c"

log "busybox: $($BUSYBOX 2>&1 | head -n1)"
cp "$BUSYBOX" "$R/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ -e "$R/bin/$applet" ] || ln -s busybox "$R/bin/$applet"
done

install -m 755 "$FB/init" "$R/init"

console_node "$R"

pack_initrd "$R" "$WORK/initrd.cpio.gz"
cache_publish "$WORK/initrd.cpio.gz"

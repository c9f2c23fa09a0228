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

source "$HERE/lib/cached-build.sh"
require_debs gcc libc6-dev cpio gzip

hash="$( {
  gcc --version | head -n1
  dpkg-query -W -f='${Version}\n' libc6-dev
} | cache_hash "$HERE/build-initrd.sh" "$SRC" )"
cache_begin "${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd/test-$hash" initrd.cpio.gz
mkdir -p "$WORK/root/proc" "$WORK/root/sys"

log "compiling init.c (gcc -static -Os -nostdlib)"
gcc -static -Os -nostdlib -ffreestanding -fno-stack-protector -fno-asynchronous-unwind-tables \
    -Wall -Wextra -Werror -s -Wl,--build-id=none -o "$WORK/root/init" "$SRC"

console_node "$WORK/root"

pack_initrd "$WORK/root" "$WORK/initrd.cpio.gz"
cache_publish "$WORK/initrd.cpio.gz"

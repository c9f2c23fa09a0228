#!/usr/bin/env bash
# Build (or reuse) the kata-ts device-test initramfs: busybox (static), e2fsprogs (mkfs.ext4, e2fsck and the
# shared libraries `ldd` names), guest/devtest/vsock-tool.c (gcc -static) and guest/devtest/init, a shell
# script that checks the virtio devices and prints `DEVTEST <name> OK|FAIL <detail>` lines on the console
# (tests/hypervisor/qemu-devices.test.ts reads them).
#
#   bash guest/build-devtest-initrd.sh        (npm run --silent guest:initrd:devtest)
#
# Prints the absolute path of the gzip'd newc cpio as the LAST line of stdout; progress goes to stderr.
# Cached by the hash of its inputs (this script, the init, the tool's source, the package versions) in
#   ${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd/devtest-<hash16>/initrd.cpio.gz
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DT="$HERE/devtest"
log() { printf '[initrd:devtest] %s\n' "$*" >&2; }

PKGS=(gcc libc6-dev cpio gzip busybox-static e2fsprogs)
source "$HERE/lib/cached-build.sh"
require_debs "${PKGS[@]}"

BUSYBOX=/bin/busybox
E2FS_BINS=(/sbin/mke2fs /sbin/e2fsck)

hash="$( {
  gcc --version | head -n1
  dpkg-query -W -f='${Package} ${Version}\n' "${PKGS[@]}"
} | cache_hash "$HERE/build-devtest-initrd.sh" "$DT/init" "$DT/vsock-tool.c" )"
cache_begin "${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd/devtest-$hash" initrd.cpio.gz
R="$WORK/root"
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,mnt,etc}

log "compiling vsock-tool.c (gcc -static)"
gcc -static -O2 -Wall -Wextra -Werror -s -o "$R/bin/vsock-tool" "$DT/vsock-tool.c"

log "busybox: $($BUSYBOX 2>&1 | head -n1)"
cp "$BUSYBOX" "$R/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ -e "$R/bin/$applet" ] || ln -s busybox "$R/bin/$applet"
done

# e2fsprogs: the binaries in /sbin (PATH=/sbin:/bin: they win over busybox applets of the same name), each
# shared library `ldd` names at the same path, and the loader
copy_with_path() { mkdir -p "$R$(dirname "$1")" && cp -L "$1" "$R$1"; }
for b in "${E2FS_BINS[@]}"; do
  [ -x "$b" ] || { log "$b not found (apt-get install -y e2fsprogs)"; exit 1; }
  cp -L "$b" "$R/sbin/"
  ldd "$b" | awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}' | while read -r lib; do
    [ -e "$R$lib" ] || copy_with_path "$lib"
  done
done
ln -sf mke2fs "$R/sbin/mkfs.ext4"
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$R/etc/"
# e2fsck asks /etc/mtab whether the device is mounted
ln -s /proc/mounts "$R/etc/mtab"

install -m 755 "$DT/init" "$R/init"

console_node "$R"

pack_initrd "$R" "$WORK/initrd.cpio.gz"
cache_publish "$WORK/initrd.cpio.gz"

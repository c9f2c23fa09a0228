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
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  printf '[initrd:devtest] missing Debian packages: %s\n  install them with:\n    apt-get install -y %s\n' "${missing[*]}" "${missing[*]}" >&2
  exit 1
fi

BUSYBOX=/bin/busybox
E2FS_BINS=(/sbin/mke2fs /sbin/e2fsck)

hash="$( {
  for f in "$HERE/build-devtest-initrd.sh" "$DT/init" "$DT/vsock-tool.c"; do printf '== %s\n' "${f#"$HERE"/}"; cat "$f"; done
  gcc --version | head -n1
  dpkg-query -W -f='${Package} ${Version}\n' "${PKGS[@]}"
} | sha256sum | cut -c1-16 )"
CACHE_ROOT="${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd"
OUT="$CACHE_ROOT/devtest-$hash"
INITRD="$OUT/initrd.cpio.gz"
if [ -s "$INITRD" ]; then
  log "cached: $INITRD"
  printf '%s\n' "$INITRD"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.devtest-$hash.lock"
flock 9
if [ -s "$INITRD" ]; then printf '%s\n' "$INITRD"; exit 0; fi

WORK="$(mktemp -d "$CACHE_ROOT/.work-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
R="$WORK/root"
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,mnt,etc} "$OUT"

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

# /dev/console must exist before devtmpfs is mounted: the kernel opens fds 0-2 of /init on it
if [ "$(id -u)" = 0 ]; then
  mknod -m 600 "$R/dev/console" c 5 1
else
  log "not root: /dev/console node omitted (the init's output then appears only after it mounts devtmpfs)"
fi

log "packing newc cpio"
( cd "$R" && find . -mindepth 1 | LC_ALL=C sort | \
    cpio --quiet -o -H newc -R 0:0 --reproducible ) | gzip -9 -n >"$WORK/initrd.cpio.gz"
mv -f "$WORK/initrd.cpio.gz" "$INITRD"
log "built: $INITRD ($(stat -c %s "$INITRD") bytes)"
printf '%s\n' "$INITRD"

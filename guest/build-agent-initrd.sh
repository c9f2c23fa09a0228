#!/usr/bin/env bash
# Build (or reuse) the kata-ts guest image: an initramfs whose /init is the static agent
# (guest/agent, built by guest/agent/build.sh), plus runc and the shared libraries `ldd` names for it.
#
#   bash guest/build-agent-initrd.sh
#
# Prints the absolute path of the gzip'd newc cpio as the LAST line of stdout; progress goes to stderr.
# Cached by the hash of its inputs (this script, the agent binary, runc and its libraries) in
#   ${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd/agent-<hash16>/initrd.cpio.gz
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[initrd:agent] %s\n' "$*" >&2; }

PKGS=(cpio gzip runc)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  printf '[initrd:agent] missing Debian packages: %s\n  install them with:\n    apt-get install -y %s\n' "${missing[*]}" "${missing[*]}" >&2
  exit 1
fi

AGENT="$(bash "$HERE/agent/build.sh" | tail -n1)"
RUNC="$(command -v runc)"
RUNC="$(readlink -f "$RUNC")"
# The loader and libraries runc needs, by the paths ldd resolves (they keep those paths in the image).
mapfile -t LIBS < <(ldd "$RUNC" | awk '/=> \//{print $3} $1 ~ /^\//{print $1}' | sort -u)

hash="$( {
  printf '== build-agent-initrd.sh\n'; cat "$HERE/build-agent-initrd.sh"
  for f in "$AGENT" "$RUNC" "${LIBS[@]}"; do printf '== %s\n' "$f"; sha256sum < "$f"; done
} | sha256sum | cut -c1-16 )"
CACHE_ROOT="${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd"
OUT="$CACHE_ROOT/agent-$hash"
INITRD="$OUT/initrd.cpio.gz"
if [ -s "$INITRD" ]; then
  log "cached: $INITRD"
  printf '%s\n' "$INITRD"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.agent-$hash.lock"
flock 9
if [ -s "$INITRD" ]; then printf '%s\n' "$INITRD"; exit 0; fi

WORK="$(mktemp -d "$CACHE_ROOT/.work-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
R="$WORK/root"
mkdir -p "$R"/{dev,proc,sys,run,tmp,etc,usr/bin} "$OUT"
log "[1/3] agent $AGENT -> /init"
install -m 0755 "$AGENT" "$R/init"
log "[2/3] runc $RUNC and ${#LIBS[@]} libraries"
install -m 0755 "$RUNC" "$R/usr/bin/runc"
ln -s usr/bin "$R/bin"
for lib in "${LIBS[@]}"; do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
# /dev/console must exist before devtmpfs is mounted so the kernel can open fds 0-2 for PID 1.
if [ "$(id -u)" = 0 ]; then
  mknod -m 600 "$R/dev/console" c 5 1
else
  log "not root: /dev/console node omitted (the agent's early log goes nowhere until /dev is mounted)"
fi
log "[3/3] packing newc cpio"
( cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible ) | gzip -6 -n >"$WORK/initrd.cpio.gz"
mv -f "$WORK/initrd.cpio.gz" "$INITRD"
log "built: $INITRD ($(stat -c %s "$INITRD") bytes)"
printf '%s\n' "$INITRD"

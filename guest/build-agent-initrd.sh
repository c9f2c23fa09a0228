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

source "$HERE/lib/cached-build.sh"
require_debs cpio gzip runc

AGENT="$(bash "$HERE/agent/build.sh" | tail -n1)"
RUNC="$(command -v runc)"
RUNC="$(readlink -f "$RUNC")"
# The loader and libraries runc needs, by the paths ldd resolves (they keep those paths in the image).
mapfile -t LIBS < <(ldd "$RUNC" | awk '/=> \//{print $3} $1 ~ /^\//{print $1}' | sort -u)

hash="$( {
  for f in "$AGENT" "$RUNC" "${LIBS[@]}"; do printf '== %s\n' "$f"; sha256sum < "$f"; done
} | cache_hash "$HERE/build-agent-initrd.sh" )"
cache_begin "${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/initrd/agent-$hash" initrd.cpio.gz
R="$WORK/root"
mkdir -p "$R"/{dev,proc,sys,run,tmp,etc,usr/bin}
log "[1/3] agent $AGENT -> /init"
install -m 0755 "$AGENT" "$R/init"
log "[2/3] runc $RUNC and ${#LIBS[@]} libraries"
install -m 0755 "$RUNC" "$R/usr/bin/runc"
ln -s usr/bin "$R/bin"
for lib in "${LIBS[@]}"; do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
console_node "$R"
log "[3/3] image"
pack_initrd "$R" "$WORK/initrd.cpio.gz"
cache_publish "$WORK/initrd.cpio.gz"

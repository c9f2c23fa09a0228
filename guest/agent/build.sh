#!/usr/bin/env bash
# Build (or reuse) the static guest agent: g++ -std=c++17 -static -O2 over guest/agent/*.cc.
#
#   bash guest/agent/build.sh
#
# Prints the absolute path of the binary as the LAST line of stdout; progress goes to stderr.
# Cached by the hash of its inputs in ${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/agent/<hash16>/kata-ts-agent
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[agent] %s\n' "$*" >&2; }

missing=()
for p in g++ libc6-dev; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  printf '[agent] missing Debian packages: %s\n  install them with:\n    apt-get install -y %s\n' "${missing[*]}" "${missing[*]}" >&2
  exit 1
fi

SRCS=("$HERE"/*.cc)
hash="$( {
  for f in "$HERE/build.sh" "$HERE"/*.h "${SRCS[@]}"; do printf '== %s\n' "${f#"$HERE"/}"; cat "$f"; done
  g++ --version | head -n1
  dpkg-query -W -f='${Version}\n' libc6-dev
} | sha256sum | cut -c1-16 )"
CACHE_ROOT="${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/agent"
OUT="$CACHE_ROOT/$hash"
BIN="$OUT/kata-ts-agent"
if [ -x "$BIN" ]; then
  log "cached: $BIN"
  printf '%s\n' "$BIN"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.$hash.lock"
flock 9
if [ -x "$BIN" ]; then printf '%s\n' "$BIN"; exit 0; fi

WORK="$(mktemp -d "$CACHE_ROOT/.work-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
n=0
objs=()
for src in "${SRCS[@]}"; do
  n=$((n + 1))
  obj="$WORK/$(basename "${src%.cc}").o"
  log "[$n/${#SRCS[@]}] compiling $(basename "$src")"
  g++ -std=c++17 -O2 -Wall -Wextra -Werror -fno-exceptions -c -o "$obj" "$src" &
  objs+=("$obj")
  # two compilers at a time
  if (( n % 2 == 0 )); then wait -n || { wait; exit 1; }; fi
done
while wait -n; do :; done 2>/dev/null || true
for o in "${objs[@]}"; do [ -s "$o" ] || { log "compilation failed"; exit 1; }; done
log "linking (static)"
g++ -static -O2 -s -o "$WORK/kata-ts-agent" "${objs[@]}"
mkdir -p "$OUT"
mv -f "$WORK/kata-ts-agent" "$BIN"
log "built: $BIN ($(stat -c %s "$BIN") bytes)"
printf '%s\n' "$BIN"

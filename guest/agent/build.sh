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

source "$HERE/../lib/cached-build.sh"
require_debs g++ libc6-dev

SRCS=("$HERE"/*.cc)
hash="$( {
  g++ --version | head -n1
  dpkg-query -W -f='${Version}\n' libc6-dev
} | cache_hash "$HERE/build.sh" "$HERE"/*.h "${SRCS[@]}" )"
cache_begin "${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/agent/$hash" kata-ts-agent
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
cache_publish "$WORK/kata-ts-agent"

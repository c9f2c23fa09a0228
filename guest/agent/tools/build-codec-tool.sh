#!/usr/bin/env bash
# Build (or reuse) guest/agent/tools/codec-tool with AddressSanitizer and UBSan (any sanitizer report aborts),
# over the agent's codec sources. Prints the binary path as the LAST line of stdout; progress on stderr.
# Cached by input hash in ${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/agent/codec-tool-<hash16>/codec-tool
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AGENT="$(dirname "$HERE")"
SRCS=("$HERE/codec-tool.cc" "$AGENT/pb.cc" "$AGENT/ttrpc.cc" "$AGENT/messages.cc" "$AGENT/json.cc")
hash="$( { for f in "$HERE/build-codec-tool.sh" "${SRCS[@]}" "$AGENT"/*.h; do printf '== %s\n' "$f"; cat "$f"; done; g++ --version | head -n1; } | sha256sum | cut -c1-16 )"
OUT="${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/agent/codec-tool-$hash"
BIN="$OUT/codec-tool"
if [ -x "$BIN" ]; then printf '[codec-tool] cached: %s\n' "$BIN" >&2; printf '%s\n' "$BIN"; exit 0; fi
mkdir -p "$OUT"
printf '[codec-tool] compiling with -fsanitize=address,undefined\n' >&2
g++ -std=c++17 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all \
    -o "$BIN.tmp.$$" "${SRCS[@]}"
mv -f "$BIN.tmp.$$" "$BIN"
printf '%s\n' "$BIN"

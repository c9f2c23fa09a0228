# Shared by the guest build scripts (sourced, not run): Debian package checks, the input-hash cache with its
# lock, and initramfs packing. Each script keeps its own log prefix and inputs; this file is part of every
# script's input hash (cache_hash_inputs adds it).
#
#   source "$HERE/lib/cached-build.sh"     (after defining log())

CACHED_BUILD_LIB="${BASH_SOURCE[0]}"

# require_debs PKG... : exit 1 with the apt-get line when any is not installed
require_debs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "missing Debian packages: ${missing[*]}"
    printf '  install them with:\n    apt-get install -y %s\n' "${missing[*]}" >&2
    exit 1
  fi
}

# cache_hash FILE... : 16 hex digits over the named files, this library and whatever is on stdin
cache_hash() {
  { cat; local f; for f in "$@" "$CACHED_BUILD_LIB"; do printf '== %s\n' "$(basename "$f")"; cat "$f"; done; } |
    sha256sum | cut -c1-16
}

# cache_begin DIR ARTIFACT : if DIR/ARTIFACT exists print it and exit; else take DIR's lock (a second build of
# the same inputs waits for the first, then reuses it) and make a scratch $WORK removed on exit.
# Sets OUT (=DIR) and ARTIFACT_PATH.
cache_begin() {
  OUT="$1"
  ARTIFACT_PATH="$1/$2"
  if [ -s "$ARTIFACT_PATH" ]; then
    log "cached: $ARTIFACT_PATH"
    printf '%s\n' "$ARTIFACT_PATH"
    exit 0
  fi
  local root; root="$(dirname "$OUT")"
  mkdir -p "$root"
  exec 9>"$root/.$(basename "$OUT").lock"
  flock 9
  if [ -s "$ARTIFACT_PATH" ]; then printf '%s\n' "$ARTIFACT_PATH"; exit 0; fi
  WORK="$(mktemp -d "$root/.work-XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  mkdir -p "$OUT"
}

# cache_publish FILE : move a finished artifact into place atomically and print its path (the last stdout line)
cache_publish() {
  mv -f "$1" "$ARTIFACT_PATH"
  log "built: $ARTIFACT_PATH ($(stat -c %s "$ARTIFACT_PATH") bytes)"
  printf '%s\n' "$ARTIFACT_PATH"
}

# console_node ROOT : /dev/console must exist in an initramfs so the kernel can open fds 0-2 for PID 1
# (init/main.c console_on_rootfs) before anything is mounted; creating the node needs root
console_node() {
  mkdir -p "$1/dev"
  if [ "$(id -u)" = 0 ]; then
    mknod -m 600 "$1/dev/console" c 5 1
  else
    log "not root: /dev/console node omitted (PID 1's output appears only once it mounts devtmpfs)"
  fi
}

# pack_initrd ROOT OUT.cpio.gz : a reproducible gzip'd newc archive of ROOT, owned by root
pack_initrd() {
  log "packing newc cpio"
  ( cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible ) | gzip -9 -n >"$2"
}

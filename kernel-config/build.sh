#!/usr/bin/env bash
# Build (or reuse) the kata-ts guest kernel from Debian's linux-source-6.1.
#
#   bash kernel-config/build.sh <full|smoke>
#
# Prints the absolute path of the built `vmlinux` as the LAST line of stdout;
# progress and diagnostics go to stderr. Builds are cached outside the repo,
# keyed by the hash of their inputs (fragments, patches, this script and the
# linux-source package version):
#   ${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/kernel/<variant>-<hash16>/{vmlinux,.config,build.log}
# Environment: KATA_TS_CACHE (cache root), KATA_TS_KERNEL_JOBS (make -j, default nproc),
#              KATA_TS_KEEP_BUILD=1 (keep the build tree, for debugging).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TARBALL=/usr/src/linux-source-6.1.tar.xz
SRC_PKG=linux-source-6.1
# Options that olddefconfig may legitimately drop. Each entry needs a reason.
# (empty: every `=y` line of the fragments must survive)
IGNORE_MISSING=()

log() { printf '[kernel:%s] %s\n' "${VARIANT:-?}" "$*" >&2; }
die() { printf '[kernel:%s] error: %s\n' "${VARIANT:-?}" "$*" >&2; exit 1; }

VARIANT="${1:-}"
case "$VARIANT" in
  full|smoke) ;;
  *) printf 'usage: %s <full|smoke>\n  full:  SMP, INET/IPv6, cgroups v2, namespaces, seccomp, overlayfs (for runc in the guest)\n  smoke: lean, boots to "Run /init" quickly on a software KVM\n' "$0" >&2; exit 2 ;;
esac
FRAGMENTS=("$HERE/base.config" "$HERE/$VARIANT.config")

# --- install check --------------------------------------------------------------
need_pkgs=(linux-source-6.1 bc flex bison libelf-dev libssl-dev dwarves make gcc xz-utils patch util-linux binutils)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  printf '[kernel:%s] missing Debian packages: %s\n  install them with:\n    apt-get install -y %s\n' \
    "$VARIANT" "${missing[*]}" "${missing[*]}" >&2
  exit 1
fi
[ -r "$TARBALL" ] || die "$TARBALL not found (reinstall with: apt-get install --reinstall -y $SRC_PKG)"

# --- cache key --------------------------------------------------------------------
src_version="$(dpkg-query -W -f='${Version}' "$SRC_PKG")"
shopt -s nullglob
PATCHES=("$HERE"/patches/*.patch)
shopt -u nullglob
hash="$( {
  printf 'variant=%s\nsource=%s %s\n' "$VARIANT" "$SRC_PKG" "$src_version"
  for f in "$HERE/build.sh" "${FRAGMENTS[@]}" "${PATCHES[@]}"; do
    printf '== %s\n' "${f#"$HERE"/}"; cat "$f"
  done
} | sha256sum | cut -c1-16 )"

CACHE_ROOT="${KATA_TS_CACHE:-$HOME/.cache/kata-ts}/kernel"
OUT="$CACHE_ROOT/$VARIANT-$hash"
VMLINUX="$OUT/vmlinux"
mkdir -p "$CACHE_ROOT"

if [ -s "$VMLINUX" ]; then
  log "cached: $VMLINUX"
  printf '%s\n' "$VMLINUX"
  exit 0
fi

# --- lock: one build per key at a time ------------------------------------------
exec 9>"$CACHE_ROOT/.$VARIANT-$hash.lock"
if ! flock -n 9; then
  log "another build of $VARIANT-$hash is running; waiting for it"
  flock 9
fi
if [ -s "$VMLINUX" ]; then   # the other build finished it
  log "cached: $VMLINUX"
  printf '%s\n' "$VMLINUX"
  exit 0
fi

mkdir -p "$OUT"
LOG="$OUT/build.log"
: >"$LOG"
BUILD="$CACHE_ROOT/.build-$VARIANT-$hash"
rm -rf "$BUILD"
mkdir -p "$BUILD"
cleanup() {
  if [ "${KATA_TS_KEEP_BUILD:-0}" = 1 ]; then log "keeping build tree $BUILD"; else rm -rf "$BUILD"; fi
}
trap cleanup EXIT
fail() {
  printf '[kernel:%s] error: %s\n--- last lines of %s ---\n' "$VARIANT" "$1" "$LOG" >&2
  tail -n 40 "$LOG" >&2 || true
  exit 1
}

start=$SECONDS
log "building $VARIANT kernel ($SRC_PKG $src_version, key $hash) in $BUILD"
log "full log: $LOG"

# --- source + patches -------------------------------------------------------------
log "extracting $TARBALL"
tar -xf "$TARBALL" -C "$BUILD" --strip-components=1 >>"$LOG" 2>&1 || fail "extracting $TARBALL failed"
for p in "${PATCHES[@]}"; do
  log "applying patches/$(basename "$p")"
  patch -d "$BUILD" -p1 --forward --batch <"$p" >>"$LOG" 2>&1 || fail "patch $(basename "$p") does not apply"
done

# --- configure: allnoconfig forced by the fragments, then olddefconfig ----------
MERGED="$BUILD/kata-ts.fragment"
cat "${FRAGMENTS[@]}" >"$MERGED"
log "configuring: allnoconfig + base.config + $VARIANT.config, olddefconfig"
make -C "$BUILD" KCONFIG_ALLCONFIG="$MERGED" allnoconfig >>"$LOG" 2>&1 || fail "make allnoconfig failed"
make -C "$BUILD" olddefconfig >>"$LOG" 2>&1 || fail "make olddefconfig failed"

# Verify that every option the fragments ask for survived: a missing dependency
# makes Kconfig drop an option silently.
dropped=()
while IFS= read -r line; do
  sym="${line%%=*}"
  for ign in "${IGNORE_MISSING[@]}"; do [ "$sym" = "$ign" ] && continue 2; done
  grep -qxF -- "$line" "$BUILD/.config" || dropped+=("$line (got: $(grep -E "^$sym=|^# $sym is not set" "$BUILD/.config" || echo 'absent'))")
done < <(grep -hE '^CONFIG_[A-Za-z0-9_]+=' "${FRAGMENTS[@]}" | sed 's/[[:space:]]*$//')
while IFS= read -r sym; do
  grep -qE "^$sym=" "$BUILD/.config" && dropped+=("# $sym is not set (got: $(grep -E "^$sym=" "$BUILD/.config"))")
done < <(grep -hE '^# CONFIG_[A-Za-z0-9_]+ is not set' "${FRAGMENTS[@]}" | awk '{print $2}')
if [ "${#dropped[@]}" -gt 0 ]; then
  printf '[kernel:%s] error: the configuration lost options the fragments require:\n' "$VARIANT" >&2
  printf '    %s\n' "${dropped[@]}" >&2
  printf '  fix the dependency in kernel-config/*.config (see scripts/kconfig: make menuconfig, "/" to search)\n' >&2
  exit 1
fi
log "configuration verified ($(grep -c '=y' "$BUILD/.config") options built in)"

# --- compile --------------------------------------------------------------------------
jobs="${KATA_TS_KERNEL_JOBS:-$(nproc)}"
# The number of compile steps of the previous build of this variant gives a percentage.
COUNT_FILE="$CACHE_ROOT/.$VARIANT.steps"
expected=0
[ -r "$COUNT_FILE" ] && expected="$(cat "$COUNT_FILE")"
log "make -j$jobs vmlinux (progress every 100 steps)"
set +e
make -C "$BUILD" -j"$jobs" vmlinux 2>&1 | tee -a "$LOG" | awk -v expected="$expected" -v variant="$VARIANT" -v t0="$(date +%s)" '
  /^  (CC|AS|LD|AR|GEN|HOSTCC|HOSTLD|OBJCOPY|CHK|UPD|SYSTBL|SYSHDR|WRAP|MKCAP|POLICY|VDSO|RELOCS)/ {
    n++
    if (n % 100 == 0) {
      el = systime() - t0
      if (expected > 0) { pct = int(n * 100 / expected); if (pct > 99) pct = 99
        printf "[kernel:%s] %d/~%d steps (%d%%), %ds\n", variant, n, expected, pct, el > "/dev/stderr" }
      else printf "[kernel:%s] %d steps, %ds\n", variant, n, el > "/dev/stderr"
      fflush("/dev/stderr")
    }
  }
  END { print n > "/dev/stdout" }' >"$BUILD/.steps"
rc=("${PIPESTATUS[@]}")
set -e
[ "${rc[0]}" -eq 0 ] || fail "make vmlinux failed (exit ${rc[0]})"
[ -s "$BUILD/vmlinux" ] || fail "make succeeded but $BUILD/vmlinux is missing"
steps="$(cat "$BUILD/.steps")"
[ -n "$steps" ] && printf '%s\n' "$steps" >"$COUNT_FILE"

# The PVH entry point is what the VMM boots: XEN_ELFNOTE_PHYS32_ENTRY (18 = 0x12)
# in a note owned by "Xen" (include/xen/interface/elfnote.h).
if ! readelf -n "$BUILD/vmlinux" | awk '/^ *Xen/ && /0x00000012|PHYS32_ENTRY/ {f=1} END {exit !f}'; then
  fail "vmlinux has no Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY); is CONFIG_PVH set?"
fi

# --- publish atomically ----------------------------------------------------------------
cp "$BUILD/.config" "$OUT/.config"
cp "$BUILD/vmlinux" "$OUT/vmlinux.tmp.$$"
mv -f "$OUT/vmlinux.tmp.$$" "$VMLINUX"
log "built in $((SECONDS - start)) s: $VMLINUX ($(du -h "$VMLINUX" | cut -f1))"
printf '%s\n' "$VMLINUX"

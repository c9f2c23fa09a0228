#!/usr/bin/env bash
# The README's first command: set everything up and run `uname -a` in a container inside a microVM, the way
# `runc run` would, and exit with the container's exit status. What it prints is the GUEST kernel (Linux 6.1
# built by kernel-config/), not the host's. Needs root (KVM or QEMU, loop-free ext4 image, runc in the guest).
#   bash guest/demo-container.sh                 # uname -a
#   bash guest/demo-container.sh cat /proc/version
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "kata-ts: run as root (the runtime needs /dev/kvm or QEMU and /run/kata-ts)" >&2; exit 1; fi
bash guest/install-deps.sh
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "kata-ts: needs Node.js 20 or newer (Debian 12's nodejs is 18): install it from nodejs.org/NodeSource, then rerun" >&2
  exit 1
fi
[ -d node_modules/esbuild ] || npm ci
[ -e build/Release/kata_ts_native.node ] || npm run --silent build:native >&2
npm run --silent build:ts
# The guest kernel and the agent initramfs are cached under ~/.cache/kata-ts; build them now (minutes on the
# first run) so that the runtime finds them.
npm run --silent guest:kernel >&2
bash guest/build-agent-initrd.sh >&2
work=$(mktemp -d /tmp/kata-ts-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
(($#)) || set -- uname -a
bundle=$(bash guest/make-bundle.sh "$work/bundle" "$@" | tail -n1)
id=demo-$$
echo "kata-ts: running '$*' from $bundle in a microVM (container $id)" >&2
rc=0
node dist/bundle/kata-ts.js run --bundle "$bundle" "$id" || rc=$?
node dist/bundle/kata-ts.js delete --force "$id" 2>/dev/null || true
exit "$rc"

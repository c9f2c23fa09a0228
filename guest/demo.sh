#!/usr/bin/env bash
# The main job: set everything up and boot a microVM with the in-process VMM. On hardware KVM the full guest
# kernel boots the test initramfs to its init marker; on a software virtualizer (kvm_pvm) the lean smoke
# kernel boots to "Run /init" (guest user space cannot run there; `kata-ts check` explains why).
set -euo pipefail
cd "$(dirname "$0")/.."
bash guest/install-deps.sh
[ -d node_modules ] || npm ci
npm run --silent build:ts
node dist/src/cli/main.js check || true
if node dist/src/cli/main.js check --json --no-probe | grep -q '"virtualization": "software"'; then
  variant=guest:kernel:smoke
else
  variant=guest:kernel
fi
kernel=$(npm run --silent "$variant" | tail -n1)
initrd=$(npm run --silent guest:initrd | tail -n1)
exec node dist/src/cli/main.js boot --kernel "$kernel" --initrd "$initrd" --timeout 300 "$@"

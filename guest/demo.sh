#!/usr/bin/env bash
# The main job: set everything up and boot a microVM. With hardware KVM the in-process VMM boots the guest
# kernel and the test initramfs, whose init writes the boot timer, prints KATA_TS_INIT_OK and reboots the VM.
# On a software virtualizer (kvm_pvm), where a Linux guest cannot reach user space under KVM, `--hypervisor
# auto` runs the same kernel and initramfs under QEMU with TCG instead, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash guest/install-deps.sh
[ -d node_modules/esbuild ] || npm ci
npm run --silent build:ts
node dist/bundle/kata-ts.js check --no-probe || true
kernel=$(npm run --silent guest:kernel | tail -n1)
initrd=$(npm run --silent guest:initrd:test | tail -n1)
exec node dist/bundle/kata-ts.js boot --hypervisor auto --kernel "$kernel" --initrd "$initrd" --timeout 300 "$@"

// The real guest kernel built from kernel-config/, booted by the in-process VMM.
// - software KVM (kvm_pvm, this project's CI): the lean smoke kernel boots, its real drivers probe our
//   devices, and it reaches "Run /init as init process"; its first user-space syscall cannot work here.
// - hardware KVM: the full kernel boots the test initramfs, whose init writes the boot timer and the marker.

import { readFileSync } from 'node:fs';
import t from 'tap';
import { DEFAULT_CMDLINE } from '../../src/cli/boot.js';
import { checkHost } from '../../src/host/check.js';
import { applyQuirks, loadQuirksProfile } from '../../src/host/quirks.js';
import { createVm } from '../../src/vmm/vm.js';
import { guestArtifact } from '../helpers/guest-artifacts.js';

const SAFETY_NET_MS = 400_000; // only so a broken boot cannot hang CI; never a speed assertion

async function bootUntil(kernelPath: string, initrdPath: string, cmdline: string, marker: string) {
  const vm = await createVm({
    kernel: readFileSync(kernelPath),
    initrd: readFileSync(initrdPath),
    cmdline,
    memoryMiB: 256,
    vcpus: 1,
  });
  let seen = false;
  const onConsole = (): void => {
    if (!seen && vm.consoleText.includes(marker)) {
      seen = true;
      void vm.stop();
    }
  };
  vm.on('console', onConsole);
  const net = setTimeout(() => void vm.stop(), SAFETY_NET_MS);
  vm.start();
  const reason = await vm.wait();
  clearTimeout(net);
  onConsole();
  return { vm, reason, seen };
}

const host = checkHost({ probe: true });
const noKvm = host.can_create_vms ? false : `no usable KVM here: ${host.consequence}`;
const softSkip =
  noKvm || (host.virtualization !== 'software' ? 'hardware virtualization found: the full boot test below covers it' : false);
const hardSkip =
  noKvm ||
  (host.virtualization !== 'hardware'
    ? 'needs hardware virtualization: `kata-ts check` found a software virtualizer (kvm_pvm), where a Linux guest ' +
      'cannot run user space; the smoke test above covers the kernel boot here'
    : false);

t.test('kernel boots to "Run /init" on software KVM (smoke kernel)', { skip: softSkip }, async (t) => {
  const kernel = guestArtifact('guest:kernel:smoke');
  const initrd = guestArtifact('guest:initrd:test');
  const cmdline = applyQuirks(DEFAULT_CMDLINE, loadQuirksProfile('pvm'));
  const { vm, reason, seen } = await bootUntil(kernel, initrd, cmdline, 'Run /init as init process');
  t.ok(seen, 'console reached "Run /init as init process"', { tail: vm.consoleText.slice(-3000) });
  t.match(vm.consoleText, /Linux version 6\.1/, 'the kernel printed its banner on our UART');
  t.match(vm.consoleText, /Command line: .*noint3selftest/, 'the host-quirks profile reached the kernel');
  t.not(reason.kind, 'error', `VM stopped cleanly (${JSON.stringify(reason)})`);
  t.equal(vm.residentGuestBytes(), 0, 'guest memory released after stop');
});

t.test('kernel boots the test initramfs to its init marker (hardware KVM only)', { skip: hardSkip }, async (t) => {
  const kernel = guestArtifact('guest:kernel');
  const initrd = guestArtifact('guest:initrd:test');
  const { vm, seen } = await bootUntil(kernel, initrd, DEFAULT_CMDLINE, 'KATA_TS_INIT_OK');
  t.ok(seen, 'init printed KATA_TS_INIT_OK', { tail: vm.consoleText.slice(-3000) });
  t.ok(vm.bootTimer, 'init wrote the boot timer');
  if (vm.bootTimer) t.comment(`boot timer: ${(Number(vm.bootTimer.sinceCreateNs) / 1e6).toFixed(1)} ms after createVm()`);
});

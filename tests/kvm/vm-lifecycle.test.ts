// The VM's life cycle around the guest: pause/resume/stop through kicks, guest-initiated stops, and that
// every fd, mapping and worker comes back whether the VM ran or failed to build.

import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { NoPvhNote } from '../../src/boot/errors.js';
import { VmConfigError } from '../../src/contract/vm-shape.js';
import { createVm } from '../../src/vmm/vm.js';
import { VcpuPool } from '../../src/vmm/vcpu-pool.js';
import { buildElf, pvhNote } from '../helpers/elf-builder.js';
import { kvmSkipReason } from './payload-harness.js';

const skip = kvmSkipReason() ?? false;
const ENTRY = 0x100000;

/** A PVH image whose entry code is `code` at 1 MiB. */
function image(code: number[], note = true): Uint8Array {
  const data = new Uint8Array(0x100);
  data.set(code);
  return buildElf({ segments: [{ paddr: ENTRY, data }], ...(note ? { notes: [pvhNote(ENTRY)] } : {}) });
}

const SPIN = [0xeb, 0xfe]; // jmp $
// lidt [ENTRY+0x80] (an all-zero IDTR) ; ud2  -> no IDT: #UD, #DF, triple fault
const TRIPLE_FAULT = [0x0f, 0x01, 0x1d, 0x80, 0x00, 0x10, 0x00, 0x0f, 0x0b];

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}
/** kvm_run pages (anon_inode:kvm-vcpu) plus anonymous mappings of exactly `guestBytes` (guest RAM). */
function mapCount(guestBytes = 32 << 20): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => {
      if (l.includes('kvm-vcpu')) return true;
      const m = /^([0-9a-f]+)-([0-9a-f]+)\s/.exec(l);
      return m !== null && parseInt(m[2]!, 16) - parseInt(m[1]!, 16) === guestBytes;
    }).length;
}

t.test('pause, resume and stop a spinning guest on 2 vCPUs', { skip }, async (t) => {
  const pool = new VcpuPool();
  t.teardown(() => pool.close());
  const vm = await createVm({ kernel: image(SPIN), vcpus: 2, memoryMiB: 32, pool });
  t.same(vm.vcpuStates(), ['created', 'created']);
  vm.start();
  t.same(vm.vcpuStates(), ['running', 'running']);
  await vm.pause();
  t.same(vm.vcpuStates(), ['paused', 'paused'], 'both vCPUs (the BSP in KVM_RUN, the AP waiting for SIPI) were kicked');
  t.throws(() => vm.start(), /cannot start from state paused/);
  vm.resume();
  t.same(vm.vcpuStates(), ['running', 'running']);
  t.same(await vm.stop(), { kind: 'stopped' });
  t.same(vm.vcpuStates(), ['stopped', 'stopped']);
  // the pool hears from its workers on their own ports, shortly after the VM did
  for (let i = 0; i < 200 && pool.idleCount < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(pool.idleCount, 2, 'both workers went back to the pool');
});

t.test('a triple fault stops the VM as a shutdown', { skip }, async (t) => {
  const pool = new VcpuPool();
  t.teardown(() => pool.close());
  const vm = await createVm({ kernel: image(TRIPLE_FAULT), memoryMiB: 32, pool });
  vm.start();
  t.same(await vm.wait(), { kind: 'shutdown' });
});

t.test('running and stopping a VM gives back every fd and mapping', { skip }, async (t) => {
  const pool = new VcpuPool();
  t.teardown(() => pool.close());
  await pool.prewarm(2);
  // one run first so lazily opened process-wide state (/dev/kvm, the kick handler) is not counted
  let vm = await createVm({ kernel: image(SPIN), memoryMiB: 32, pool });
  vm.start();
  await vm.stop();
  const fds = fdCount();
  const maps = mapCount(64 << 20);
  for (let i = 0; i < 3; i++) {
    vm = await createVm({ kernel: image(SPIN), vcpus: 2, memoryMiB: 64, pool });
    vm.start();
    await vm.stop();
  }
  t.equal(fdCount(), fds, 'no fd left behind (VM, vCPUs, eventfds)');
  t.equal(mapCount(64 << 20), maps, 'no mapping left behind (guest RAM, kvm_run pages)');
  t.equal(maps, 0, 'and none was there before');
  t.equal(vm.residentGuestBytes(), 0);
});

t.test('a kernel without a PVH note is refused and nothing is left behind', { skip }, async (t) => {
  const pool = new VcpuPool();
  t.teardown(() => pool.close());
  const warm = await createVm({ kernel: image(SPIN), memoryMiB: 32, pool });
  warm.start();
  await warm.stop();
  const fds = fdCount();
  const maps = mapCount();
  await t.rejects(createVm({ kernel: image(SPIN, false), memoryMiB: 32, pool }), NoPvhNote);
  await t.rejects(createVm({ kernel: image(SPIN, false), memoryMiB: 32, pool }), /CONFIG_PVH/);
  await t.rejects(createVm({ kernel: new Uint8Array(10), memoryMiB: 32, pool }));
  t.equal(fdCount(), fds, 'fds released');
  t.equal(mapCount(), maps, 'mappings released');
});

t.test('bad sizes are refused before anything is made', async (t) => {
  await t.rejects(createVm({ kernel: image(SPIN), vcpus: 0 }), VmConfigError);
  await t.rejects(createVm({ kernel: image(SPIN), memoryMiB: 1 }), /--memory/);
});

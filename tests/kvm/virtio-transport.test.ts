// The whole virtio-mmio path on KVM: a ring-0 guest driver (tests/payloads/virtio-mmio.S) identifies the
// test device, negotiates features, sets up a queue and notifies it; the notify goes MMIO -> ioeventfd ->
// device worker (watchReadable) -> TestDevice -> used ring -> InterruptStatus + irqfd -> IOAPIC -> the
// guest's interrupt handler, which acks it. Also: the VM gives back every fd and worker when it stops.
import { readdirSync } from 'node:fs';
import t from 'tap';
import { VIRTIO_MMIO_VENDOR_ID } from '../../src/virtio/mmio/regs.js';
import { W_NOTIFY_EXITS } from '../../src/virtio/mmio/state.js';
import { createVm } from '../../src/vmm/vm.js';
import { VcpuPool } from '../../src/vmm/vcpu-pool.js';
import { buildPayload } from '../payloads/build.js';
import { TEST_DEVICE_CONFIG_MAGIC, TEST_DEVICE_F_FOO, TEST_DEVICE_ID, TEST_DEVICE_REPLY } from '../helpers/virtio-test-device.js';
import { describeRun, EXIT_OK, exceptionIn, kvmSkipReason, runPayload } from './payload-harness.js';
import type { DeviceSpec } from '../../src/contract/device-spec.js';

const skip = kvmSkipReason() ?? false;
const testDevice: DeviceSpec = {
  kind: 'module',
  module: new URL('../helpers/virtio-test-device.js', import.meta.url).href,
  exportName: 'TestDevice',
};

t.test('a guest driver talks to a device worker through MMIO, ioeventfd and irqfd', { skip }, async (t) => {
  const pool = new VcpuPool();
  t.teardown(() => pool.close());
  const run = await runPayload('virtio-mmio', { devices: [testDevice], pool, cmdline: 'payload' }, 60_000);
  const exc = exceptionIn(run.vm.testValues);
  t.equal(exc, undefined, `no CPU exception (${exc ? `vector ${exc.vector} at 0x${exc.eip.toString(16)}` : 'none'})`);
  t.same(run.exit, { kind: 'debug-exit', status: EXIT_OK }, describeRun(run));
  const [magic, version, id, vendor, featHi, featLo, refused, accepted, numMax, driverOk, isr, usedIdx, usedId, usedLen,
    reply0, reply1, isrAfter, config] = run.vm.testValues;
  t.equal(magic, 0x74726976, 'MagicValue');
  t.equal(version, 2, 'Version');
  t.equal(id, TEST_DEVICE_ID, 'DeviceID');
  t.equal(vendor, VIRTIO_MMIO_VENDOR_ID, 'VendorID');
  t.equal(featHi, 1, 'DeviceFeatures[63:32]: VERSION_1');
  t.equal(featLo, Number(TEST_DEVICE_F_FOO), 'DeviceFeatures[31:0]');
  t.equal(refused, 0x3, 'FEATURES_OK refused without VERSION_1');
  t.equal(accepted, 0xb, 'FEATURES_OK accepted with VERSION_1');
  t.equal(numMax, 16, 'QueueNumMax');
  t.equal(driverOk, 0xf, 'DRIVER_OK');
  t.equal(isr, 1, 'the interrupt handler saw InterruptStatus = used buffer');
  t.equal(usedIdx, 1, 'used.idx');
  t.equal(usedId, 0, 'used id = the head');
  t.equal(usedLen, 8, 'used len = bytes written');
  t.equal(reply0, TEST_DEVICE_REPLY, 'the device wrote its reply into guest memory');
  t.equal(reply1, 4, 'it saw the 4 readable bytes');
  t.equal(isrAfter, 0, 'InterruptACK cleared it');
  t.equal(config, TEST_DEVICE_CONFIG_MAGIC, 'config space at 0x100');
  t.equal(run.vm.devices.length, 1);
  const notifyExits = run.vm.devices[0]!.state.get(W_NOTIFY_EXITS);
  t.comment(`QueueNotify writes that missed the ioeventfd and exited to the register model: ${notifyExits}`);
  t.equal(notifyExits, 0, 'the notify went through the ioeventfd, not an MMIO exit');
});

t.test('the kernel command line names each device; stop frees every fd and worker', { skip }, async (t) => {
  const pool = new VcpuPool();
  t.teardown(() => pool.close());
  await pool.prewarm(1);
  const kernel = await buildPayload('virtio-mmio');
  const fdCount = (): number => readdirSync('/proc/self/fd').length;
  // warm up process-wide state first (/dev/kvm, the addon in a worker)
  let vm = await createVm({ kernel, devices: [testDevice], memoryMiB: 32, pool });
  vm.start();
  await vm.stop();
  const fds = fdCount();
  vm = await createVm({ kernel, devices: [testDevice, { kind: 'rng' }, testDevice], memoryMiB: 32, pool, cmdline: 'x=1' });
  t.same(vm.devices.map((d) => [d.base, d.irq]), [[0xd0000000, 5], [0xd0001000, 6], [0xd0002000, 7]], 'slots and IRQs');
  t.ok(fdCount() > fds, 'devices hold fds while the VM lives');
  const cmd = vm.memory.slice(0x20000, 200);
  const text = Buffer.from(cmd).toString('latin1').split('\0')[0];
  t.equal(
    text,
    'x=1 virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6 virtio_mmio.device=4K@0xd0002000:7',
    'command line',
  );
  vm.start();
  await vm.stop();
  t.equal(fdCount(), fds, 'every eventfd and fd given back');
});

t.test('a device that cannot start fails createVm and leaks nothing', { skip }, async (t) => {
  const pool = new VcpuPool();
  t.teardown(() => pool.close());
  const kernel = await buildPayload('virtio-mmio');
  const fds = readdirSync('/proc/self/fd').length;
  await t.rejects(
    createVm({ kernel, devices: [{ kind: 'module', module: testDevice.kind === 'module' ? testDevice.module : '', exportName: 'Nope' }], memoryMiB: 32, pool }),
    /could not start: .*no export 'Nope'/,
  );
  t.equal(readdirSync('/proc/self/fd').length, fds, 'no fd left behind');
});

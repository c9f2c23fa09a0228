// The virtio-mmio register model (virtio 1.2 §4.2.2) driven like a driver would, over the shared state, and
// the device worker's runner (activation, reset, DEVICE_NEEDS_RESET) with the mock driver in test memory.
import { DeviceBroken } from '../../src/virtio/device.js';
import t from 'tap';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX } from '../../src/virtio/ids.js';
import * as R from '../../src/virtio/mmio/regs.js';
import { CFGW_ENTRIES, TransportState, W_CFGW_DROPPED } from '../../src/virtio/mmio/state.js';
import { MmioTransport } from '../../src/virtio/mmio/transport.js';
import { MockSplitQueue } from '../support/virtio/mock-driver.js';
import { DeviceRunner } from '../../src/virtio/worker/device-runner.js';
import { TEST_DEVICE_CONFIG_MAGIC, TEST_DEVICE_F_FOO, TEST_DEVICE_ID, TEST_DEVICE_REPLY, TestDevice } from '../helpers/virtio-test-device.js';

const ACK = 1;
const DRIVER = 2;
const DRIVER_OK = 4;
const FEATURES_OK = 8;
const NEEDS_RESET = 0x40;
const FAILED = 0x80;

interface Rig {
  tr: MmioTransport;
  state: TransportState;
  controls: number;
  notified: number[];
  rd(off: number): number;
  wr(off: number, v: number): void;
}

function rig(opts: { features?: bigint; queues?: number[]; config?: Uint8Array } = {}): Rig {
  const state = TransportState.create();
  state.publishIdentity({
    deviceType: TEST_DEVICE_ID,
    features: (opts.features ?? TEST_DEVICE_F_FOO | VIRTIO_RING_F_EVENT_IDX) | VIRTIO_F_VERSION_1,
    queueMaxSizes: opts.queues ?? [16, 8],
    config: opts.config ?? new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
  });
  const r: Rig = {
    state,
    controls: 0,
    notified: [],
    tr: undefined as unknown as MmioTransport,
    rd(off) {
      const d = new Uint8Array(4);
      r.tr.read(off, d);
      return new DataView(d.buffer).getUint32(0, true);
    },
    wr(off, v) {
      const d = new Uint8Array(4);
      new DataView(d.buffer).setUint32(0, v >>> 0, true);
      r.tr.write(off, d);
    },
  };
  r.tr = new MmioTransport(state, { control: () => r.controls++, queue: (i) => r.notified.push(i) });
  return r;
}

/** §3.1.1 steps 1-6 with the given features (hi word, lo word). Returns the status read back. */
function negotiate(r: Rig, lo: number, hi: number): number {
  r.wr(R.REG_STATUS, 0);
  r.wr(R.REG_STATUS, ACK);
  r.wr(R.REG_STATUS, ACK | DRIVER);
  r.wr(R.REG_DRIVER_FEATURES_SEL, 0);
  r.wr(R.REG_DRIVER_FEATURES, lo);
  r.wr(R.REG_DRIVER_FEATURES_SEL, 1);
  r.wr(R.REG_DRIVER_FEATURES, hi);
  r.wr(R.REG_STATUS, ACK | DRIVER | FEATURES_OK);
  return r.rd(R.REG_STATUS);
}

function setupQueue(r: Rig, q: number, num: number, desc: number, avail: number, used: number): void {
  r.wr(R.REG_QUEUE_SEL, q);
  r.wr(R.REG_QUEUE_NUM, num);
  r.wr(R.REG_QUEUE_DESC_LOW, desc);
  r.wr(R.REG_QUEUE_DESC_HIGH, 0);
  r.wr(R.REG_QUEUE_DRIVER_LOW, avail);
  r.wr(R.REG_QUEUE_DRIVER_HIGH, 0);
  r.wr(R.REG_QUEUE_DEVICE_LOW, used);
  r.wr(R.REG_QUEUE_DEVICE_HIGH, 0);
  r.wr(R.REG_QUEUE_READY, 1);
}

t.test('identification registers', async (t) => {
  const r = rig();
  t.equal(r.rd(R.REG_MAGIC_VALUE), 0x74726976, 'MagicValue "virt"');
  t.equal(r.rd(R.REG_VERSION), 2, 'Version 2 (modern)');
  t.equal(r.rd(R.REG_DEVICE_ID), TEST_DEVICE_ID);
  t.equal(r.rd(R.REG_VENDOR_ID), R.VIRTIO_MMIO_VENDOR_ID);
  t.equal(r.rd(R.REG_QUEUE_NUM_MAX), 16, 'queue 0 max');
  r.wr(R.REG_QUEUE_SEL, 1);
  t.equal(r.rd(R.REG_QUEUE_NUM_MAX), 8, 'queue 1 max');
  r.wr(R.REG_QUEUE_SEL, 2);
  t.equal(r.rd(R.REG_QUEUE_NUM_MAX), 0, 'a queue the device lacks reads QueueNumMax 0');
  r.wr(R.REG_QUEUE_SEL, 0xffffffff);
  t.equal(r.rd(R.REG_QUEUE_NUM_MAX), 0);
  t.equal(r.rd(R.REG_SHM_LEN_LOW), 0xffffffff, 'no shared memory regions');
  const narrow = new Uint8Array(2);
  r.tr.read(R.REG_MAGIC_VALUE, narrow);
  t.same([...narrow], [0, 0], 'a 16-bit access to a control register reads 0 (§4.2.2.2)');
  const misaligned = new Uint8Array(4);
  r.tr.read(R.REG_MAGIC_VALUE + 2, misaligned);
  t.same([...misaligned], [0, 0, 0, 0], 'a misaligned access reads 0');
  t.equal(r.rd(0x0f0), 0, 'a reserved register reads 0');
});

t.test('feature negotiation', async (t) => {
  const r = rig();
  r.wr(R.REG_DEVICE_FEATURES_SEL, 0);
  t.equal(r.rd(R.REG_DEVICE_FEATURES), Number(TEST_DEVICE_F_FOO | VIRTIO_RING_F_EVENT_IDX), 'low word: device bits + EVENT_IDX');
  r.wr(R.REG_DEVICE_FEATURES_SEL, 1);
  t.equal(r.rd(R.REG_DEVICE_FEATURES), 1, 'high word: VIRTIO_F_VERSION_1 (bit 32)');
  r.wr(R.REG_DEVICE_FEATURES_SEL, 2);
  t.equal(r.rd(R.REG_DEVICE_FEATURES), 0, 'selectors past 1 read 0');

  // DriverFeatures before DRIVER is ignored
  r.wr(R.REG_DRIVER_FEATURES_SEL, 1);
  r.wr(R.REG_DRIVER_FEATURES, 1);
  t.equal(r.state.driverFeatures(), 0n, 'DriverFeatures written before DRIVER is ignored');

  t.equal(negotiate(r, 1, 0) & FEATURES_OK, 0, 'FEATURES_OK refused without VIRTIO_F_VERSION_1');
  t.equal(r.rd(R.REG_STATUS), ACK | DRIVER, 'the rest of the status write stays');
  t.equal(negotiate(r, 1 | (1 << 5), 1) & FEATURES_OK, 0, 'FEATURES_OK refused for a feature not offered');
  t.equal(negotiate(r, 0, 1 | 2) & FEATURES_OK, 0, 'FEATURES_OK refused for an unoffered high bit');
  t.equal(negotiate(r, 1, 1), ACK | DRIVER | FEATURES_OK, 'FEATURES_OK accepted for an offered subset with VERSION_1');
  t.equal(r.state.driverFeatures(), VIRTIO_F_VERSION_1 | TEST_DEVICE_F_FOO);
  r.wr(R.REG_DRIVER_FEATURES_SEL, 0);
  r.wr(R.REG_DRIVER_FEATURES, 0xffffffff);
  t.equal(r.state.driverFeatures(), VIRTIO_F_VERSION_1 | TEST_DEVICE_F_FOO, 'features are frozen after FEATURES_OK');
  t.equal(negotiate(r, 0, 1), ACK | DRIVER | FEATURES_OK, 'VERSION_1 alone is fine');
});

t.test('device status state machine', async (t) => {
  const r = rig();
  r.wr(R.REG_STATUS, DRIVER);
  t.equal(r.rd(R.REG_STATUS), 0, 'DRIVER without ACKNOWLEDGE is dropped');
  r.wr(R.REG_STATUS, ACK);
  const c0 = r.controls;
  r.wr(R.REG_STATUS, ACK);
  t.equal(r.controls, c0, 'writing the same status signals nothing');
  r.wr(R.REG_STATUS, ACK | DRIVER | DRIVER_OK);
  t.equal(r.rd(R.REG_STATUS), ACK | DRIVER, 'DRIVER_OK without FEATURES_OK is dropped');
  r.wr(R.REG_STATUS, ACK);
  t.equal(r.rd(R.REG_STATUS), ACK | DRIVER, 'bits are not cleared except by reset');
  r.wr(R.REG_STATUS, ACK | DRIVER | NEEDS_RESET);
  t.equal(r.rd(R.REG_STATUS) & NEEDS_RESET, 0, 'the driver cannot set DEVICE_NEEDS_RESET');
  t.equal(negotiate(r, 0, 1), ACK | DRIVER | FEATURES_OK);
  r.wr(R.REG_STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  t.equal(r.rd(R.REG_STATUS), ACK | DRIVER | FEATURES_OK | DRIVER_OK, 'DRIVER_OK after FEATURES_OK');
  r.state.setNeedsReset();
  r.wr(R.REG_STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK | FAILED);
  t.equal(r.rd(R.REG_STATUS), ACK | DRIVER | FEATURES_OK | DRIVER_OK | FAILED | NEEDS_RESET, 'FAILED may be added; NEEDS_RESET stays');
  t.ok(r.controls > c0, 'status changes signal the device worker');
});

t.test('queue registers', async (t) => {
  const r = rig();
  r.wr(R.REG_STATUS, ACK);
  r.wr(R.REG_STATUS, ACK | DRIVER);
  setupQueue(r, 0, 4, 0x1000, 0x2000, 0x3000);
  r.wr(R.REG_QUEUE_SEL, 0);
  t.equal(r.rd(R.REG_QUEUE_NUM), 16, 'before FEATURES_OK queue writes are ignored (QueueNum stays at max)');
  t.equal(r.rd(R.REG_QUEUE_READY), 0);
  t.equal(negotiate(r, 0, 1), ACK | DRIVER | FEATURES_OK);
  setupQueue(r, 1, 4, 0x1000, 0x2002, 0x3004);
  r.wr(R.REG_QUEUE_SEL, 1);
  t.equal(r.rd(R.REG_QUEUE_NUM), 4);
  t.equal(r.rd(R.REG_QUEUE_READY), 1);
  t.equal(r.rd(R.REG_QUEUE_DESC_LOW), 0x1000);
  t.equal(r.rd(R.REG_QUEUE_DRIVER_LOW), 0x2002);
  t.equal(r.rd(R.REG_QUEUE_DEVICE_LOW), 0x3004);
  r.wr(R.REG_QUEUE_DESC_LOW, 0x9000);
  r.wr(R.REG_QUEUE_NUM, 2);
  t.equal(r.rd(R.REG_QUEUE_DESC_LOW), 0x1000, 'a ready queue keeps its layout');
  t.equal(r.rd(R.REG_QUEUE_NUM), 4);
  r.wr(R.REG_QUEUE_READY, 0);
  t.equal(r.rd(R.REG_QUEUE_READY), 0, 'QueueReady can be cleared before DRIVER_OK');
  r.wr(R.REG_QUEUE_DESC_HIGH, 0x1);
  t.equal(r.rd(R.REG_QUEUE_DESC_HIGH), 1, 'high address words');
  t.equal(r.state.locked(() => r.state.queueRegsLocked())[1]!.descTable, 0x1_0000_1000, '64-bit address assembled');
  r.wr(R.REG_QUEUE_SEL, 5);
  r.wr(R.REG_QUEUE_NUM, 2);
  t.equal(r.rd(R.REG_QUEUE_NUM), 0, 'a missing queue stores nothing');
  r.wr(R.REG_QUEUE_SEL, 0);
  r.wr(R.REG_QUEUE_NUM, 8);
  r.wr(R.REG_QUEUE_READY, 1);
  r.wr(R.REG_STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  r.wr(R.REG_QUEUE_READY, 0);
  t.equal(r.rd(R.REG_QUEUE_READY), 1, 'after DRIVER_OK queue registers are frozen');

  // QueueNotify that reached the register model (the ioeventfd missed it)
  r.wr(R.REG_QUEUE_NOTIFY, 1);
  r.wr(R.REG_QUEUE_NOTIFY, 7);
  t.same(r.notified, [1], 'a valid index is forwarded to the queue eventfd, others are ignored');
});

t.test('reset', async (t) => {
  const r = rig();
  t.equal(negotiate(r, 1, 1), ACK | DRIVER | FEATURES_OK);
  setupQueue(r, 0, 8, 0x1000, 0x2000, 0x3000);
  r.wr(R.REG_STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  r.state.raiseIsr(3);
  r.state.setNeedsReset();
  const epoch = r.state.resetEpoch;
  const c0 = r.controls;
  r.wr(R.REG_STATUS, 0);
  t.equal(r.rd(R.REG_STATUS), 0, 'status 0');
  t.equal(r.rd(R.REG_INTERRUPT_STATUS), 0, 'InterruptStatus cleared (§4.2.2.1)');
  r.wr(R.REG_QUEUE_SEL, 0);
  t.equal(r.rd(R.REG_QUEUE_READY), 0, 'QueueReady cleared');
  t.equal(r.rd(R.REG_QUEUE_NUM), 16, 'QueueNum back to QueueNumMax');
  t.equal(r.rd(R.REG_QUEUE_DESC_LOW), 0);
  t.equal(r.state.driverFeatures(), 0n, 'driver features forgotten');
  t.equal(r.state.resetEpoch, epoch + 1, 'a new reset epoch for the device worker');
  t.equal(r.controls, c0 + 1, 'the worker is signalled');
});

t.test('InterruptStatus and InterruptACK', async (t) => {
  const r = rig();
  r.state.raiseIsr(1);
  r.state.raiseIsr(2);
  t.equal(r.rd(R.REG_INTERRUPT_STATUS), 3);
  r.wr(R.REG_INTERRUPT_ACK, 1);
  t.equal(r.rd(R.REG_INTERRUPT_STATUS), 2, 'only the acknowledged bit is cleared');
  r.wr(R.REG_INTERRUPT_ACK, 2);
  t.equal(r.rd(R.REG_INTERRUPT_STATUS), 0);
  r.wr(R.REG_INTERRUPT_STATUS, 3);
  t.equal(r.rd(R.REG_INTERRUPT_STATUS), 0, 'InterruptStatus is read-only');
});

t.test('configuration space and ConfigGeneration', async (t) => {
  const r = rig();
  const gen0 = r.rd(R.REG_CONFIG_GENERATION);
  const b = new Uint8Array(1);
  r.tr.read(R.REG_CONFIG + 2, b);
  t.equal(b[0], 3, '8-bit config read');
  const w = new Uint8Array(2);
  r.tr.read(R.REG_CONFIG + 4, w);
  t.same([...w], [5, 6], '16-bit config read');
  t.equal(r.rd(R.REG_CONFIG + 4), 0x08070605, '32-bit config read');
  t.equal(r.rd(R.REG_CONFIG + 8), 0, 'past the device config: 0');
  const q = new Uint8Array(8);
  r.tr.read(R.REG_CONFIG, q);
  t.same([...q], [1, 2, 3, 4, 5, 6, 7, 8], '64-bit config read');

  t.equal(r.state.publishConfig(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), false, 'same bytes: no new generation');
  t.equal(r.rd(R.REG_CONFIG_GENERATION), gen0);
  t.equal(r.state.publishConfig(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 9])), true);
  t.equal(r.rd(R.REG_CONFIG_GENERATION), (gen0 + 1) >>> 0, 'a change bumps ConfigGeneration (§2.5.1)');

  const c0 = r.controls;
  r.wr(R.REG_CONFIG + 4, 0xaabbccdd);
  t.equal(r.rd(R.REG_CONFIG + 4), 0xaabbccdd, 'a config write reads back');
  t.equal(r.controls, c0 + 1, 'and signals the device worker');
  r.wr(R.REG_CONFIG + 6, 0x11); // 4 bytes at 6..10 runs past the 8-byte config
  t.equal(r.controls, c0 + 1, 'a write past the config space is ignored');
  const writes = r.state.takeConfigWrites();
  t.same(writes.map((x) => [x.offset, [...x.data]]), [[4, [0xdd, 0xcc, 0xbb, 0xaa]]], 'queued for the worker in order');
  for (let i = 0; i < CFGW_ENTRIES + 3; i++) r.wr(R.REG_CONFIG, i);
  t.equal(r.state.takeConfigWrites().length, CFGW_ENTRIES, 'the config-write ring holds CFGW_ENTRIES');
  t.equal(r.state.get(W_CFGW_DROPPED), 3, 'overflow is counted, not overwritten');
});

// ---- the device worker's runner, with the mock driver in test memory

const RAM = 0x10_0000;

function runnerRig(deviceOpts: ConstructorParameters<typeof TestDevice>[0] = {}) {
  const r = rig();
  const mem = GuestMemory.anonymous([{ base: 0, size: RAM }]);
  const device = new TestDevice(deviceOpts);
  const logs: string[] = [];
  let irqs = 0;
  const runner = new DeviceRunner(device, r.state, mem, () => irqs++, (_l, m) => logs.push(m));
  runner.publishIdentity();
  const mq = new MockSplitQueue(mem, 0x1000, 8);
  return { r, mem, device, runner, logs, mq, irqs: () => irqs };
}

function bringUp(x: ReturnType<typeof runnerRig>, layout = x.mq.layout()): void {
  t.equal(negotiate(x.r, Number(TEST_DEVICE_F_FOO), 1), ACK | DRIVER | FEATURES_OK);
  setupQueue(x.r, 0, layout.size, layout.descTable, layout.availRing, layout.usedRing);
  x.r.wr(R.REG_STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  x.runner.onControl();
}

t.test('runner: identity, activation, a request and its interrupt', async (t) => {
  const x = runnerRig();
  t.equal(x.r.rd(R.REG_DEVICE_ID), TEST_DEVICE_ID, 'identity published by the runner');
  t.equal(x.r.rd(R.REG_CONFIG), TEST_DEVICE_CONFIG_MAGIC, 'config published');
  bringUp(x);
  t.ok(x.runner.isActive, 'DRIVER_OK activates the device');
  t.equal(x.device.counts.activations, 1);
  const head = x.mq.addChain([{ data: new Uint8Array(5) }, { len: 16, writable: true }]);
  x.mq.publish();
  x.runner.onQueue(0);
  t.same(x.mq.used(), [{ id: head, len: 8 }], 'the chain came back used');
  const out = new DataView(x.mq.readWrittenBytes(head).buffer);
  t.equal(out.getUint32(0, true), TEST_DEVICE_REPLY);
  t.equal(out.getUint32(4, true), 5, 'the device saw the 5 readable bytes');
  t.equal(x.irqs(), 1, 'one interrupt');
  t.equal(x.r.rd(R.REG_INTERRUPT_STATUS), 1, 'InterruptStatus: used buffer');
  x.runner.onControl();
  t.equal(x.device.counts.activations, 1, 'a second control event does not re-activate');
  x.runner.onQueue(3);
  t.equal(x.runner.counters.notifications, 2, 'notifications are counted; unknown queues ignored');
});

t.test('runner: an invalid queue layout marks the device DEVICE_NEEDS_RESET', async (t) => {
  const x = runnerRig();
  bringUp(x, { size: 8, descTable: RAM - 16, availRing: 0x2000, usedRing: 0x3000 }); // desc table runs off RAM
  t.notOk(x.runner.isActive);
  t.ok(x.runner.isBroken);
  t.equal(x.runner.lastError?.name, 'InvalidQueue');
  t.equal(x.r.rd(R.REG_STATUS) & NEEDS_RESET, NEEDS_RESET, 'DEVICE_NEEDS_RESET');
  t.equal(x.r.rd(R.REG_INTERRUPT_STATUS) & 2, 2, 'config change interrupt (§2.1.2)');
  t.equal(x.irqs(), 1);
  t.equal(x.runner.counters.bugs, 0, 'a guest error is not a bug');
  x.runner.onQueue(0);
  t.equal(x.device.counts.processCalls, 0, 'a broken device runs nothing');
  // the driver resets and tries again with a good layout
  x.r.wr(R.REG_STATUS, 0);
  bringUp(x);
  t.ok(x.runner.isActive, 'reset clears the failure');
  t.equal(x.r.rd(R.REG_STATUS) & NEEDS_RESET, 0);
});

t.test('runner: a size that is not a power of two is refused', async (t) => {
  const x = runnerRig();
  const l = x.mq.layout();
  bringUp(x, { ...l, size: 6 });
  t.ok(x.runner.isBroken);
  t.equal(x.r.rd(R.REG_STATUS) & NEEDS_RESET, NEEDS_RESET);
});

t.test('runner: DeviceBroken and device bugs from processQueue', async (t) => {
  for (const mode of ['broken', 'bug'] as const) {
    const x = runnerRig({ failProcess: mode });
    bringUp(x);
    t.ok(x.runner.isBroken, `${mode}: the activation sweep already ran the queue and failed`);
    t.equal(x.r.rd(R.REG_STATUS) & NEEDS_RESET, NEEDS_RESET, `${mode}: NEEDS_RESET`);
    t.equal(x.runner.counters.bugs, mode === 'bug' ? 1 : 0, `${mode}: bug counted only for non-DeviceBroken errors`);
    t.match(x.logs.join('\n'), mode === 'bug' ? /a device bug/ : /device needs reset/, `${mode}: logged`);
  }
});

t.test('runner: reset and re-DRIVER_OK between two control events', async (t) => {
  const x = runnerRig();
  bringUp(x);
  x.r.wr(R.REG_STATUS, 0);
  t.equal(negotiate(x.r, 0, 1), ACK | DRIVER | FEATURES_OK);
  const l = x.mq.layout();
  setupQueue(x.r, 0, l.size, l.descTable, l.availRing, l.usedRing);
  x.r.wr(R.REG_STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  x.runner.onControl(); // one coalesced wake-up
  t.equal(x.device.counts.resets, 1, 'the device was reset for the new epoch');
  t.equal(x.device.counts.activations, 2, 'and activated again');
  t.ok(x.runner.isActive);
});

t.test('runner: config writes reach the device; it republishes', async (t) => {
  const x = runnerRig();
  const gen = x.r.rd(R.REG_CONFIG_GENERATION);
  x.r.wr(R.REG_CONFIG, 0xdeadbeef); // read-only field of the test device
  x.r.wr(R.REG_CONFIG + 4, 42);
  x.runner.onControl();
  t.equal(x.device.counts.configWrites, 2);
  t.equal(x.r.rd(R.REG_CONFIG), TEST_DEVICE_CONFIG_MAGIC, 'the read-only field is restored by the device');
  t.equal(x.r.rd(R.REG_CONFIG + 4), 42, 'the writable field kept');
  t.ok(x.r.rd(R.REG_CONFIG_GENERATION) !== gen, 'the restore bumped ConfigGeneration');
});

// ---- the addon pieces the device worker stands on (native/poll_io.cc)
t.test('native: watchReadable / unwatch / readv / writev on an eventfd', async (t) => {
  const { loadNative } = await import('../../src/kvm/native.js');
  const native = loadNative();
  const fd = native.eventfd(0, 0o4000 /* EFD_NONBLOCK */);
  t.teardown(() => native.close(fd));
  t.equal(native.readv(fd, [new Uint8Array(8)]), -11, 'EAGAIN comes back as -EAGAIN');
  const got: bigint[] = [];
  let id = 0;
  await new Promise<void>((resolve) => {
    id = native.watchReadable(fd, () => {
      got.push(native.eventfdRead(fd) ?? -1n);
      if (got.length === 2) resolve();
      else setTimeout(() => native.eventfdWrite(fd, 7n), 1);
    });
    native.eventfdWrite(fd, 5n);
  });
  t.same(got, [5n, 7n], 'the callback ran once per readable edge, on this thread');
  native.unwatch(id);
  native.unwatch(id); // idempotent
  native.eventfdWrite(fd, 1n);
  await new Promise((r) => setTimeout(r, 20));
  t.equal(got.length, 2, 'no callback after unwatch');
  const out = new Uint8Array(8);
  t.equal(native.readv(fd, [out.subarray(0, 3), out.subarray(3)]), 8, 'readv scatters the 8-byte counter');
  t.equal(out[0], 1);
  // writev on a file (an eventfd takes only whole 8-byte writes, one per iovec)
  const { openSync, closeSync, readFileSync, mkdtempSync } = await import('node:fs');
  const path = `${mkdtempSync('/tmp/kata-ts-writev-')}/f`;
  const file = openSync(path, 'w');
  t.equal(native.writev(file, [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array([4, 5])]), 5, 'writev gathers');
  closeSync(file);
  t.same([...readFileSync(path)], [1, 2, 3, 4, 5]);
  t.throws(() => native.watchReadable(fd, 5 as unknown as () => void), /cb must be a function/);
  t.throws(() => native.readv(fd, [new Uint16Array(4) as unknown as Uint8Array]), /must be a Uint8Array/);
});

t.test('runner: a device that breaks outside processQueue reports it through ActivateContext.fail', async (t) => {
  const x = runnerRig();
  bringUp(x);
  const ctx = (x.device as unknown as { active?: { ctx: { fail?: (e: DeviceBroken) => void } } }).active?.ctx;
  t.type(ctx?.fail, 'function', 'the runner hands devices a fail hook');
  ctx?.fail?.(new DeviceBroken('rx ring went bad in a host callback'));
  t.ok(x.runner.isBroken, 'broken at once, without waiting for a notification');
  t.equal(x.r.rd(R.REG_STATUS) & NEEDS_RESET, NEEDS_RESET, 'DEVICE_NEEDS_RESET');
  t.equal(x.r.rd(R.REG_INTERRUPT_STATUS) & 2, 2, 'config change interrupt');
});

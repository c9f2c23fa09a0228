// The transport-agnostic DeviceHost (src/virtio/device-host.ts) on its own, with the test device and the mock
// driver in test memory: activation with validated queues and the transport's interrupt line, a hostile ring
// that makes the device broken and tells the transport once, a device bug counted and handled the same way,
// recovery, deactivation that keeps the ring positions, and a process that goes on throughout.

import t from 'tap';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { DeviceHost, type Activation, type DeviceHostOptions } from '../../src/virtio/device-host.js';
import { DeviceBroken, type ActivateContext } from '../../src/virtio/device.js';
import { VIRTIO_RING_F_EVENT_IDX } from '../../src/virtio/ids.js';
import { TEST_DEVICE_REPLY, TestDevice, type TestDeviceOptions } from '../helpers/virtio-test-device.js';
import { MockSplitQueue } from '../support/virtio/mock-driver.js';

const RAM = 0x10_0000;

function hostRig(deviceOpts: TestDeviceOptions = {}, device = new TestDevice(deviceOpts)) {
  const mem = GuestMemory.anonymous([{ base: 0, size: RAM }]);
  const mq = new MockSplitQueue(mem, 0x1000, 8);
  const used: number[] = [];
  const broken: Error[] = [];
  const logs: Array<[string, string]> = [];
  let configSignals = 0;
  const opts: DeviceHostOptions = {
    interrupt: { signalUsed: (q) => used.push(q), signalConfig: () => void configSignals++ },
    // what a transport does here: MMIO sets DEVICE_NEEDS_RESET and raises a configuration interrupt
    onBroken: (e) => {
      broken.push(e);
      configSignals++;
    },
    log: (level, msg) => logs.push([level, msg]),
    logPrefix: 'test transport device',
    brokenMeans: 'device needs reset',
  };
  const host = new DeviceHost(device, opts);
  const plan = (over: Partial<Activation> = {}): (() => Activation) => () => ({
    mem,
    ackedFeatures: 0n,
    rings: [{ layout: mq.layout(), maxSize: 16 }],
    ...over,
  });
  return { mem, mq, device, host, plan, used, broken, logs, configSignals: () => configSignals };
}

t.test('activation: validated queues, the interrupt line, a request served', async (t) => {
  const x = hostRig();
  t.notOk(x.host.isActive, 'inactive before activation');
  x.host.process(0);
  t.equal(x.device.counts.processCalls, 0, 'a notification before activation is ignored');
  const head = x.mq.addChain([{ data: new Uint8Array(3) }, { len: 8, writable: true }]);
  x.mq.publish();
  x.host.activate(x.plan());
  t.ok(x.host.isActive);
  t.equal(x.host.queueCount, 1);
  t.equal(x.host.counters.activations, 1);
  t.equal(x.device.counts.activations, 1);
  t.same(x.mq.used(), [{ id: head, len: 8 }], 'the activation sweep served the chain published before it');
  t.equal(new DataView(x.mq.readWrittenBytes(head).buffer).getUint32(0, true), TEST_DEVICE_REPLY);
  t.same(x.used, [0], 'through the transport interrupt line');
  x.host.activate(x.plan());
  t.equal(x.device.counts.activations, 1, 'an active device is not activated twice');
  x.host.process(5);
  t.equal(x.device.counts.processCalls, 1, 'a queue the device does not run is ignored');
  t.same(x.broken, [], 'never broken');
});

t.test('the device gets the acked features, a fail hook and the rings in order', async (t) => {
  const x = hostRig();
  x.host.activate(x.plan({ ackedFeatures: VIRTIO_RING_F_EVENT_IDX }));
  const ctx = (x.device as unknown as { active?: { ctx: ActivateContext } }).active?.ctx;
  t.equal(ctx?.ackedFeatures, VIRTIO_RING_F_EVENT_IDX);
  t.equal(ctx?.queues.length, 1);
  t.equal(typeof ctx?.fail, 'function', 'a fail hook');
  ctx?.fail?.(new DeviceBroken('rx ring went bad in a host callback'));
  t.ok(x.host.isBroken, 'broken at once, without a notification');
  t.equal(x.broken.length, 1, 'the transport was told');
});

t.test('a hostile ring makes the device broken; the transport is told once; reset recovers', async (t) => {
  const x = hostRig();
  x.host.activate(x.plan());
  x.mq.setAvailIdx(100); // 100 entries ahead of an 8-entry ring (virtio 1.2 §2.7.13.3)
  x.host.process(0);
  t.ok(x.host.isBroken, 'broken');
  t.equal(x.host.lastError?.name, 'AvailIndexJump');
  t.equal(x.host.counters.broken, 1);
  t.equal(x.host.counters.bugs, 0, 'a guest error is not a bug');
  t.equal(x.broken.length, 1, 'onBroken called');
  t.equal(x.configSignals(), 1, 'the transport signalled the driver');
  t.match(x.logs, [['warn', /^test transport device 63: queue 0: .*: device needs reset$/]]);
  const calls = x.device.counts.processCalls;
  x.host.process(0);
  x.host.guard('config write', () => {
    throw new DeviceBroken('again');
  });
  t.equal(x.device.counts.processCalls, calls, 'a broken device runs nothing');
  t.equal(x.broken.length, 1, 'told once per failure');
  t.equal(x.host.lastError?.message, 'again', 'the last error is kept');
  // the driver resets the device and sets it up again
  t.ok(x.host.deactivate(), 'deactivate returns the queues it ran');
  t.notOk(x.host.isActive);
  x.host.activate(x.plan());
  t.notOk(x.host.isActive, 'still broken: no activation until the transport clears it');
  x.host.recover();
  t.equal(x.host.lastError, undefined);
  x.mq.reset();
  x.host.activate(x.plan());
  t.ok(x.host.isActive, 'active again after recover()');
  t.equal(x.device.counts.resets, 1);
});

t.test('a device bug is counted, logged and handled like a broken ring; the process goes on', async (t) => {
  const x = hostRig({ failProcess: 'bug' });
  x.host.activate(x.plan());
  t.ok(x.host.isBroken, 'the activation sweep ran the queue and the device threw');
  t.equal(x.host.counters.bugs, 1);
  t.equal(x.host.lastError?.name, 'TypeError');
  t.match(x.logs, [['error', /activation threw TypeError: test device bug \(a device bug\)/]]);
  t.equal(x.broken.length, 1, 'the transport was told');
  const y = hostRig({ failProcess: 'broken' });
  y.host.activate(y.plan());
  t.ok(y.host.isBroken);
  t.equal(y.host.counters.bugs, 0, 'a DeviceBroken is not a bug');
});

t.test('rings set up wrong: the plan or queue validation fails, nothing is activated', async (t) => {
  const x = hostRig();
  x.host.activate(() => {
    throw new DeviceBroken('DRIVER_OK with no queue ready');
  });
  t.ok(x.host.isBroken);
  t.notOk(x.host.isActive);
  t.equal(x.device.counts.activations, 0);
  const y = hostRig();
  y.host.activate(y.plan({ rings: [{ layout: { ...y.mq.layout(), descTable: RAM - 16 }, maxSize: 16 }] })); // off the end of RAM
  t.ok(y.host.isBroken);
  t.equal(y.host.lastError?.name, 'InvalidQueue');
  t.equal(y.host.counters.bugs, 0);
  t.equal(y.device.counts.activations, 0);
  const z = hostRig();
  z.host.activate(z.plan({ rings: [{ layout: z.mq.layout(), maxSize: 4 }] })); // an 8-entry ring, QueueNumMax 4
  t.equal(z.host.lastError?.name, 'InvalidQueue', 'a ring larger than QueueNumMax is refused');
});

t.test('deactivation keeps the ring positions; a ring resumes where it stopped', async (t) => {
  const x = hostRig();
  x.host.activate(x.plan());
  for (let i = 0; i < 3; i++) x.mq.addChain([{ len: 8, writable: true }]);
  x.mq.publish();
  x.host.process(0);
  const queues = x.host.deactivate();
  t.equal(queues?.[0]?.nextAvail, 3, 'the queue the device ran, with its position');
  t.equal(x.host.deactivate(), undefined, 'nothing to deactivate twice');
  x.mq.addChain([{ len: 8, writable: true }]);
  x.mq.publish();
  x.host.activate(x.plan({ rings: [{ layout: x.mq.layout(), maxSize: 16, start: { nextAvail: 3, nextUsed: 3 } }] }));
  t.equal(x.mq.usedIdx(), 4, 'only the new chain was served');
});

t.test('a reset that throws is a device bug; the device is inactive anyway', async (t) => {
  class BadReset extends TestDevice {
    override reset(): void {
      super.reset();
      throw new RangeError('reset bug');
    }
  }
  const x = hostRig({}, new BadReset());
  x.host.activate(x.plan());
  t.ok(x.host.deactivate());
  t.notOk(x.host.isActive);
  t.notOk(x.host.isBroken, 'not broken: the transport is resetting it');
  t.equal(x.host.counters.bugs, 1);
  t.match(x.logs, [['error', /reset threw RangeError: reset bug \(a device bug\)/]]);
});

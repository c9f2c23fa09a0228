// virtio-rng device model through the shared mock driver: every writable chain comes back filled with the
// entropy source's bytes, used length = bytes written; malformed chains come back with length 0.

import t from 'tap';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { DeviceBroken } from '../../src/virtio/device.js';
import { VIRTIO_ID_RNG, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../../src/virtio/ids.js';
import { SplitQueue, VRING_DESC_F_NEXT } from '../../src/virtio/queue.js';
import { CryptoEntropySource, FakeEntropySource } from '../../src/virtio/rng/backend.js';
import { RngDevice } from '../../src/virtio/rng/device.js';
import { RNG_MAX_BYTES_PER_REQUEST, parseRngRequest, NoWritableBuffer, UnexpectedReadableDescriptor } from '../../src/virtio/rng/request.js';
import { MockSplitQueue } from '../support/virtio/mock-driver.js';

function rig(opts: { eventIdx?: boolean; source?: FakeEntropySource } = {}) {
  const mem = GuestMemory.anonymous([{ base: 0, size: 1 << 20 }]);
  const mq = new MockSplitQueue(mem, 0, 16);
  const eventIdx = opts.eventIdx ?? false;
  const q = SplitQueue.create(mem, mq.layout(), { maxSize: 256, eventIdx });
  const source = opts.source ?? new FakeEntropySource(7);
  const dev = new RngDevice(source);
  const irq = { used: 0 };
  dev.activate({
    mem,
    queues: [q],
    interrupt: { signalUsed: () => void irq.used++, signalConfig: () => undefined },
    ackedFeatures: dev.availableFeatures | (eventIdx ? VIRTIO_RING_F_EVENT_IDX : 0n),
  });
  return { mem, mq, q, dev, irq };
}

/** The bytes a FakeEntropySource with this seed hands out first. */
function expected(seed: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  new FakeEntropySource(seed).fill(b);
  return b;
}

t.test('identity: device id 4, one queue, no config space, ring features offered', async (t) => {
  const dev = new RngDevice(new FakeEntropySource());
  t.equal(dev.deviceType, VIRTIO_ID_RNG);
  t.same(dev.queueMaxSizes, [256]);
  t.equal(dev.configSpace().length, 0);
  t.equal(dev.availableFeatures, VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC);
});

t.test('fills a single writable buffer; used length = its size', async (t) => {
  const r = rig();
  const h = r.mq.addChain([{ len: 64, writable: true }]);
  r.mq.publish();
  r.dev.processQueue(0);
  const bytes = r.mq.readWrittenBytes(h);
  t.same(r.mq.used(), [{ id: h, len: 64 }]);
  t.same(bytes, expected(7, 64));
  t.equal(r.irq.used, 1, 'one interrupt for the batch');
  t.equal(r.dev.metrics().bytes, 64);
});

t.test('fills chains across several descriptors, zero-length ones included, direct and indirect', async (t) => {
  for (const indirect of [false, true]) {
    const r = rig();
    const h = r.mq.addChain([{ len: 10, writable: true }, { len: 0, writable: true }, { len: 30, writable: true }], { indirect });
    r.mq.publish();
    r.dev.processQueue(0);
    const bytes = r.mq.readWrittenBytes(h);
    t.same(r.mq.used(), [{ id: h, len: 40 }], `used length (indirect=${String(indirect)})`);
    t.same(bytes, expected(7, 40), 'stream continues across descriptors');
  }
});

t.test('a batch of chains gets one interrupt and consecutive stream bytes', async (t) => {
  const r = rig();
  const heads = [8, 16, 32].map((n) => r.mq.addChain([{ len: n, writable: true }]));
  r.mq.publish();
  r.dev.processQueue(0);
  const got = heads.map((h) => r.mq.readWrittenBytes(h));
  t.same(r.mq.used().map((u) => u.len), [8, 16, 32]);
  const all = expected(7, 56);
  t.same(got[0], all.subarray(0, 8));
  t.same(got[1], all.subarray(8, 24));
  t.same(got[2], all.subarray(24, 56));
  t.equal(r.irq.used, 1);
  t.equal(r.dev.metrics().requests, 3);
});

t.test('caps one request at RNG_MAX_BYTES_PER_REQUEST (the device MAY use less)', async (t) => {
  const r = rig();
  const h = r.mq.addChain([{ len: RNG_MAX_BYTES_PER_REQUEST + 4096, writable: true }]);
  r.mq.publish();
  r.dev.processQueue(0);
  t.same(r.mq.used(), [{ id: h, len: RNG_MAX_BYTES_PER_REQUEST }]);
  const bytes = r.mq.readWrittenBytes(h);
  t.equal(bytes.length, RNG_MAX_BYTES_PER_REQUEST);
});

t.test('readable descriptors or no writable bytes: returned with length 0, nothing written', async (t) => {
  const r = rig();
  const h1 = r.mq.addChain([{ data: new Uint8Array([1, 2, 3]) }, { len: 16, writable: true }]);
  const h2 = r.mq.addChain([{ len: 0, writable: true }]);
  const h3 = r.mq.addChain([{ data: new Uint8Array(4) }]);
  r.mq.publish();
  r.dev.processQueue(0);
  const w1 = r.mq.readWrittenBytes(h1);
  t.same(r.mq.used(), [
    { id: h1, len: 0 },
    { id: h2, len: 0 },
    { id: h3, len: 0 },
  ]);
  t.same(w1, new Uint8Array(16), 'the writable part of a refused chain stays untouched');
  const m = r.dev.metrics();
  t.equal(m.malformed, 3);
  t.equal(m['errors.UnexpectedReadableDescriptor'], 2);
  t.equal(m['errors.NoWritableBuffer'], 1);
  t.equal(m.bytes, 0);
});

t.test('parseRngRequest names its errors', async (t) => {
  t.throws(() => parseRngRequest([{ addr: 0, len: 4, writable: false }]), UnexpectedReadableDescriptor);
  t.throws(() => parseRngRequest([]), NoWritableBuffer);
  t.throws(() => parseRngRequest([{ addr: 0, len: 0, writable: true }]), NoWritableBuffer);
  t.same(parseRngRequest([{ addr: 0, len: 5, writable: true }]).bytes, 5);
});

t.test('structural queue errors break the device (DeviceBroken); inactive and unknown queues are ignored', async (t) => {
  const r = rig();
  const h = r.mq.addChain([{ len: 8, writable: true }, { len: 8, writable: true }]);
  // point the first descriptor's next at a slot past the queue size
  r.mq.writeDesc(h, { addr: r.mq.dataStart, len: 8, flags: VRING_DESC_F_NEXT | 2, next: 999 });
  r.mq.publish();
  let broke = false;
  try {
    r.dev.processQueue(0);
  } catch (e) {
    broke = e instanceof DeviceBroken;
  }
  t.ok(broke, 'processQueue throws a DeviceBroken');
  r.dev.processQueue(3); // not a queue of this device: ignored
  r.dev.reset();
  r.dev.processQueue(0); // inactive: nothing happens
  t.pass('no throw after reset');
});

t.test('EVENT_IDX: used_event suppresses the interrupt until it is passed', async (t) => {
  const r = rig({ eventIdx: true });
  r.mq.setUsedEvent(1); // interrupt when used.idx passes 1, i.e. after the 2nd chain
  r.mq.addChain([{ len: 4, writable: true }]);
  r.mq.publish();
  r.dev.processQueue(0);
  t.equal(r.irq.used, 0, 'first completion: no interrupt');
  r.mq.addChain([{ len: 4, writable: true }]);
  r.mq.publish();
  r.dev.processQueue(0);
  t.equal(r.irq.used, 1, 'second completion passes used_event');
  t.equal(r.mq.used().length, 2);
});

t.test('the real source (getrandom via crypto) fills guest memory', async (t) => {
  const r = rig();
  const dev = new RngDevice(new CryptoEntropySource());
  dev.activate({ mem: r.mem, queues: [r.q], interrupt: { signalUsed: () => undefined, signalConfig: () => undefined }, ackedFeatures: 0n });
  const h = r.mq.addChain([{ len: 256, writable: true }]);
  r.mq.publish();
  dev.processQueue(0);
  const bytes = r.mq.readWrittenBytes(h);
  t.same(r.mq.used(), [{ id: h, len: 256 }]);
  const distinct = new Set(bytes).size;
  t.ok(distinct > 64, `256 random bytes hold many distinct values (got ${String(distinct)})`);
});

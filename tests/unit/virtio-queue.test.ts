import t from 'tap';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { DeviceBroken } from '../../src/virtio/device.js';
import {
  AvailIndexJump,
  BadIndirectTable,
  ChainError,
  ChainLengthOverflow,
  ChainReader,
  ChainTooLong,
  ChainTooShort,
  ChainWriter,
  DescriptorIndexOutOfRange,
  DescriptorOutOfMemory,
  InvalidQueue,
  NestedIndirect,
  ReadAfterWrite,
  SplitQueue,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_USED_F_NO_NOTIFY,
  vringNeedEvent,
  type Descriptor,
} from '../../src/virtio/queue.js';
import { MockSplitQueue } from '../support/virtio/mock-driver.js';
import * as ids from '../../src/virtio/ids.js';

const NEXT = VRING_DESC_F_NEXT;
const WRITE = VRING_DESC_F_WRITE;
const INDIRECT = VRING_DESC_F_INDIRECT;

function setup(size = 16, o: { eventIdx?: boolean; indirect?: boolean; memSize?: number } = {}) {
  const mem = GuestMemory.anonymous([{ base: 0, size: o.memSize ?? 0x10000 }]);
  const m = new MockSplitQueue(mem, 0x1000, size);
  const q = SplitQueue.create(mem, m.layout(), {
    maxSize: 256,
    eventIdx: o.eventIdx ?? false,
    indirect: o.indirect ?? true,
  });
  return { mem, m, q };
}

/** Publish one chain whose head is descriptor `head` (descriptors written raw beforehand). */
function publishHead(m: MockSplitQueue, head: number): void {
  m.pushHead(head);
  m.publish();
}

t.test('ids match the Linux headers', async (t) => {
  t.equal(ids.VIRTIO_ID_NET, 1);
  t.equal(ids.VIRTIO_ID_BLOCK, 2);
  t.equal(ids.VIRTIO_ID_RNG, 4);
  t.equal(ids.VIRTIO_ID_VSOCK, 19);
  t.equal(ids.VIRTIO_ID_FS, 26);
  t.equal(ids.VIRTIO_F_VERSION_1, 1n << 32n);
  t.equal(ids.VIRTIO_RING_F_INDIRECT_DESC, 1n << 28n);
  t.equal(ids.VIRTIO_RING_F_EVENT_IDX, 1n << 29n);
  t.same(
    [ids.VIRTIO_STATUS_ACKNOWLEDGE, ids.VIRTIO_STATUS_DRIVER, ids.VIRTIO_STATUS_DRIVER_OK, ids.VIRTIO_STATUS_FEATURES_OK],
    [1, 2, 4, 8],
  );
  t.equal(ids.DeviceStatus.DEVICE_NEEDS_RESET, 0x40);
  t.equal(ids.DeviceStatus.FAILED, 0x80);
});

t.test('create() validates size, alignment and that every ring lies in RAM', async (t) => {
  const mem = GuestMemory.anonymous([
    { base: 0, size: 0x4000 },
    { base: 0x4000, size: 0x4000 }, // adjacent region: a ring may not span the two
  ]);
  const ok = { size: 16, descTable: 0x1000, availRing: 0x1100, usedRing: 0x1200 };
  const o = { maxSize: 256, eventIdx: false };
  t.ok(SplitQueue.create(mem, ok, o) instanceof SplitQueue);
  t.equal(SplitQueue.create(mem, { ...ok, size: 1 }, o).size, 1, 'size 1 is a power of two');
  const bad = (what: string, l: Partial<typeof ok>, opts = o): void => {
    t.throws(() => SplitQueue.create(mem, { ...ok, ...l }, opts), InvalidQueue, what);
  };
  bad('size 0', { size: 0 });
  bad('size 3', { size: 3 });
  bad('size above the maximum', { size: 512 });
  bad('size not an integer', { size: 2.5 });
  bad('desc table not 16-aligned', { descTable: 0x1008 });
  bad('avail ring odd', { availRing: 0x1101 });
  bad('used ring not 4-aligned', { usedRing: 0x1202 });
  bad('desc table past RAM', { descTable: 0x8000 - 0x80 });
  bad('avail ring past RAM', { availRing: 0x8000 - 0x20 });
  bad('used ring past RAM', { usedRing: 0x8000 - 0x80 });
  bad('used ring across two regions', { usedRing: 0x4000 - 0x40 });
  bad('address near 2^64', { descTable: 2 ** 64 - 0x1000 });
  bad('address not an integer', { availRing: Number.NaN });
  t.throws(() => SplitQueue.create(mem, ok, { maxSize: 100, eventIdx: false }), RangeError, 'device max not a power of 2');
  const e = t.throws(() => SplitQueue.create(mem, { ...ok, size: 3 }, o)) as Error;
  t.ok(e instanceof DeviceBroken, 'InvalidQueue is a DeviceBroken (transport sets DEVICE_NEEDS_RESET)');
});

t.test('pop() returns published chains with checked descriptors', async (t) => {
  const { m, q } = setup();
  t.equal(q.pop(), undefined, 'empty ring');
  const head = m.addChain([{ data: Uint8Array.of(1, 2, 3) }, { len: 8, writable: true }]);
  t.equal(q.pop(), undefined, 'not visible before publish');
  m.publish();
  const c = q.pop()!;
  t.equal(c.head, head);
  const d = c.descriptors();
  t.equal(d.length, 2);
  t.same(
    d.map((x) => [x.len, x.writable]),
    [
      [3, false],
      [8, true],
    ],
  );
  t.equal(q.nextAvail, 1);
  t.equal(q.pop(), undefined);
});

t.test('avail.idx more than size ahead: AvailIndexJump (u16 arithmetic)', async (t) => {
  const { m, q } = setup(16);
  m.writeDesc(0, { addr: 0x8000, len: 4, flags: 0, next: 0 });
  m.setAvailIdx(16);
  t.ok(q.pop(), 'exactly size pending is fine');
  const { m: m2, q: q2 } = setup(16);
  m2.setAvailIdx(17);
  const e = t.throws(() => q2.pop(), AvailIndexJump) as AvailIndexJump;
  t.ok(e instanceof DeviceBroken);
  t.match(e.message, /17 entries ahead/);
  const { m: m3, q: q3 } = setup(16);
  m3.setAvailIdx(0xffff); // "behind" the device: (0xffff - 0) mod 2^16 is a huge jump
  t.throws(() => q3.pop(), AvailIndexJump);
});

t.test('head index not below the queue size: DescriptorIndexOutOfRange', async (t) => {
  const { m, q } = setup(16);
  publishHead(m, 16);
  t.throws(() => q.pop(), DescriptorIndexOutOfRange);
});

t.test('next index not below the queue size: DescriptorIndexOutOfRange', async (t) => {
  const { m, q } = setup(16);
  m.writeDesc(3, { addr: 0x8000, len: 4, flags: NEXT, next: 16 });
  publishHead(m, 3);
  const c = q.pop()!;
  const e = t.throws(() => c.descriptors(), DescriptorIndexOutOfRange) as ChainError;
  t.ok(e instanceof ChainError && e instanceof DeviceBroken);
  t.equal(e.head, 3);
});

t.test('loops hit the hop budget: ChainTooLong; a chain of exactly size descriptors is fine', async (t) => {
  const { m, q } = setup(8);
  m.writeDesc(0, { addr: 0x8000, len: 4, flags: NEXT, next: 0 }); // self loop
  publishHead(m, 0);
  t.throws(() => q.pop()!.descriptors(), ChainTooLong, 'self loop');
  m.writeDesc(1, { addr: 0x8000, len: 4, flags: NEXT, next: 2 });
  m.writeDesc(2, { addr: 0x8000, len: 4, flags: NEXT, next: 1 });
  publishHead(m, 1);
  t.throws(() => q.pop()!.descriptors(), ChainTooLong, 'two-descriptor loop');
  for (let i = 0; i < 8; i++) m.writeDesc(i, { addr: 0x8000 + i, len: 1, flags: i < 7 ? NEXT : 0, next: i + 1 });
  publishHead(m, 0);
  t.equal(q.pop()!.descriptors().length, 8, 'all 8 descriptors of a size-8 queue');
});

t.test('buffers outside RAM: DescriptorOutOfMemory; zero-length buffers anywhere in RAM are fine', async (t) => {
  const mem = GuestMemory.anonymous([
    { base: 0, size: 0x10000 },
    { base: 0x10000, size: 0x1000 }, // adjacent
    { base: 0x1_0000_0000, size: 0x1000 }, // after a hole
  ]);
  const m = new MockSplitQueue(mem, 0x1000, 16);
  const q = SplitQueue.create(mem, m.layout(), { maxSize: 16, eventIdx: false });
  const one = (addr: number | bigint, len: number): Descriptor[] => {
    m.writeDesc(0, { addr, len, flags: 0, next: 0 });
    publishHead(m, 0);
    return q.pop()!.descriptors();
  };
  const bad = (what: string, addr: number | bigint, len: number): void => {
    t.throws(() => one(addr, len), DescriptorOutOfMemory, what);
  };
  bad('past the end of the last region', 0x1_0000_1000, 1);
  bad('runs off a region end', 0x1_0000_0ff0, 0x20);
  bad('in the hole', 0x2000_0000, 4);
  bad('spans two adjacent regions', 0xfff0, 0x20);
  bad('near 2^64', 0xffff_ffff_ffff_fff0n, 8);
  bad('2^64 - 1 with zero length', 0xffff_ffff_ffff_ffffn, 0);
  bad('at 2^52', 2 ** 52, 0);
  bad('u32-max length', 0x8000, 0xffff_ffff);
  bad('zero length in the hole', 0x2000_0000, 0);
  t.same(one(0x8000, 0), [{ addr: 0x8000, len: 0, writable: false }], 'zero length inside RAM');
  t.same(one(0x1_0000_1000, 0), [{ addr: 0x1_0000_1000, len: 0, writable: false }], 'zero length at a region end');
  t.same(one(0x1_0000_0000, 0x1000), [{ addr: 0x1_0000_0000, len: 0x1000, writable: false }], 'a whole high region');
});

t.test('total length above 2^32 - 1: ChainLengthOverflow', async (t) => {
  // 64 MiB of lazily backed test RAM; 64 descriptors x 64 MiB = 2^32 bytes
  const { m, q } = setup(128, { memSize: 64 << 20 });
  for (let i = 0; i < 64; i++) m.writeDesc(i, { addr: 0, len: 64 << 20, flags: i < 63 ? NEXT : 0, next: i + 1 });
  publishHead(m, 0);
  t.throws(() => q.pop()!.descriptors(), ChainLengthOverflow);
  m.writeDesc(63, { addr: 0, len: (64 << 20) - 1, flags: 0, next: 0 });
  publishHead(m, 0);
  t.equal(q.pop()!.descriptors().length, 64, '2^32 - 1 bytes in all is allowed');
});

t.test('a readable descriptor after a writable one: ReadAfterWrite', async (t) => {
  const { m, q } = setup();
  m.writeDesc(0, { addr: 0x8000, len: 4, flags: NEXT | WRITE, next: 1 });
  m.writeDesc(1, { addr: 0x8100, len: 4, flags: 0, next: 0 });
  publishHead(m, 0);
  t.throws(() => q.pop()!.descriptors(), ReadAfterWrite);
});

t.test('indirect tables: valid, after direct descriptors, WRITE on the table ignored', async (t) => {
  const { m, mem, q } = setup();
  const head = m.addChain([{ data: Uint8Array.of(9, 8, 7) }, { len: 5, writable: true }, { len: 2, writable: true }], {
    indirect: true,
  });
  m.publish();
  const c = q.pop()!;
  t.equal(c.head, head);
  const d = c.descriptors();
  t.same(
    d.map((x) => [x.len, x.writable]),
    [
      [3, false],
      [5, true],
      [2, true],
    ],
  );
  t.same([...mem.read(d[0]!.addr, 3)], [9, 8, 7]);
  // direct descriptor, then an indirect one with WRITE set (ignored, virtio 1.2 §2.7.5.3.2)
  mem.writeU64(0x9000, 0x8000);
  mem.writeU32(0x9008, 16);
  mem.writeU16(0x900c, WRITE);
  m.writeDesc(5, { addr: 0x8100, len: 4, flags: NEXT, next: 6 });
  m.writeDesc(6, { addr: 0x9000, len: 16, flags: INDIRECT | WRITE, next: 0 });
  publishHead(m, 5);
  t.same(
    q.pop()!.descriptors().map((x) => [x.addr, x.len, x.writable]),
    [
      [0x8100, 4, false],
      [0x8000, 16, true],
    ],
  );
});

t.test('indirect table errors', async (t) => {
  const { m, mem, q } = setup();
  const table = 0x9000;
  const entry = (i: number, addr: number, len: number, flags: number, next: number): void => {
    mem.writeU64(table + 16 * i, addr);
    mem.writeU32(table + 16 * i + 8, len);
    mem.writeU16(table + 16 * i + 12, flags);
    mem.writeU16(table + 16 * i + 14, next);
  };
  const run = (len: number, flags = INDIRECT, addr: number | bigint = table): (() => Descriptor[]) => {
    m.writeDesc(0, { addr, len, flags, next: 1 });
    publishHead(m, 0);
    const c = q.pop()!;
    return () => c.descriptors();
  };
  entry(0, 0x8000, 4, 0, 0);
  entry(1, 0x8000, 4, 0, 0);
  t.throws(run(0), BadIndirectTable, 'zero length');
  t.throws(run(15), BadIndirectTable, 'length 15');
  t.throws(run(17), BadIndirectTable, 'length 17: not a multiple of 16');
  t.throws(run(16, INDIRECT | NEXT), BadIndirectTable, 'INDIRECT and NEXT together');
  t.throws(run(32, INDIRECT, 0xfff0), BadIndirectTable, 'table runs off RAM');
  t.throws(run(16, INDIRECT, 0xffff_ffff_ffff_fff0n), BadIndirectTable, 'table near 2^64');
  t.throws(run(0x10000 * 16), BadIndirectTable, 'more than 65535 entries');
  entry(0, 0x8000, 16, INDIRECT, 0);
  t.throws(run(16), NestedIndirect, 'nested indirect');
  entry(0, 0x8000, 4, NEXT, 1);
  entry(1, 0x8000, 4, NEXT, 0);
  t.throws(run(32), ChainTooLong, 'loop inside the table: budget = entry count');
  entry(1, 0x8000, 4, NEXT, 2);
  t.throws(run(32), DescriptorIndexOutOfRange, 'next past the entry count');
  entry(1, 0x8000, 4, 0, 0);
  t.equal(run(32)().length, 2, 'the same table, well-formed');
  entry(0, 0x8000, 4, WRITE | NEXT, 1);
  t.throws(run(32), ReadAfterWrite, 'readable after writable inside the table');
  entry(0, 0xffff_0000, 4, 0, 0);
  t.throws(run(16), DescriptorOutOfMemory, 'table entry outside RAM');

  const { m: m2, q: q2 } = setup(16, { indirect: false });
  m2.writeDesc(0, { addr: table, len: 16, flags: INDIRECT, next: 0 });
  publishHead(m2, 0);
  t.throws(() => q2.pop()!.descriptors(), BadIndirectTable, 'INDIRECT_DESC not negotiated');
});

t.test('descriptors() reads the table once: later guest writes do not change the checked result', async (t) => {
  const { m, q } = setup();
  m.writeDesc(0, { addr: 0x8000, len: 4, flags: 0, next: 0 });
  publishHead(m, 0);
  const c = q.pop()!;
  const first = c.descriptors();
  m.writeDesc(0, { addr: 0xffff_ffff_0000n, len: 4, flags: 0, next: 0 });
  t.equal(c.descriptors(), first);
  t.same(first, [{ addr: 0x8000, len: 4, writable: false }]);
});

t.test('used ring: addUsed writes {id, len} then used.idx', async (t) => {
  const { m, q } = setup(4);
  const heads = [m.addChain([{ len: 4, writable: true }]), m.addChain([{ len: 8, writable: true }])];
  m.publish();
  const a = q.pop()!;
  const b = q.pop()!;
  q.addUsed(b.head, 7);
  q.addUsed(a.head, 3);
  t.equal(m.usedIdx(), 2);
  t.same(m.used(), [
    { id: heads[1], len: 7 },
    { id: heads[0], len: 3 },
  ]);
  t.equal(q.nextUsed, 2);
  t.throws(() => q.addUsed(4, 0), RangeError, 'head past the queue size is a device bug');
  t.throws(() => q.addUsed(0, 2 ** 32), RangeError);
  // the used ring wraps at size
  for (let i = 0; i < 5; i++) {
    const h = m.addChain([{ len: 1, writable: true }]);
    m.publish();
    t.equal(q.pop()!.head, h);
    q.addUsed(h, i);
    t.same(m.used(), [{ id: h, len: i }]);
  }
});

t.test('notification suppression without EVENT_IDX (flags)', async (t) => {
  const { m, q } = setup(8);
  t.equal(q.needsNotification(), false, 'nothing used yet');
  m.addChain([{ len: 1, writable: true }]);
  m.publish();
  t.equal(m.kickNeeded(false), true, 'driver kicks: used.flags clear');
  q.addUsed(q.pop()!.head, 1);
  t.equal(q.needsNotification(), true);
  t.equal(q.needsNotification(), false, 'nothing new since');
  m.setNoInterrupt(true);
  m.used();
  m.addChain([{ len: 1, writable: true }]);
  m.publish();
  q.addUsed(q.pop()!.head, 1);
  t.equal(q.needsNotification(), false, 'VRING_AVAIL_F_NO_INTERRUPT');
  q.disableNotification();
  t.equal(m.usedFlags(), VRING_USED_F_NO_NOTIFY);
  m.used();
  m.addChain([{ len: 1, writable: true }]);
  m.publish();
  t.equal(m.kickNeeded(false), false, 'driver does not kick while disabled');
  t.equal(q.enableNotification(), true, 'a chain arrived while disabled: re-check');
  t.equal(m.usedFlags(), 0);
  q.pop();
  t.equal(q.enableNotification(), false);
});

t.test('notification suppression with EVENT_IDX (used_event / avail_event)', async (t) => {
  const { m, q } = setup(8, { eventIdx: true });
  m.setUsedEvent(1); // interrupt me when used.idx passes 1
  for (let i = 0; i < 3; i++) m.addChain([{ len: 1, writable: true }]);
  m.publish();
  t.equal(m.kickNeeded(true), true, 'avail_event 0 is passed by 0 -> 3');
  q.disableNotification();
  t.equal(m.availEvent(), 0, 'disable leaves avail_event behind');
  q.addUsed(q.pop()!.head, 1);
  t.equal(q.needsNotification(), false, 'used 0 -> 1 does not pass used_event 1');
  q.addUsed(q.pop()!.head, 1);
  t.equal(q.needsNotification(), true, 'used 1 -> 2 passes used_event 1');
  q.addUsed(q.pop()!.head, 1);
  t.equal(q.needsNotification(), false, 'used 2 -> 3: event 1 already passed');
  t.equal(q.enableNotification(), false);
  t.equal(m.availEvent(), 3, 'enable sets avail_event = next avail');
  m.used();
  m.addChain([{ len: 1, writable: true }]);
  m.publish();
  t.equal(m.kickNeeded(true), true, 'driver passes avail_event 3');
  q.pop();
  t.equal(q.pop(), undefined);
  t.equal(m.availEvent(), 4, 'pop() re-arms avail_event before reporting empty while enabled');
  q.disableNotification();
  m.used();
  m.addChain([{ len: 1, writable: true }]);
  m.addChain([{ len: 1, writable: true }]);
  m.publish();
  t.equal(m.kickNeeded(true), true, 'avail_event 4 passed by 4 -> 6');
  q.pop();
  q.pop();
  t.equal(q.pop(), undefined);
  t.equal(m.availEvent(), 4, 'disabled: pop() leaves avail_event alone');
  m.used();
  m.addChain([{ len: 1, writable: true }]);
  m.publish();
  t.equal(m.kickNeeded(true), false, '6 -> 7 does not pass avail_event 4');
  t.equal(q.enableNotification(), true, 'enable sees the chain that raced it');
});

t.test('vring_need_event matches virtio_ring.h, across the u16 wrap', async (t) => {
  t.equal(vringNeedEvent(0, 1, 0), true);
  t.equal(vringNeedEvent(1, 1, 0), false);
  t.equal(vringNeedEvent(65535, 0, 65535), true, 'event 65535 passed by 65535 -> 0');
  t.equal(vringNeedEvent(65534, 1, 65535), false, 'event before old');
  t.equal(vringNeedEvent(0, 2, 65534), true, 'event 0 inside [65534, 2)');
  t.equal(vringNeedEvent(2, 2, 65534), false);
});

t.test('EVENT_IDX wrap-around: indices 65535 -> 0 on both rings', async (t) => {
  const { m, q } = setup(4, { eventIdx: true });
  m.writeDesc(0, { addr: 0x8000, len: 4, flags: WRITE, next: 0 });
  m.setUsedEvent(0x7000); // far away
  q.disableNotification();
  let notified = 0;
  for (let i = 0; i < 65535; i++) {
    publishHead(m, 0);
    q.addUsed(q.pop()!.head, 4);
    if (q.needsNotification()) notified++;
  }
  t.equal(notified, 1, 'exactly one interrupt when used.idx passed 0x7000');
  t.equal(q.nextAvail, 65535);
  t.equal(m.usedIdx(), 65535);
  t.equal(q.enableNotification(), false);
  t.equal(m.availEvent(), 65535);
  m.used();
  m.setUsedEvent(65535);
  m.kickNeeded(true); // sync the mock's kick bookkeeping (the loop above published without asking)
  publishHead(m, 0); // avail.idx 65535 -> 0
  t.equal(m.kickNeeded(true), true, 'driver passes avail_event 65535 when idx wraps to 0');
  t.equal(q.pop()!.head, 0);
  t.equal(q.nextAvail, 0, 'nextAvail wrapped');
  q.addUsed(0, 4);
  t.equal(m.usedIdx(), 0, 'used.idx wrapped');
  t.equal(q.needsNotification(), true, 'used_event 65535 passed by 65535 -> 0');
  t.same(m.used(), [{ id: 0, len: 4 }]);
  // pending across the wrap is 2, not 65538
  publishHead(m, 0);
  publishHead(m, 0);
  t.ok(q.pop() && q.pop());
  t.equal(q.pop(), undefined);
  t.equal(m.availEvent(), 2);
});

t.test('ChainReader: scalars and bytes across descriptor boundaries, zero-copy views', async (t) => {
  const { mem, m, q } = setup();
  const bytes = Uint8Array.from({ length: 17 }, (_, i) => i + 1);
  const head = m.addChain([
    { data: bytes.subarray(0, 3) },
    { data: bytes.subarray(3, 4) },
    { len: 0 },
    { data: bytes.subarray(4, 9) },
    { data: bytes.subarray(9, 17) },
    { len: 4, writable: true },
  ]);
  m.publish();
  const c = q.pop()!;
  t.equal(c.head, head);
  const r = new ChainReader(mem, c.descriptors());
  t.equal(r.remaining, 17, 'readable bytes only');
  t.equal(r.readU32(), 0x04030201, 'u32 across three descriptors');
  t.equal(r.readU8(), 5);
  t.equal(r.readU16(), 0x0706);
  const v = r.views(4); // 8, 9 | 10, 11
  t.same(
    v.map((x) => [...x]),
    [
      [8, 9],
      [10, 11],
    ],
  );
  mem.writeU8(c.descriptors()[3]!.addr + 3, 0xaa);
  t.equal(v[0]![0], 0xaa, 'views alias guest memory');
  t.equal(r.remaining, 6);
  t.throws(() => r.readU64(), ChainTooShort);
  t.equal(r.remaining, 6, 'a failed read consumes nothing');
  r.skip(1);
  t.same([...r.readBytes(5)], [13, 14, 15, 16, 17]);
  t.equal(r.remaining, 0);
  t.throws(() => r.readU8(), ChainTooShort);
  t.same(r.views(0), []);

  const h2 = m.addChain([{ data: Uint8Array.of(1, 2, 3, 4, 5) }, { data: Uint8Array.of(6, 7, 8, 9) }]);
  m.publish();
  const c2 = q.pop()!;
  t.equal(c2.head, h2);
  const r2 = new ChainReader(mem, c2.descriptors());
  r2.skip(1);
  t.equal(r2.readU64(), 0x0908070605040302n, 'u64 across a boundary');
  const h3 = m.addChain([{ data: Uint8Array.of(0xef, 0xbe, 0xad, 0xde, 0x78, 0x56, 0x34, 0x12) }]);
  m.publish();
  const c3 = q.pop()!;
  t.equal(c3.head, h3);
  t.equal(new ChainReader(mem, c3.descriptors()).readU64(), 0x12345678deadbeefn, 'u64 in one descriptor');
  t.equal(new ChainWriter(mem, c3.descriptors()).remaining, 0, 'no writable bytes');
});

t.test('ChainWriter: writes across boundaries, views, written count; the driver sees the bytes', async (t) => {
  const { mem, m, q } = setup();
  const head = m.addChain([
    { data: Uint8Array.of(1) },
    { len: 2, writable: true },
    { len: 0, writable: true },
    { len: 3, writable: true },
    { len: 16, writable: true },
  ]);
  m.publish();
  const c = q.pop()!;
  const w = new ChainWriter(mem, c.descriptors());
  t.equal(w.remaining, 21, 'writable bytes only');
  w.writeU32(0x44332211); // 2 | 2 of 3
  w.writeU16(0x6655); // 1 of 3 | 1 of 16
  const views = w.views(3);
  t.equal(views.length, 1);
  views[0]!.set([0xa1, 0xa2, 0xa3]);
  w.writeU64(0x0807060504030201n);
  w.write(Uint8Array.of(0xf0));
  t.equal(w.written, 18);
  t.equal(w.remaining, 3);
  t.throws(() => w.write(new Uint8Array(4)), ChainTooShort);
  t.equal(w.written, 18, 'failed write consumes nothing');
  w.writeU8(0xff);
  q.addUsed(c.head, w.written);
  t.same(m.used(), [{ id: head, len: 19 }]);
  t.same(
    [...m.readWrittenBytes(head)],
    [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xa1, 0xa2, 0xa3, 1, 2, 3, 4, 5, 6, 7, 8, 0xf0, 0xff],
  );
  t.same(
    m.readWritten(head).map((x) => x.length),
    [2, 0, 3, 14],
    'per-part copies cut at the used length',
  );
  t.throws(() => w.writeU8(256), RangeError);
});

t.test('the indirect chain from the mock reads and writes like a direct one', async (t) => {
  const { mem, m, q } = setup();
  const head = m.addChain([{ data: Uint8Array.of(1, 2) }, { data: Uint8Array.of(3, 4) }, { len: 4, writable: true }], {
    indirect: true,
  });
  m.publish();
  const d = q.pop()!.descriptors();
  const r = new ChainReader(mem, d);
  t.equal(r.readU32(), 0x04030201);
  const w = new ChainWriter(mem, d);
  w.writeU32(0xdeadbeef);
  q.addUsed(head, w.written);
  m.used();
  t.same([...m.readWrittenBytes(head)], [0xef, 0xbe, 0xad, 0xde]);
});

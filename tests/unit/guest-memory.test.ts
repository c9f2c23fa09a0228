import t from 'tap';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { guestAddr, InvalidGuestAddressValue } from '../../src/memory/guest-address.js';
import { InvalidGuestAddress, InvalidRegion, PartialBuffer, RegionOverlap } from '../../src/memory/errors.js';

const GiB = 2 ** 30;

t.test('guestAddr brands integers in [0, 2^52] and rejects the rest', async (t) => {
  t.equal(guestAddr(0x1000), 0x1000);
  t.equal(guestAddr(2 ** 52), 2 ** 52);
  t.throws(() => guestAddr(-1), InvalidGuestAddressValue);
  t.throws(() => guestAddr(1.5), InvalidGuestAddressValue);
  t.throws(() => guestAddr(2 ** 52 + 1), InvalidGuestAddressValue);
  t.throws(() => guestAddr(Number.NaN), InvalidGuestAddressValue);
});

t.test('region checks: overlap, bad size, buffer too small', async (t) => {
  t.throws(() => GuestMemory.anonymous([{ base: 0, size: 0x2000 }, { base: 0x1000, size: 0x1000 }]), RegionOverlap);
  t.throws(() => GuestMemory.anonymous([]), InvalidRegion);
  t.throws(() => new GuestMemory([{ base: 0, size: 0, buffer: new ArrayBuffer(16) }]), InvalidRegion);
  t.throws(() => new GuestMemory([{ base: 0, size: 32, buffer: new ArrayBuffer(16) }]), InvalidRegion);
  t.throws(() => new GuestMemory([{ base: 0, size: 16, buffer: new ArrayBuffer(16), offset: 1 }]), InvalidRegion);
  t.throws(() => new GuestMemory([{ base: 2 ** 52, size: 16, buffer: new ArrayBuffer(16) }]), InvalidRegion);
  // adjacent regions are fine, given in any order
  const m = GuestMemory.anonymous([{ base: 0x1000, size: 0x1000 }, { base: 0, size: 0x1000 }]);
  t.same(m.regions.map((r) => r.base), [0, 0x1000], 'sorted by base');
  t.equal(m.size, 0x2000);
  t.equal(m.lastAddr, 0x1fff);
});

t.test('boundaries of a single region', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0x1000, size: 0x1000 }]);
  t.ok(m.isValidRange(0x1000, 0x1000), 'whole region');
  t.ok(m.isValidRange(0x1fff, 1), 'last byte');
  t.notOk(m.isValidRange(0x1fff, 2), 'one past the end');
  t.notOk(m.isValidRange(0xfff, 1), 'one before the start');
  t.ok(m.isValidRange(0x2000, 0), 'zero length at the end is valid');
  t.ok(m.isValidRange(0x1000, 0), 'zero length at the start is valid');
  t.notOk(m.isValidRange(0x2001, 0), 'zero length past the end is not');
  t.throws(() => m.checkRange(0x1ffc, 8), PartialBuffer);
  t.throws(() => m.checkRange(0x3000, 1), InvalidGuestAddress);
  t.throws(() => m.checkRange(0x2000, 1), InvalidGuestAddress, 'the end address itself holds no byte');
  t.throws(() => m.checkRange(-1, 1), InvalidGuestAddress);
  t.throws(() => m.checkRange(4096.5, 1), InvalidGuestAddress);
  t.throws(() => m.checkRange(0x1000, -1), PartialBuffer);
  t.throws(() => m.checkRange(0x1000, 0.5), PartialBuffer);
  t.throws(() => m.readU32(0x1ffd), PartialBuffer, 'a u32 straddling the end');
  t.throws(() => m.writeU64(0x1ff9, 0n), PartialBuffer);
  t.equal(m.read(0x2000, 0).length, 0);
});

t.test('overflow of addr + len is an error, not a wrap', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0, size: 0x1000 }]);
  t.throws(() => m.checkRange(0x10, Number.MAX_SAFE_INTEGER), PartialBuffer);
  t.throws(() => m.checkRange(2 ** 52, 2 ** 52), PartialBuffer);
  t.throws(() => m.checkRange(0x10, Infinity), PartialBuffer);
  t.throws(() => m.checkRange(2 ** 53, 1), InvalidGuestAddress);
});

t.test('little-endian scalar access round-trips', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0, size: 0x100 }]);
  m.writeU8(0, 0xab);
  m.writeU16(2, 0x1234);
  m.writeU32(4, 0xdeadbeef);
  m.writeU64(8, 0x0123_4567_89ab_cdefn);
  m.writeU64(16, 2 ** 40 + 5);
  t.equal(m.readU8(0), 0xab);
  t.equal(m.readU16(2), 0x1234);
  t.same([...m.read(2, 2)], [0x34, 0x12], 'u16 is little-endian');
  t.equal(m.readU32(4), 0xdeadbeef);
  t.same([...m.read(4, 4)], [0xef, 0xbe, 0xad, 0xde], 'u32 is little-endian');
  t.equal(m.readU64(8), 0x0123_4567_89ab_cdefn);
  t.equal(m.readU8(8), 0xef);
  t.equal(m.readU64(16), BigInt(2 ** 40 + 5));
  t.throws(() => m.writeU8(0, 0x100), RangeError);
  t.throws(() => m.writeU16(0, -1), RangeError);
  t.throws(() => m.writeU32(0, 2 ** 32), RangeError);
  t.throws(() => m.writeU64(0, 2n ** 64n), RangeError);
  t.throws(() => m.writeU64(0, -1), RangeError);
});

t.test('slice is a live view, read is a copy, write/fill hit the right bytes', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0x1000, size: 0x100 }]);
  m.write(0x1010, new Uint8Array([1, 2, 3]));
  const view = m.slice(0x1010, 3);
  const copy = m.read(0x1010, 3);
  m.writeU8(0x1011, 9);
  t.same([...view], [1, 9, 3], 'slice sees the later write');
  t.same([...copy], [1, 2, 3], 'read does not');
  m.fill(0x1020, 4, 0x5a);
  t.same([...m.read(0x101f, 6)], [0, 0x5a, 0x5a, 0x5a, 0x5a, 0], 'fill covers exactly [addr, addr+len)');
  t.throws(() => m.fill(0x10fe, 4, 0), PartialBuffer);
  t.throws(() => m.write(0x10ff, new Uint8Array(2)), PartialBuffer);
  t.throws(() => m.fill(0x1000, 1, 256), RangeError);
});

t.test('ranges crossing from one region into an adjacent one are rejected', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0, size: 0x1000 }, { base: 0x1000, size: 0x1000 }]);
  t.ok(m.isValidRange(0xffc, 4));
  t.ok(m.isValidRange(0x1000, 4));
  t.throws(() => m.checkRange(0xffe, 4), PartialBuffer, 'single-region rule');
  t.throws(() => m.readU32(0xffe), PartialBuffer);
  m.writeU32(0x1000, 7);
  t.equal(m.readU32(0x1000), 7, 'second region reachable');
  t.equal(m.readU32(0xffc), 0, 'first region unaffected');
});

t.test('regions at high bases (above 4 GiB) with a sparse twin', async (t) => {
  // Models the layout around the MMIO gap without allocating gigabytes.
  const m = GuestMemory.anonymous([
    { base: 0, size: 0x10000 },
    { base: 0xc000_0000 - 0x1000, size: 0x1000 }, // top page below the gap
    { base: 0x1_0000_0000, size: 0x2000 }, // first pages above 4 GiB
    { base: 5 * GiB * 1024, size: 0x1000 }, // 5 TiB
  ]);
  t.equal(m.size, 0x10000 + 0x1000 + 0x2000 + 0x1000);
  t.equal(m.lastAddr, 5 * GiB * 1024 + 0xfff);
  t.throws(() => m.readU8(0xc000_0000), InvalidGuestAddress, 'the MMIO gap is not memory');
  t.throws(() => m.readU8(0xd000_0000), InvalidGuestAddress);
  m.writeU64(0x1_0000_0000, 0x1122_3344_5566_7788n);
  m.writeU32(0x1_0000_1ffc, 0xcafef00d);
  t.equal(m.readU64(0x1_0000_0000), 0x1122_3344_5566_7788n);
  t.equal(m.readU32(0x1_0000_1ffc), 0xcafef00d);
  t.throws(() => m.readU32(0x1_0000_1ffe), PartialBuffer);
  t.throws(() => m.readU8(0x1_0000_2000), InvalidGuestAddress);
  m.writeU16(5 * GiB * 1024 + 0xffe, 0xbeef);
  t.equal(m.readU16(5 * GiB * 1024 + 0xffe), 0xbeef);
  // lookups alternate regions (exercises the last-region cache)
  t.equal(m.readU8(0xbfff_ffff), 0);
  t.equal(m.readU8(0x1_0000_0000), 0x88);
  t.equal(m.readU8(0), 0);
});

t.test('a region at an offset inside a shared buffer', async (t) => {
  const sab = new SharedArrayBuffer(0x3000);
  const m = new GuestMemory([
    { base: 0, size: 0x1000, buffer: sab, offset: 0 },
    { base: 0x1_0000_0000, size: 0x1000, buffer: sab, offset: 0x2000 },
  ]);
  m.writeU32(0x1_0000_0010, 0xa5a5a5a5);
  t.equal(new DataView(sab).getUint32(0x2010, true), 0xa5a5a5a5, 'the write landed at offset + (addr - base)');
  t.equal(new DataView(sab).getUint32(0x10, true), 0, 'not in the first region');
});

t.test('scalar access across the 1 GiB DataView chunk boundary of a large region', async (t) => {
  // A >1 GiB region (lazily zeroed by the allocator; only touched pages become resident).
  const size = GiB + 0x1000;
  const m = new GuestMemory([{ base: 0x1_0000_0000, size, buffer: new ArrayBuffer(size) }]);
  const at = 0x1_0000_0000 + GiB - 4; // straddles the chunk boundary
  m.writeU64(at, 0x0102_0304_0506_0708n);
  t.equal(m.readU64(at), 0x0102_0304_0506_0708n);
  t.equal(m.readU32(at + 4), 0x0102_0304, 'upper half read from the next chunk');
  t.same([...m.read(at, 8)], [8, 7, 6, 5, 4, 3, 2, 1]);
  m.writeU32(0x1_0000_0000 + size - 4, 0xffff_ffff);
  t.equal(m.readU32(0x1_0000_0000 + size - 4), 0xffff_ffff, 'last u32 of the region');
  t.throws(() => m.readU64(0x1_0000_0000 + size - 4), PartialBuffer);
});

t.test('write() and span() through the cached chunk buffers, across the 1 GiB chunk boundary', async (t) => {
  // A region past 2 GiB, so there are whole chunks and a chunk boundary a long copy runs over
  const MiB = 2 ** 20;
  const size = 2 * GiB + 4 * MiB;
  const buf = new ArrayBuffer(size);
  const base = 0x1_0000_0000;
  const m = new GuestMemory([{ base, size, buffer: buf, offset: 0 }]);
  const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, k) => x === b[k]);
  const raw = (off: number, n: number): Uint8Array => new Uint8Array(buf, off, n);
  const pat = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

  // inside one chunk: written where asked, and span() names the same bytes
  m.write(base + 0x1234, pat(300, 1));
  t.ok(same(raw(0x1234, 300), pat(300, 1)));
  const span = { bytes: new Uint8Array(0), offset: 0 };
  t.ok(m.span(base + 0x1234, 300, span));
  t.ok(same(span.bytes.subarray(span.offset, span.offset + 300), pat(300, 1)), 'span() holds the range');

  // a copy that starts in chunk 0 and runs 64 KiB into chunk 1 (within the spill): one cached buffer holds it
  const at = GiB - 100;
  m.write(base + at, pat(65536, 2));
  t.ok(same(raw(at, 65536), pat(65536, 2)), 'write across the boundary, inside the spill');
  t.ok(m.span(base + at, 65536, span), 'span across the boundary, inside the spill');
  t.ok(same(span.bytes.subarray(span.offset, span.offset + 65536), pat(65536, 2)));

  // past the spill: write() still lands (fresh view); span() says no and leaves its argument alone
  const long = 2 * MiB;
  m.write(base + at, pat(long, 3));
  t.ok(same(raw(at, long), pat(long, 3)), 'write longer than the spill across the boundary');
  const before = { bytes: span.bytes, offset: span.offset };
  t.notOk(m.span(base + at, long, span), 'no cached buffer holds it');
  t.equal(span.bytes, before.bytes);
  t.equal(span.offset, before.offset);

  // the last bytes of the region (the second chunk's buffer stops at the region end), then off the end
  m.write(base + size - 16, pat(16, 4));
  t.ok(same(raw(size - 16, 16), pat(16, 4)));
  t.ok(m.span(base + size - 16, 16, span));
  t.throws(() => m.write(base + size - 15, pat(16, 5)), PartialBuffer, 'one byte past the region');
  t.throws(() => m.span(base + size - 15, 16, span), PartialBuffer);
  t.throws(() => m.span(base - 1, 1, span), InvalidGuestAddress);
});

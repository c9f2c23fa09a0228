// virtio-blk device model through the shared mock driver (virtio 1.2 §5.2): every request type, read-only
// refusal, range checks, GET_ID, FLUSH, WRITE_ZEROES, malformed and odd chains, used lengths, and the
// FileBackend on a real file.

import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { DeviceBroken } from '../../src/virtio/device.js';
import { VIRTIO_ID_BLOCK, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../../src/virtio/ids.js';
import { SplitQueue, VRING_DESC_F_NEXT } from '../../src/virtio/queue.js';
import {
  BlkConfig,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from '../../src/virtio/blk/abi.js';
import { BackendRangeError, BlockImageError, FileBackend, MemoryBackend, type BlockBackend } from '../../src/virtio/blk/backend.js';
import { BLK_MAX_WRITE_ZEROES_SECTORS, BLK_SEG_MAX, BlockDevice, InvalidBlockId } from '../../src/virtio/blk/device.js';
import { MockSplitQueue, type ChainPart } from '../support/virtio/mock-driver.js';

const SECTORS = 64; // 32 KiB disk

/** True when fn throws an instance of DeviceBroken (a subclass, e.g. a ChainError). */
function throwsDeviceBroken(fn: () => void): boolean {
  try {
    fn();
  } catch (e) {
    return e instanceof DeviceBroken;
  }
  return false;
}

function hdr(type: number, sector: bigint | number = 0, ioprio = 0): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, true);
  v.setUint32(4, ioprio, true);
  v.setBigUint64(8, BigInt(sector), true);
  return b;
}

function dwz(sector: bigint | number, num: number, flags = 0): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, num, true);
  v.setUint32(12, flags, true);
  return b;
}

/** A disk whose sector s is filled with byte (s + 1) & 0xff. */
function patternDisk(sectors = SECTORS): Uint8Array {
  const d = new Uint8Array(sectors * 512);
  for (let s = 0; s < sectors; s++) d.fill((s + 1) & 0xff, s * 512, (s + 1) * 512);
  return d;
}

interface RigOptions {
  readOnly?: boolean;
  backend?: MemoryBackend;
  eventIdx?: boolean;
  acked?: bigint;
  id?: string;
}

function rig(o: RigOptions = {}) {
  const mem = GuestMemory.anonymous([{ base: 0, size: 1 << 20 }]);
  const mq = new MockSplitQueue(mem, 0, 64);
  const eventIdx = o.eventIdx ?? false;
  const q = SplitQueue.create(mem, mq.layout(), { maxSize: 256, eventIdx });
  const backend = o.backend ?? new MemoryBackend(patternDisk());
  const dev = new BlockDevice({ path: 'mem', readOnly: o.readOnly ?? false, ...(o.id !== undefined ? { id: o.id } : {}) }, backend);
  const irq = { used: 0 };
  dev.activate({
    mem,
    queues: [q],
    interrupt: { signalUsed: () => void irq.used++, signalConfig: () => undefined },
    ackedFeatures: o.acked ?? dev.availableFeatures,
  });
  /** Submit one chain; returns the device-writable bytes (before used() cuts them), the used entry, the status. */
  const run = (parts: ChainPart[], opts: { indirect?: boolean } = {}) => {
    const head = mq.addChain(parts, opts);
    mq.publish();
    dev.processQueue(0);
    const written = mq.readWrittenBytes(head);
    const used = mq.used();
    return { head, written, used, status: written.length > 0 ? written[written.length - 1] : undefined };
  };
  return { mem, mq, q, dev, backend, irq, run };
}

t.test('identity, features and config space layout (include/uapi/linux/virtio_blk.h)', async (t) => {
  const dev = new BlockDevice({ path: 'mem', readOnly: false }, new MemoryBackend(SECTORS * 512 + 100));
  t.equal(dev.deviceType, VIRTIO_ID_BLOCK);
  t.same(dev.queueMaxSizes, [256]);
  const want = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_WRITE_ZEROES |
    VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC;
  t.equal(dev.availableFeatures, want, 'rw disk with a zeroing backend');
  t.equal(dev.availableFeatures & VIRTIO_BLK_F_DISCARD, 0n, 'no DISCARD');
  const c = dev.configSpace();
  const v = new DataView(c.buffer, c.byteOffset, c.byteLength);
  t.equal(c.length, 72, 'sizeof(struct virtio_blk_config)');
  t.equal(v.getBigUint64(0, true), BigInt(SECTORS), 'capacity in 512-byte sectors (a trailing partial sector is not exposed)');
  t.equal(v.getUint32(12, true), BLK_SEG_MAX, 'seg_max at offset 12');
  t.equal(v.getUint32(20, true), 512, 'blk_size at offset 20');
  t.equal(v.getUint32(48, true), BLK_MAX_WRITE_ZEROES_SECTORS, 'max_write_zeroes_sectors at 48');
  t.equal(v.getUint32(52, true), 1, 'max_write_zeroes_seg at 52');
  t.equal(v.getUint8(56), 0, 'write_zeroes_may_unmap at 56');
  t.equal(v.getUint32(36, true), 0, 'no discard limits');
  t.equal(BlkConfig.maxWriteZeroesSectors, 48);
  c[0] = 0xee;
  t.equal(dev.configSpace()[0], SECTORS, 'configSpace() hands out a copy');

  const ro = new BlockDevice({ path: 'mem', readOnly: true }, new MemoryBackend(4096));
  t.equal(ro.availableFeatures & VIRTIO_BLK_F_RO, VIRTIO_BLK_F_RO, 'RO offered for a read-only disk');
  t.equal(ro.availableFeatures & VIRTIO_BLK_F_WRITE_ZEROES, 0n, 'no WRITE_ZEROES on a read-only disk');
  const roBackend = new BlockDevice({ path: 'mem', readOnly: false }, new MemoryBackend(4096, { readOnly: true }));
  t.equal(roBackend.availableFeatures & VIRTIO_BLK_F_RO, VIRTIO_BLK_F_RO, 'RO when the backend is read-only');
  const noZero = new BlockDevice({ path: 'mem', readOnly: false }, new MemoryBackend(4096, { writeZeroes: false }));
  t.equal(noZero.availableFeatures & VIRTIO_BLK_F_WRITE_ZEROES, 0n, 'no WRITE_ZEROES without backend support');
  t.equal(new DataView(noZero.configSpace().buffer).getUint32(48, true), 0);
  t.throws(() => new BlockDevice({ path: 'mem', readOnly: false, id: 'x'.repeat(21) }, new MemoryBackend(512)), InvalidBlockId);
  t.throws(() => new BlockDevice({ path: 'mem', readOnly: false, id: 'caf\u00e9' }, new MemoryBackend(512)), InvalidBlockId);
});

t.test('IN reads sectors into the guest; used length = data + status', async (t) => {
  const r = rig();
  const res = r.run([{ data: hdr(VIRTIO_BLK_T_IN, 3) }, { len: 1024, writable: true }, { len: 1, writable: true }]);
  t.same(res.used, [{ id: res.head, len: 1025 }]);
  t.equal(res.status, VIRTIO_BLK_S_OK);
  t.same(res.written.subarray(0, 512), new Uint8Array(512).fill(4), 'sector 3');
  t.same(res.written.subarray(512, 1024), new Uint8Array(512).fill(5), 'sector 4');
  t.equal(r.irq.used, 1);
  const m = r.dev.metrics();
  t.equal(m.reads, 1);
  t.equal(m.bytesRead, 1024);
});

t.test('IN with data and status in one descriptor, split data, zero-length parts, header split, indirect', async (t) => {
  const r = rig();
  // status byte shares the data descriptor: 512 + 1 bytes
  let res = r.run([{ data: hdr(VIRTIO_BLK_T_IN, 0) }, { len: 513, writable: true }]);
  t.same(res.used, [{ id: res.head, len: 513 }]);
  t.equal(res.status, VIRTIO_BLK_S_OK);
  t.same(res.written.subarray(0, 512), new Uint8Array(512).fill(1));
  // header split over two descriptors, data over three (one empty), status after a zero-length descriptor
  const h = hdr(VIRTIO_BLK_T_IN, 10);
  for (const indirect of [false, true]) {
    res = r.run(
      [
        { data: h.subarray(0, 5) },
        { data: h.subarray(5) },
        { len: 100, writable: true },
        { len: 0, writable: true },
        { len: 924, writable: true },
        { len: 1, writable: true },
        { len: 0, writable: true },
      ],
      { indirect },
    );
    t.same(res.used, [{ id: res.head, len: 1025 }], `used (indirect=${String(indirect)})`);
    t.equal(res.status, VIRTIO_BLK_S_OK);
    t.same(res.written.subarray(0, 512), new Uint8Array(512).fill(11));
    t.same(res.written.subarray(512, 1024), new Uint8Array(512).fill(12));
  }
});

t.test('OUT writes guest data to the disk; used length 1', async (t) => {
  const r = rig();
  const data = new Uint8Array(1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const res = r.run([{ data: hdr(VIRTIO_BLK_T_OUT, 62) }, { data: data.subarray(0, 300) }, { data: data.subarray(300) }, { len: 1, writable: true }]);
  t.same(res.used, [{ id: res.head, len: 1 }]);
  t.equal(res.status, VIRTIO_BLK_S_OK);
  t.same(r.backend.data.subarray(62 * 512), data, 'last two sectors written');
  t.same(r.backend.data.subarray(61 * 512, 62 * 512), new Uint8Array(512).fill(62), 'neighbour untouched');
  // header and data in one readable descriptor
  const both = new Uint8Array(16 + 512);
  both.set(hdr(VIRTIO_BLK_T_OUT, 0));
  both.fill(0xab, 16);
  const res2 = r.run([{ data: both }, { len: 1, writable: true }]);
  t.equal(res2.status, VIRTIO_BLK_S_OK);
  t.same(r.backend.data.subarray(0, 512), new Uint8Array(512).fill(0xab));
  t.equal(r.dev.metrics().bytesWritten, 1536);
});

t.test('read-only disk refuses OUT and WRITE_ZEROES with IOERR, still reads', async (t) => {
  const backend = new MemoryBackend(patternDisk());
  const r = rig({ readOnly: true, backend, acked: VIRTIO_BLK_F_WRITE_ZEROES });
  const res = r.run([{ data: hdr(VIRTIO_BLK_T_OUT, 0) }, { data: new Uint8Array(512).fill(9) }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR);
  t.same(res.used, [{ id: res.head, len: 1 }]);
  t.same(backend.data.subarray(0, 512), new Uint8Array(512).fill(1), 'disk untouched');
  t.equal(backend.ops.writes, 0);
  t.equal(r.dev.metrics()['errors.ReadOnlyDevice'], 1);
  const wz = r.run([{ data: hdr(VIRTIO_BLK_T_WRITE_ZEROES) }, { data: dwz(0, 1) }, { len: 1, writable: true }]);
  t.equal(wz.status, VIRTIO_BLK_S_UNSUPP, 'WRITE_ZEROES is not offered on a read-only disk: UNSUPP');
  const rd = r.run([{ data: hdr(VIRTIO_BLK_T_IN, 1) }, { len: 512, writable: true }, { len: 1, writable: true }]);
  t.equal(rd.status, VIRTIO_BLK_S_OK);
  t.same(rd.written.subarray(0, 512), new Uint8Array(512).fill(2));
});

t.test('range checks: last sector ok, capacity and beyond IOERR, u64 overflow IOERR', async (t) => {
  const r = rig();
  const read = (sector: bigint, len: number) =>
    r.run([{ data: hdr(VIRTIO_BLK_T_IN, sector) }, { len, writable: true }, { len: 1, writable: true }]);
  let res = read(BigInt(SECTORS - 1), 512);
  t.equal(res.status, VIRTIO_BLK_S_OK, 'last sector');
  t.same(res.written.subarray(0, 512), new Uint8Array(512).fill(SECTORS & 0xff));
  res = read(BigInt(SECTORS - 1), 1024);
  t.equal(res.status, VIRTIO_BLK_S_IOERR, 'runs one sector past the end');
  t.same(res.used, [{ id: res.head, len: 1 }]);
  t.same(res.written.subarray(0, 1024), new Uint8Array(1024), 'nothing read into the guest');
  t.equal(read(BigInt(SECTORS), 512).status, VIRTIO_BLK_S_IOERR, 'sector = capacity');
  t.equal(read(BigInt(SECTORS), 0).status, VIRTIO_BLK_S_OK, 'zero-length read at capacity is in range');
  t.equal(read(BigInt(SECTORS) + 1n, 0).status, VIRTIO_BLK_S_IOERR, 'zero-length read past capacity');
  t.equal(read(0xffff_ffff_ffff_ffffn, 512).status, VIRTIO_BLK_S_IOERR, 'sector 2^64-1 (sector + n overflows u64)');
  t.equal(read(1n << 53n, 512).status, VIRTIO_BLK_S_IOERR, 'sector 2^53');
  t.equal(read((1n << 53n) - 1n, 512).status, VIRTIO_BLK_S_IOERR, 'sector 2^53-1');
  t.equal(read(1n << 32n, 512).status, VIRTIO_BLK_S_IOERR, 'sector 2^32 (high word only)');
  const w = r.run([{ data: hdr(VIRTIO_BLK_T_OUT, 0xffff_ffff_ffff_fff0n) }, { data: new Uint8Array(8192) }, { len: 1, writable: true }]);
  t.equal(w.status, VIRTIO_BLK_S_IOERR, 'OUT far past the end');
  t.ok(r.backend.maxEnd <= SECTORS * 512, 'no backend access past the image');
  t.equal(r.dev.metrics()['errors.SectorOutOfRange'], 8);
});

t.test('unaligned IN/OUT lengths are IOERR', async (t) => {
  const r = rig();
  let res = r.run([{ data: hdr(VIRTIO_BLK_T_IN, 0) }, { len: 100, writable: true }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR);
  t.same(res.used, [{ id: res.head, len: 1 }]);
  res = r.run([{ data: hdr(VIRTIO_BLK_T_OUT, 0) }, { data: new Uint8Array(513) }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR);
  t.equal(r.dev.metrics()['errors.UnalignedLength'], 2);
  t.equal(r.backend.ops.writes + r.backend.ops.reads, 0, 'no I/O for refused requests');
});

t.test('FLUSH calls the backend; extra data is refused', async (t) => {
  const r = rig();
  let res = r.run([{ data: hdr(VIRTIO_BLK_T_FLUSH) }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_OK);
  t.same(res.used, [{ id: res.head, len: 1 }]);
  t.equal(r.backend.ops.flushes, 1);
  res = r.run([{ data: hdr(VIRTIO_BLK_T_FLUSH) }, { len: 512, writable: true }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR, 'writable data besides status');
  res = r.run([{ data: hdr(VIRTIO_BLK_T_FLUSH) }, { data: new Uint8Array(512) }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR, 'readable data after header');
  t.equal(r.backend.ops.flushes, 1);
});

t.test('GET_ID returns the 20-byte id, NUL-padded; used length 21', async (t) => {
  const r = rig({ id: 'kata-disk-0' });
  let res = r.run([{ data: hdr(VIRTIO_BLK_T_GET_ID) }, { len: 20, writable: true }, { len: 1, writable: true }]);
  t.same(res.used, [{ id: res.head, len: 21 }]);
  t.equal(res.status, VIRTIO_BLK_S_OK);
  const want = new Uint8Array(20);
  want.set(new TextEncoder().encode('kata-disk-0'));
  t.same(res.written.subarray(0, 20), want);
  // larger buffer: still 20 bytes; id split across descriptors
  res = r.run([{ data: hdr(VIRTIO_BLK_T_GET_ID) }, { len: 7, writable: true }, { len: 30, writable: true }]);
  t.same(res.used, [{ id: res.head, len: 21 }]);
  t.equal(res.status, VIRTIO_BLK_S_OK);
  t.same(res.written.subarray(0, 20), want);
  // too small
  res = r.run([{ data: hdr(VIRTIO_BLK_T_GET_ID) }, { len: 19, writable: true }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR);
  t.same(res.written.subarray(0, 19), new Uint8Array(19), 'nothing written');
  // full 20-character id has no terminator
  const r2 = rig({ id: 'ABCDEFGHIJKLMNOPQRST' });
  res = r2.run([{ data: hdr(VIRTIO_BLK_T_GET_ID) }, { len: 21, writable: true }]);
  t.same(res.written.subarray(0, 20), new TextEncoder().encode('ABCDEFGHIJKLMNOPQRST'));
});

t.test('WRITE_ZEROES: one segment zeroed; flags, segment count, size and negotiation checked', async (t) => {
  const r = rig();
  const wz = (seg: Uint8Array | Uint8Array[], header = hdr(VIRTIO_BLK_T_WRITE_ZEROES)) =>
    r.run([{ data: header }, ...(Array.isArray(seg) ? seg : [seg]).map((d) => ({ data: d })), { len: 1, writable: true }]);
  let res = wz(dwz(2, 3));
  t.equal(res.status, VIRTIO_BLK_S_OK);
  t.same(res.used, [{ id: res.head, len: 1 }]);
  t.same(r.backend.data.subarray(2 * 512, 5 * 512), new Uint8Array(3 * 512), 'sectors 2..4 zeroed');
  t.same(r.backend.data.subarray(5 * 512, 6 * 512), new Uint8Array(512).fill(6), 'sector 5 kept');
  t.same(r.backend.data.subarray(512, 1024), new Uint8Array(512).fill(2), 'sector 1 kept');
  t.equal(wz(dwz(6, 1, 1)).status, VIRTIO_BLK_S_OK, 'UNMAP flag accepted (zeroes are written anyway)');
  t.equal(wz(dwz(6, 1, 2)).status, VIRTIO_BLK_S_UNSUPP, 'reserved flag bit');
  t.equal(wz([dwz(6, 1), dwz(8, 1)]).status, VIRTIO_BLK_S_UNSUPP, 'two segments');
  t.equal(wz(new Uint8Array(8)).status, VIRTIO_BLK_S_UNSUPP, 'half a segment');
  t.equal(wz(dwz(SECTORS - 1, 2)).status, VIRTIO_BLK_S_IOERR, 'past capacity');
  t.equal(wz(dwz(0xffff_ffff_ffff_ffffn, 1)).status, VIRTIO_BLK_S_IOERR, 'sector 2^64-1');
  t.equal(wz(dwz(0, BLK_MAX_WRITE_ZEROES_SECTORS + 1)).status, VIRTIO_BLK_S_IOERR, 'above max_write_zeroes_sectors');
  t.equal(wz(dwz(0, 0xffff_ffff)).status, VIRTIO_BLK_S_IOERR, 'num_sectors 2^32-1');
  res = r.run([{ data: hdr(VIRTIO_BLK_T_WRITE_ZEROES) }, { data: dwz(0, 1) }, { len: 2, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR, 'writable bytes besides status');
  t.equal(r.backend.ops.writeZeroes, 2);

  const notAcked = rig({ acked: 0n });
  const res2 = notAcked.run([{ data: hdr(VIRTIO_BLK_T_WRITE_ZEROES) }, { data: dwz(0, 1) }, { len: 1, writable: true }]);
  t.equal(res2.status, VIRTIO_BLK_S_UNSUPP, 'not negotiated');
  t.equal(notAcked.backend.ops.writeZeroes, 0);
});

t.test('DISCARD and unknown types are UNSUPP', async (t) => {
  const r = rig();
  for (const type of [VIRTIO_BLK_T_DISCARD, 2 /* SCSI_CMD */, 14 /* SECURE_ERASE */, 0x8000_0000, 0xffff_ffff]) {
    const res = r.run([{ data: hdr(type) }, { data: dwz(0, 1) }, { len: 1, writable: true }]);
    t.equal(res.status, VIRTIO_BLK_S_UNSUPP, `type ${String(type)}`);
    t.same(res.used, [{ id: res.head, len: 1 }]);
  }
  t.same(r.backend.data, patternDisk(), 'disk untouched');
});

t.test('odd chains: no status byte -> used 0; short header -> IOERR; stray data -> IOERR', async (t) => {
  const r = rig();
  let res = r.run([{ data: hdr(VIRTIO_BLK_T_IN) }]);
  t.same(res.used, [{ id: res.head, len: 0 }], 'header only: nothing written');
  res = r.run([{ data: hdr(VIRTIO_BLK_T_IN) }, { len: 0, writable: true }]);
  t.same(res.used, [{ id: res.head, len: 0 }], 'zero-length writable only');
  res = r.run([{ len: 0 }]);
  t.same(res.used, [{ id: res.head, len: 0 }], 'one empty descriptor');
  res = r.run([{ len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR, 'status only, no header');
  t.same(res.used, [{ id: res.head, len: 1 }]);
  res = r.run([{ data: hdr(VIRTIO_BLK_T_IN).subarray(0, 15) }, { len: 513, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR, '15-byte header');
  res = r.run([{ data: hdr(VIRTIO_BLK_T_IN) }, { data: new Uint8Array(512) }, { len: 513, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR, 'IN with readable data');
  res = r.run([{ data: hdr(VIRTIO_BLK_T_OUT) }, { data: new Uint8Array(512) }, { len: 513, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR, 'OUT with writable data');
  t.same(r.backend.data, patternDisk(), 'disk untouched');
  const m = r.dev.metrics();
  t.equal(m['errors.MissingStatus'], 3);
  t.equal(m['errors.RequestTooShort'], 2);
  t.equal(m['errors.UnexpectedReadableData'], 1);
  t.equal(m['errors.UnexpectedWritableData'], 1);
  // zero-length IN/OUT are valid no-ops
  res = r.run([{ data: hdr(VIRTIO_BLK_T_IN, 5) }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_OK);
  t.same(res.used, [{ id: res.head, len: 1 }]);
  res = r.run([{ data: hdr(VIRTIO_BLK_T_OUT, 5) }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_OK);
});

t.test('a host I/O error is reported as IOERR and counted; the device goes on', async (t) => {
  const r = rig();
  r.backend.failNext = new Error('EIO');
  let res = r.run([{ data: hdr(VIRTIO_BLK_T_IN, 0) }, { len: 512, writable: true }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR);
  t.same(res.used, [{ id: res.head, len: 1 }]);
  t.equal(r.dev.metrics().ioErrors, 1);
  res = r.run([{ data: hdr(VIRTIO_BLK_T_IN, 0) }, { len: 512, writable: true }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_OK, 'next request works');
});

t.test('a batch completes in order with one interrupt; EVENT_IDX and NO_INTERRUPT suppress', async (t) => {
  const r = rig();
  const heads = [0, 1, 2, 3].map((s) => r.mq.addChain([{ data: hdr(VIRTIO_BLK_T_IN, s) }, { len: 512, writable: true }, { len: 1, writable: true }]));
  r.mq.publish();
  r.dev.processQueue(0);
  t.same(r.mq.used().map((u) => u.id), heads);
  t.equal(r.irq.used, 1);

  const e = rig({ eventIdx: true, acked: VIRTIO_RING_F_EVENT_IDX });
  e.mq.setUsedEvent(2);
  e.run([{ data: hdr(VIRTIO_BLK_T_FLUSH) }, { len: 1, writable: true }]);
  e.run([{ data: hdr(VIRTIO_BLK_T_FLUSH) }, { len: 1, writable: true }]);
  t.equal(e.irq.used, 0, 'used_event not yet passed');
  e.run([{ data: hdr(VIRTIO_BLK_T_FLUSH) }, { len: 1, writable: true }]);
  t.equal(e.irq.used, 1, 'third completion passes used_event 2');

  const n = rig();
  n.mq.setNoInterrupt(true);
  n.run([{ data: hdr(VIRTIO_BLK_T_FLUSH) }, { len: 1, writable: true }]);
  t.equal(n.irq.used, 0, 'VRING_AVAIL_F_NO_INTERRUPT');
});

t.test('one batch runs in order: a write is seen by the read after it, a flush follows the write', async (t) => {
  const r = rig();
  const w = r.mq.addChain([{ data: hdr(VIRTIO_BLK_T_OUT, 7) }, { data: new Uint8Array(512).fill(0x77) }, { len: 1, writable: true }]);
  const f = r.mq.addChain([{ data: hdr(VIRTIO_BLK_T_FLUSH) }, { len: 1, writable: true }]);
  const rd = r.mq.addChain([{ data: hdr(VIRTIO_BLK_T_IN, 7) }, { len: 512, writable: true }, { len: 1, writable: true }]);
  r.mq.publish();
  r.dev.processQueue(0);
  const got = r.mq.readWrittenBytes(rd);
  t.same(r.mq.used(), [
    { id: w, len: 1 },
    { id: f, len: 1 },
    { id: rd, len: 513 },
  ]);
  t.same(got.subarray(0, 512), new Uint8Array(512).fill(0x77));
  t.equal(got[512], VIRTIO_BLK_S_OK);
});

t.test('plain reads (one data buffer) and other requests in one batch: order, statuses, an I/O error', async (t) => {
  const r = rig();
  const plain = (s: number) => r.mq.addChain([{ data: hdr(VIRTIO_BLK_T_IN, s) }, { len: 1024, writable: true }, { len: 1, writable: true }]);
  const a = plain(5);
  const b = plain(20);
  const split = r.mq.addChain([{ data: hdr(VIRTIO_BLK_T_IN, 30) }, { len: 512, writable: true }, { len: 512, writable: true }, { len: 1, writable: true }]);
  const id = r.mq.addChain([{ data: hdr(VIRTIO_BLK_T_GET_ID) }, { len: 20, writable: true }, { len: 1, writable: true }]);
  const c = plain(40);
  r.backend.failNext = new Error('EIO'); // the first I/O of the batch: plain read a
  r.mq.publish();
  r.dev.processQueue(0);
  const bytes = [a, b, split, id, c].map((h) => r.mq.readWrittenBytes(h));
  t.same(r.mq.used(), [
    { id: a, len: 1 },
    { id: b, len: 1025 },
    { id: split, len: 1025 },
    { id: id, len: 21 },
    { id: c, len: 1025 },
  ]);
  t.same(bytes.map((x) => x[x.length - 1]), [VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
  t.same(bytes[1]!.subarray(0, 1024), Uint8Array.from({ length: 1024 }, (_, i) => (21 + (i >> 9)) & 0xff), 'sectors 20-21');
  t.same(bytes[2]!.subarray(0, 1024), Uint8Array.from({ length: 1024 }, (_, i) => (31 + (i >> 9)) & 0xff), 'sectors 30-31 (split)');
  t.same(bytes[4]!.subarray(0, 1024), Uint8Array.from({ length: 1024 }, (_, i) => (41 + (i >> 9)) & 0xff), 'sectors 40-41');
  const m = r.dev.metrics();
  t.equal(m.reads, 3);
  t.equal(m.bytesRead, 3072);
  t.equal(m.ioErrors, 1);
  t.equal(r.irq.used, 1, 'one interrupt for the batch');
});

t.test('a backend without readAt() gets plain reads through readInto()', async (t) => {
  const mem = GuestMemory.anonymous([{ base: 0, size: 1 << 20 }]);
  const mq = new MockSplitQueue(mem, 0, 64);
  const disk = new MemoryBackend(patternDisk());
  const calls: number[] = [];
  const backend: BlockBackend = {
    sizeBytes: disk.sizeBytes,
    readOnly: false,
    readInto: (views, offset) => {
      calls.push(views.length);
      disk.readInto(views, offset);
    },
    writeFrom: (views, offset) => disk.writeFrom(views, offset),
    flush: () => disk.flush(),
  };
  const dev = new BlockDevice({ path: 'mem', readOnly: false }, backend);
  dev.activate({
    mem,
    queues: [SplitQueue.create(mem, mq.layout(), { maxSize: 256, eventIdx: false })],
    interrupt: { signalUsed: () => undefined, signalConfig: () => undefined },
    ackedFeatures: dev.availableFeatures,
  });
  const h = mq.addChain([{ data: hdr(VIRTIO_BLK_T_IN, 9) }, { len: 512, writable: true }, { len: 1, writable: true }]);
  mq.publish();
  dev.processQueue(0);
  const got = mq.readWrittenBytes(h);
  t.same(mq.used(), [{ id: h, len: 513 }]);
  t.same(got.subarray(0, 512), new Uint8Array(512).fill(10));
  t.equal(got[512], VIRTIO_BLK_S_OK);
  t.same(calls, [1], 'one readInto() with one view');
});

t.test('structural chain errors break the device; reset and inactive are quiet', async (t) => {
  const r = rig();
  const ok = r.mq.addChain([{ data: hdr(VIRTIO_BLK_T_IN, 2) }, { len: 512, writable: true }, { len: 1, writable: true }]);
  const h = r.mq.addChain([{ data: hdr(VIRTIO_BLK_T_IN) }, { len: 513, writable: true }]);
  r.mq.writeDesc(h, { addr: r.mq.dataStart, len: 16, flags: VRING_DESC_F_NEXT, next: h }); // a loop
  r.mq.publish();
  t.ok(throwsDeviceBroken(() => r.dev.processQueue(0)), 'processQueue throws a DeviceBroken');
  const okBytes = r.mq.readWrittenBytes(ok);
  t.same(r.mq.used(), [{ id: ok, len: 513 }], 'the request before the bad chain was still completed');
  t.same(okBytes.subarray(0, 512), new Uint8Array(512).fill(3));
  t.equal(okBytes[512], VIRTIO_BLK_S_OK);
  r.dev.reset();
  r.dev.processQueue(0);
  r.dev.processQueue(1);
  t.pass('inactive device ignores notifications');
});

t.test('MemoryBackend refuses accesses outside the image', async (t) => {
  const b = new MemoryBackend(1024);
  t.throws(() => b.readInto([new Uint8Array(512)], 1024), BackendRangeError);
  t.throws(() => b.writeFrom([new Uint8Array(2)], 1023), BackendRangeError);
  t.throws(() => b.writeZeroes!(-512, 512), BackendRangeError);
});

t.test('FileBackend: a real image file, read/write/flush/write-zeroes through the device', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-blk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'disk.img');
  writeFileSync(path, patternDisk(16).subarray(0, 16 * 512 - 1)); // 15 full sectors + 511 bytes
  const backend = FileBackend.open(path, false);
  t.equal(backend.sizeBytes, 16 * 512 - 1);
  const mem = GuestMemory.anonymous([{ base: 0, size: 1 << 20 }]);
  const mq = new MockSplitQueue(mem, 0, 64);
  const q = SplitQueue.create(mem, mq.layout(), { maxSize: 256, eventIdx: false });
  const dev = new BlockDevice({ path, readOnly: false, id: 'file' }, backend);
  t.equal(dev.capacity, 15, 'partial trailing sector not exposed');
  dev.activate({ mem, queues: [q], interrupt: { signalUsed: () => undefined, signalConfig: () => undefined }, ackedFeatures: dev.availableFeatures });
  const run = (parts: ChainPart[]) => {
    const head = mq.addChain(parts);
    mq.publish();
    dev.processQueue(0);
    const written = mq.readWrittenBytes(head);
    return { used: mq.used(), written, status: written[written.length - 1] };
  };
  // read across many descriptors (vectored path)
  const parts: ChainPart[] = [{ data: hdr(VIRTIO_BLK_T_IN, 1) }];
  for (let i = 0; i < 8; i++) parts.push({ len: 128, writable: true });
  parts.push({ len: 1, writable: true });
  let res = run(parts);
  t.equal(res.status, VIRTIO_BLK_S_OK);
  t.same(res.written.subarray(0, 512), new Uint8Array(512).fill(2));
  t.same(res.written.subarray(512, 1024), new Uint8Array(512).fill(3));
  // write, then read the file behind the device's back
  res = run([{ data: hdr(VIRTIO_BLK_T_OUT, 14) }, { data: new Uint8Array(256).fill(0x5a) }, { data: new Uint8Array(256).fill(0xa5) }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_OK);
  const file = new Uint8Array(readFileSync(path));
  t.same(file.subarray(14 * 512, 14 * 512 + 256), new Uint8Array(256).fill(0x5a));
  t.same(file.subarray(14 * 512 + 256, 15 * 512), new Uint8Array(256).fill(0xa5));
  t.equal(file.length, 16 * 512 - 1, 'file not extended');
  res = run([{ data: hdr(VIRTIO_BLK_T_OUT, 15) }, { data: new Uint8Array(512) }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_IOERR, 'the partial last sector is out of range');
  res = run([{ data: hdr(VIRTIO_BLK_T_FLUSH) }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_OK, 'fdatasync');
  res = run([{ data: hdr(VIRTIO_BLK_T_WRITE_ZEROES) }, { data: dwz(0, 2) }, { len: 1, writable: true }]);
  t.equal(res.status, VIRTIO_BLK_S_OK);
  t.same(new Uint8Array(readFileSync(path)).subarray(0, 1024), new Uint8Array(1024));
  t.same(new Uint8Array(readFileSync(path)).subarray(1024, 1536), new Uint8Array(512).fill(3));
  res = run([{ data: hdr(VIRTIO_BLK_T_GET_ID) }, { len: 21, writable: true }]);
  t.same(res.written.subarray(0, 4), new TextEncoder().encode('file'));
  dev.close();
  t.throws(() => backend.readInto([new Uint8Array(512)], 0), BlockImageError, 'closed');

  // read-only open: the device refuses writes, the file stays as it was
  const ro = FileBackend.open(path, true);
  t.equal(ro.readOnly, true);
  t.throws(() => ro.writeFrom([new Uint8Array(512)], 0), BlockImageError);
  ro.close();
});

t.test('FileBackend.open explains what went wrong', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-blk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => FileBackend.open(join(dir, 'nope.img'), true), { name: 'BlockImageError', message: /ENOENT.*create an image/ });
  t.throws(() => FileBackend.open(dir, true), { name: 'BlockImageError', message: /neither a regular file nor a block device/ });
  const p = join(dir, 'ro.img');
  writeFileSync(p, new Uint8Array(512));
  chmodSync(p, 0o444);
  if (process.getuid?.() !== 0) {
    t.throws(() => FileBackend.open(p, false), { name: 'BlockImageError', message: /PATH:ro/ });
  }
  const b = FileBackend.open(p, true);
  t.equal(b.sizeBytes, 512);
  b.close();
  t.throws(() => new BlockDevice({ path: join(dir, 'missing.img'), readOnly: true }), BlockImageError, 'the device opens its path itself');
});

t.test('FileBackend.readAt() reads into a buffer at an offset; ranges are checked', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-blk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'r.img');
  const img = Uint8Array.from({ length: 8192 }, (_, i) => (i * 13 + 5) & 0xff);
  writeFileSync(path, img);
  const b = FileBackend.open(path, true);
  const dst = new Uint8Array(10000).fill(0xee);
  b.readAt(dst, 100, 4096, 2048);
  t.same(dst.subarray(100, 4196), img.subarray(2048, 6144));
  t.equal(dst[99], 0xee, 'nothing before the offset');
  t.equal(dst[4196], 0xee, 'nothing after the length');
  t.throws(() => b.readAt(dst, 0, 512, 8192 - 256), BackendRangeError, 'past the image end');
  t.throws(() => b.readAt(dst, 9800, 512, 0), RangeError, 'past the buffer end');
  t.throws(() => b.readAt(dst, -1, 512, 0), RangeError, 'negative buffer offset');
  b.close();
  t.throws(() => b.readAt(dst, 0, 512, 0), BlockImageError, 'closed');
  const m = new MemoryBackend(img.slice());
  const d2 = new Uint8Array(600);
  m.readAt(d2, 88, 512, 512);
  t.same(d2.subarray(88, 600), img.subarray(512, 1024), 'MemoryBackend.readAt');
  t.throws(() => m.readAt(d2, 0, 512, 8192), BackendRangeError);
});

t.test('FileBackend handles many views and partial progress (IOV_MAX batches)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-blk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'v.img');
  const img = new Uint8Array(3000 * 4);
  for (let i = 0; i < img.length; i++) img[i] = (i * 31 + 7) & 0xff;
  writeFileSync(path, img);
  const b = FileBackend.open(path, false);
  // 3000 views of 4 bytes (more than IOV_MAX = 1024), plus empty ones
  const views: Uint8Array[] = [];
  for (let i = 0; i < 3000; i++) {
    views.push(new Uint8Array(4));
    if (i % 500 === 0) views.push(new Uint8Array(0));
  }
  b.readInto(views, 0);
  const got = new Uint8Array(12000);
  let o = 0;
  for (const v of views) {
    got.set(v, o);
    o += v.length;
  }
  t.same(got, img);
  for (const v of views) v.reverse();
  b.writeFrom(views, 0);
  const back = readFileSync(path);
  t.equal(back[0], img[3]);
  t.equal(back[11999], img[11996]);
  t.throws(() => b.readInto([new Uint8Array(8)], 12000 - 4), BackendRangeError);
  b.close();
});

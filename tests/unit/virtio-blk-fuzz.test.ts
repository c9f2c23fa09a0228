// Hostile-guest fuzz for virtio-blk: >= 1,000,000 random and adversarial chains (the shared mock driver's
// fuzzDevice mixes structural attacks with blk-shaped requests whose headers, sectors and lengths are chosen
// to hit every edge). Only DeviceBroken may escape; every backend access stays inside the image (the
// MemoryBackend throws BackendRangeError otherwise, which would escape as a FuzzEscape); a read-only disk is
// never written.

import t from 'tap';
import { createHash } from 'node:crypto';
import {
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from '../../src/virtio/blk/abi.js';
import { MemoryBackend } from '../../src/virtio/blk/backend.js';
import { BlockDevice } from '../../src/virtio/blk/device.js';
import { fuzzDevice, randInt, type ChainPart, type FuzzDeviceResult, type Rng } from '../support/virtio/mock-driver.js';

const SECTORS = 128;
const TYPES = [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_DISCARD];

/** A u64 sector as [lo, hi]: in range, at the edges, and far out (2^32, 2^53, 2^64-1). */
function sector(rng: Rng): [number, number] {
  const r = rng();
  if (r < 0.5) return [randInt(rng, SECTORS), 0];
  if (r < 0.8) return [Math.max(0, SECTORS - 3 + randInt(rng, 6)), 0];
  const far: Array<[number, number]> = [
    [0xffff_ffff, 0xffff_ffff],
    [0, 0x20_0000],
    [0xffff_ffff, 0x1f_ffff],
    [0, 1],
    [(rng() * 4294967296) >>> 0, (rng() * 4294967296) >>> 0],
    [0xffff_fff0 + randInt(rng, 16), 0xffff_ffff],
  ];
  return far[randInt(rng, far.length)]!;
}

/** Data length: whole sectors mostly, sometimes odd. */
function dataLen(rng: Rng): number {
  const r = rng();
  if (r < 0.8) return 512 * randInt(rng, 5);
  return randInt(rng, 2100);
}

/** Split `len` bytes into 1..3 parts (empty parts included). */
function splitLen(rng: Rng, len: number): number[] {
  const n = 1 + randInt(rng, 3);
  const out: number[] = [];
  let left = len;
  for (let i = 0; i < n - 1; i++) {
    const k = randInt(rng, left + 1);
    out.push(k);
    left -= k;
  }
  out.push(left);
  return out;
}

function blkRequest(rng: Rng): ChainPart[] {
  const type = rng() < 0.95 ? TYPES[randInt(rng, TYPES.length)]! : (rng() * 4294967296) >>> 0;
  const hdr = new Uint8Array(16);
  const v = new DataView(hdr.buffer);
  v.setUint32(0, type, true);
  const [lo, hi] = sector(rng);
  v.setUint32(8, lo, true);
  v.setUint32(12, hi, true);
  const parts: ChainPart[] = [];
  const r = rng();
  if (r < 0.85) parts.push({ data: hdr });
  else if (r < 0.95) {
    const cut = 1 + randInt(rng, 15);
    parts.push({ data: hdr.subarray(0, cut) }, { data: hdr.subarray(cut) });
  } else parts.push({ data: hdr.subarray(0, randInt(rng, 16)) }); // short header
  let readable = 0;
  let writable = 0;
  switch (type) {
    case VIRTIO_BLK_T_OUT:
      readable = dataLen(rng);
      break;
    case VIRTIO_BLK_T_WRITE_ZEROES:
    case VIRTIO_BLK_T_DISCARD: {
      const seg = new Uint8Array(rng() < 0.9 ? 16 : 16 * randInt(rng, 3) + randInt(rng, 2) * 8);
      const sv = new DataView(seg.buffer);
      if (seg.length >= 16) {
        const [slo, shi] = sector(rng);
        sv.setUint32(0, slo, true);
        sv.setUint32(4, shi, true);
        sv.setUint32(8, rng() < 0.8 ? randInt(rng, 9) : (rng() * 4294967296) >>> 0, true);
        sv.setUint32(12, rng() < 0.8 ? randInt(rng, 2) : (rng() * 4294967296) >>> 0, true);
      }
      parts.push({ data: seg });
      break;
    }
    case VIRTIO_BLK_T_GET_ID:
      writable = rng() < 0.8 ? 20 : randInt(rng, 40);
      break;
    default:
      writable = dataLen(rng);
  }
  if (readable > 0) for (const n of splitLen(rng, readable)) parts.push({ len: n });
  if (rng() < 0.1) parts.push({ len: randInt(rng, 600) }); // stray readable bytes
  if (rng() < 0.1) writable += randInt(rng, 600); // stray writable bytes
  if (writable > 0) for (const n of splitLen(rng, writable)) parts.push({ len: n, writable: true });
  const s = rng();
  if (s < 0.9) parts.push({ len: 1, writable: true });
  else if (s < 0.95) parts.push({ len: 1 + randInt(rng, 8), writable: true });
  // else: no status byte
  return parts;
}

function report(comment: (msg: string) => void, name: string, res: FuzzDeviceResult, metrics: Record<string, number>): void {
  comment(`${name}: ${res.chains} chains, ${res.notifications} notifications, ${res.used} used, ${res.broken} DeviceBroken (reset + reactivate), ${res.stalls} stalls, ${res.interrupts} interrupts, ${Math.round(res.ms)} ms`);
  comment(`${name} broken by name: ${JSON.stringify(res.brokenByName)}`);
  comment(`${name} chain kinds: ${JSON.stringify(res.kinds)}`);
  comment(`${name} device metrics (all activations): ${JSON.stringify(metrics)}`);
}

t.test('1,000,000 hostile chains against a writable disk', async (t) => {
  const backend = new MemoryBackend(SECTORS * 512);
  let dev: BlockDevice | undefined;
  const res = fuzzDevice(
    () => (dev = new BlockDevice({ path: 'fuzz', readOnly: false, id: 'fuzz' }, backend)),
    { chains: 1_000_000, seed: 0xb1c, request: (rng) => blkRequest(rng), requestShare: 0.6, batch: 8 },
  );
  const m = dev!.metrics();
  report((m) => t.comment(m), 'blk rw', res, m);
  t.ok(res.chains >= 1_000_000, 'a million chains');
  t.ok(res.used > 200_000, 'many chains were completed (the rest were lost to resets after structural attacks)');
  t.ok(res.broken > 0, 'structural attacks broke the device (and it was reset)');
  t.ok(backend.minStart >= 0 && backend.maxEnd <= backend.sizeBytes, `backend accesses in [0, ${backend.sizeBytes}): saw [${backend.minStart}, ${backend.maxEnd})`);
  t.ok(backend.ops.reads > 1000 && backend.ops.writes > 1000 && backend.ops.flushes > 1000 && backend.ops.writeZeroes > 100, `every op reached the backend: ${JSON.stringify(backend.ops)}`);
  t.ok((m.malformed ?? 0) > 0, 'malformed requests were refused with a status');
});

t.test('200,000 hostile chains against a read-only disk never write it', async (t) => {
  const data = new Uint8Array(SECTORS * 512);
  for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
  const before = createHash('sha256').update(data).digest('hex');
  const backend = new MemoryBackend(data, { readOnly: true });
  let dev: BlockDevice | undefined;
  const res = fuzzDevice(() => (dev = new BlockDevice({ path: 'fuzz', readOnly: true }, backend)), {
    chains: 200_000,
    seed: 0x0e0,
    request: (rng) => blkRequest(rng),
    requestShare: 0.7,
    batch: 8,
  });
  report((m) => t.comment(m), 'blk ro', res, dev!.metrics());
  t.equal(backend.ops.writes + backend.ops.writeZeroes, 0, 'no write reached the backend');
  t.equal(createHash('sha256').update(backend.data).digest('hex'), before, 'image unchanged');
  t.ok(backend.ops.reads > 1000, 'reads still served');
  t.ok(backend.maxEnd <= backend.sizeBytes);
});

// Hostile-guest fuzzing: random and adversarial descriptor chains written straight into a mock queue.

import { GuestMemory, type RegionLayout } from '../../../src/memory/guest-memory.js';
import { MAX_INDIRECT_ENTRIES, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, ringBytes } from '../../../src/virtio/queue.js';
import { randInt, type Rng } from '../prng.js';
import { MockSplitQueue, putDesc, type ChainPart } from './mock-driver.js';

/** The kinds of chain writeFuzzChain() produces; VALID_FUZZ_KINDS never make descriptors() throw. */
export const FUZZ_KINDS = [
  'valid',
  'validIndirect',
  'request',
  'zeroLength',
  'ringOverlap',
  'loop',
  'nextOutOfRange',
  'headOutOfRange',
  'addrNear2p64',
  'addrOutsideRam',
  'lenHuge',
  'lengthOverflow',
  'nestedIndirect',
  'indirectBadLen',
  'indirectOutsideRam',
  'indirectWithNext',
  'readAfterWrite',
  'availJump',
  'garbage',
  'bitFlip',
] as const;
export type FuzzKind = (typeof FUZZ_KINDS)[number];
/** Kind indices whose chains are well-formed (when the queue accepts indirect tables, for validIndirect). */
export const VALID_FUZZ_KINDS: ReadonlySet<number> = new Set([0, 1, 2, 3, 4]);

const WEIGHTS: Record<FuzzKind, number> = {
  valid: 25,
  validIndirect: 8,
  request: 0, // set from FuzzChainOptions.requestShare
  zeroLength: 3,
  ringOverlap: 2,
  loop: 4,
  nextOutOfRange: 4,
  headOutOfRange: 3,
  addrNear2p64: 4,
  addrOutsideRam: 5,
  lenHuge: 3,
  lengthOverflow: 0.5,
  nestedIndirect: 3,
  indirectBadLen: 3,
  indirectOutsideRam: 3,
  indirectWithNext: 2,
  readAfterWrite: 3,
  availJump: 1,
  garbage: 5,
  bitFlip: 6,
};

export interface FuzzChainOptions {
  /** the device accepts indirect tables (VIRTIO_RING_F_INDIRECT_DESC negotiated) */
  indirect: boolean;
  /** well-formed requests from the device's test (its header + buffers); laid out at random */
  request?: (rng: Rng) => ChainPart[] | undefined;
  /** share of chains built by `request` (default 0.5 when given) */
  requestShare?: number;
  /** a RAM region with at least 64 MiB for length-overflow chains (fuzzMemory().big) */
  big?: RegionLayout;
  /** only well-formed kinds (VALID_FUZZ_KINDS) */
  validOnly?: boolean;
}

/** Precomputed pick table for one set of options. */
class KindPicker {
  private readonly cum: Float64Array;
  constructor(o: FuzzChainOptions) {
    const w = FUZZ_KINDS.map((k) => WEIGHTS[k]);
    if (o.request !== undefined) {
      const others = w.reduce((s, x) => s + x, 0);
      const share = o.requestShare ?? 0.5;
      w[2] = share >= 1 ? others * 1e6 : (others * share) / (1 - share);
    }
    if (!o.indirect) w[1] = 0;
    if (o.big === undefined) w[11] = 0;
    if (o.validOnly === true) for (let i = 0; i < w.length; i++) if (!VALID_FUZZ_KINDS.has(i)) w[i] = 0;
    const cum = new Float64Array(w.length);
    let s = 0;
    for (let i = 0; i < w.length; i++) cum[i] = s += w[i]!;
    for (let i = 0; i < w.length; i++) cum[i] = cum[i]! / s;
    this.cum = cum;
  }
  pick(rng: Rng): number {
    const r = rng();
    const c = this.cum;
    for (let i = 0; i < c.length; i++) if (r < c[i]!) return i;
    return c.length - 1;
  }
}
const pickers = new WeakMap<FuzzChainOptions, KindPicker>();

/** Fuzz memory: a 2 MiB region at 0 (rings + buffers), a hole, and a 64 MiB region at 4 GiB (lazily backed). */
export function fuzzMemory(): { mem: GuestMemory; small: RegionLayout; big: RegionLayout } {
  const small = { base: 0, size: 2 << 20 };
  const big = { base: 0x1_0000_0000, size: 64 << 20 };
  return { mem: GuestMemory.anonymous([small, big]), small, big };
}

/** State one writeFuzzChain call needs; kept per queue so the hot path allocates little. */
class BufPicker {
  constructor(
    readonly rng: Rng,
    readonly q: MockSplitQueue,
  ) {}
  /** A random buffer inside the data area: [addr, addr+len). */
  buf(maxLen: number): [number, number] {
    const { rng, q } = this;
    const r = rng();
    let len = r < 0.1 ? 0 : r < 0.75 ? 1 + randInt(rng, 64) : 1 + randInt(rng, maxLen);
    const room = q.dataEnd - q.dataStart;
    if (len > room) len = room;
    return [q.dataStart + randInt(rng, room - len + 1), len];
  }
}

function lo32(a: number): number {
  return a % 0x1_0000_0000;
}
function hi32(a: number): number {
  return Math.floor(a / 0x1_0000_0000);
}

/**
 * Write one random or adversarial chain into `q`'s descriptor table (raw: any slots) and push its head to the
 * avail ring (publish() makes it visible). Returns the index of its kind in FUZZ_KINDS.
 */
export function writeFuzzChain(rng: Rng, q: MockSplitQueue, opts: FuzzChainOptions): number {
  let picker = pickers.get(opts);
  if (picker === undefined) {
    picker = new KindPicker(opts);
    pickers.set(opts, picker);
  }
  const kind = picker.pick(rng);
  const S = q.size;
  const mask = S - 1;
  const dv = q.descView;
  const w = new BufPicker(rng, q);
  const h = randInt(rng, S);
  // Direct chain of n descriptors at slots h, h+1, ... (mod S); `mk(j)` gives [addr, len, writable].
  const direct = (n: number, mk: (j: number) => [number, number, boolean], lastNext?: number): void => {
    for (let j = 0; j < n; j++) {
      const [a, len, wr] = mk(j);
      const last = j + 1 === n;
      const slot = (h + j) & mask;
      const next = last ? (lastNext ?? 0) : (h + j + 1) & mask;
      const flags = (wr ? VRING_DESC_F_WRITE : 0) | (last && lastNext === undefined ? 0 : VRING_DESC_F_NEXT);
      putDesc(dv, slot * 16, lo32(a), hi32(a), len, flags, next);
    }
  };
  // Indirect table of n entries in the data area, chained 0..n-1; slot h points at it.
  const indirect = (n: number, mk: (j: number) => [number, number, boolean, number?]): number => {
    const tlen = n * 16;
    const t = q.dataStart + Math.floor(randInt(rng, q.dataEnd - q.dataStart - tlen) / 16) * 16;
    const tv = q.dataView;
    for (let j = 0; j < n; j++) {
      const [a, len, wr, extra] = mk(j);
      const last = j + 1 === n;
      const flags = (wr ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT) | (extra ?? 0);
      putDesc(tv, t - q.dataStart + j * 16, lo32(a), hi32(a), len, flags, j + 1);
    }
    putDesc(dv, h * 16, lo32(t), 0, tlen, VRING_DESC_F_INDIRECT, 0);
    return t;
  };
  // A well-formed random chain: r readable then writable parts.
  const validParts = (n: number): ((j: number) => [number, number, boolean]) => {
    const r = randInt(rng, n + 1);
    return (j) => {
      const [a, len] = w.buf(4096);
      if (j === 0 && j < r && len >= 4) {
        // a little header-like content: small numbers half the time
        const off = a - q.dataStart;
        for (let k = 0; k + 4 <= Math.min(len, 16); k += 4) {
          q.dataView.setUint32(off + k, rng() < 0.5 ? randInt(rng, 8) : (rng() * 4294967296) >>> 0, true);
        }
      }
      return [a, len, j >= r];
    };
  };
  const maxDirect = Math.min(S, 4);
  let head = h;

  const fuzzKind = FUZZ_KINDS[kind];
  if (fuzzKind === undefined) throw new RangeError(`fuzz kind index ${String(kind)} is out of range`);
  switch (fuzzKind) {
    case 'valid':
      direct(1 + randInt(rng, maxDirect), validParts(maxDirect));
      break;
    case 'validIndirect': {
      const n = 1 + randInt(rng, 8);
      indirect(n, validParts(n));
      break;
    }
    case 'request': {
      const parts = opts.request!(rng) ?? [{ len: 16 }];
      const useIndirect = opts.indirect && rng() < 0.3;
      const n = useIndirect ? Math.min(parts.length, MAX_INDIRECT_ENTRIES) : Math.min(parts.length, S);
      const mk = (j: number): [number, number, boolean] => {
        const p = parts[j]!;
        let len = Math.max(p.len ?? 0, p.data?.length ?? 0);
        const room = q.dataEnd - q.dataStart;
        if (len > room) len = room;
        const a = q.dataStart + randInt(rng, room - len + 1);
        if (p.data !== undefined) {
          new Uint8Array(q.dataView.buffer, q.dataView.byteOffset + (a - q.dataStart), len).set(
            p.data.subarray(0, len),
          );
        }
        return [a, len, p.writable === true];
      };
      if (useIndirect) indirect(n, mk);
      else direct(n, mk);
      break;
    }
    case 'zeroLength': {
      // zero-length buffers at legal edges: region starts and ends (a zero-length range at the end is in RAM)
      const edges = [q.dataStart, q.dataEnd, q.descTable];
      if (opts.big !== undefined) edges.push(opts.big.base, opts.big.base + opts.big.size);
      const n = 1 + randInt(rng, maxDirect);
      const valid = validParts(n);
      direct(n, (j) => {
        const v = valid(j);
        return rng() < 0.6 ? [edges[randInt(rng, edges.length)]!, 0, v[2]] : v;
      });
      break;
    }
    case 'ringOverlap': {
      // buffers on top of the rings themselves: legal for the device, hostile to the driver
      const ringEnd = q.usedRing + ringBytes(S).used;
      const n = 1 + randInt(rng, maxDirect);
      const r = randInt(rng, n + 1);
      direct(n, (j) => {
        const len = randInt(rng, Math.min(256, ringEnd - q.descTable) + 1);
        return [q.descTable + randInt(rng, ringEnd - q.descTable - len + 1), len, j >= r];
      });
      break;
    }
    case 'loop': {
      const n = 1 + randInt(rng, maxDirect);
      if (opts.indirect && rng() < 0.3) {
        const valid = validParts(n);
        const t = indirect(n, (j) => valid(j));
        // last entry points back into the table with NEXT
        const off = t - q.dataStart + (n - 1) * 16;
        q.dataView.setUint16(off + 12, q.dataView.getUint16(off + 12, true) | VRING_DESC_F_NEXT, true);
        q.dataView.setUint16(off + 14, randInt(rng, n), true);
      } else {
        direct(n, validParts(n), (h + randInt(rng, n)) & mask);
      }
      break;
    }
    case 'nextOutOfRange': {
      const n = 1 + randInt(rng, maxDirect);
      if (opts.indirect && rng() < 0.3) {
        const valid = validParts(n);
        const t = indirect(n, (j) => valid(j));
        const off = t - q.dataStart + (n - 1) * 16;
        q.dataView.setUint16(off + 12, VRING_DESC_F_NEXT, true);
        q.dataView.setUint16(off + 14, n + randInt(rng, 0x10000 - n), true);
      } else {
        direct(n, validParts(n), S + randInt(rng, 0x10000 - S));
      }
      break;
    }
    case 'headOutOfRange':
      direct(1, validParts(1));
      head = S + randInt(rng, 0x10000 - S);
      break;
    case 'addrNear2p64': {
      const n = 1 + randInt(rng, maxDirect);
      const bad = randInt(rng, n);
      const valid = validParts(n);
      direct(n, (j) => valid(j));
      const his = [0xffff_ffff, 0xffff_fffe, 0x8000_0000, 0x0020_0000, 0x0010_0000];
      const slot = (h + bad) & mask;
      dv.setUint32(slot * 16, rng() < 0.5 ? 0xffff_fff0 + randInt(rng, 16) : (rng() * 4294967296) >>> 0, true);
      dv.setUint32(slot * 16 + 4, his[randInt(rng, his.length)]!, true);
      if (rng() < 0.3) dv.setUint32(slot * 16 + 8, 0, true); // zero length does not make it legal
      break;
    }
    case 'addrOutsideRam': {
      const n = 1 + randInt(rng, maxDirect);
      const bad = randInt(rng, n);
      const valid = validParts(n);
      const regions = q.mem.regions;
      const rg = regions[randInt(rng, regions.length)]!;
      const end = rg.base + rg.size;
      const choices: Array<[number, number]> = [
        [end - randInt(rng, 16), 16 + randInt(rng, 4096)], // runs off the region end
        [end + 1 + randInt(rng, 4096), randInt(rng, 64)], // in the hole after it (zero length too)
        [rg.base - 1 - randInt(rng, 16), 2 + 16 + randInt(rng, 16)], // starts before a region
        [2 ** 52 + randInt(rng, 4096), randInt(rng, 16)], // past the 52-bit physical limit
        [rg.base + randInt(rng, rg.size), rg.size + 1], // longer than the region
      ];
      let [ba, bl] = choices[randInt(rng, choices.length)]!;
      if (ba < 0) [ba, bl] = [2 ** 52, 8]; // nothing below region 0: use the 52-bit limit instead
      direct(n, (j) => (j === bad ? [ba, bl, valid(j)[2]] : valid(j)));
      break;
    }
    case 'lenHuge': {
      const n = 1 + randInt(rng, maxDirect);
      const bad = randInt(rng, n);
      const valid = validParts(n);
      direct(n, (j) => {
        const v = valid(j);
        return j === bad ? [v[0], 0xffff_ffff - randInt(rng, 4096), v[2]] : v;
      });
      break;
    }
    case 'lengthOverflow': {
      // 64 x 64 MiB in RAM: each buffer is legal, the sum is 2^32 (virtio 1.2 §2.7.5.2)
      const big = opts.big!;
      const len = Math.min(big.size, 64 << 20);
      const n = Math.ceil(0x1_0000_0000 / len) + randInt(rng, 3);
      if (S >= n && (!opts.indirect || rng() < 0.5)) direct(n, () => [big.base, len, true]);
      else if (opts.indirect) indirect(n, () => [big.base, len, false]);
      else direct(1, () => [big.base, 0xffff_ffff, true]); // queue too small to overflow legally: too long instead
      break;
    }
    case 'nestedIndirect': {
      const n = 1 + randInt(rng, 4);
      const bad = randInt(rng, n);
      const valid = validParts(n);
      indirect(n, (j) => {
        const v = valid(j);
        return j === bad ? [q.dataStart, 16 * (1 + randInt(rng, 4)), v[2], VRING_DESC_F_INDIRECT] : v;
      });
      break;
    }
    case 'indirectBadLen': {
      const n = 1 + randInt(rng, 4);
      const valid = validParts(n);
      const t = indirect(n, (j) => valid(j));
      const lens = [0, 1 + randInt(rng, 15), n * 16 + 1 + randInt(rng, 15), (MAX_INDIRECT_ENTRIES + 1) * 16];
      const l = lens[randInt(rng, lens.length)]!;
      if (l === (MAX_INDIRECT_ENTRIES + 1) * 16 && opts.big !== undefined) {
        putDesc(dv, h * 16, lo32(opts.big.base), hi32(opts.big.base), l, VRING_DESC_F_INDIRECT, 0);
      } else {
        putDesc(dv, h * 16, lo32(t), hi32(t), l, VRING_DESC_F_INDIRECT, 0);
      }
      break;
    }
    case 'indirectOutsideRam': {
      const n = 1 + randInt(rng, 4);
      const addrs = [
        [0xffff_fff0, 0xffff_ffff],
        [lo32(q.dataEnd - 16), hi32(q.dataEnd - 16)], // runs off the end
        [0x4000_0000, 0], // hole
      ];
      const [alo, ahi] = addrs[randInt(rng, addrs.length)]!;
      putDesc(dv, h * 16, alo!, ahi!, n * 16 + 16, VRING_DESC_F_INDIRECT, 0);
      break;
    }
    case 'indirectWithNext': {
      const n = 1 + randInt(rng, 4);
      const valid = validParts(n);
      const t = indirect(n, (j) => valid(j));
      putDesc(dv, h * 16, lo32(t), hi32(t), n * 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, (h + 1) & mask);
      break;
    }
    case 'readAfterWrite': {
      const n = Math.min(S, 2 + randInt(rng, 3));
      const wAt = randInt(rng, n - 1);
      if (n < 2) {
        direct(1, validParts(1));
        break;
      }
      const mk = (j: number): [number, number, boolean] => {
        const [a, len] = w.buf(256);
        return [a, len, j === wAt];
      };
      if (opts.indirect && rng() < 0.3) indirect(n, mk);
      else direct(n, mk);
      break;
    }
    case 'availJump': {
      direct(1, validParts(1));
      if (S <= 0x7ffe) {
        // a driver claiming more chains than the ring holds
        q.pushHead(h);
        q.availIdx = q.availIdx + S + randInt(rng, 0x10000 - 2 * S - 1);
        return kind;
      }
      break;
    }
    case 'garbage': {
      const n = 1 + randInt(rng, maxDirect);
      for (let j = 0; j < n; j++) {
        const slot = rng() < 0.5 ? (h + j) & mask : randInt(rng, S);
        putDesc(
          dv,
          slot * 16,
          (rng() * 4294967296) >>> 0,
          rng() < 0.5 ? 0 : (rng() * 4294967296) >>> 0,
          (rng() * 4294967296) >>> 0,
          randInt(rng, 8),
          rng() < 0.5 ? randInt(rng, S) : randInt(rng, 0x10000),
        );
      }
      break;
    }
    case 'bitFlip': {
      const n = 1 + randInt(rng, maxDirect);
      const valid = validParts(n);
      const useIndirect = opts.indirect && rng() < 0.3;
      const t = useIndirect ? indirect(n, (j) => valid(j)) : -1;
      if (!useIndirect) direct(n, valid);
      const bit = randInt(rng, 128);
      const which = randInt(rng, n);
      const byte = bit >> 3;
      if (useIndirect) {
        const off = t - q.dataStart + which * 16 + byte;
        q.dataView.setUint8(off, q.dataView.getUint8(off) ^ (1 << (bit & 7)));
      } else {
        const off = ((h + which) & mask) * 16 + byte;
        dv.setUint8(off, dv.getUint8(off) ^ (1 << (bit & 7)));
      }
      break;
    }
  }
  q.pushHead(head);
  return kind;
}

/** Write `count` fuzz chains into `q` and publish them; returns their kind indices. */
export function fuzzChains(
  rng: Rng,
  mem: GuestMemory,
  q: MockSplitQueue,
  count: number,
  opts: FuzzChainOptions = { indirect: true },
): number[] {
  if (mem !== q.mem) throw new RangeError('fuzzChains: the mock queue lives in another GuestMemory');
  const kinds: number[] = [];
  for (let i = 0; i < count; i++) kinds.push(writeFuzzChain(rng, q, opts));
  q.publish();
  return kinds;
}

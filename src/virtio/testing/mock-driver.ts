// A mock virtio driver for tests: lays split-ring descriptor tables, available and used rings into test guest
// memory the way a guest driver does (virtio 1.2 §2.7.13), reads back what the device returned, and offers raw
// writes to corrupt the rings. Plus the hostile-guest fuzz helpers shared by the device tests:
// writeFuzzChain()/fuzzChains() (random and adversarial chains) and fuzzDevice() (drives a whole VirtioDevice).
//
// A MockSplitQueue is used either through addChain()/publish()/used() (tracked chains) or through the raw
// fuzz writers (untracked: they overwrite whatever descriptors they pick); do not mix both between resets.

import { GuestMemory, type RegionLayout } from '../../memory/guest-memory.js';
import {
  MAX_INDIRECT_ENTRIES,
  SplitQueue,
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_DESC_SIZE,
  VRING_USED_F_NO_NOTIFY,
  ringBytes,
  vringNeedEvent,
  type QueueLayout,
} from '../queue.js';
import { DeviceBroken, type ActivateContext, type VirtioDevice } from '../device.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../ids.js';

/** A deterministic PRNG returning floats in [0, 1). */
export type Rng = () => number;

/** mulberry32: small, fast, deterministic PRNG (public domain, Tommy Ettinger). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer in [0, n). */
export function randInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** One buffer of a chain: `data` (its bytes, readable by default) or `len` bytes (writable when `writable`). */
export interface ChainPart {
  data?: Uint8Array;
  len?: number;
  writable?: boolean;
}

/** A raw descriptor as the driver writes it (virtio_ring.h struct vring_desc). */
export interface RawDesc {
  addr: number | bigint;
  len: number;
  flags: number;
  next: number;
}

interface PlacedPart {
  addr: number;
  len: number;
  writable: boolean;
}

interface ChainRecord {
  descs: number[]; // descriptor-table slots the chain occupies
  parts: PlacedPart[];
  usedLen: number | undefined;
}

function viewOf(mem: GuestMemory, addr: number, len: number): DataView {
  const u8 = mem.slice(addr, len);
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Write one 16-byte descriptor at byte offset `off` of `v` (addr as lo/hi u32 halves). */
function putDesc(v: DataView, off: number, lo: number, hi: number, len: number, flags: number, next: number): void {
  v.setUint32(off, lo >>> 0, true);
  v.setUint32(off + 4, hi >>> 0, true);
  v.setUint32(off + 8, len >>> 0, true);
  v.setUint16(off + 12, flags & 0xffff, true);
  v.setUint16(off + 14, next & 0xffff, true);
}

export interface MockQueueOptions {
  /** first byte of the area addChain() and the fuzz writers place buffers in (default: after the used ring) */
  dataStart?: number;
  /** end of that area (default: end of the region holding `base`) */
  dataEnd?: number;
}

/** The driver side of one split virtqueue, laid out at `base` (16-aligned): desc table, avail ring, used ring. */
export class MockSplitQueue {
  readonly descTable: number;
  readonly availRing: number;
  readonly usedRing: number;
  readonly dataStart: number;
  readonly dataEnd: number;
  /** views of the rings and the data area (the mock is trusted test code) */
  readonly descView: DataView;
  readonly availView: DataView;
  readonly usedView: DataView;
  readonly dataView: DataView;
  private availShadow = 0;
  private usedSeen = 0;
  private kickedAt = 0;
  private dataNext: number;
  private free: number[] = [];
  private readonly chains = new Map<number, ChainRecord>();

  constructor(
    readonly mem: GuestMemory,
    readonly base: number,
    readonly size: number,
    opts: MockQueueOptions = {},
  ) {
    if (!Number.isInteger(size) || size < 1 || size > 32768 || (size & (size - 1)) !== 0) {
      throw new RangeError(`mock queue size ${size} must be a power of two in [1, 32768]`);
    }
    if (base % 16 !== 0) throw new RangeError(`mock queue base ${base} must be 16-byte aligned`);
    const b = ringBytes(size);
    this.descTable = base;
    this.availRing = base + b.desc;
    this.usedRing = align(this.availRing + b.avail, 4);
    const region = mem.regions.find((r) => base >= r.base && base < r.base + r.size);
    if (region === undefined) throw new RangeError(`mock queue base ${base} is not in guest memory`);
    this.dataStart = opts.dataStart ?? align(this.usedRing + b.used, 16);
    this.dataEnd = opts.dataEnd ?? region.base + region.size;
    if (this.dataEnd - this.dataStart < 64) throw new RangeError('mock queue has no room for buffers after its rings');
    this.descView = viewOf(mem, this.descTable, b.desc);
    this.availView = viewOf(mem, this.availRing, b.avail);
    this.usedView = viewOf(mem, this.usedRing, b.used);
    this.dataView = viewOf(mem, this.dataStart, this.dataEnd - this.dataStart);
    this.dataNext = this.dataStart;
    this.reset();
  }

  /** Where the rings are, as the transport would report them to SplitQueue.create(). */
  layout(): QueueLayout {
    return { size: this.size, descTable: this.descTable, availRing: this.availRing, usedRing: this.usedRing };
  }

  /** Zero the rings and forget every chain (driver reset). */
  reset(): void {
    new Uint8Array(this.descView.buffer, this.descView.byteOffset, this.descView.byteLength).fill(0);
    new Uint8Array(this.availView.buffer, this.availView.byteOffset, this.availView.byteLength).fill(0);
    new Uint8Array(this.usedView.buffer, this.usedView.byteOffset, this.usedView.byteLength).fill(0);
    this.availShadow = 0;
    this.usedSeen = 0;
    this.kickedAt = 0;
    this.dataNext = this.dataStart;
    this.free = [];
    for (let i = this.size - 1; i >= 0; i--) this.free.push(i);
    this.chains.clear();
  }

  /** Bump-allocate `len` bytes in the data area (wrapping to its start when full). */
  alloc(len: number, alignment = 8): number {
    if (len > this.dataEnd - this.dataStart) throw new RangeError(`mock: ${len}-byte buffer exceeds the data area`);
    let a = align(this.dataNext, alignment);
    if (a + len > this.dataEnd) a = this.dataStart;
    this.dataNext = a + len;
    return a;
  }

  /**
   * Lay out a chain (readable parts first, as a driver must) and add its head to the avail ring; it becomes
   * visible to the device at publish(). With `indirect`, the parts go in an indirect table and the chain uses
   * one descriptor. Returns the head index.
   */
  addChain(parts: ChainPart[], opts: { indirect?: boolean } = {}): number {
    if (parts.length === 0) throw new RangeError('mock: a chain needs at least one part');
    const placed: PlacedPart[] = parts.map((p) => {
      const len = Math.max(p.len ?? 0, p.data?.length ?? 0);
      const addr = this.alloc(len);
      if (p.data !== undefined) {
        this.mem.fill(addr, len, 0);
        this.mem.write(addr, p.data);
      } else this.mem.fill(addr, len, 0);
      return { addr, len, writable: p.writable === true };
    });
    const need = opts.indirect === true ? 1 : placed.length;
    if (this.free.length < need) {
      throw new RangeError(`mock: descriptor table full (${this.free.length} free, need ${need}): call used() first`);
    }
    const slots: number[] = [];
    for (let i = 0; i < need; i++) slots.push(this.free.pop()!);
    if (opts.indirect === true) {
      const table = this.alloc(placed.length * VRING_DESC_SIZE, 16);
      const v = viewOf(this.mem, table, placed.length * VRING_DESC_SIZE);
      placed.forEach((p, i) => {
        const flags = (p.writable ? VRING_DESC_F_WRITE : 0) | (i + 1 < placed.length ? VRING_DESC_F_NEXT : 0);
        putDesc(v, i * 16, p.addr % 0x1_0000_0000, Math.floor(p.addr / 0x1_0000_0000), p.len, flags, i + 1);
      });
      this.writeDesc(slots[0]!, { addr: table, len: placed.length * VRING_DESC_SIZE, flags: VRING_DESC_F_INDIRECT, next: 0 });
    } else {
      placed.forEach((p, i) => {
        const last = i + 1 === placed.length;
        const flags = (p.writable ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT);
        this.writeDesc(slots[i]!, { addr: p.addr, len: p.len, flags, next: last ? 0 : slots[i + 1]! });
      });
    }
    const head = slots[0]!;
    this.chains.set(head, { descs: slots, parts: placed, usedLen: undefined });
    this.pushHead(head);
    return head;
  }

  /** Every chain added and not freed: its head and the guest address of its first buffer (drivers that recycle
   * buffers by head, like Linux's, use this to find a used buffer without copying it). */
  chainBuffers(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (const [head, rec] of this.chains) {
      const p = rec.parts[0];
      if (p !== undefined) out.push([head, p.addr]);
    }
    return out;
  }

  /** Put `head` in the next avail ring slot (not yet visible: see publish()). */
  pushHead(head: number): void {
    this.availView.setUint16(4 + 2 * (this.availShadow & (this.size - 1)), head & 0xffff, true);
    this.availShadow = (this.availShadow + 1) & 0xffff;
  }

  /** Make the added chains visible: write avail.idx (the driver writes ring entries first, then idx). */
  publish(): void {
    this.availView.setUint16(2, this.availShadow, true);
  }

  /** The avail index the mock will publish. */
  get availIdx(): number {
    return this.availShadow;
  }

  /** Move the mock's own avail index (raw; a hostile driver skipping entries). */
  set availIdx(n: number) {
    this.availShadow = n & 0xffff;
  }

  /** New used elements since the last call; frees the descriptors of tracked chains. */
  used(): Array<{ id: number; len: number }> {
    const idx = this.usedView.getUint16(2, true);
    const out: Array<{ id: number; len: number }> = [];
    while (this.usedSeen !== idx) {
      const off = 4 + 8 * (this.usedSeen & (this.size - 1));
      const id = this.usedView.getUint32(off, true);
      const len = this.usedView.getUint32(off + 4, true);
      out.push({ id, len });
      const rec = this.chains.get(id);
      if (rec !== undefined && rec.usedLen === undefined) {
        rec.usedLen = len;
        for (const s of rec.descs) this.free.push(s);
      }
      this.usedSeen = (this.usedSeen + 1) & 0xffff;
    }
    return out;
  }

  /** Copies of the writable buffers of chain `head` (cut to the used length once used() has seen it). */
  readWritten(head: number): Uint8Array[] {
    const rec = this.chains.get(head);
    if (rec === undefined) throw new RangeError(`mock: no chain with head ${head}`);
    let left = rec.usedLen ?? Infinity;
    const out: Uint8Array[] = [];
    for (const p of rec.parts) {
      if (!p.writable) continue;
      const n = Math.min(p.len, left);
      out.push(this.mem.read(p.addr, n));
      left -= n;
    }
    return out;
  }

  /** The writable bytes of `head` as one array. */
  readWrittenBytes(head: number): Uint8Array {
    const parts = this.readWritten(head);
    const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** avail->used_event (EVENT_IDX): interrupt me when used.idx passes n. */
  setUsedEvent(n: number): void {
    this.availView.setUint16(4 + 2 * this.size, n & 0xffff, true);
  }

  /** avail.flags VRING_AVAIL_F_NO_INTERRUPT. */
  setNoInterrupt(on: boolean): void {
    this.availView.setUint16(0, on ? VRING_AVAIL_F_NO_INTERRUPT : 0, true);
  }

  /** Raw descriptor write (to corrupt the table). */
  writeDesc(i: number, d: RawDesc): void {
    const a = BigInt(d.addr);
    putDesc(this.descView, i * 16, Number(a & 0xffff_ffffn), Number((a >> 32n) & 0xffff_ffffn), d.len, d.flags, d.next);
  }

  /** Raw avail.idx write (does not move the mock's own index). */
  setAvailIdx(n: number): void {
    this.availView.setUint16(2, n & 0xffff, true);
  }

  /** Raw avail.ring[slot] write. */
  setAvailRing(slot: number, head: number): void {
    this.availView.setUint16(4 + 2 * (slot & (this.size - 1)), head & 0xffff, true);
  }

  /** used.idx as the device left it. */
  usedIdx(): number {
    return this.usedView.getUint16(2, true);
  }

  /** used.flags (VRING_USED_F_NO_NOTIFY without EVENT_IDX). */
  usedFlags(): number {
    return this.usedView.getUint16(0, true);
  }

  /** used->avail_event (EVENT_IDX). */
  availEvent(): number {
    return this.usedView.getUint16(4 + 8 * this.size, true);
  }

  /** Would a Linux driver notify the device for the chains published since the last call? (virtio 1.2 §2.7.10) */
  kickNeeded(eventIdx: boolean): boolean {
    const old = this.kickedAt;
    const now = this.availShadow;
    this.kickedAt = now;
    if (old === now) return false;
    if (eventIdx) return vringNeedEvent(this.availEvent(), now, old);
    return (this.usedFlags() & VRING_USED_F_NO_NOTIFY) === 0;
  }
}

// -----------------------------------------------------------------------------------------------------------
// Hostile-guest fuzzing

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

  switch (FUZZ_KINDS[kind]) {
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

// -----------------------------------------------------------------------------------------------------------
// Whole-device fuzzing

export interface FuzzDeviceOptions {
  /** chains to write in all (default 1,000,000) */
  chains?: number;
  seed?: number;
  /** queue size for every queue (default 64, capped at each queue's maximum) */
  queueSize?: number;
  /** features the "driver" acks (default: all offered + VERSION_1); EVENT_IDX/INDIRECT are dropped at random */
  features?: bigint;
  /** most chains per notification (default 4) */
  batch?: number;
  /** well-formed requests for queue `queue` (parts laid out at random); mixed with adversarial chains */
  request?: (rng: Rng, queue: number) => ChainPart[] | undefined;
  /** share of chains from `request` (default 0.5 when given) */
  requestShare?: number;
  /**
   * share of notifications whose batch holds only well-formed chains (default 0.5), so that long runs of
   * valid requests reach the device between the attacks that break it
   */
  cleanBatchShare?: number;
  /** called after each activation (e.g. to open host-side connections) */
  onActivate?: (device: VirtioDevice) => void;
  /** called after each processQueue (e.g. to pump a fake backend); may throw DeviceBroken like processQueue */
  afterProcess?: (device: VirtioDevice, queue: number) => void;
}

export interface FuzzDeviceResult {
  chains: number;
  notifications: number;
  /** DeviceBroken caught (each followed by reset + reactivate) */
  broken: number;
  brokenByName: Record<string, number>;
  /** used elements the device returned */
  used: number;
  interrupts: number;
  /** times every queue was full and the device took nothing (then reset) */
  stalls: number;
  kinds: Record<string, number>;
  ms: number;
}

/** Something other than DeviceBroken escaped the device: a bug. */
export class FuzzEscape extends Error {
  constructor(
    readonly error: unknown,
    readonly seed: number,
    readonly chain: number,
  ) {
    super(
      `fuzz seed ${seed}, chain ${chain}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}` +
        ' escaped the device (only DeviceBroken may)',
      { cause: error },
    );
    this.name = 'FuzzEscape';
  }
}

/**
 * Activate a device on mock queues filled with random and adversarial chains, notify it repeatedly, and check
 * that only DeviceBroken escapes (then reset + reactivate, as the transport does). Any other exception —
 * including an access outside guest RAM, which GuestMemory turns into InvalidGuestAddress/PartialBuffer —
 * is rethrown as FuzzEscape with the seed.
 */
export function fuzzDevice(makeDevice: () => VirtioDevice, opts: FuzzDeviceOptions = {}): FuzzDeviceResult {
  const total = opts.chains ?? 1_000_000;
  const seed = opts.seed ?? 1;
  const batch = opts.batch ?? 4;
  const rng = mulberry32(seed);
  const { mem, small, big } = fuzzMemory();
  const device = makeDevice();
  const nq = device.queueMaxSizes.length;
  const sizes = device.queueMaxSizes.map((m) => Math.min(m, opts.queueSize ?? 64));
  // Rings packed at the start of the small region; the rest is the shared data area.
  const mocks: MockSplitQueue[] = [];
  let at = 0;
  for (const s of sizes) at = align(at + 16 * s + 6 + 2 * s + 4 + 6 + 8 * s, 4096);
  const dataStart = at;
  at = 0;
  for (const s of sizes) {
    mocks.push(new MockSplitQueue(mem, at, s, { dataStart, dataEnd: small.base + small.size }));
    at = align(at + 16 * s + 6 + 2 * s + 4 + 6 + 8 * s, 4096);
  }
  const offered = opts.features ?? device.availableFeatures | VIRTIO_F_VERSION_1;
  const res: FuzzDeviceResult = {
    chains: 0,
    notifications: 0,
    broken: 0,
    brokenByName: {},
    used: 0,
    interrupts: 0,
    stalls: 0,
    kinds: {},
    ms: 0,
  };
  const kindCounts = new Array<number>(FUZZ_KINDS.length).fill(0);
  let queues: SplitQueue[] = [];
  let chainOpts: FuzzChainOptions[] = [];
  let cleanOpts: FuzzChainOptions[] = [];
  const cleanShare = opts.cleanBatchShare ?? 0.5;
  const lastUsed = new Array<number>(nq).fill(0);
  const interrupt = {
    signalUsed: (): void => {
      res.interrupts++;
    },
    signalConfig: (): void => {},
  };

  const escape = (e: unknown): never => {
    throw new FuzzEscape(e, seed, res.chains);
  };
  const activate = (): void => {
    let acked = offered;
    if (rng() < 0.3) acked &= ~VIRTIO_RING_F_EVENT_IDX;
    if (rng() < 0.2) acked &= ~VIRTIO_RING_F_INDIRECT_DESC;
    const eventIdx = (acked & VIRTIO_RING_F_EVENT_IDX) !== 0n;
    const indir = (acked & VIRTIO_RING_F_INDIRECT_DESC) !== 0n;
    queues = mocks.map((m, i) => {
      m.reset();
      if (rng() < 0.2) m.setNoInterrupt(true);
      if (rng() < 0.2) m.setUsedEvent(randInt(rng, 0x10000));
      lastUsed[i] = 0;
      return SplitQueue.create(mem, m.layout(), { maxSize: device.queueMaxSizes[i]!, eventIdx, indirect: indir });
    });
    // Offer the adversarial chains whatever was negotiated: a hostile driver ignores negotiation.
    const make = (i: number, clean: boolean): FuzzChainOptions => {
      const o: FuzzChainOptions = { indirect: clean ? indir : indir || rng() < 0.5, big, validOnly: clean };
      if (opts.request !== undefined) {
        const req = opts.request;
        o.request = (r: Rng) => req(r, i);
        if (opts.requestShare !== undefined) o.requestShare = opts.requestShare;
      }
      return o;
    };
    chainOpts = mocks.map((_, i) => make(i, false));
    cleanOpts = mocks.map((_, i) => make(i, true));
    const ctx: ActivateContext = { mem, queues, interrupt, ackedFeatures: acked };
    try {
      device.activate(ctx);
      opts.onActivate?.(device);
    } catch (e) {
      escape(e);
    }
  };
  const broken = (e: unknown): void => {
    if (!(e instanceof DeviceBroken)) escape(e);
    const err = e as DeviceBroken;
    res.broken++;
    res.brokenByName[err.name] = (res.brokenByName[err.name] ?? 0) + 1;
    try {
      device.reset();
    } catch (e2) {
      escape(e2);
    }
    activate();
  };

  const t0 = performance.now();
  activate();
  let idle = 0;
  while (res.chains < total) {
    const qi = randInt(rng, nq);
    const m = mocks[qi]!;
    const pending = (m.availIdx - queues[qi]!.nextAvail) & 0xffff;
    const room = m.size - pending;
    if (room > 0) {
      const k = 1 + randInt(rng, Math.min(batch, room, total - res.chains));
      const co = rng() < cleanShare ? cleanOpts[qi]! : chainOpts[qi]!;
      for (let j = 0; j < k; j++) kindCounts[writeFuzzChain(rng, m, co)]!++;
      res.chains += k;
      m.publish();
      idle = 0;
    } else if (++idle > 8 * nq) {
      // every queue full and nothing consumed: a driver would wait forever; reset instead
      res.stalls++;
      idle = 0;
      try {
        device.reset();
      } catch (e) {
        escape(e);
      }
      activate();
      continue;
    }
    res.notifications++;
    try {
      device.processQueue(qi);
      opts.afterProcess?.(device, qi);
    } catch (e) {
      broken(e);
      continue;
    }
    const u = m.usedIdx();
    res.used += (u - lastUsed[qi]!) & 0xffff;
    lastUsed[qi] = u;
  }
  res.ms = performance.now() - t0;
  FUZZ_KINDS.forEach((k, i) => {
    res.kinds[k] = kindCounts[i]!;
  });
  return res;
}

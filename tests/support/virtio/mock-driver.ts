// A mock virtio driver for tests: lays split-ring descriptor tables, available and used rings into test guest
// memory the way a guest driver does (virtio 1.2 §2.7.13), reads back what the device returned, and offers raw
// writes to corrupt the rings. The hostile-guest fuzz helpers shared by the device tests live beside it and are
// re-exported here: fuzz-chains.ts (random and adversarial chains), fuzz-device.ts (drives a whole VirtioDevice),
// with the PRNG they draw from (../prng.ts).
//
// A MockSplitQueue is used either through addChain()/publish()/used() (tracked chains) or through the raw
// fuzz writers (untracked: they overwrite whatever descriptors they pick); do not mix both between resets.

import type { GuestMemory } from '../../../src/memory/guest-memory.js';
import {
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_DESC_SIZE,
  VRING_USED_F_NO_NOTIFY,
  ringBytes,
  vringNeedEvent,
  type QueueLayout,
} from '../../../src/virtio/queue.js';
import { concatBytes } from '../bytes.js';

// the PRNG the fuzzers draw from, re-exported with them
export { mulberry32, randInt, type Rng } from '../prng.js';

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

export function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Write one 16-byte descriptor at byte offset `off` of `v` (addr as lo/hi u32 halves). */
export function putDesc(v: DataView, off: number, lo: number, hi: number, len: number, flags: number, next: number): void {
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
    return concatBytes(this.readWritten(head));
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

export * from './fuzz-chains.js';
export * from './fuzz-device.js';

// The split virtqueue as the device sees it (virtio 1.2 §2.7; layouts from include/uapi/linux/virtio_ring.h).
//
// The driver (the guest) owns three rings in guest RAM; everything in them is hostile input:
//   descriptor table  size x 16 bytes  {addr u64, len u32, flags u16, next u16}      align 16
//   available ring    6 + 2*size       {flags u16, idx u16, ring[size] u16, used_event u16}   align 2
//   used ring         6 + 8*size       {flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16} align 4
// SplitQueue.create() checks the layout once (at DRIVER_OK) and caches views of the rings; pop() hands out
// DescriptorChains whose descriptors() yields only descriptors that passed every check below, so devices never
// see a guest address outside RAM, a loop, or a length that overflows. Hot paths use popHead() and walk()
// instead: the same checks into a reused CheckedChain, with no object allocated per chain or descriptor.
//
// Memory ordering. The driver runs on other CPUs and writes the rings concurrently. On x86-64 (TSO) loads are
// not reordered with loads and stores not with stores, and V8 keeps typed-array/DataView accesses in program
// order on its effect chain, so "read avail.idx, then the ring entries it covers" (driver: entries, then idx)
// and "write the used element, then used.idx" need no barrier. The one reordering TSO allows is a store
// followed by a load (the store-buffer): Linux puts virtio_mb() between publishing used.idx and reading
// used_event/avail.flags, and between writing avail_event and re-reading avail.idx. JS has no fence for plain
// ArrayBuffer accesses, so fullFence() does a sequentially consistent Atomics read-modify-write on a private
// SharedArrayBuffer: V8 emits a LOCK-prefixed instruction for it, which on x86 drains the store buffer for all
// memory, i.e. acts as mfence. (On a weakly ordered CPU this file would need real acquire/release accesses.)

import type { GuestMemory } from '../memory/guest-memory.js';
import { hex } from '../memory/guest-address.js';
import { DeviceBroken } from './device.js';

export { ChainReader, ChainWriter, ChainTooShort, CheckedChainWriter, type ByteSink } from './chain-io.js';

/** virtio_ring.h: descriptor flags. */
export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_DESC_F_INDIRECT = 4;
/** virtio_ring.h: used.flags bit — the device asks the driver not to notify (no EVENT_IDX). */
export const VRING_USED_F_NO_NOTIFY = 1;
/** virtio_ring.h: avail.flags bit — the driver asks the device not to interrupt (no EVENT_IDX). */
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
/** virtio_ring.h: VRING_DESC_ALIGN_SIZE, VRING_AVAIL_ALIGN_SIZE, VRING_USED_ALIGN_SIZE. */
export const VRING_DESC_ALIGN = 16;
export const VRING_AVAIL_ALIGN = 2;
export const VRING_USED_ALIGN = 4;
/** sizeof(struct vring_desc) */
export const VRING_DESC_SIZE = 16;
/** virtio 1.2 §2.7: "Queue Size ... the maximum Queue Size value is 32768". */
export const MAX_QUEUE_SIZE = 32768;
/** Largest indirect table we accept, in entries (next is a u16; rust-vmm virtio-queue uses the same cap). */
export const MAX_INDIRECT_ENTRIES = 0xffff;

/** Bytes each ring of a queue of `size` entries occupies (virtio 1.2 §2.7, "Queue Size" table). */
export function ringBytes(size: number): { desc: number; avail: number; used: number } {
  return { desc: VRING_DESC_SIZE * size, avail: 6 + 2 * size, used: 6 + 8 * size };
}

/** Where the driver put the rings (guest physical addresses) and how many entries they have. */
export interface QueueLayout {
  size: number;
  descTable: number;
  availRing: number;
  usedRing: number;
}

export interface SplitQueueOptions {
  /** the device's QueueNumMax for this queue (power of two, <= 32768) */
  maxSize: number;
  /** VIRTIO_RING_F_EVENT_IDX was negotiated */
  eventIdx: boolean;
  /** VIRTIO_RING_F_INDIRECT_DESC was negotiated (default true: accept indirect tables) */
  indirect?: boolean;
  /**
   * Resume a ring that already ran (vhost-user SET_VRING_BASE): the next avail index to pop and the used
   * index to write next (both u16). Default: a fresh ring, both 0.
   */
  start?: { nextAvail: number; nextUsed: number };
}

/** A descriptor that passed every check: [addr, addr+len) lies inside one guest RAM region. */
export interface Descriptor {
  addr: number;
  len: number;
  writable: boolean;
}

// ---------------------------------------------------------------------------------------------------------
// Errors. Each one means the driver broke the spec; the transport answers with DEVICE_NEEDS_RESET.

/** The rings the driver configured are unusable (checked once, at DRIVER_OK). */
export class InvalidQueue extends DeviceBroken {
  constructor(message: string) {
    super(`${message}: the driver must reset the device and set the queue up again`);
    this.name = 'InvalidQueue';
  }
}

// Errors a guest can raise at will (AvailIndexJump, ChainError, ChainTooShort) are DeviceBroken, which carries
// no JS stack (device.ts).

/** avail.idx moved further ahead of the device than the queue has entries (virtio 1.2 §2.7.6). */
export class AvailIndexJump extends DeviceBroken {
  readonly availIdx: number;
  readonly nextAvail: number;
  readonly size: number;
  constructor(availIdx: number, nextAvail: number, size: number) {
    super(
      `avail.idx ${availIdx} is ${(availIdx - nextAvail) & 0xffff} entries ahead of the device's next index ` +
        `${nextAvail}, more than the queue size ${size} (virtio 1.2 §2.7.6): the driver's ring is corrupt`,
    );
    this.name = 'AvailIndexJump';
    this.availIdx = availIdx;
    this.nextAvail = nextAvail;
    this.size = size;
  }
}

/** A descriptor chain broke a rule of virtio 1.2 §2.7.5; the subclass says which. */
export class ChainError extends DeviceBroken {
  readonly head: number;
  constructor(head: number, message: string) {
    super(`descriptor chain with head ${head}: ${message}`);
    this.name = new.target.name;
    this.head = head;
  }
}
/** A head or `next` index is not below the queue size (or the indirect table's entry count). */
export class DescriptorIndexOutOfRange extends ChainError {}
/** More descriptors than the hop budget (queue size, or indirect entry count): a loop (virtio 1.2 §2.7.5.2). */
export class ChainTooLong extends ChainError {}
/** An indirect table holds an INDIRECT descriptor (virtio 1.2 §2.7.5.3.1). */
export class NestedIndirect extends ChainError {}
/** An indirect descriptor is malformed: length 0 or not a multiple of 16, outside RAM, NEXT also set, not negotiated. */
export class BadIndirectTable extends ChainError {}
/** A buffer [addr, addr+len) is not inside one guest RAM region. */
export class DescriptorOutOfMemory extends ChainError {}
/** The chain's lengths add up to more than 2^32 - 1 bytes (virtio 1.2 §2.7.5.2). */
export class ChainLengthOverflow extends ChainError {}
/** A device-readable descriptor follows a device-writable one (virtio 1.2 §2.7.5.2 / §2.7.4). */
export class ReadAfterWrite extends ChainError {}

// ---------------------------------------------------------------------------------------------------------

const FENCE_CELL = new Int32Array(new SharedArrayBuffer(4));

/** Full memory barrier (see the header: a LOCK-prefixed RMW on x86-64, ordering earlier stores before later loads). */
export function fullFence(): void {
  Atomics.add(FENCE_CELL, 0, 0);
}

/** vring_need_event() from virtio_ring.h (virtio 1.2 §2.7.10): did new_idx pass event_idx since old? */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function viewOf(mem: GuestMemory, addr: number, len: number): DataView {
  const u8 = mem.slice(addr, len);
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

/**
 * The guest RAM map as two arrays, for the descriptor hot path. Same rule as GuestMemory.isValidRange():
 * [addr, addr+len) inside ONE region, a zero-length range valid anywhere in a region including its end.
 * (GuestMemory's regions never change after construction.)
 */
class RamMap {
  private readonly starts: Float64Array;
  private readonly ends: Float64Array;
  constructor(mem: GuestMemory) {
    const rs = mem.regions;
    this.starts = Float64Array.from(rs, (r) => r.base);
    this.ends = Float64Array.from(rs, (r) => r.base + r.size);
  }
  /** addr < 2^53 and len < 2^32 so addr + len is exact. */
  contains(addr: number, len: number): boolean {
    const s = this.starts;
    const e = this.ends;
    for (let i = 0; i < s.length; i++) {
      if (addr >= s[i]! && addr + len <= e[i]!) return true;
    }
    return false;
  }
}

/** What a chain walk needs from its queue (shared by all chains of one queue). */
interface ChainContext {
  readonly mem: GuestMemory;
  readonly ram: RamMap;
  readonly desc: DataView;
  readonly size: number;
  readonly indirect: boolean;
  /** where DescriptorChain.descriptors() walks before copying out (walks never nest: they are synchronous) */
  readonly scratch: CheckedChain;
}

/**
 * A chain's checked descriptors as parallel arrays, filled in place by SplitQueue.walk(): a device's hot path
 * reuses one and allocates nothing per chain. Valid until the next walk into the same object. The queue
 * guarantees device-readable descriptors come first (ReadAfterWrite), so [0, firstWritable) are readable and
 * [firstWritable, count) writable; every [addr[i], addr[i] + len[i]) lies inside one guest RAM region.
 */
export class CheckedChain {
  /** head index of the chain walked last */
  head = 0;
  count = 0;
  /** index of the first device-writable descriptor (count when there is none) */
  firstWritable = 0;
  readableBytes = 0;
  writableBytes = 0;
  addr: Float64Array;
  len: Float64Array;

  constructor(capacity = 16) {
    this.addr = new Float64Array(capacity);
    this.len = new Float64Array(capacity);
  }

  /** Start over for chain `head`. */
  clear(head: number): void {
    this.head = head;
    this.count = 0;
    this.firstWritable = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
  }

  /** Append a checked descriptor (readable ones first: the walk enforces it). */
  push(addr: number, len: number, writable: boolean): void {
    const i = this.count;
    if (i === this.addr.length) this.grow();
    this.addr[i] = addr;
    this.len[i] = len;
    this.count = i + 1;
    if (writable) this.writableBytes += len;
    else {
      this.readableBytes += len;
      this.firstWritable = i + 1;
    }
  }

  private grow(): void {
    const addr = new Float64Array(this.addr.length * 2);
    const len = new Float64Array(this.len.length * 2);
    addr.set(this.addr);
    len.set(this.len);
    this.addr = addr;
    this.len = len;
  }
}

/** addr u64 as a number when it is below 2^53 (so it can be range-checked exactly), else -1. */
function descAddr(lo: number, hi: number): number {
  return hi > 0x1f_ffff ? -1 : hi * 0x1_0000_0000 + lo;
}

function addrText(lo: number, hi: number): string {
  return hex((BigInt(hi) << 32n) | BigInt(lo));
}

/**
 * Walk a chain into `out`, checking every descriptor (virtio 1.2 §2.7.5). Each descriptor is read once from guest
 * memory and checked on that copy, so a guest rewriting the table meanwhile cannot slip anything past.
 */
function walkChain(ctx: ChainContext, head: number, out: CheckedChain): void {
  out.clear(head);
  let table = ctx.desc; // BOUNDS: ring range checked at DRIVER_OK; indirect tables checked below
  let entries = ctx.size;
  let budget = ctx.size; // hop budget (virtio 1.2 §2.7.5.2: no chain longer than the queue size)
  let idx = head;
  let inIndirect = false;
  let total = 0;
  let sawWritable = false;
  for (;;) {
    if (idx >= entries) {
      throw new DescriptorIndexOutOfRange(
        head,
        inIndirect
          ? `next index ${idx} is past the indirect table's ${entries} entries`
          : `descriptor index ${idx} is not below the queue size ${ctx.size}`,
      );
    }
    if (budget === 0) {
      throw new ChainTooLong(
        head,
        inIndirect
          ? `indirect table of ${entries} entries chains more than ${entries} descriptors (a loop)`
          : `more than the queue size ${ctx.size} descriptors are chained (a loop)`,
      );
    }
    budget--;
    const off = idx * VRING_DESC_SIZE;
    const lo = table.getUint32(off, true);
    const hi = table.getUint32(off + 4, true);
    const len = table.getUint32(off + 8, true);
    const flags = table.getUint16(off + 12, true);
    const next = table.getUint16(off + 14, true);

    if ((flags & VRING_DESC_F_INDIRECT) !== 0) {
      // virtio 1.2 §2.7.5.3.1: one table per descriptor, no NEXT beside INDIRECT, only if negotiated;
      // §2.7.5.3.2: the device ignores WRITE on the descriptor that points at the table.
      if (inIndirect) throw new NestedIndirect(head, `indirect table entry ${idx} is itself INDIRECT`);
      if (!ctx.indirect) {
        throw new BadIndirectTable(head, `descriptor ${idx} is INDIRECT but VIRTIO_RING_F_INDIRECT_DESC was not negotiated`);
      }
      if ((flags & VRING_DESC_F_NEXT) !== 0) {
        throw new BadIndirectTable(head, `descriptor ${idx} has both INDIRECT and NEXT set (virtio 1.2 §2.7.5.3.1)`);
      }
      if (len === 0 || len % VRING_DESC_SIZE !== 0) {
        throw new BadIndirectTable(head, `indirect table length ${len} is not a positive multiple of 16`);
      }
      const n = len / VRING_DESC_SIZE;
      if (n > MAX_INDIRECT_ENTRIES) {
        throw new BadIndirectTable(head, `indirect table has ${n} entries, more than ${MAX_INDIRECT_ENTRIES}`);
      }
      const addr = descAddr(lo, hi);
      if (addr < 0 || !ctx.ram.contains(addr, len)) {
        throw new BadIndirectTable(head, `indirect table [${addrText(lo, hi)}, +${len}) is not inside guest RAM`);
      }
      table = viewOf(ctx.mem, addr, len); // BOUNDS: range checked just above
      entries = n;
      budget = n;
      idx = 0;
      inIndirect = true;
      continue;
    }

    const addr = descAddr(lo, hi);
    if (addr < 0 || !ctx.ram.contains(addr, len)) {
      throw new DescriptorOutOfMemory(head, `buffer [${addrText(lo, hi)}, +${len}) is not inside guest RAM`);
    }
    total += len;
    if (total > 0xffff_ffff) {
      throw new ChainLengthOverflow(head, `buffers add up to ${total} bytes, more than 2^32 - 1 (virtio 1.2 §2.7.5.2)`);
    }
    const writable = (flags & VRING_DESC_F_WRITE) !== 0;
    if (writable) sawWritable = true;
    else if (sawWritable) {
      throw new ReadAfterWrite(head, `device-readable descriptor ${idx} follows a device-writable one (virtio 1.2 §2.7.5.2)`);
    }
    out.push(addr, len, writable);
    if ((flags & VRING_DESC_F_NEXT) === 0) return;
    idx = next;
  }
}

/** One chain the driver made available; descriptors() checks it (once: the result is kept). */
export class DescriptorChain {
  private checked: Descriptor[] | undefined;
  /** @internal created by SplitQueue.pop() */
  constructor(
    private readonly ctx: ChainContext,
    readonly head: number,
  ) {}

  /** The chain's descriptors, every one checked; throws a ChainError subclass when the chain is malformed. */
  descriptors(): Descriptor[] {
    if (this.checked === undefined) {
      const c = this.ctx.scratch;
      walkChain(this.ctx, this.head, c);
      const out: Descriptor[] = [];
      for (let i = 0; i < c.count; i++) out.push({ addr: c.addr[i]!, len: c.len[i]!, writable: i >= c.firstWritable });
      this.checked = out;
    }
    return this.checked;
  }
}

/**
 * A split virtqueue, validated once. Typical device loop (works with and without EVENT_IDX):
 *
 *   q.disableNotification();
 *   do { for (let c = q.pop(); c; c = q.pop()) { ...; q.addUsed(c.head, written); } } while (q.enableNotification());
 *   if (q.needsNotification()) interrupt.signalUsed(index);
 *
 * A plain `for (c = q.pop(); c; c = q.pop())` loop is also correct: while notifications are enabled, pop()
 * re-arms avail_event (EVENT_IDX) before it reports the ring empty. The allocation-free form of the loop is
 * `for (let h = q.popHead(); h >= 0; h = q.popHead()) { q.walk(h, chain); ...; q.addUsed(h, written); }`.
 */
export class SplitQueue {
  readonly size: number;
  readonly eventIdx: boolean;
  private readonly mask: number;
  private readonly ctx: ChainContext;
  private readonly avail: DataView;
  private readonly used: DataView;
  private readonly usedEventOff: number;
  private readonly availEventOff: number;
  private next = 0; // next avail index to pop (u16)
  private usedIdx = 0; // next used index to write (u16)
  private signalledUsed = 0; // used idx at the last needsNotification()
  private notifyEnabled = true;
  private availEventWritten = -1;

  private constructor(mem: GuestMemory, layout: QueueLayout, opts: SplitQueueOptions) {
    const { size } = layout;
    const bytes = ringBytes(size);
    this.size = size;
    this.mask = size - 1;
    this.eventIdx = opts.eventIdx;
    // BOUNDS: ring range checked at DRIVER_OK (create() below, before this constructor runs)
    this.ctx = {
      mem,
      ram: new RamMap(mem),
      desc: viewOf(mem, layout.descTable, bytes.desc),
      size,
      indirect: opts.indirect ?? true,
      scratch: new CheckedChain(),
    };
    this.avail = viewOf(mem, layout.availRing, bytes.avail);
    this.used = viewOf(mem, layout.usedRing, bytes.used);
    this.usedEventOff = 4 + 2 * size;
    this.availEventOff = 4 + 8 * size;
    if (opts.start !== undefined) {
      this.next = opts.start.nextAvail & 0xffff;
      this.usedIdx = opts.start.nextUsed & 0xffff;
      this.signalledUsed = this.usedIdx;
    }
  }

  /** Check the driver's layout (virtio 1.2 §2.7, §4.2.3.2) and build the queue; throws InvalidQueue. */
  static create(mem: GuestMemory, layout: QueueLayout, opts: SplitQueueOptions): SplitQueue {
    const { maxSize } = opts;
    if (!isPowerOfTwo(maxSize) || maxSize > MAX_QUEUE_SIZE) {
      throw new RangeError(`device queue maximum ${String(maxSize)} must be a power of two <= ${MAX_QUEUE_SIZE}`);
    }
    const { size } = layout;
    // virtio 1.2 §2.7: "Queue Size ... is always a power of 2"; §4.2.2: QueueNum <= QueueNumMax.
    if (!isPowerOfTwo(size) || size > maxSize) {
      throw new InvalidQueue(`queue size ${String(size)} is not a power of two in [1, ${maxSize}]`);
    }
    const bytes = ringBytes(size);
    const rings: Array<[string, number, number, number]> = [
      ['descriptor table', layout.descTable, bytes.desc, VRING_DESC_ALIGN],
      ['available ring', layout.availRing, bytes.avail, VRING_AVAIL_ALIGN],
      ['used ring', layout.usedRing, bytes.used, VRING_USED_ALIGN],
    ];
    for (const [what, addr, len, align] of rings) {
      if (!Number.isSafeInteger(addr) || addr % align !== 0) {
        throw new InvalidQueue(`${what} address ${String(addr)} is not ${align}-byte aligned (virtio 1.2 §2.7)`);
      }
      if (!mem.isValidRange(addr, len)) {
        throw new InvalidQueue(`${what} [${hex(addr)}, +${len}) for queue size ${size} is not inside guest RAM`);
      }
    }
    return new SplitQueue(mem, layout, opts);
  }

  /** The avail index the device will pop next (u16, wraps). */
  get nextAvail(): number {
    return this.next;
  }

  /** The used index the device will write next (u16, wraps). */
  get nextUsed(): number {
    return this.usedIdx;
  }

  /**
   * The next available chain, or undefined when the ring is empty. Throws AvailIndexJump when avail.idx is
   * more than `size` ahead, DescriptorIndexOutOfRange when the head index is not below the queue size.
   */
  pop(): DescriptorChain | undefined {
    const head = this.popHead();
    return head < 0 ? undefined : new DescriptorChain(this.ctx, head);
  }

  /**
   * pop() without the DescriptorChain object: the next available head index (checked: below the queue size),
   * or -1 when the ring is empty. Check the chain with walk() before using it. Same errors as pop().
   */
  popHead(): number {
    // Read avail.idx before the ring entries it covers (the driver writes the entries first, then idx).
    let availIdx = this.avail.getUint16(2, true); // BOUNDS: ring range checked at DRIVER_OK
    let pending = (availIdx - this.next) & 0xffff;
    if (pending === 0) {
      if (!this.notifyEnabled || !this.eventIdx || this.availEventWritten === this.next) return -1;
      // Re-arm avail_event before reporting empty, then look again (a chain may have slipped in).
      this.writeAvailEvent();
      fullFence();
      availIdx = this.avail.getUint16(2, true);
      pending = (availIdx - this.next) & 0xffff;
      if (pending === 0) return -1;
    }
    if (pending > this.size) throw new AvailIndexJump(availIdx, this.next, this.size);
    const head = this.avail.getUint16(4 + 2 * (this.next & this.mask), true);
    this.next = (this.next + 1) & 0xffff;
    if (head >= this.size) {
      throw new DescriptorIndexOutOfRange(head, `head index ${head} is not below the queue size ${this.size}`);
    }
    return head;
  }

  /**
   * Check chain `head` (from popHead()) into `out`, reused across chains: the checks and ChainError subclasses of
   * DescriptorChain.descriptors(), with no allocation per chain. Returns `out`.
   */
  walk(head: number, out: CheckedChain): CheckedChain {
    if (!Number.isInteger(head) || head < 0 || head >= this.size) {
      throw new RangeError(`chain head ${String(head)} is not a descriptor index below ${this.size}`);
    }
    walkChain(this.ctx, head, out);
    return out;
  }

  /** Return chain `head` to the driver with `len` bytes written (virtio 1.2 §2.7.8). */
  addUsed(head: number, len: number): void {
    if (!Number.isInteger(head) || head < 0 || head >= this.size) {
      throw new RangeError(`used head ${String(head)} is not a descriptor index below ${this.size}`);
    }
    if (!Number.isInteger(len) || len < 0 || len > 0xffff_ffff) {
      throw new RangeError(`used length ${String(len)} is not a u32`);
    }
    const off = 4 + 8 * (this.usedIdx & this.mask);
    // BOUNDS: ring range checked at DRIVER_OK. Element first, then idx (store order is kept on x86).
    this.used.setUint32(off, head, true);
    this.used.setUint32(off + 4, len, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.used.setUint16(2, this.usedIdx, true);
  }

  /**
   * After a batch of addUsed(): should the device interrupt the driver? EVENT_IDX: vring_need_event(used_event,
   * new, old) where old is the used index at the previous call (virtio 1.2 §2.7.10); otherwise unless the driver
   * set VRING_AVAIL_F_NO_INTERRUPT (§2.7.7). False when nothing was added since the previous call.
   */
  needsNotification(): boolean {
    fullFence(); // used.idx store before the used_event / avail.flags load (Linux: virtio_mb)
    const old = this.signalledUsed;
    const now = this.usedIdx;
    this.signalledUsed = now;
    if (old === now) return false;
    if (this.eventIdx) {
      const usedEvent = this.avail.getUint16(this.usedEventOff, true);
      return vringNeedEvent(usedEvent, now, old);
    }
    return (this.avail.getUint16(0, true) & VRING_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** Ask the driver not to notify while the device is draining the ring (virtio 1.2 §2.7.10). */
  disableNotification(): void {
    this.notifyEnabled = false;
    // With EVENT_IDX the driver notifies only when it passes avail_event; leaving it behind is enough.
    if (!this.eventIdx) this.used.setUint16(0, VRING_USED_F_NO_NOTIFY, true);
  }

  /**
   * Ask for notifications again; returns true if chains arrived meanwhile (pop again, they raced the
   * re-enable and may not be notified).
   */
  enableNotification(): boolean {
    this.notifyEnabled = true;
    if (this.eventIdx) this.writeAvailEvent();
    else this.used.setUint16(0, 0, true);
    fullFence(); // our store before re-reading avail.idx (Linux: virtio_mb in virtqueue_enable_cb)
    return this.avail.getUint16(2, true) !== this.next;
  }

  private writeAvailEvent(): void {
    this.used.setUint16(this.availEventOff, this.next, true);
    this.availEventWritten = this.next;
  }
}

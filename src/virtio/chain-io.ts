// Byte streams over a checked descriptor chain: ChainReader over the device-readable descriptors, ChainWriter
// over the device-writable ones, each in chain order and across descriptor boundaries. Scalars are
// little-endian (virtio 1.2 §1.4: modern devices use le fields). views() hands out zero-copy guest-memory views
// so a device can move data straight between a file/socket and guest RAM.
//
// The descriptors come from DescriptorChain.descriptors() (or SplitQueue.walk() for CheckedChainWriter), so every
// [addr, addr+len) is already in guest RAM; GuestMemory checks each access again anyway (cheap, and it keeps this
// file safe on its own).

import type { GuestMemory, GuestSpan } from '../memory/guest-memory.js';
import type { CheckedChain, Descriptor } from './queue.js';
import { DeviceBroken } from './device.js';

/** The driver's chain has fewer readable (or writable) bytes than the request needs. */
export class ChainTooShort extends DeviceBroken {
  readonly direction: 'readable' | 'writable';
  readonly wanted: number;
  readonly left: number;
  constructor(direction: 'readable' | 'writable', wanted: number, left: number) {
    super(
      `descriptor chain has ${left} ${direction} bytes left but the device needs ${wanted}: ` +
        'the driver posted a buffer too small for this request',
    );
    this.name = 'ChainTooShort';
    this.direction = direction;
    this.wanted = wanted;
    this.left = left;
  }
}

function checkCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`byte count ${String(n)} must be a non-negative integer`);
}

/** Shared cursor over a list of non-empty descriptors. */
abstract class ChainCursor {
  protected readonly parts: Descriptor[];
  protected i = 0; // current part
  protected off = 0; // offset inside it
  protected left: number;

  protected constructor(
    protected readonly mem: GuestMemory,
    descs: readonly Descriptor[],
    writable: boolean,
    private readonly direction: 'readable' | 'writable',
  ) {
    const parts: Descriptor[] = [];
    let left = 0;
    for (const d of descs) {
      if (d.writable === writable && d.len > 0) {
        parts.push(d);
        left += d.len;
      }
    }
    this.parts = parts;
    this.left = left;
  }

  /** Bytes not yet consumed. */
  get remaining(): number {
    return this.left;
  }

  protected need(n: number): void {
    checkCount(n);
    if (n > this.left) throw new ChainTooShort(this.direction, n, this.left);
  }

  /** Guest address of the cursor when at least `n` bytes remain in the current part, else -1. */
  protected contiguous(n: number): number {
    const d = this.parts[this.i];
    if (d === undefined || d.len - this.off < n) return -1;
    return d.addr + this.off;
  }

  protected advance(n: number): void {
    this.left -= n;
    this.off += n;
    while (this.i < this.parts.length && this.off >= this.parts[this.i]!.len) {
      this.off -= this.parts[this.i]!.len;
      this.i++;
    }
  }

  /** Zero-copy views of the next n bytes (one per descriptor touched), advancing past them. */
  views(n: number): Uint8Array[] {
    this.need(n);
    const out: Uint8Array[] = [];
    let want = n;
    while (want > 0) {
      const d = this.parts[this.i]!;
      const take = Math.min(d.len - this.off, want);
      out.push(this.mem.slice(d.addr + this.off, take));
      this.advance(take);
      want -= take;
    }
    return out;
  }

  /** Skip n bytes. */
  skip(n: number): void {
    this.need(n);
    this.advance(n);
  }
}

/** Reads the device-readable part of a chain, in order. */
export class ChainReader extends ChainCursor {
  constructor(mem: GuestMemory, descs: readonly Descriptor[]) {
    super(mem, descs, false, 'readable');
  }

  /** A copy of the next n bytes (a copy, so the guest cannot change it after the device checked it). */
  readBytes(n: number): Uint8Array {
    this.need(n);
    const out = new Uint8Array(n);
    let pos = 0;
    while (pos < n) {
      const d = this.parts[this.i]!;
      const take = Math.min(d.len - this.off, n - pos);
      out.set(this.mem.slice(d.addr + this.off, take), pos);
      this.advance(take);
      pos += take;
    }
    return out;
  }

  readU8(): number {
    this.need(1);
    const v = this.mem.readU8(this.contiguous(1));
    this.advance(1);
    return v;
  }

  readU16(): number {
    this.need(2);
    const a = this.contiguous(2);
    if (a >= 0) {
      const v = this.mem.readU16(a);
      this.advance(2);
      return v;
    }
    const b = this.readBytes(2);
    return b[0]! | (b[1]! << 8);
  }

  readU32(): number {
    this.need(4);
    const a = this.contiguous(4);
    if (a >= 0) {
      const v = this.mem.readU32(a);
      this.advance(4);
      return v;
    }
    const b = this.readBytes(4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  readU64(): bigint {
    this.need(8);
    const a = this.contiguous(8);
    if (a >= 0) {
      const v = this.mem.readU64(a);
      this.advance(8);
      return v;
    }
    const b = this.readBytes(8);
    return new DataView(b.buffer).getBigUint64(0, true);
  }
}

/** Writes the device-writable part of a chain, in order; `written` is the used length to report. */
export class ChainWriter extends ChainCursor {
  private done = 0;

  constructor(mem: GuestMemory, descs: readonly Descriptor[]) {
    super(mem, descs, true, 'writable');
  }

  /** Bytes written (or handed out by views()) so far. */
  get written(): number {
    return this.done;
  }

  protected override advance(n: number): void {
    super.advance(n);
    this.done += n;
  }

  write(bytes: Uint8Array): void {
    const n = bytes.length;
    this.need(n);
    let pos = 0;
    while (pos < n) {
      const d = this.parts[this.i]!;
      const take = Math.min(d.len - this.off, n - pos);
      this.mem.slice(d.addr + this.off, take).set(bytes.subarray(pos, pos + take));
      this.advance(take);
      pos += take;
    }
  }

  writeU8(v: number): void {
    checkScalar(v, 0xff);
    this.need(1);
    this.mem.writeU8(this.contiguous(1), v);
    this.advance(1);
  }

  writeU16(v: number): void {
    checkScalar(v, 0xffff);
    this.need(2);
    const a = this.contiguous(2);
    if (a >= 0) {
      this.mem.writeU16(a, v);
      this.advance(2);
    } else this.write(Uint8Array.of(v & 0xff, v >>> 8));
  }

  writeU32(v: number): void {
    checkScalar(v, 0xffff_ffff);
    this.need(4);
    const a = this.contiguous(4);
    if (a >= 0) {
      this.mem.writeU32(a, v);
      this.advance(4);
    } else this.write(Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24));
  }

  writeU64(v: bigint): void {
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`u64 value ${v} is out of range`);
    this.need(8);
    const a = this.contiguous(8);
    if (a >= 0) {
      this.mem.writeU64(a, v);
      this.advance(8);
      return;
    }
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    this.write(b);
  }
}

function checkScalar(v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`value ${String(v)} is out of range [0, ${max}]`);
}

/** Where a device writes a byte stream: a ChainWriter, or a CheckedChainWriter on the hot path. */
export interface ByteSink {
  /** bytes that still fit */
  readonly remaining: number;
  /** bytes written so far */
  readonly written: number;
  /** copy `bytes` in (throws ChainTooShort when they do not fit) */
  write(bytes: Uint8Array): void;
}

/**
 * ChainWriter's write() over the device-writable descriptors of a CheckedChain (SplitQueue.walk()), made for
 * a hot path: one object reset() for each chain, each descriptor's guest memory looked up once (GuestMemory
 * span()), and each write() one copy straight into it.
 */
export class CheckedChainWriter implements ByteSink {
  private mem: GuestMemory | undefined;
  private chain: CheckedChain | undefined;
  private i = 0; // current descriptor
  private off = 0; // offset inside it
  private left = 0;
  private done = 0;
  /** guest memory of descriptor `spanOf` (-1: not looked up yet) */
  private readonly span: GuestSpan = { bytes: new Uint8Array(0), offset: 0 };
  private spanOf = -1;

  /** Start writing the writable part of `chain` (just walked) from its first byte. */
  reset(mem: GuestMemory, chain: CheckedChain): this {
    this.mem = mem;
    this.chain = chain;
    this.i = chain.firstWritable;
    this.off = 0;
    this.left = chain.writableBytes;
    this.done = 0;
    this.spanOf = -1;
    return this;
  }

  get remaining(): number {
    return this.left;
  }

  get written(): number {
    return this.done;
  }

  write(bytes: Uint8Array): void {
    const n = bytes.length;
    if (n > this.left) throw new ChainTooShort('writable', n, this.left);
    const mem = this.mem!;
    const c = this.chain!;
    const span = this.span;
    let pos = 0;
    while (pos < n) {
      let dlen = c.len[this.i]!;
      while (this.off >= dlen) {
        // next descriptor (zero-length ones are skipped); `left` says one with room exists
        this.i++;
        this.off = 0;
        dlen = c.len[this.i]!;
      }
      const take = Math.min(dlen - this.off, n - pos);
      const src = take === n ? bytes : bytes.subarray(pos, pos + take);
      if (this.spanOf !== this.i) this.spanOf = mem.span(c.addr[this.i]!, dlen, span) ? this.i : -2;
      // BOUNDS: [off, off+take) lies inside descriptor i, which the chain walk checked against guest RAM, and
      // span() checked again; a descriptor no cached buffer holds (-2) goes through write()'s own checks
      if (this.spanOf === this.i) span.bytes.set(src, span.offset + this.off);
      else mem.write(c.addr[this.i]! + this.off, src);
      this.off += take;
      pos += take;
    }
    this.left -= n;
    this.done += n;
  }
}

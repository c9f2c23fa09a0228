// GuestMemory: checked access to guest physical memory [addr, addr+len) over one or more regions.
// Every access validates the whole range first (rust-vmm vm-memory: InvalidGuestAddress / PartialBuffer).
// An access must lie within ONE region: ranges that span two adjacent regions are rejected with
// PartialBuffer, even when the regions are contiguous in guest physical space. Guests see RAM split only
// around the 32-bit MMIO gap, so no real structure straddles a region boundary.
import { MAX_GUEST_ADDRESS, hex } from './guest-address.js';
import { InvalidGuestAddress, InvalidRegion, PartialBuffer, RegionOverlap } from './errors.js';

/** One contiguous piece of guest RAM and the host buffer behind it. */
export interface MemoryRegion {
  /** guest physical address of the first byte */
  base: number;
  /** length in bytes */
  size: number;
  /** host memory behind the region (an mmap seen as an external ArrayBuffer, or a test buffer) */
  buffer: ArrayBuffer | SharedArrayBuffer;
  /** byte offset of the region inside `buffer` (default 0) */
  offset?: number;
}

/** Guest memory [addr, addr+len) as a host buffer and offset (GuestMemory.span()): for syscalls taking both. */
export interface GuestSpan {
  bytes: Uint8Array;
  offset: number;
}

/** Where a region lies in guest physical space (no backing). */
export interface RegionLayout {
  base: number;
  size: number;
}

// DataView length is limited to 2^32-1 bytes, so hot-path views are cached per 1 GiB chunk. Each chunk's
// view runs 8 bytes past the chunk so that any access of <= 8 bytes starting in the chunk fits in it.
const CHUNK_SHIFT = 30;
const CHUNK = 2 ** CHUNK_SHIFT;
const MAX_SCALAR = 8;
// write() and span() use a cached Uint8Array per chunk (no view allocated per call: they run once per packet or
// request on device hot paths); each runs this far past its chunk, so a range of up to this many bytes starting
// in the chunk fits. Longer ranges across a chunk boundary take a fresh view.
const WRITE_SPILL = 1 << 20;

interface RegionState {
  readonly base: number;
  readonly size: number;
  readonly end: number;
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly offset: number;
  readonly views: (DataView | undefined)[];
  readonly bytes: (Uint8Array | undefined)[];
}

function checkRegion(r: MemoryRegion): RegionState {
  const offset = r.offset ?? 0;
  if (!Number.isSafeInteger(r.base) || r.base < 0 || r.base > MAX_GUEST_ADDRESS) {
    throw new InvalidRegion(`region base ${String(r.base)} must be an integer in [0, 2^52]`);
  }
  if (!Number.isSafeInteger(r.size) || r.size <= 0) {
    throw new InvalidRegion(`region at ${hex(r.base)} has size ${String(r.size)}: it must be a positive integer`);
  }
  if (r.base + r.size > MAX_GUEST_ADDRESS) {
    throw new InvalidRegion(`region at ${hex(r.base)} of ${hex(r.size)} bytes ends past 2^52`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + r.size > r.buffer.byteLength) {
    throw new InvalidRegion(
      `region at ${hex(r.base)}: bytes [${String(offset)}, +${String(r.size)}) do not fit its ` +
        `${String(r.buffer.byteLength)}-byte buffer`,
    );
  }
  return { base: r.base, size: r.size, end: r.base + r.size, buffer: r.buffer, offset, views: [], bytes: [] };
}

export class GuestMemory {
  private readonly rs: readonly RegionState[];
  private last: RegionState;

  constructor(regions: readonly MemoryRegion[]) {
    if (regions.length === 0) throw new InvalidRegion('guest memory needs at least one region');
    const rs = regions.map(checkRegion).sort((a, b) => a.base - b.base);
    for (let i = 1; i < rs.length; i++) {
      const a = rs[i - 1]!;
      const b = rs[i]!;
      if (b.base < a.end) throw new RegionOverlap(a.base, a.size, b.base, b.size);
    }
    this.rs = rs;
    this.last = rs[0]!;
  }

  /** ArrayBuffer-backed memory for tests: one fresh zeroed buffer per region (regions may sit at high bases). */
  static anonymous(layout: readonly RegionLayout[]): GuestMemory {
    return new GuestMemory(layout.map((l) => ({ base: l.base, size: l.size, buffer: new ArrayBuffer(l.size) })));
  }

  /** The regions, sorted by base. */
  get regions(): readonly MemoryRegion[] {
    return this.rs.map((r) => ({ base: r.base, size: r.size, buffer: r.buffer, offset: r.offset }));
  }

  /** Total bytes of guest memory over all regions. */
  get size(): number {
    let s = 0;
    for (const r of this.rs) s += r.size;
    return s;
  }

  /** Guest address of the last byte of the highest region. */
  get lastAddr(): number {
    return this.rs[this.rs.length - 1]!.end - 1;
  }

  /**
   * Find the region holding [addr, addr+len) and return it; throws InvalidGuestAddress when addr is in no
   * region and PartialBuffer when the range runs off the region. A zero-length range is valid at any address
   * in a region, its end included.
   */
  private locate(addr: number, len: number): RegionState {
    if (!Number.isSafeInteger(addr) || addr < 0 || addr > MAX_GUEST_ADDRESS) {
      throw new InvalidGuestAddress(addr, 'is not an integer in [0, 2^52]');
    }
    if (!Number.isSafeInteger(len) || len < 0) {
      throw new PartialBuffer(addr, len, 'has an invalid length: it must be a non-negative integer');
    }
    const end = addr + len;
    if (!Number.isSafeInteger(end) || end > MAX_GUEST_ADDRESS) {
      throw new PartialBuffer(addr, len, 'ends past 2^52');
    }
    let r = this.last;
    if (!(addr >= r.base && addr < r.end)) {
      r = this.find(addr, len);
      this.last = r;
    }
    if (end > r.end) {
      throw new PartialBuffer(addr, len, `runs past the end of its region at ${hex(r.end)}`);
    }
    return r;
  }

  private find(addr: number, len: number): RegionState {
    // Prefer the region whose [base, end) holds addr; a region's end matches only for zero-length ranges.
    let lo = 0;
    let hi = this.rs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = this.rs[mid]!;
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else return r;
    }
    // addr is in no [base, end); it may still equal the end of region hi (valid only for len 0).
    const prev = this.rs[hi];
    if (prev !== undefined && addr === prev.end && len === 0) return prev;
    throw new InvalidGuestAddress(addr);
  }

  /** Throws unless [addr, addr+len) lies within one region. */
  checkRange(addr: number, len: number): void {
    this.locate(addr, len);
  }

  /** True when [addr, addr+len) lies within one region. */
  isValidRange(addr: number, len: number): boolean {
    try {
      this.locate(addr, len);
      return true;
    } catch {
      return false;
    }
  }

  /** A live view of [addr, addr+len) (no copy). The range must lie within one region. */
  slice(addr: number, len: number): Uint8Array {
    const r = this.locate(addr, len);
    return new Uint8Array(r.buffer, r.offset + (addr - r.base), len);
  }

  /** A copy of [addr, addr+len). The range must lie within one region. */
  read(addr: number, len: number): Uint8Array {
    return this.slice(addr, len).slice();
  }

  /** Copy `bytes` to guest memory at addr. The range must lie within one region. */
  write(addr: number, bytes: Uint8Array): void {
    const n = bytes.length;
    const u8 = this.chunkBytes(addr, n);
    // BOUNDS: chunkBytes() checked [addr, addr+n) against its region; u8 holds it from this.bo on
    if (u8 !== undefined) u8.set(bytes, this.bo);
    else this.slice(addr, n).set(bytes);
  }

  /**
   * [addr, addr+len) as a cached host buffer and the offset of addr in it (written to `out`: nothing is
   * allocated), for a hot path handing guest memory to a call that takes (buffer, offset, length), like
   * fs.readSync. Returns false, leaving `out` alone, when no cached buffer holds the range (it crosses a 1 GiB
   * chunk boundary by more than 1 MiB): use slice() then. Throws like slice() for a range outside one region.
   */
  span(addr: number, len: number, out: GuestSpan): boolean {
    const u8 = this.chunkBytes(addr, len);
    if (u8 === undefined) return false;
    out.bytes = u8;
    out.offset = this.bo;
    return true;
  }

  /** Offset into the Uint8Array last returned by chunkBytes(). */
  private bo = 0;

  /** The cached Uint8Array of the chunk where [addr, addr+n) starts, if it holds all of it (offset in this.bo). */
  private chunkBytes(addr: number, n: number): Uint8Array | undefined {
    const r = this.locate(addr, n);
    const rel = addr - r.base;
    const k = Math.floor(rel / CHUNK);
    let u8 = r.bytes[k];
    if (u8 === undefined) {
      const start = k * CHUNK;
      u8 = new Uint8Array(r.buffer, r.offset + start, Math.min(CHUNK + WRITE_SPILL, r.size - start));
      r.bytes[k] = u8;
    }
    const at = rel - k * CHUNK;
    if (at + n > u8.length) return undefined;
    this.bo = at;
    return u8;
  }

  /** Set [addr, addr+len) to the byte value v. */
  fill(addr: number, len: number, v: number): void {
    checkUint(v, 0xff, 'fill value');
    this.slice(addr, len).fill(v);
  }

  /** Offset into the DataView last returned by view(); avoids allocating a tuple per scalar access. */
  private vo = 0;

  /** DataView covering the <= 8-byte access at addr; the offset inside it is left in this.vo. */
  private view(addr: number, n: number): DataView {
    const r = this.locate(addr, n);
    const rel = addr - r.base;
    const k = Math.floor(rel / CHUNK);
    let v = r.views[k];
    if (v === undefined) {
      const start = k * CHUNK;
      v = new DataView(r.buffer, r.offset + start, Math.min(CHUNK + MAX_SCALAR, r.size - start));
      r.views[k] = v;
    }
    this.vo = rel - k * CHUNK;
    return v;
  }

  readU8(addr: number): number {
    const v = this.view(addr, 1);
    return v.getUint8(this.vo);
  }

  readU16(addr: number): number {
    const v = this.view(addr, 2);
    return v.getUint16(this.vo, true);
  }

  readU32(addr: number): number {
    const v = this.view(addr, 4);
    return v.getUint32(this.vo, true);
  }

  readU64(addr: number): bigint {
    const v = this.view(addr, 8);
    return v.getBigUint64(this.vo, true);
  }

  writeU8(addr: number, value: number): void {
    checkUint(value, 0xff, 'u8');
    const v = this.view(addr, 1);
    v.setUint8(this.vo, value);
  }

  writeU16(addr: number, value: number): void {
    checkUint(value, 0xffff, 'u16');
    const v = this.view(addr, 2);
    v.setUint16(this.vo, value, true);
  }

  writeU32(addr: number, value: number): void {
    checkUint(value, 0xffff_ffff, 'u32');
    const v = this.view(addr, 4);
    v.setUint32(this.vo, value, true);
  }

  /** Little-endian u64; a number must be a safe non-negative integer, a bigint in [0, 2^64). */
  writeU64(addr: number, value: bigint | number): void {
    let b: bigint;
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`u64 value ${String(value)} must be a non-negative safe integer (or pass a bigint)`);
      }
      b = BigInt(value);
    } else {
      if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw new RangeError(`u64 value ${value} is out of range`);
      b = value;
    }
    const v = this.view(addr, 8);
    v.setBigUint64(this.vo, b, true);
  }
}

function checkUint(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${what} value ${String(value)} is out of range [0, ${hex(max)}]`);
  }
}

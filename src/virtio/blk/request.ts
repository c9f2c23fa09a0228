// virtio-blk request parsing (virtio 1.2 §5.2.6): a chain becomes a typed BlockRequest, with every
// guest-controlled number checked, BEFORE any host I/O happens.
//
// Chain shape (virtio 1.2 §5.2.6, Linux drivers/block/virtio_blk.c):
//   device-readable:  struct virtio_blk_outhdr {type u32, ioprio u32, sector u64}  (16 bytes, may span descriptors)
//                     [OUT: the data] [WRITE_ZEROES/DISCARD: 16-byte segments]
//   device-writable:  [IN: the data] [GET_ID: 20 bytes] then the status byte = the LAST writable byte.
// Errors carry the status byte to report (IOERR or UNSUPP) and where it is; a chain without a writable
// byte has no status byte (MissingStatus) and goes back with used length 0.

import type { GuestMemory } from '../../memory/guest-memory.js';
import { ChainReader, CheckedChain, type Descriptor } from '../queue.js';
import {
  DWZ_SEGMENT_SIZE,
  OUTHDR_SIZE,
  SECTOR_SIZE,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
} from './abi.js';

/** What the parser needs to know about the device. */
export interface BlockLimits {
  /** capacity in 512-byte sectors (a safe integer) */
  capacity: number;
  readOnly: boolean;
  /** VIRTIO_BLK_F_WRITE_ZEROES negotiated and the backend can zero */
  writeZeroes: boolean;
  /** config max_write_zeroes_sectors */
  maxWriteZeroesSectors: number;
}

export type BlockRequest =
  | { kind: 'read'; statusAddr: number; offset: number; length: number; data: Uint8Array[] }
  | { kind: 'write'; statusAddr: number; offset: number; length: number; data: Uint8Array[] }
  | { kind: 'flush'; statusAddr: number }
  | { kind: 'get-id'; statusAddr: number; data: Uint8Array[] }
  | { kind: 'write-zeroes'; statusAddr: number; offset: number; length: number; unmap: boolean };

/** Why a chain is not a valid request. `statusAddr` is where to report `status`, when the chain has a status byte. */
export class BlockRequestError extends Error {
  constructor(
    message: string,
    /** VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP */
    readonly status: number,
    /** guest address of the status byte, or undefined when the chain has none */
    public statusAddr: number | undefined = undefined,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** virtio 1.2 §5.2.6: the status byte is the last device-writable byte; this chain has none. */
export class MissingStatus extends BlockRequestError {
  constructor() {
    super('request has no device-writable byte for its status', VIRTIO_BLK_S_IOERR);
  }
}

/** Fewer than 16 device-readable bytes: no room for struct virtio_blk_outhdr. */
export class RequestTooShort extends BlockRequestError {
  constructor(readable: number) {
    super(`request header needs ${String(OUTHDR_SIZE)} device-readable bytes, the chain has ${String(readable)}`, VIRTIO_BLK_S_IOERR);
  }
}

/** sector + data sectors runs past the capacity (virtio 1.2 §5.2.6.1: IOERR). */
export class SectorOutOfRange extends BlockRequestError {
  constructor(sector: bigint, sectors: number, capacity: number) {
    super(`request covers sectors [${sector}, +${String(sectors)}) but the disk has ${String(capacity)}`, VIRTIO_BLK_S_IOERR);
  }
}

/** A write-type request to a read-only disk (virtio 1.2 §5.2.6.2: IOERR when VIRTIO_BLK_F_RO is offered). */
export class ReadOnlyDevice extends BlockRequestError {
  constructor(what: string) {
    super(`${what} refused: the disk is read-only`, VIRTIO_BLK_S_IOERR);
  }
}

/** IN/OUT data must be whole 512-byte sectors (virtio 1.2 §5.2.6.1). */
export class UnalignedLength extends BlockRequestError {
  constructor(len: number) {
    super(`request data is ${String(len)} bytes, not a multiple of ${String(SECTOR_SIZE)}`, VIRTIO_BLK_S_IOERR);
  }
}

/** A request type or form this device does not implement (VIRTIO_BLK_S_UNSUPP). */
export class UnsupportedRequest extends BlockRequestError {
  constructor(what: string) {
    super(what, VIRTIO_BLK_S_UNSUPP);
  }
}

/** Device-readable bytes where the request type has none (IN, FLUSH, GET_ID carry only the header). */
export class UnexpectedReadableData extends BlockRequestError {
  constructor(type: string, extra: number) {
    super(`${type} request carries ${String(extra)} device-readable bytes after its header`, VIRTIO_BLK_S_IOERR);
  }
}

/** Device-writable bytes besides the status where the request type has none (OUT, FLUSH, WRITE_ZEROES). */
export class UnexpectedWritableData extends BlockRequestError {
  constructor(type: string, extra: number) {
    super(`${type} request carries ${String(extra)} device-writable bytes besides its status byte`, VIRTIO_BLK_S_IOERR);
  }
}

/** GET_ID needs room for VIRTIO_BLK_ID_BYTES bytes. */
export class GetIdBufferTooSmall extends BlockRequestError {
  constructor(len: number) {
    super(`GET_ID buffer is ${String(len)} bytes; it needs ${String(VIRTIO_BLK_ID_BYTES)}`, VIRTIO_BLK_S_IOERR);
  }
}

/** WRITE_ZEROES segment larger than max_write_zeroes_sectors (IOERR, as QEMU). */
export class WriteZeroesTooLarge extends BlockRequestError {
  constructor(sectors: number, max: number) {
    super(`WRITE_ZEROES of ${String(sectors)} sectors exceeds max_write_zeroes_sectors ${String(max)}`, VIRTIO_BLK_S_IOERR);
  }
}

/**
 * The shape of a checked chain. The queue guarantees readable descriptors come first (ReadAfterWrite), so
 * descriptors [0, firstWritable) are readable and [firstWritable, count) writable.
 */
interface Split {
  firstWritable: number;
  readableBytes: number;
  /** writable bytes before the status byte */
  writableData: number;
  statusAddr: number;
}

// One Split reused by every parse (parsing is synchronous and never re-entered): no allocation per request.
const scratch: Split = { firstWritable: 0, readableBytes: 0, writableData: 0, statusAddr: 0 };

function split(c: CheckedChain): Split {
  // The status byte is the last byte of the last non-empty writable descriptor. Sums cannot overflow: the
  // chain walk bounded the chain's total length (ChainLengthOverflow).
  let statusAddr = -1;
  for (let i = c.count - 1; i >= c.firstWritable; i--) {
    const len = c.len[i]!;
    if (len > 0) {
      statusAddr = c.addr[i]! + len - 1; // BOUNDS: [addr, addr+len) checked by the chain walk
      break;
    }
  }
  if (statusAddr < 0) throw new MissingStatus();
  const s = scratch;
  s.firstWritable = c.firstWritable;
  s.readableBytes = c.readableBytes;
  s.writableData = c.writableBytes - 1;
  s.statusAddr = statusAddr;
  return s;
}

/**
 * Zero-copy views of `bytes` bytes of descriptors [from, to) after skipping `skip` bytes (the same walk as
 * ChainReader/ChainWriter.views, without their per-request objects). The caller checked the lengths.
 */
function viewsOf(mem: GuestMemory, c: CheckedChain, from: number, to: number, skip: number, bytes: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let want = bytes;
  for (let i = from; i < to && want > 0; i++) {
    const len = c.len[i]!;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    const take = Math.min(len - skip, want);
    out.push(mem.slice(c.addr[i]! + skip, take)); // BOUNDS: inside [addr, addr+len), checked by the chain walk
    want -= take;
    skip = 0;
  }
  return out;
}

/** The descriptors of a CheckedChain, as ChainReader takes them (slow paths only). */
function descriptorsOf(c: CheckedChain): Descriptor[] {
  const out: Descriptor[] = [];
  for (let i = 0; i < c.count; i++) out.push({ addr: c.addr[i]!, len: c.len[i]!, writable: i >= c.firstWritable });
  return out;
}

/** A sector whose high u32 word exceeds this is >= 2^53: out of range for any image, and not exact as a number. */
const SECTOR_LIMIT_HI = 0x1f_ffff;

/**
 * Offset of [sector, +bytes) in the image after the range check (virtio 1.2 §5.2.6.1). The u64 sector comes
 * as two u32 words: anything at or above 2^53 is out of range for any image, and below that number
 * arithmetic is exact (capacity < 2^44 and bytes / 512 < 2^24).
 */
function checkedOffset(lo: number, hi: number, bytes: number, limits: BlockLimits): number {
  const sectors = bytes / SECTOR_SIZE; // bytes is a multiple of 512 here
  const sector = hi * 0x1_0000_0000 + lo;
  if (hi > SECTOR_LIMIT_HI || sector > limits.capacity || sector + sectors > limits.capacity) {
    throw new SectorOutOfRange((BigInt(hi) << 32n) | BigInt(lo), sectors, limits.capacity);
  }
  return sector * SECTOR_SIZE; // <= capacity * 512 <= image size: a safe integer
}

function typeName(type: number): string {
  switch (type) {
    case VIRTIO_BLK_T_IN:
      return 'IN';
    case VIRTIO_BLK_T_OUT:
      return 'OUT';
    case VIRTIO_BLK_T_FLUSH:
      return 'FLUSH';
    case VIRTIO_BLK_T_GET_ID:
      return 'GET_ID';
    case VIRTIO_BLK_T_DISCARD:
      return 'DISCARD';
    case VIRTIO_BLK_T_WRITE_ZEROES:
      return 'WRITE_ZEROES';
    default:
      return `type ${String(type)}`;
  }
}

/**
 * Parse a chain's checked descriptors (from DescriptorChain.descriptors(): readable ones first). Throws a
 * BlockRequestError (with statusAddr set when the chain has a status byte); any other error (e.g. a ChainError)
 * is not the parser's and propagates.
 */
export function parseBlockRequest(mem: GuestMemory, descs: readonly Descriptor[], limits: BlockLimits): BlockRequest {
  const c = new CheckedChain(Math.max(1, descs.length));
  for (const d of descs) c.push(d.addr, d.len, d.writable);
  return parseBlockChain(mem, c, limits);
}

/**
 * A read whose data lies in one guest buffer (what Linux sends for a page), as plain numbers: the device's hot
 * path keeps these in arrays instead of a BlockRequest with views. Same checks as the 'read' BlockRequest.
 */
export interface PlainRead {
  statusAddr: number;
  /** byte offset in the image (checked against the capacity) */
  offset: number;
  /** bytes, a positive multiple of 512 */
  length: number;
  /** guest address of the data: [dataAddr, dataAddr + length) lies in one checked descriptor */
  dataAddr: number;
}

/** parseBlockChain() filled its `plain` argument instead of returning a BlockRequest. */
export const PLAIN_READ = 'plain-read';

/**
 * parseBlockRequest() for a chain SplitQueue.walk() checked: the device's path, no per-descriptor objects.
 * With `plain`, a read whose data fits one descriptor is written there and PLAIN_READ comes back.
 */
export function parseBlockChain(mem: GuestMemory, c: CheckedChain, limits: BlockLimits): BlockRequest;
export function parseBlockChain(mem: GuestMemory, c: CheckedChain, limits: BlockLimits, plain: PlainRead): BlockRequest | typeof PLAIN_READ;
export function parseBlockChain(mem: GuestMemory, c: CheckedChain, limits: BlockLimits, plain?: PlainRead): BlockRequest | typeof PLAIN_READ {
  const s = split(c);
  try {
    return parseWithStatus(mem, c, s, limits, plain);
  } catch (e) {
    if (e instanceof BlockRequestError) e.statusAddr = s.statusAddr;
    throw e;
  }
}

function parseWithStatus(
  mem: GuestMemory,
  c: CheckedChain,
  s: Split,
  limits: BlockLimits,
  plain: PlainRead | undefined,
): BlockRequest | typeof PLAIN_READ {
  if (s.readableBytes < OUTHDR_SIZE) throw new RequestTooShort(s.readableBytes);
  let type: number;
  let lo: number;
  let hi: number;
  if (c.len[0]! >= OUTHDR_SIZE) {
    // Fast path, the header in one descriptor (what Linux sends; readable: readableBytes > 0).
    // BOUNDS: descriptor 0 checked by the chain walk.
    const a0 = c.addr[0]!;
    type = mem.readU32(a0);
    lo = mem.readU32(a0 + 8);
    hi = mem.readU32(a0 + 12);
  } else {
    const reader = new ChainReader(mem, descriptorsOf(c));
    type = reader.readU32();
    reader.readU32(); // ioprio: ignored
    lo = reader.readU32();
    hi = reader.readU32();
  }
  const extraReadable = s.readableBytes - OUTHDR_SIZE;
  const nr = s.firstWritable;

  switch (type) {
    case VIRTIO_BLK_T_IN: {
      if (extraReadable > 0) throw new UnexpectedReadableData('IN', extraReadable);
      const len = s.writableData;
      if (len % SECTOR_SIZE !== 0) throw new UnalignedLength(len);
      const offset = checkedOffset(lo, hi, len, limits);
      if (plain !== undefined && len > 0 && c.len[nr]! >= len) {
        // the data is the first len bytes of the first writable descriptor (non-empty: len > 0)
        plain.statusAddr = s.statusAddr;
        plain.offset = offset;
        plain.length = len;
        plain.dataAddr = c.addr[nr]!;
        return PLAIN_READ;
      }
      const data = viewsOf(mem, c, nr, c.count, 0, len);
      return { kind: 'read', statusAddr: s.statusAddr, offset, length: len, data };
    }
    case VIRTIO_BLK_T_OUT: {
      if (s.writableData > 0) throw new UnexpectedWritableData('OUT', s.writableData);
      if (limits.readOnly) throw new ReadOnlyDevice('OUT (write)');
      const len = extraReadable;
      if (len % SECTOR_SIZE !== 0) throw new UnalignedLength(len);
      const offset = checkedOffset(lo, hi, len, limits);
      const data = viewsOf(mem, c, 0, nr, OUTHDR_SIZE, len);
      return { kind: 'write', statusAddr: s.statusAddr, offset, length: len, data };
    }
    case VIRTIO_BLK_T_FLUSH: {
      if (extraReadable > 0) throw new UnexpectedReadableData('FLUSH', extraReadable);
      if (s.writableData > 0) throw new UnexpectedWritableData('FLUSH', s.writableData);
      return { kind: 'flush', statusAddr: s.statusAddr };
    }
    case VIRTIO_BLK_T_GET_ID: {
      if (extraReadable > 0) throw new UnexpectedReadableData('GET_ID', extraReadable);
      if (s.writableData < VIRTIO_BLK_ID_BYTES) throw new GetIdBufferTooSmall(s.writableData);
      return { kind: 'get-id', statusAddr: s.statusAddr, data: viewsOf(mem, c, nr, c.count, 0, VIRTIO_BLK_ID_BYTES) };
    }
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      // Rules as QEMU hw/block/virtio-blk.c: UNSUPP unless negotiated, unless exactly one segment, or for an
      // unknown flag; IOERR for a read-only disk, a range past the capacity or above the size limit.
      if (!limits.writeZeroes) throw new UnsupportedRequest('WRITE_ZEROES was not negotiated');
      if (s.writableData > 0) throw new UnexpectedWritableData('WRITE_ZEROES', s.writableData);
      if (extraReadable !== DWZ_SEGMENT_SIZE) {
        throw new UnsupportedRequest(`WRITE_ZEROES carries ${String(extraReadable)} payload bytes; exactly one 16-byte segment is supported (max_write_zeroes_seg = 1)`);
      }
      const reader = new ChainReader(mem, descriptorsOf(c));
      reader.skip(OUTHDR_SIZE);
      const segLo = reader.readU32();
      const segHi = reader.readU32();
      const numSectors = reader.readU32();
      const flags = reader.readU32();
      if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0) {
        throw new UnsupportedRequest(`WRITE_ZEROES flags 0x${flags.toString(16)} has reserved bits set`);
      }
      if (limits.readOnly) throw new ReadOnlyDevice('WRITE_ZEROES');
      if (numSectors > limits.maxWriteZeroesSectors) throw new WriteZeroesTooLarge(numSectors, limits.maxWriteZeroesSectors);
      const length = numSectors * SECTOR_SIZE; // <= max_write_zeroes_sectors * 512: small
      const offset = checkedOffset(segLo, segHi, length, limits);
      return { kind: 'write-zeroes', statusAddr: s.statusAddr, offset, length, unmap: (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0 };
    }
    case VIRTIO_BLK_T_DISCARD:
      throw new UnsupportedRequest('DISCARD is not supported (VIRTIO_BLK_F_DISCARD is not offered)');
    default:
      throw new UnsupportedRequest(`request ${typeName(type)} is not supported`);
  }
}

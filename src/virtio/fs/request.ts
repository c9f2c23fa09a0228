// FUSE request parsing for virtio-fs (virtio 1.2 §5.11.6, fuse.h): a descriptor chain becomes a typed
// FuseRequest, every structural rule checked, BEFORE the server makes any host call.
//
// Chain shape (Linux fs/fuse/virtio_fs.c virtio_fs_enqueue_req):
//   device-readable:  struct fuse_in_header (40 bytes) + the opcode's in-args (+ WRITE data), may span descriptors
//   device-writable:  struct fuse_out_header (16 bytes) + room for the out-args (none for FORGET/BATCH_FORGET)
// Structural faults (header short, in_header.len not the readable length, a body of the wrong size for its
// opcode, a name without its NUL, no room for the reply) are FuseRequestErrors, which are DeviceBroken: the
// driver broke the protocol and the transport sets DEVICE_NEEDS_RESET. Values the server can refuse with an
// errno (a name with '/', a size above a limit, an unknown nodeid) are left to the server.
//
// Bodies are copied out of guest memory (so the guest cannot change a field after it was checked), except
// WRITE data, which stays as guest views for pwritev. The copy goes to one reused buffer (copyBuf below):
// the FuseRequest holds numbers and copies of names and values, never a view of that buffer.

import type { GuestMemory } from '../../memory/guest-memory.js';
import { ChainReader } from '../chain-io.js';
import { DeviceBroken } from '../device.js';
import type { Descriptor } from '../queue.js';
import {
  ATTR_OUT_SIZE,
  BodySize,
  ENTRY_OUT_SIZE,
  FUSE_MAX_WRITE,
  FuseOp,
  IN_HEADER_SIZE,
  LSEEK_OUT_SIZE,
  MAX_BATCH_FORGET,
  OPEN_OUT_SIZE,
  OUT_HEADER_SIZE,
  STATFS_OUT_SIZE,
  WRITE_OUT_SIZE,
} from './abi.js';

/** A structural fault in a FUSE request: the device breaks (virtio 1.2 §2.1.2 DEVICE_NEEDS_RESET). */
export class FuseRequestError extends DeviceBroken {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** fewer device-readable bytes than struct fuse_in_header */
export class FuseHeaderTooShort extends FuseRequestError {}
/** fuse_in_header.len is not the chain's device-readable length */
export class FuseLengthMismatch extends FuseRequestError {}
/** the body is not the size the opcode's struct needs */
export class FuseBodyLengthMismatch extends FuseRequestError {}
/** a body larger than any request of its opcode can be */
export class FuseBodyTooLong extends FuseRequestError {}
/** a name (or a pair of names) is not NUL-terminated inside the body */
export class FuseNameNotTerminated extends FuseRequestError {}
/** fuse_write_in.size / fuse_setxattr_in.size / fuse_batch_forget_in.count disagrees with the body */
export class FuseSizeMismatch extends FuseRequestError {}
/** the writable part cannot hold fuse_out_header plus the opcode's fixed reply */
export class FuseReplyBufferTooSmall extends FuseRequestError {}
/** a reply-less opcode (FORGET, BATCH_FORGET) with a device-writable buffer, or the reverse */
export class UnknownOpcodeLength extends FuseRequestError {}

/** struct fuse_in_header (fuse.h). nodeid is a number, or -1 when it is 2^53 or more (no such node). */
export interface FuseHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

export type FuseBody =
  | { op: 'init'; major: number; minor: number; maxReadahead: number; flags: bigint }
  | { op: 'destroy' }
  | { op: 'lookup'; name: Uint8Array }
  | { op: 'forget'; nlookup: bigint }
  | { op: 'batch-forget'; items: Array<{ nodeid: number; nlookup: bigint }> }
  | { op: 'getattr'; getattrFlags: number; fh: number }
  | {
      op: 'setattr';
      valid: number;
      fh: number;
      size: number;
      atimeSec: number;
      mtimeSec: number;
      atimeNsec: number;
      mtimeNsec: number;
      mode: number;
      uid: number;
      gid: number;
    }
  | { op: 'readlink' }
  | { op: 'symlink'; name: Uint8Array; target: Uint8Array }
  | { op: 'mknod'; mode: number; rdev: number; umask: number; name: Uint8Array }
  | { op: 'mkdir'; mode: number; umask: number; name: Uint8Array }
  | { op: 'unlink'; name: Uint8Array }
  | { op: 'rmdir'; name: Uint8Array }
  | { op: 'rename'; newdir: number; flags: number; name: Uint8Array; newname: Uint8Array }
  | { op: 'link'; oldnodeid: number; name: Uint8Array }
  | { op: 'open' | 'opendir'; flags: number; openFlags: number }
  | { op: 'read' | 'readdir' | 'readdirplus'; fh: number; offset: bigint; size: number; flags: number }
  | { op: 'write'; fh: number; offset: bigint; size: number; writeFlags: number; data: Uint8Array[] }
  | { op: 'statfs' }
  | { op: 'release' | 'releasedir'; fh: number; flags: number; releaseFlags: number }
  | { op: 'fsync' | 'fsyncdir'; fh: number; fsyncFlags: number }
  | { op: 'flush'; fh: number }
  | { op: 'setxattr'; name: Uint8Array; value: Uint8Array; flags: number }
  | { op: 'getxattr'; name: Uint8Array; size: number }
  | { op: 'listxattr'; size: number }
  | { op: 'removexattr'; name: Uint8Array }
  | { op: 'access'; mask: number }
  | { op: 'create'; flags: number; mode: number; umask: number; openFlags: number; name: Uint8Array }
  | { op: 'fallocate'; fh: number; offset: bigint; length: bigint; mode: number }
  | { op: 'lseek'; fh: number; offset: bigint; whence: number }
  | { op: 'copy-file-range'; fhIn: number; offIn: bigint; nodeidOut: number; fhOut: number; offOut: bigint; len: bigint; flags: bigint }
  | { op: 'interrupt'; unique: bigint }
  /** an opcode this server does not implement (known or not): answered ENOSYS */
  | { op: 'unsupported' };

export type FuseRequest = FuseHeader & { body: FuseBody; reply: ReplyBuffer | undefined };

/** The device-writable part of a chain: where fuse_out_header and the out-args go. */
export class ReplyBuffer {
  constructor(
    private readonly mem: GuestMemory,
    private readonly descs: readonly Descriptor[],
    /** writable bytes in the chain */
    readonly capacity: number,
  ) {}

  /** Room for the out-args after fuse_out_header. */
  get payloadCapacity(): number {
    return this.capacity - OUT_HEADER_SIZE;
  }

  /**
   * Zero-copy guest-memory views of the writable bytes [from, from + n), one per descriptor touched (the
   * caller checked from + n <= capacity), for preadv straight into the chain.
   */
  views(from: number, n: number): Uint8Array[] {
    if (from + n > this.capacity) throw new RangeError(`writable bytes [${String(from)}, +${String(n)}) exceed the ${String(this.capacity)} in the chain`);
    const out: Uint8Array[] = [];
    let skip = from;
    let want = n;
    for (const d of this.descs) {
      if (want === 0) break;
      if (!d.writable) continue;
      if (skip >= d.len) {
        skip -= d.len;
        continue;
      }
      const take = Math.min(d.len - skip, want);
      out.push(this.mem.slice(d.addr + skip, take)); // BOUNDS: descriptor range checked by the chain walk
      want -= take;
      skip = 0;
    }
    return out;
  }

  /** Write `bytes` at the start of the writable part (header and reply, in chain order); bytes.length <= capacity. */
  write(bytes: Uint8Array): void {
    const n = bytes.length;
    if (n > this.capacity) throw new RangeError(`reply of ${String(n)} bytes does not fit the ${String(this.capacity)} writable bytes`);
    let pos = 0;
    for (const d of this.descs) {
      if (pos === n) break;
      if (!d.writable || d.len === 0) continue;
      const take = Math.min(d.len, n - pos);
      this.mem.slice(d.addr, take).set(bytes.subarray(pos, pos + take)); // BOUNDS: descriptor range checked by the chain walk
      pos += take;
    }
  }
}

const MAX_U53_HI = 0x1f_ffff;

/** A u64 id (nodeid, fh) as a number, or -1 when it does not fit 53 bits (then it names nothing we made). */
function idOf(lo: number, hi: number): number {
  return hi > MAX_U53_HI ? -1 : hi * 0x1_0000_0000 + lo;
}

/**
 * Where a request's header and body are copied to before they are parsed (so the guest cannot change a field
 * after it was checked). One buffer, reused: parsing is synchronous, and nothing a FuseRequest holds refers
 * to it (names and values are copied out of it). It is an ArrayBuffer of its own because a fresh small
 * Uint8Array per request would live on V8's heap and get a backing store made for it the moment a DataView
 * looks at it, which cost more than the rest of the parse.
 */
const COPY_BYTES = 8192;
const copyBuf = new ArrayBuffer(COPY_BYTES);
const copyBytes = new Uint8Array(copyBuf);
const copyView = new DataView(copyBuf);

/**
 * Copy the chain's device-readable bytes [from, from + into.length) into `into`, in chain order. The caller
 * checked that the chain has that many readable bytes (parseFuseRequest: fuse_in_header.len == readable).
 */
function copyReadable(mem: GuestMemory, descs: readonly Descriptor[], from: number, into: Uint8Array): void {
  const n = into.length;
  let skip = from;
  let pos = 0;
  for (const d of descs) {
    if (pos === n) return;
    if (d.writable) continue;
    if (skip >= d.len) {
      skip -= d.len;
      continue;
    }
    const take = Math.min(d.len - skip, n - pos);
    into.set(mem.slice(d.addr + skip, take), pos); // BOUNDS: descriptor range checked by the chain walk
    pos += take;
    skip = 0;
  }
  if (pos !== n) throw new FuseLengthMismatch(`the chain ended ${String(n - pos)} bytes short of the request`);
}

/** Little-endian reads over a copied body, with named errors for the structural checks. */
class Body {
  pos = 0;
  constructor(
    /** the copied body (in the copy buffer, or a buffer of its own when larger) */
    readonly bytes: Uint8Array,
    /** a view of bytes' buffer; bytes start at `base` in it */
    private readonly v: DataView,
    private readonly base: number,
    private readonly opcode: number,
  ) {}
  private get opName(): string {
    return `opcode ${String(this.opcode)}`;
  }
  get length(): number {
    return this.bytes.length;
  }
  /** The body must be exactly n bytes. */
  exact(n: number): this {
    if (this.bytes.length !== n) {
      throw new FuseBodyLengthMismatch(`${this.opName}: body is ${String(this.bytes.length)} bytes, the opcode's struct is ${String(n)}`);
    }
    return this;
  }
  /** The body must hold at least n bytes (a struct followed by names). */
  atLeast(n: number): this {
    if (this.bytes.length < n) {
      throw new FuseBodyLengthMismatch(`${this.opName}: body is ${String(this.bytes.length)} bytes, the opcode needs at least ${String(n)}`);
    }
    return this;
  }
  u32(): number {
    const x = this.v.getUint32(this.base + this.pos, true); // BOUNDS: exact()/atLeast() checked the length first
    this.pos += 4;
    return x;
  }
  u64(): bigint {
    const x = this.v.getBigUint64(this.base + this.pos, true);
    this.pos += 8;
    return x;
  }
  /** u64 as an id number (-1 when >= 2^53) */
  id(): number {
    const lo = this.v.getUint32(this.base + this.pos, true);
    const hi = this.v.getUint32(this.base + this.pos + 4, true);
    this.pos += 8;
    return idOf(lo, hi);
  }
  /** u64 as a number, saturated at 2^53 (callers compare it with far smaller limits) */
  u64Num(): number {
    const lo = this.v.getUint32(this.base + this.pos, true);
    const hi = this.v.getUint32(this.base + this.pos + 4, true);
    this.pos += 8;
    return hi > MAX_U53_HI ? 2 ** 53 : hi * 0x1_0000_0000 + lo;
  }
  /** s64 seconds (times): as a number, saturated to ±2^53 */
  s64Num(): number {
    const x = this.v.getBigInt64(this.base + this.pos, true);
    this.pos += 8;
    const max = 2n ** 53n;
    return Number(x > max ? max : x < -max ? -max : x);
  }
  skip(n: number): void {
    this.pos += n;
  }
  /** A NUL-terminated name starting at pos (a copy); pos moves past the NUL. */
  name(): Uint8Array {
    const end = this.bytes.indexOf(0, this.pos);
    if (end < 0) throw new FuseNameNotTerminated(`${this.opName}: name at body offset ${String(this.pos)} has no NUL terminator`);
    const out = this.bytes.slice(this.pos, end);
    this.pos = end + 1;
    return out;
  }
  /** The name must end exactly at the end of the body (nothing after its NUL). */
  lastName(): Uint8Array {
    const n = this.name();
    if (this.pos !== this.bytes.length) {
      throw new FuseBodyLengthMismatch(`${this.opName}: ${String(this.bytes.length - this.pos)} bytes follow the last name's NUL`);
    }
    return n;
  }
  /** The bytes from pos to the end (a copy). */
  rest(): Uint8Array {
    return this.bytes.slice(this.pos);
  }
}

/** Copy bodyLen readable bytes after the header and wrap them for parsing: in the copy buffer after the
 * header when they fit, else in a buffer of their own (SETXATTR values, BATCH_FORGET lists). */
function copyBody(mem: GuestMemory, descs: readonly Descriptor[], bodyLen: number, opcode: number): Body {
  if (IN_HEADER_SIZE + bodyLen <= COPY_BYTES) {
    const bytes = copyBytes.subarray(IN_HEADER_SIZE, IN_HEADER_SIZE + bodyLen);
    copyReadable(mem, descs, IN_HEADER_SIZE, bytes);
    return new Body(bytes, copyView, IN_HEADER_SIZE, opcode);
  }
  const own = new ArrayBuffer(bodyLen);
  const bytes = new Uint8Array(own);
  copyReadable(mem, descs, IN_HEADER_SIZE, bytes);
  return new Body(bytes, new DataView(own), 0, opcode);
}

/** Largest non-WRITE body: SETXATTR with a 64 KiB value and a name, SYMLINK with two PATH_MAX strings, BATCH_FORGET. */
const MAX_BODY = MAX_BATCH_FORGET * BodySize.FORGET_ONE + BodySize.BATCH_FORGET_IN;

/** Fixed reply payload each opcode needs room for (variable-size replies: 0, the server checks their size). */
function fixedReplySize(opcode: number): number {
  switch (opcode) {
    case FuseOp.LOOKUP:
    case FuseOp.MKNOD:
    case FuseOp.MKDIR:
    case FuseOp.SYMLINK:
    case FuseOp.LINK:
      return ENTRY_OUT_SIZE;
    case FuseOp.GETATTR:
    case FuseOp.SETATTR:
      return ATTR_OUT_SIZE;
    case FuseOp.OPEN:
    case FuseOp.OPENDIR:
      return OPEN_OUT_SIZE;
    case FuseOp.CREATE:
      return ENTRY_OUT_SIZE + OPEN_OUT_SIZE;
    case FuseOp.WRITE:
    case FuseOp.COPY_FILE_RANGE:
      return WRITE_OUT_SIZE;
    case FuseOp.STATFS:
      return STATFS_OUT_SIZE;
    case FuseOp.LSEEK:
      return LSEEK_OUT_SIZE;
    default:
      return 0;
  }
}

/** Opcodes that get no reply (fuse.h: FORGET "no reply"; BATCH_FORGET likewise; INTERRUPT is answered by
 * completing the interrupted request, and virtiofs never sends one). */
function hasReply(opcode: number): boolean {
  return opcode !== FuseOp.FORGET && opcode !== FuseOp.BATCH_FORGET && opcode !== FuseOp.INTERRUPT;
}

/** Parse a checked chain (descriptors from DescriptorChain.descriptors()). Throws FuseRequestError. */
export function parseFuseRequest(mem: GuestMemory, descs: readonly Descriptor[]): FuseRequest {
  let readable = 0;
  let writable = 0;
  for (const d of descs) {
    if (d.writable) writable += d.len;
    else readable += d.len; // cannot overflow: the chain iterator bounded the total (ChainLengthOverflow)
  }
  // fuse.h: struct fuse_in_header
  if (readable < IN_HEADER_SIZE) {
    throw new FuseHeaderTooShort(`request has ${String(readable)} device-readable bytes, struct fuse_in_header needs ${String(IN_HEADER_SIZE)}`);
  }
  copyReadable(mem, descs, 0, copyBytes.subarray(0, IN_HEADER_SIZE));
  const hv = copyView; // BOUNDS: the header was just copied to [0, IN_HEADER_SIZE)
  const len = hv.getUint32(0, true);
  const opcode = hv.getUint32(4, true);
  const unique = hv.getBigUint64(8, true);
  const nodeid = idOf(hv.getUint32(16, true), hv.getUint32(20, true));
  const uid = hv.getUint32(24, true);
  const gid = hv.getUint32(28, true);
  const pid = hv.getUint32(32, true);
  if (len !== readable) {
    throw new FuseLengthMismatch(`fuse_in_header.len is ${String(len)} but the chain has ${String(readable)} device-readable bytes`);
  }
  const bodyLen = len - IN_HEADER_SIZE;

  // the reply buffer (virtio 1.2 §5.11.6.1: the device writes fuse_out_header and out-args there)
  let reply: ReplyBuffer | undefined;
  if (hasReply(opcode)) {
    const need = OUT_HEADER_SIZE + fixedReplySize(opcode);
    if (writable < need) {
      throw new FuseReplyBufferTooSmall(`opcode ${String(opcode)}: ${String(writable)} device-writable bytes, the reply needs ${String(need)}`);
    }
    reply = new ReplyBuffer(mem, descs, writable);
  } else if (writable > 0) {
    throw new UnknownOpcodeLength(`opcode ${String(opcode)} gets no reply but the chain has ${String(writable)} device-writable bytes`);
  }

  let body: FuseBody;
  if (opcode === FuseOp.WRITE) {
    // fuse.h: struct fuse_write_in, then `size` bytes of data
    if (bodyLen < BodySize.WRITE_IN) {
      throw new FuseBodyLengthMismatch(`WRITE: body is ${String(bodyLen)} bytes, struct fuse_write_in needs ${String(BodySize.WRITE_IN)}`);
    }
    const b = copyBody(mem, descs, BodySize.WRITE_IN, opcode);
    const fh = b.id();
    const offset = b.u64();
    const size = b.u32();
    const writeFlags = b.u32();
    if (size !== bodyLen - BodySize.WRITE_IN) {
      throw new FuseSizeMismatch(`WRITE: fuse_write_in.size is ${String(size)} but ${String(bodyLen - BodySize.WRITE_IN)} data bytes follow`);
    }
    if (size > FUSE_MAX_WRITE) throw new FuseBodyTooLong(`WRITE of ${String(size)} bytes exceeds max_write ${String(FUSE_MAX_WRITE)}`);
    const r = new ChainReader(mem, descs);
    r.skip(IN_HEADER_SIZE + BodySize.WRITE_IN);
    body = { op: 'write', fh, offset, size, writeFlags, data: r.views(size) };
  } else {
    if (bodyLen > MAX_BODY) throw new FuseBodyTooLong(`opcode ${String(opcode)}: body of ${String(bodyLen)} bytes is larger than any request`);
    body = parseBody(opcode, copyBody(mem, descs, bodyLen, opcode));
  }
  return { len, opcode, unique, nodeid, uid, gid, pid, body, reply };
}

function parseBody(opcode: number, b: Body): FuseBody {
  switch (opcode) {
    case FuseOp.INIT: {
      // fuse.h: struct fuse_init_in; 16 bytes before 7.36, 64 with flags2 (FUSE_INIT_EXT)
      b.atLeast(BodySize.INIT_IN_MIN);
      if (b.length !== BodySize.INIT_IN_MIN && b.length !== 64) {
        throw new FuseBodyLengthMismatch(`INIT: body is ${String(b.length)} bytes, struct fuse_init_in is 16 or 64`);
      }
      const major = b.u32();
      const minor = b.u32();
      const maxReadahead = b.u32();
      let flags = BigInt(b.u32());
      if (b.length === 64) flags |= BigInt(b.u32()) << 32n;
      return { op: 'init', major, minor, maxReadahead, flags };
    }
    case FuseOp.DESTROY:
      b.exact(0);
      return { op: 'destroy' };
    case FuseOp.LOOKUP:
      return { op: 'lookup', name: b.lastName() };
    case FuseOp.FORGET:
      b.exact(BodySize.FORGET_IN);
      return { op: 'forget', nlookup: b.u64() };
    case FuseOp.BATCH_FORGET: {
      // fuse.h: struct fuse_batch_forget_in { count, dummy } then count x struct fuse_forget_one
      b.atLeast(BodySize.BATCH_FORGET_IN);
      const count = b.u32();
      b.skip(4);
      if (count > MAX_BATCH_FORGET || b.length !== BodySize.BATCH_FORGET_IN + count * BodySize.FORGET_ONE) {
        throw new FuseSizeMismatch(`BATCH_FORGET: count ${String(count)} does not match a ${String(b.length)}-byte body`);
      }
      const items: Array<{ nodeid: number; nlookup: bigint }> = [];
      for (let i = 0; i < count; i++) items.push({ nodeid: b.id(), nlookup: b.u64() });
      return { op: 'batch-forget', items };
    }
    case FuseOp.GETATTR: {
      b.exact(BodySize.GETATTR_IN);
      const getattrFlags = b.u32();
      b.skip(4);
      return { op: 'getattr', getattrFlags, fh: b.id() };
    }
    case FuseOp.SETATTR: {
      // fuse.h: struct fuse_setattr_in
      b.exact(BodySize.SETATTR_IN);
      const valid = b.u32();
      b.skip(4);
      const fh = b.id();
      const size = b.u64Num();
      b.skip(8); // lock_owner
      const atimeSec = b.s64Num();
      const mtimeSec = b.s64Num();
      b.skip(8); // ctime
      const atimeNsec = b.u32();
      const mtimeNsec = b.u32();
      b.skip(4); // ctimensec
      const mode = b.u32();
      b.skip(4);
      const uid = b.u32();
      const gid = b.u32();
      return { op: 'setattr', valid, fh, size, atimeSec, mtimeSec, atimeNsec, mtimeNsec, mode, uid, gid };
    }
    case FuseOp.READLINK:
      b.exact(0);
      return { op: 'readlink' };
    case FuseOp.SYMLINK: {
      // name NUL, then target NUL
      const name = b.name();
      return { op: 'symlink', name, target: b.lastName() };
    }
    case FuseOp.MKNOD: {
      b.atLeast(BodySize.MKNOD_IN);
      const mode = b.u32();
      const rdev = b.u32();
      const umask = b.u32();
      b.skip(4);
      return { op: 'mknod', mode, rdev, umask, name: b.lastName() };
    }
    case FuseOp.MKDIR: {
      b.atLeast(BodySize.MKDIR_IN);
      const mode = b.u32();
      const umask = b.u32();
      return { op: 'mkdir', mode, umask, name: b.lastName() };
    }
    case FuseOp.UNLINK:
      return { op: 'unlink', name: b.lastName() };
    case FuseOp.RMDIR:
      return { op: 'rmdir', name: b.lastName() };
    case FuseOp.RENAME:
    case FuseOp.RENAME2: {
      const two = opcode === FuseOp.RENAME2;
      b.atLeast(two ? BodySize.RENAME2_IN : BodySize.RENAME_IN);
      const newdir = b.id();
      let flags = 0;
      if (two) {
        flags = b.u32();
        b.skip(4);
      }
      const name = b.name();
      return { op: 'rename', newdir, flags, name, newname: b.lastName() };
    }
    case FuseOp.LINK:
      b.atLeast(BodySize.LINK_IN);
      return { op: 'link', oldnodeid: b.id(), name: b.lastName() };
    case FuseOp.OPEN:
    case FuseOp.OPENDIR: {
      b.exact(BodySize.OPEN_IN);
      const flags = b.u32();
      return { op: opcode === FuseOp.OPEN ? 'open' : 'opendir', flags, openFlags: b.u32() };
    }
    case FuseOp.READ:
    case FuseOp.READDIR:
    case FuseOp.READDIRPLUS: {
      // fuse.h: struct fuse_read_in
      b.exact(BodySize.READ_IN);
      const fh = b.id();
      const offset = b.u64();
      const size = b.u32();
      b.skip(4 + 8); // read_flags, lock_owner
      const flags = b.u32();
      const op = opcode === FuseOp.READ ? 'read' : opcode === FuseOp.READDIR ? 'readdir' : 'readdirplus';
      return { op, fh, offset, size, flags };
    }
    case FuseOp.STATFS:
      b.exact(0);
      return { op: 'statfs' };
    case FuseOp.RELEASE:
    case FuseOp.RELEASEDIR: {
      b.exact(BodySize.RELEASE_IN);
      const fh = b.id();
      const flags = b.u32();
      return { op: opcode === FuseOp.RELEASE ? 'release' : 'releasedir', fh, flags, releaseFlags: b.u32() };
    }
    case FuseOp.FSYNC:
    case FuseOp.FSYNCDIR: {
      b.exact(BodySize.FSYNC_IN);
      const fh = b.id();
      return { op: opcode === FuseOp.FSYNC ? 'fsync' : 'fsyncdir', fh, fsyncFlags: b.u32() };
    }
    case FuseOp.FLUSH:
      b.exact(BodySize.FLUSH_IN);
      return { op: 'flush', fh: b.id() };
    case FuseOp.SETXATTR: {
      // fuse.h: struct fuse_setxattr_in (compat size: FUSE_SETXATTR_EXT is not offered), name NUL, value
      b.atLeast(BodySize.SETXATTR_IN);
      const size = b.u32();
      const flags = b.u32();
      const name = b.name();
      if (b.length - b.pos !== size) {
        throw new FuseSizeMismatch(`SETXATTR: fuse_setxattr_in.size is ${String(size)} but ${String(b.length - b.pos)} value bytes follow`);
      }
      return { op: 'setxattr', name, value: b.rest(), flags };
    }
    case FuseOp.GETXATTR: {
      b.atLeast(BodySize.GETXATTR_IN);
      const size = b.u32();
      b.skip(4);
      return { op: 'getxattr', size, name: b.lastName() };
    }
    case FuseOp.LISTXATTR: {
      b.exact(BodySize.GETXATTR_IN);
      return { op: 'listxattr', size: b.u32() };
    }
    case FuseOp.REMOVEXATTR:
      return { op: 'removexattr', name: b.lastName() };
    case FuseOp.ACCESS:
      b.exact(BodySize.ACCESS_IN);
      return { op: 'access', mask: b.u32() };
    case FuseOp.CREATE: {
      b.atLeast(BodySize.CREATE_IN);
      const flags = b.u32();
      const mode = b.u32();
      const umask = b.u32();
      const openFlags = b.u32();
      return { op: 'create', flags, mode, umask, openFlags, name: b.lastName() };
    }
    case FuseOp.INTERRUPT:
      b.exact(BodySize.INTERRUPT_IN);
      return { op: 'interrupt', unique: b.u64() };
    case FuseOp.FALLOCATE: {
      b.exact(BodySize.FALLOCATE_IN);
      const fh = b.id();
      const offset = b.u64();
      const length = b.u64();
      return { op: 'fallocate', fh, offset, length, mode: b.u32() };
    }
    case FuseOp.LSEEK: {
      b.exact(BodySize.LSEEK_IN);
      const fh = b.id();
      const offset = b.u64();
      return { op: 'lseek', fh, offset, whence: b.u32() };
    }
    case FuseOp.COPY_FILE_RANGE: {
      b.exact(BodySize.COPY_FILE_RANGE_IN);
      const fhIn = b.id();
      const offIn = b.u64();
      const nodeidOut = b.id();
      const fhOut = b.id();
      const offOut = b.u64();
      const len = b.u64();
      return { op: 'copy-file-range', fhIn, offIn, nodeidOut, fhOut, offOut, len, flags: b.u64() };
    }
    default:
      // GETLK/SETLK/SETLKW, BMAP, IOCTL, POLL, NOTIFY_REPLY, SETUPMAPPING, REMOVEMAPPING, SYNCFS, TMPFILE and
      // unknown opcodes: ENOSYS (the body is not looked at)
      return { op: 'unsupported' };
  }
}

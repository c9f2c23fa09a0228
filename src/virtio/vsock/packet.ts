// virtio-vsock packets (virtio 1.2 §5.10.6; include/uapi/linux/virtio_vsock.h, Linux 6.1).
// A tx chain from the guest is parsed into a typed packet with named errors BEFORE the muxer acts on it
// (DESIGN decision 5). Every field is guest-controlled; nothing here trusts one.

import type { GuestMemory } from '../../memory/guest-memory.js';
import { CheckedChain, type Descriptor } from '../queue.js';

/** sizeof(struct virtio_vsock_hdr): packed, little-endian (virtio_vsock.h). */
export const VSOCK_HDR_SIZE = 44;

/** Well-known CIDs (include/uapi/linux/vm_sockets.h): the host is always CID 2. */
export const VMADDR_CID_HOST = 2;
/** Guest CIDs 0..2 are reserved and 0xffffffff is VMADDR_CID_ANY (vm_sockets.h); Linux keeps CIDs in u32. */
export const MIN_GUEST_CID = 3;
export const MAX_GUEST_CID = 0xffff_fffe;

/** enum virtio_vsock_type (virtio_vsock.h). SEQPACKET (2) is not offered: no VIRTIO_VSOCK_F_SEQPACKET. */
export const VSOCK_TYPE_STREAM = 1;

/** enum virtio_vsock_op (virtio_vsock.h). */
export const VsockOp = {
  INVALID: 0,
  REQUEST: 1,
  RESPONSE: 2,
  RST: 3,
  SHUTDOWN: 4,
  RW: 5,
  CREDIT_UPDATE: 6,
  CREDIT_REQUEST: 7,
} as const;
export type VsockOpCode = (typeof VsockOp)[keyof typeof VsockOp];

/** enum virtio_vsock_shutdown (virtio_vsock.h): flags of OP_SHUTDOWN. */
export const VSOCK_SHUTDOWN_RCV = 1;
export const VSOCK_SHUTDOWN_SEND = 2;
export const VSOCK_SHUTDOWN_BOTH = VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND;

/** VIRTIO_VSOCK_MAX_PKT_BUF_SIZE (include/linux/virtio_vsock.h): the largest payload a packet carries. */
export const VSOCK_MAX_PKT_PAYLOAD = 64 * 1024;

/** struct virtio_vsock_hdr, decoded. CIDs are u64 on the wire; values above 2^53 are kept exact as bigint. */
export interface VsockHeader {
  srcCid: bigint;
  dstCid: bigint;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

/** A tx packet that passed every check: addressed from the guest to the host, a stream packet, known op. */
export interface TxPacket {
  hdr: VsockHeader;
  /** zero-copy guest views of the payload (only RW carries one; other ops have len ignored: empty). */
  payload: Uint8Array[];
}

// ---- named errors -----------------------------------------------------------------------------------------

/** Why a tx chain was not acted on. `reply` says whether a RST back to the sender makes sense. */
export abstract class VsockPacketError extends Error {
  abstract readonly reply: boolean;
  constructor(
    message: string,
    /** the decoded header when it could be read (a RST reply is addressed from it) */
    readonly hdr: VsockHeader | undefined,
  ) {
    super(message);
  }
}

/** The readable part of the chain is shorter than a header (virtio 1.2 §5.10.6). Dropped: no address. */
export class HeaderTooShort extends VsockPacketError {
  override readonly name = 'HeaderTooShort';
  readonly reply = false;
  constructor(readonly bytes: number) {
    super(`tx chain has ${String(bytes)} readable bytes; a vsock header needs ${String(VSOCK_HDR_SIZE)}`, undefined);
  }
}

/** A device-writable descriptor in a tx chain (virtio 1.2 §5.10.6.1: tx buffers are device-readable). */
export class WritableDescriptorInTx extends VsockPacketError {
  override readonly name = 'WritableDescriptorInTx';
  readonly reply = false;
  constructor() {
    super('tx chain holds a device-writable descriptor; tx buffers must be read-only', undefined);
  }
}

/** src_cid is not the guest's own CID (virtio 1.2 §5.10.6.3: the device must not accept spoofed CIDs). */
export class BadSrcCid extends VsockPacketError {
  override readonly name = 'BadSrcCid';
  readonly reply = false;
  constructor(hdr: VsockHeader, guestCid: bigint) {
    super(`tx packet has src_cid ${String(hdr.srcCid)}, not the guest's CID ${String(guestCid)}`, hdr);
  }
}

/** dst_cid is not the host (this device only reaches CID 2). */
export class BadDstCid extends VsockPacketError {
  override readonly name = 'BadDstCid';
  readonly reply = false;
  constructor(hdr: VsockHeader) {
    super(`tx packet has dst_cid ${String(hdr.dstCid)}; only the host (CID ${String(VMADDR_CID_HOST)}) is reachable`, hdr);
  }
}

/** type is not VIRTIO_VSOCK_TYPE_STREAM (SEQPACKET was not negotiated). Linux answers with RST. */
export class UnsupportedType extends VsockPacketError {
  override readonly name = 'UnsupportedType';
  readonly reply = true;
  constructor(hdr: VsockHeader) {
    super(`tx packet has socket type ${String(hdr.type)}; only STREAM (1) is supported`, hdr);
  }
}

/** op is INVALID (0) or not in enum virtio_vsock_op. */
export class UnknownOp extends VsockPacketError {
  override readonly name = 'UnknownOp';
  readonly reply = true;
  constructor(hdr: VsockHeader) {
    super(`tx packet has unknown op ${String(hdr.op)}`, hdr);
  }
}

/** An RW payload larger than VIRTIO_VSOCK_MAX_PKT_BUF_SIZE or than the chain holds. */
export class PayloadTooLarge extends VsockPacketError {
  override readonly name = 'PayloadTooLarge';
  readonly reply = true;
  constructor(hdr: VsockHeader, available: number) {
    super(
      `tx packet claims a ${String(hdr.len)}-byte payload; the limit is ${String(VSOCK_MAX_PKT_PAYLOAD)} ` +
        `and the chain holds ${String(available)} bytes after the header`,
      hdr,
    );
  }
}

// ---- encode / decode ----------------------------------------------------------------------------------------

// Byte-wise little-endian access: a DataView over a small array would make V8 materialize its ArrayBuffer
// (an off-heap allocation costing far more than the header itself), and headers pass here once per packet.

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function u64(b: Uint8Array, o: number): bigint {
  const lo = u32(b, o);
  const hi = u32(b, o + 4);
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

function put64(b: Uint8Array, o: number, v: bigint): void {
  if (v >= 0n && v <= 0xffff_ffffn) {
    put32(b, o, Number(v)); // CIDs are u32 in Linux: the common case, with no bigint arithmetic
    put32(b, o + 4, 0);
    return;
  }
  put32(b, o, Number(BigInt.asUintN(32, v)));
  put32(b, o + 4, Number(BigInt.asUintN(32, v >> 32n)));
}

/** Decode a 44-byte little-endian header (virtio_vsock.h field order). */
export function decodeHeader(b: Uint8Array): VsockHeader {
  if (b.length < VSOCK_HDR_SIZE) throw new RangeError(`a vsock header needs ${String(VSOCK_HDR_SIZE)} bytes, got ${String(b.length)}`);
  return {
    srcCid: u64(b, 0),
    dstCid: u64(b, 8),
    srcPort: u32(b, 16),
    dstPort: u32(b, 20),
    len: u32(b, 24),
    type: u16(b, 28),
    op: u16(b, 30),
    flags: u32(b, 32),
    bufAlloc: u32(b, 36),
    fwdCnt: u32(b, 40),
  };
}

/** Encode a header into `out` (at least 44 bytes). */
export function encodeHeader(h: VsockHeader, out: Uint8Array = new Uint8Array(VSOCK_HDR_SIZE)): Uint8Array {
  if (out.length < VSOCK_HDR_SIZE) throw new RangeError(`a vsock header needs ${String(VSOCK_HDR_SIZE)} bytes, got ${String(out.length)}`);
  put64(out, 0, h.srcCid);
  put64(out, 8, h.dstCid);
  put32(out, 16, h.srcPort);
  put32(out, 20, h.dstPort);
  put32(out, 24, h.len);
  put16(out, 28, h.type);
  put16(out, 30, h.op);
  put32(out, 32, h.flags);
  put32(out, 36, h.bufAlloc);
  put32(out, 40, h.fwdCnt);
  return out;
}

const HOST_CID = BigInt(VMADDR_CID_HOST);
/** the header being parsed: copied out of guest memory once, so the guest cannot change it after the checks */
const hdrCopy = new Uint8Array(VSOCK_HDR_SIZE);

/**
 * Parse a tx chain into a packet, or say why not (returned, not thrown: a hostile guest makes this the
 * common path). Structural chain errors were already raised by DescriptorChain.descriptors().
 * Checks, in order: no writable descriptor; >= 44 readable bytes; src_cid == guest CID; dst_cid == host;
 * type STREAM; op known; for RW, len <= 64 KiB and <= the readable bytes after the header.
 */
export function parseTxPacket(
  mem: GuestMemory,
  descs: readonly Descriptor[],
  guestCid: bigint,
): TxPacket | VsockPacketError {
  for (const d of descs) if (d.writable) return new WritableDescriptorInTx();
  const c = new CheckedChain(Math.max(1, descs.length));
  for (const d of descs) c.push(d.addr, d.len, false);
  return parseTxChain(mem, c, guestCid);
}

/** parseTxPacket() for a chain SplitQueue.walk() checked (the device's path: no per-descriptor objects). */
export function parseTxChain(mem: GuestMemory, c: CheckedChain, guestCid: bigint): TxPacket | VsockPacketError {
  if (c.firstWritable < c.count) return new WritableDescriptorInTx();
  const readable = c.readableBytes;
  if (readable < VSOCK_HDR_SIZE) return new HeaderTooShort(readable);
  // BOUNDS (both loops): every [addr, addr+len) was checked against guest RAM by the chain walk
  let i = 0;
  let off = 0; // into descriptor i
  for (let pos = 0; pos < VSOCK_HDR_SIZE; ) {
    const take = Math.min(c.len[i]! - off, VSOCK_HDR_SIZE - pos);
    if (take > 0) hdrCopy.set(mem.slice(c.addr[i]! + off, take), pos);
    pos += take;
    off += take;
    if (off === c.len[i]!) {
      i++;
      off = 0;
    }
  }
  const hdr = decodeHeader(hdrCopy);
  if (hdr.srcCid !== guestCid) return new BadSrcCid(hdr, guestCid); // virtio 1.2 §5.10.6.3
  if (hdr.dstCid !== HOST_CID) return new BadDstCid(hdr);
  if (hdr.type !== VSOCK_TYPE_STREAM) return new UnsupportedType(hdr); // virtio_transport_valid_type()
  if (hdr.op === VsockOp.INVALID || hdr.op > VsockOp.CREDIT_REQUEST) return new UnknownOp(hdr);
  if (hdr.op !== VsockOp.RW) return { hdr, payload: [] };
  // virtio_transport_common.c: a packet never carries more than VIRTIO_VSOCK_MAX_PKT_BUF_SIZE
  const rest = readable - VSOCK_HDR_SIZE;
  if (hdr.len > VSOCK_MAX_PKT_PAYLOAD || hdr.len > rest) return new PayloadTooLarge(hdr, rest);
  const payload: Uint8Array[] = [];
  for (let want = hdr.len; want > 0; ) {
    const take = Math.min(c.len[i]! - off, want);
    if (take > 0) payload.push(mem.slice(c.addr[i]! + off, take)); // zero-copy guest views
    want -= take;
    off += take;
    if (off === c.len[i]!) {
      i++;
      off = 0;
    }
  }
  return { hdr, payload };
}

// vhost-user message codec: a raw message (header + payload + the fds that came with it) in, a typed
// message out, with the payload size and the fd count checked for every request type before any field is
// used (QEMU docs/interop/vhost-user.rst, "Message Specification"). The encoders serve the replies and the
// scripted front-end of the tests. Everything a front-end sends is untrusted: a size or fd count that does
// not match the request type is a named error, never a crash.

import {
  VHOST_USER_CONFIG_HDR_SIZE,
  VHOST_USER_HDR_SIZE,
  VHOST_USER_MAX_CONFIG_SIZE,
  VHOST_USER_MAX_FDS,
  VHOST_USER_MAX_PAYLOAD,
  VHOST_USER_MEM_HDR_SIZE,
  VHOST_USER_MEM_REGION_SIZE,
  VHOST_USER_NEED_REPLY_MASK,
  VHOST_USER_REPLY_MASK,
  VHOST_USER_VERSION,
  VHOST_USER_VERSION_MASK,
  VHOST_USER_VRING_IDX_MASK,
  VHOST_USER_VRING_NOFD_MASK,
  VHOST_MEMORY_MAX_REGIONS,
  VHOST_VRING_ADDR_SIZE,
  VHOST_VRING_STATE_SIZE,
  VhostUserRequest as R,
  requestName,
} from './protocol.js';

// ---------------------------------------------------------------------------------------------------------
// Errors

/** The front-end broke the protocol. Framing errors (FramingError) end the connection; the others fail
 * the one message (a REPLY_ACK failure when the front-end asked for one, else the connection ends). */
export class VhostUserProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The byte stream itself cannot be trusted any more: the connection must close. */
export class FramingError extends VhostUserProtocolError {}
/** flags bits 0-1 are not version 1 (vhost-user.rst "Header"). */
export class UnsupportedVersion extends FramingError {}
/** size is larger than any message we implement. */
export class PayloadTooLarge extends FramingError {}
/** more fds arrived than any message may carry (or the kernel truncated them). */
export class TooManyFds extends FramingError {}

/** One message is malformed for its request type. */
export class MalformedMessage extends VhostUserProtocolError {}
export class BadPayloadSize extends MalformedMessage {}
export class WrongFdCount extends MalformedMessage {}
export class BadField extends MalformedMessage {}

// ---------------------------------------------------------------------------------------------------------
// Raw messages

export interface MessageHeader {
  request: number;
  flags: number;
  size: number;
}

/** A complete message as it came off the socket. The fds are owned by whoever holds the message. */
export interface RawMessage extends MessageHeader {
  payload: Uint8Array;
  fds: number[];
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Decode and check a 12-byte header (version, payload limit). */
export function decodeHeader(b: Uint8Array): MessageHeader {
  if (b.byteLength < VHOST_USER_HDR_SIZE) throw new RangeError(`a vhost-user header is ${VHOST_USER_HDR_SIZE} bytes`);
  const v = dv(b);
  const request = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  const size = v.getUint32(8, true);
  if ((flags & VHOST_USER_VERSION_MASK) !== VHOST_USER_VERSION) {
    throw new UnsupportedVersion(`${requestName(request)}: protocol version ${flags & VHOST_USER_VERSION_MASK}, expected 1 (flags 0x${flags.toString(16)})`);
  }
  if (size > VHOST_USER_MAX_PAYLOAD) {
    throw new PayloadTooLarge(`${requestName(request)}: payload of ${size} bytes is larger than the ${VHOST_USER_MAX_PAYLOAD} bytes any message needs`);
  }
  return { request, flags, size };
}

export function needsReply(h: MessageHeader): boolean {
  return (h.flags & VHOST_USER_NEED_REPLY_MASK) !== 0;
}

// ---------------------------------------------------------------------------------------------------------
// Typed messages

export interface MemRegionDesc {
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
  mmapOffset: bigint;
}

export interface VringAddr {
  index: number;
  flags: number;
  desc: bigint;
  used: bigint;
  avail: bigint;
  log: bigint;
}

export interface ConfigAccess {
  offset: number;
  size: number;
  flags: number;
  data: Uint8Array;
}

/** SET_VRING_KICK/CALL/ERR: the ring and its eventfd (undefined when the "no fd" bit is set). */
export interface VringFile {
  index: number;
  fd: number | undefined;
}

export type VhostUserMessage =
  | { t: 'GET_FEATURES' }
  | { t: 'SET_FEATURES'; features: bigint }
  | { t: 'GET_PROTOCOL_FEATURES' }
  | { t: 'SET_PROTOCOL_FEATURES'; features: bigint }
  | { t: 'SET_OWNER' }
  | { t: 'RESET_OWNER' }
  | { t: 'RESET_DEVICE' }
  | { t: 'GET_QUEUE_NUM' }
  | { t: 'SET_MEM_TABLE'; regions: MemRegionDesc[]; fds: number[] }
  | { t: 'SET_VRING_NUM'; index: number; num: number }
  | { t: 'SET_VRING_BASE'; index: number; num: number }
  | { t: 'GET_VRING_BASE'; index: number }
  | { t: 'SET_VRING_ENABLE'; index: number; num: number }
  | { t: 'SET_VRING_ADDR'; addr: VringAddr }
  | { t: 'SET_VRING_KICK'; file: VringFile }
  | { t: 'SET_VRING_CALL'; file: VringFile }
  | { t: 'SET_VRING_ERR'; file: VringFile }
  | { t: 'GET_CONFIG'; access: ConfigAccess }
  | { t: 'SET_CONFIG'; access: ConfigAccess }
  /** a request the protocol defines but this back-end does not implement (or one it does not know) */
  | { t: 'unsupported'; request: number; name: string };

function expectSize(m: RawMessage, n: number): void {
  if (m.size !== n || m.payload.byteLength !== n) {
    throw new BadPayloadSize(`${requestName(m.request)}: payload is ${m.size} bytes, expected ${n}`);
  }
}

function expectFds(m: RawMessage, n: number): void {
  if (m.fds.length !== n) {
    throw new WrongFdCount(`${requestName(m.request)}: came with ${m.fds.length} file descriptor(s), expected ${n}`);
  }
}

function u64(m: RawMessage): bigint {
  expectSize(m, 8);
  return dv(m.payload).getBigUint64(0, true);
}

function vringState(m: RawMessage): { index: number; num: number } {
  expectSize(m, VHOST_VRING_STATE_SIZE);
  const v = dv(m.payload);
  return { index: v.getUint32(0, true), num: v.getUint32(4, true) };
}

function vringFile(m: RawMessage): VringFile {
  const v = u64(m);
  // vhost-user.rst SET_VRING_KICK: bits 0-7 index, bit 8 invalid-fd flag; the other bits are reserved
  if ((v & ~(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK)) !== 0n) {
    throw new BadField(`${requestName(m.request)}: payload 0x${v.toString(16)} sets bits other than the index (0-7) and no-fd (8)`);
  }
  const noFd = (v & VHOST_USER_VRING_NOFD_MASK) !== 0n;
  expectFds(m, noFd ? 0 : 1);
  return { index: Number(v & VHOST_USER_VRING_IDX_MASK), fd: noFd ? undefined : m.fds[0] };
}

function memTable(m: RawMessage): { regions: MemRegionDesc[]; fds: number[] } {
  if (m.size < VHOST_USER_MEM_HDR_SIZE || m.payload.byteLength !== m.size) {
    throw new BadPayloadSize(`SET_MEM_TABLE: payload of ${m.size} bytes is shorter than its ${VHOST_USER_MEM_HDR_SIZE}-byte header`);
  }
  const v = dv(m.payload);
  const n = v.getUint32(0, true);
  if (n === 0 || n > VHOST_MEMORY_MAX_REGIONS) {
    throw new BadField(`SET_MEM_TABLE: ${n} regions, expected 1..${VHOST_MEMORY_MAX_REGIONS}`);
  }
  // QEMU sends the whole VhostUserMemory (8 region slots) or just the used ones: accept both sizes
  const exact = VHOST_USER_MEM_HDR_SIZE + n * VHOST_USER_MEM_REGION_SIZE;
  const full = VHOST_USER_MEM_HDR_SIZE + VHOST_MEMORY_MAX_REGIONS * VHOST_USER_MEM_REGION_SIZE;
  if (m.size !== exact && m.size !== full) {
    throw new BadPayloadSize(`SET_MEM_TABLE: payload is ${m.size} bytes; ${n} regions need ${exact} (or ${full})`);
  }
  expectFds(m, n);
  const regions: MemRegionDesc[] = [];
  for (let i = 0; i < n; i++) {
    const o = VHOST_USER_MEM_HDR_SIZE + i * VHOST_USER_MEM_REGION_SIZE;
    regions.push({
      guestPhysAddr: v.getBigUint64(o, true),
      memorySize: v.getBigUint64(o + 8, true),
      userspaceAddr: v.getBigUint64(o + 16, true),
      mmapOffset: v.getBigUint64(o + 24, true),
    });
  }
  return { regions, fds: m.fds.slice() };
}

function vringAddr(m: RawMessage): VringAddr {
  expectSize(m, VHOST_VRING_ADDR_SIZE);
  const v = dv(m.payload);
  return {
    index: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    desc: v.getBigUint64(8, true),
    used: v.getBigUint64(16, true),
    avail: v.getBigUint64(24, true),
    log: v.getBigUint64(32, true),
  };
}

function configAccess(m: RawMessage, withData: boolean): ConfigAccess {
  if (m.size < VHOST_USER_CONFIG_HDR_SIZE || m.payload.byteLength !== m.size) {
    throw new BadPayloadSize(`${requestName(m.request)}: payload of ${m.size} bytes is shorter than its ${VHOST_USER_CONFIG_HDR_SIZE}-byte header`);
  }
  const v = dv(m.payload);
  const offset = v.getUint32(0, true);
  const size = v.getUint32(4, true);
  const flags = v.getUint32(8, true);
  if (size > VHOST_USER_MAX_CONFIG_SIZE || offset > VHOST_USER_MAX_CONFIG_SIZE - size) {
    throw new BadField(`${requestName(m.request)}: [${offset}, +${size}) is outside the ${VHOST_USER_MAX_CONFIG_SIZE}-byte config space`);
  }
  // GET_CONFIG carries a payload of `size` bytes too (QEMU sends zeros); SET_CONFIG carries the new bytes
  if (m.size !== VHOST_USER_CONFIG_HDR_SIZE + size) {
    throw new BadPayloadSize(`${requestName(m.request)}: payload is ${m.size} bytes, expected ${VHOST_USER_CONFIG_HDR_SIZE + size} for size ${size}`);
  }
  const data = withData ? m.payload.slice(VHOST_USER_CONFIG_HDR_SIZE) : new Uint8Array(0);
  return { offset, size, flags, data };
}

/**
 * Check a raw message against its request type and decode it. Throws MalformedMessage subclasses for a
 * wrong payload size, fd count or reserved field. The fds stay owned by the caller (the decoded message
 * refers to the same numbers).
 */
export function decodeMessage(m: RawMessage): VhostUserMessage {
  const none = (): void => {
    expectSize(m, 0);
    expectFds(m, 0);
  };
  const noFds = (): void => expectFds(m, 0);
  switch (m.request) {
    case R.GET_FEATURES:
      // QEMU sends GET_* with size 0; a u64 of zeros is tolerated as well (some front-ends do)
      if (m.size === 8) {
        noFds();
        return { t: 'GET_FEATURES' };
      }
      none();
      return { t: 'GET_FEATURES' };
    case R.GET_PROTOCOL_FEATURES:
      if (m.size === 8) {
        noFds();
        return { t: 'GET_PROTOCOL_FEATURES' };
      }
      none();
      return { t: 'GET_PROTOCOL_FEATURES' };
    case R.GET_QUEUE_NUM:
      if (m.size === 8) {
        noFds();
        return { t: 'GET_QUEUE_NUM' };
      }
      none();
      return { t: 'GET_QUEUE_NUM' };
    case R.SET_FEATURES:
      noFds();
      return { t: 'SET_FEATURES', features: u64(m) };
    case R.SET_PROTOCOL_FEATURES:
      noFds();
      return { t: 'SET_PROTOCOL_FEATURES', features: u64(m) };
    case R.SET_OWNER:
      none();
      return { t: 'SET_OWNER' };
    case R.RESET_OWNER:
      // QEMU historically sent RESET_OWNER with a u64 payload: accept 0 or 8 bytes
      if (m.size !== 8) expectSize(m, 0);
      noFds();
      return { t: 'RESET_OWNER' };
    case R.RESET_DEVICE:
      none();
      return { t: 'RESET_DEVICE' };
    case R.SET_MEM_TABLE:
      return { t: 'SET_MEM_TABLE', ...memTable(m) };
    case R.SET_VRING_NUM:
      noFds();
      return { t: 'SET_VRING_NUM', ...vringState(m) };
    case R.SET_VRING_BASE:
      noFds();
      return { t: 'SET_VRING_BASE', ...vringState(m) };
    case R.GET_VRING_BASE:
      noFds();
      return { t: 'GET_VRING_BASE', index: vringState(m).index };
    case R.SET_VRING_ENABLE:
      noFds();
      return { t: 'SET_VRING_ENABLE', ...vringState(m) };
    case R.SET_VRING_ADDR:
      noFds();
      return { t: 'SET_VRING_ADDR', addr: vringAddr(m) };
    case R.SET_VRING_KICK:
      return { t: 'SET_VRING_KICK', file: vringFile(m) };
    case R.SET_VRING_CALL:
      return { t: 'SET_VRING_CALL', file: vringFile(m) };
    case R.SET_VRING_ERR:
      return { t: 'SET_VRING_ERR', file: vringFile(m) };
    case R.GET_CONFIG:
      noFds();
      return { t: 'GET_CONFIG', access: configAccess(m, false) };
    case R.SET_CONFIG:
      noFds();
      return { t: 'SET_CONFIG', access: configAccess(m, true) };
    default:
      return { t: 'unsupported', request: m.request, name: requestName(m.request) };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Encoders (replies, and requests for the scripted front-end in tests)

/** A whole message: header + payload. */
export function encodeMessage(request: number, flags: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const b = new Uint8Array(VHOST_USER_HDR_SIZE + payload.byteLength);
  const v = dv(b);
  v.setUint32(0, request, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, payload.byteLength, true);
  b.set(payload, VHOST_USER_HDR_SIZE);
  return b;
}

/** A reply from the back-end: version 1 + the reply bit (vhost-user.rst "Header"). */
export function encodeReply(request: number, payload: Uint8Array): Uint8Array {
  return encodeMessage(request, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, payload);
}

export function encodeU64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  dv(b).setBigUint64(0, BigInt.asUintN(64, v), true);
  return b;
}

export function encodeVringState(index: number, num: number): Uint8Array {
  const b = new Uint8Array(VHOST_VRING_STATE_SIZE);
  const v = dv(b);
  v.setUint32(0, index >>> 0, true);
  v.setUint32(4, num >>> 0, true);
  return b;
}

export function encodeVringAddr(a: VringAddr): Uint8Array {
  const b = new Uint8Array(VHOST_VRING_ADDR_SIZE);
  const v = dv(b);
  v.setUint32(0, a.index >>> 0, true);
  v.setUint32(4, a.flags >>> 0, true);
  v.setBigUint64(8, a.desc, true);
  v.setBigUint64(16, a.used, true);
  v.setBigUint64(24, a.avail, true);
  v.setBigUint64(32, a.log, true);
  return b;
}

export function encodeMemTable(regions: readonly MemRegionDesc[]): Uint8Array {
  const b = new Uint8Array(VHOST_USER_MEM_HDR_SIZE + regions.length * VHOST_USER_MEM_REGION_SIZE);
  const v = dv(b);
  v.setUint32(0, regions.length, true);
  regions.forEach((r, i) => {
    const o = VHOST_USER_MEM_HDR_SIZE + i * VHOST_USER_MEM_REGION_SIZE;
    v.setBigUint64(o, r.guestPhysAddr, true);
    v.setBigUint64(o + 8, r.memorySize, true);
    v.setBigUint64(o + 16, r.userspaceAddr, true);
    v.setBigUint64(o + 24, r.mmapOffset, true);
  });
  return b;
}

export function encodeConfig(offset: number, flags: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(VHOST_USER_CONFIG_HDR_SIZE + data.byteLength);
  const v = dv(b);
  v.setUint32(0, offset >>> 0, true);
  v.setUint32(4, data.byteLength, true);
  v.setUint32(8, flags >>> 0, true);
  b.set(data, VHOST_USER_CONFIG_HDR_SIZE);
  return b;
}

/** SET_VRING_KICK/CALL/ERR payload. */
export function encodeVringFile(index: number, noFd: boolean): Uint8Array {
  return encodeU64(BigInt(index & 0xff) | (noFd ? VHOST_USER_VRING_NOFD_MASK : 0n));
}

export { VHOST_USER_MAX_FDS };

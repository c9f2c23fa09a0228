// Transmit chains -> typed frames, before any I/O (DESIGN decision 5). A tx chain is a virtio_net_hdr_v1
// followed by one Ethernet frame, all in device-readable descriptors (virtio 1.2 §5.1.6.2).
//
// A malformed frame is the guest's loss, not the device's: the frame is dropped (returned with length 0)
// and counted by error name; the device goes on. Broken chains (ChainError from the queue) are different:
// they are DeviceBroken and propagate.

import type { GuestMemory } from '../../memory/guest-memory.js';
import type { Descriptor } from '../queue.js';
import { decodeNetHdr, type VirtioNetHdr } from './header.js';
import {
  MAX_FRAME_LEN,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_HOST_UFO,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_LEN,
} from './features.js';

/**
 * A transmit frame the device refuses; the frame is dropped, counted by name, and the device goes on. A guest
 * can make these as fast as it can fill the ring, so they carry no stack trace (capturing one was the largest
 * cost of the drop path).
 */
export class TxFrameError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = new.target.name;
  }
}
/** fewer than 12 readable bytes: no room for virtio_net_hdr_v1 */
export class HeaderTooShort extends TxFrameError {}
/** a header and no frame */
export class EmptyFrame extends TxFrameError {}
/** frame longer than MAX_FRAME_LEN (65550) */
export class FrameTooLarge extends TxFrameError {}
/** a device-writable descriptor in a tx chain (virtio 1.2 §5.1.6.2: tx buffers are device-readable) */
export class UnexpectedWritableDescriptor extends TxFrameError {}
/** the header asks for an offload the driver did not negotiate (virtio 1.2 §5.1.6.2.1) */
export class OffloadNotNegotiated extends TxFrameError {}
/** flags or gso_type with values the driver must not send (virtio 1.2 §5.1.6.2.1) */
export class BadHeaderField extends TxFrameError {}
/** a frame in more pieces than one writev() takes (IOV_MAX 1024, the header's copy included) */
export class TooManySegments extends TxFrameError {}

/** writev() takes at most IOV_MAX (1024, Linux UIO_MAXIOV) iovecs; one goes to the header copy. */
const MAX_FRAME_SEGMENTS = 1023;

export interface TxRequest {
  /** a host copy of the 12-byte header (so what we checked is what the tap reads: no double fetch) */
  header: Uint8Array;
  hdr: VirtioNetHdr;
  /** zero-copy guest views of the frame, in order */
  frame: Uint8Array[];
  frameLen: number;
}

/** Parse a tx chain's descriptors (already range-checked by the queue) into a TxRequest. */
export function parseTx(mem: GuestMemory, descs: readonly Descriptor[], acked: bigint): TxRequest {
  let total = 0;
  for (const d of descs) {
    if (d.writable) throw new UnexpectedWritableDescriptor('tx chain has a device-writable descriptor');
    total += d.len; // the queue checked the chain's total length for overflow
  }
  if (total < VIRTIO_NET_HDR_LEN) {
    throw new HeaderTooShort(`tx chain has ${total} bytes: fewer than the ${VIRTIO_NET_HDR_LEN}-byte virtio_net_hdr_v1`);
  }
  const frameLen = total - VIRTIO_NET_HDR_LEN;
  if (frameLen === 0) throw new EmptyFrame('tx chain holds a header and no frame');
  if (frameLen > MAX_FRAME_LEN) throw new FrameTooLarge(`tx frame of ${frameLen} bytes exceeds ${MAX_FRAME_LEN}`);

  // Copy the header out (it may span descriptors), then take views of the rest.
  const header = new Uint8Array(VIRTIO_NET_HDR_LEN);
  const frame: Uint8Array[] = [];
  let got = 0;
  for (const d of descs) {
    if (d.len === 0) continue;
    // BOUNDS: [addr, addr+len) checked by the queue's chain iterator; slice() checks again
    const v = mem.slice(d.addr, d.len);
    if (got < VIRTIO_NET_HDR_LEN) {
      const n = Math.min(VIRTIO_NET_HDR_LEN - got, v.length);
      header.set(v.subarray(0, n), got);
      got += n;
      if (n < v.length) frame.push(v.subarray(n));
    } else {
      frame.push(v);
    }
  }
  if (frame.length > MAX_FRAME_SEGMENTS) {
    throw new TooManySegments(`tx frame in ${frame.length} pieces: at most ${MAX_FRAME_SEGMENTS} fit one writev`);
  }
  const hdr = decodeNetHdr(header);
  checkHeader(hdr, frameLen, acked);
  return { header, hdr, frame, frameLen };
}

/** Driver requirements on a tx header (virtio 1.2 §5.1.6.2.1). */
function checkHeader(h: VirtioNetHdr, frameLen: number, acked: bigint): void {
  if (h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    // DATA_VALID and RSC_INFO are receive-only; nothing else is defined.
    throw new BadHeaderField(`tx header flags 0x${h.flags.toString(16)}: only NEEDS_CSUM (1) may be set`);
  }
  if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    if (!(acked & VIRTIO_NET_F_CSUM)) throw new OffloadNotNegotiated('NEEDS_CSUM without VIRTIO_NET_F_CSUM');
    if (h.csumStart + h.csumOffset + 2 > frameLen) {
      throw new BadHeaderField(
        `checksum at csum_start ${h.csumStart} + csum_offset ${h.csumOffset} lies outside the ${frameLen}-byte frame`,
      );
    }
  }
  if (h.gsoType === VIRTIO_NET_HDR_GSO_NONE) return;
  if (h.gsoType & VIRTIO_NET_HDR_GSO_ECN) throw new OffloadNotNegotiated('GSO_ECN without VIRTIO_NET_F_HOST_ECN');
  let need: bigint;
  switch (h.gsoType) {
    case VIRTIO_NET_HDR_GSO_TCPV4:
      need = VIRTIO_NET_F_HOST_TSO4;
      break;
    case VIRTIO_NET_HDR_GSO_TCPV6:
      need = VIRTIO_NET_F_HOST_TSO6;
      break;
    case VIRTIO_NET_HDR_GSO_UDP:
      need = VIRTIO_NET_F_HOST_UFO;
      break;
    default:
      throw new BadHeaderField(`unknown gso_type ${h.gsoType}`);
  }
  if (!(acked & need)) throw new OffloadNotNegotiated(`gso_type ${h.gsoType} without its HOST_* feature`);
  if (!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) throw new BadHeaderField('a GSO frame without NEEDS_CSUM');
  if (h.gsoSize === 0) throw new BadHeaderField('a GSO frame with gso_size 0');
}

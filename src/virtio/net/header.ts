// struct virtio_net_hdr_v1 (include/uapi/linux/virtio_net.h; virtio 1.2 §5.1.6): 12 bytes, little-endian.

import { VIRTIO_NET_HDR_LEN } from './features.js';

export interface VirtioNetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  numBuffers: number;
}

/** Decode the first 12 bytes of `b` (the caller checked its length). */
export function decodeNetHdr(b: Uint8Array): VirtioNetHdr {
  return {
    flags: b[0]!,
    gsoType: b[1]!,
    hdrLen: b[2]! | (b[3]! << 8),
    gsoSize: b[4]! | (b[5]! << 8),
    csumStart: b[6]! | (b[7]! << 8),
    csumOffset: b[8]! | (b[9]! << 8),
    numBuffers: b[10]! | (b[11]! << 8),
  };
}

export function encodeNetHdr(h: Partial<VirtioNetHdr> = {}): Uint8Array {
  const b = new Uint8Array(VIRTIO_NET_HDR_LEN);
  const put16 = (o: number, v: number): void => {
    b[o] = v & 0xff;
    b[o + 1] = (v >>> 8) & 0xff;
  };
  b[0] = h.flags ?? 0;
  b[1] = h.gsoType ?? 0;
  put16(2, h.hdrLen ?? 0);
  put16(4, h.gsoSize ?? 0);
  put16(6, h.csumStart ?? 0);
  put16(8, h.csumOffset ?? 0);
  put16(10, h.numBuffers ?? 0);
  return b;
}

// Receive buffers: rx chains the device has popped but not yet filled. A frame is read from the tap
// straight into their guest views (readv, no copy); with VIRTIO_NET_F_MRG_RXBUF one frame may span several
// chains and the header's num_buffers says how many (virtio 1.2 §5.1.6.4). Chains popped but not used by a
// frame stay here for the next one.

import type { GuestMemory } from '../../memory/guest-memory.js';
import { DeviceBroken } from '../device.js';
import type { SplitQueue } from '../queue.js';
import { NUM_BUFFERS_OFFSET, VIRTIO_NET_HDR_LEN } from './features.js';

/** An rx chain with a device-readable descriptor (virtio 1.2 §5.1.6.3: receive buffers are device-writable). */
export class RxChainNotWritable extends DeviceBroken {
  constructor(head: number) {
    super(`rx chain ${head} has a device-readable descriptor; receive buffers must be device-writable`);
    this.name = 'RxChainNotWritable';
  }
}
/** An rx chain smaller than the header (virtio 1.2 §5.1.6.3.1: each buffer holds at least virtio_net_hdr_v1). */
export class RxBufferTooSmall extends DeviceBroken {
  constructor(head: number, len: number) {
    super(`rx chain ${head} holds ${len} bytes, less than the ${VIRTIO_NET_HDR_LEN}-byte virtio_net_hdr_v1`);
    this.name = 'RxBufferTooSmall';
  }
}

/** readv() takes at most IOV_MAX (1024, Linux UIO_MAXIOV) iovecs. */
export const IOV_MAX = 1024;

interface RxChain {
  head: number;
  views: Uint8Array[];
  capacity: number;
}

export interface UsedBuffer {
  head: number;
  len: number;
}

export class RxBuffers {
  private pending: RxChain[] = [];
  private cap = 0;
  // The iovec list handed to the last readv(), and how many bytes of each chain it covered.
  private iov: Uint8Array[] = [];
  private covered: number[] = [];

  constructor(private readonly mem: GuestMemory) {}

  get chains(): number {
    return this.pending.length;
  }

  /** writable bytes over all pending chains */
  get capacity(): number {
    return this.cap;
  }

  /** Pop chains until `capacity >= target`, `maxChains` are pending, or the queue is empty. Throws DeviceBroken. */
  fill(q: SplitQueue, target: number, maxChains: number): void {
    while (this.cap < target && this.pending.length < maxChains) {
      const chain = q.pop();
      if (chain === undefined) return;
      const views: Uint8Array[] = [];
      let capacity = 0;
      for (const d of chain.descriptors()) {
        if (!d.writable) throw new RxChainNotWritable(chain.head);
        if (d.len === 0) continue;
        // BOUNDS: [addr, addr+len) checked by the queue's chain iterator; slice() checks again
        views.push(this.mem.slice(d.addr, d.len));
        capacity += d.len;
      }
      if (capacity < VIRTIO_NET_HDR_LEN) throw new RxBufferTooSmall(chain.head, capacity);
      this.pending.push({ head: chain.head, views, capacity });
      this.cap += capacity;
    }
  }

  /**
   * The guest views to read the next frame into: the first pending chain only, or (mergeable) as many pending
   * chains as needed to reach `limit` bytes, at most IOV_MAX views.
   */
  views(mergeable: boolean, limit: number): Uint8Array[] {
    this.iov = [];
    this.covered = [];
    let bytes = 0;
    const last = mergeable ? this.pending.length : Math.min(1, this.pending.length);
    for (let i = 0; i < last && bytes < limit; i++) {
      const c = this.pending[i]!;
      let cov = 0;
      for (const v of c.views) {
        if (this.iov.length === IOV_MAX) break;
        this.iov.push(v);
        cov += v.length;
      }
      this.covered.push(cov);
      bytes += cov;
      if (this.iov.length === IOV_MAX) break;
    }
    return this.iov;
  }

  /**
   * A frame of n bytes (header included, n >= 12) was read into the last views(): write num_buffers into its
   * header, drop the chains it used from the pending list and return them with their lengths.
   */
  consume(n: number): UsedBuffer[] {
    const used: UsedBuffer[] = [];
    let left = n;
    for (let i = 0; i < this.covered.length && left > 0; i++) {
      const len = Math.min(left, this.covered[i]!);
      used.push({ head: this.pending[i]!.head, len });
      left -= len;
    }
    // num_buffers (le16) at bytes 10..11 of the header, which lies in the first chain (its capacity >= 12).
    const k = used.length;
    putByte(this.pending[0]!.views, NUM_BUFFERS_OFFSET, k & 0xff);
    putByte(this.pending[0]!.views, NUM_BUFFERS_OFFSET + 1, k >>> 8);
    for (let i = 0; i < k; i++) this.cap -= this.pending[i]!.capacity;
    this.pending.splice(0, k);
    return used;
  }

  /** forget every pending chain (device reset) */
  clear(): void {
    this.pending = [];
    this.cap = 0;
    this.iov = [];
    this.covered = [];
  }
}

function putByte(views: readonly Uint8Array[], offset: number, value: number): void {
  let o = offset;
  for (const v of views) {
    if (o < v.length) {
      v[o] = value;
      return;
    }
    o -= v.length;
  }
}

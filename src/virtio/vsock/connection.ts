// One vsock stream connection between a host port and a guest port: its state, the credit accounting of
// virtio 1.2 §5.10.6.3 (net/vmw_vsock/virtio_transport_common.c) and the host bytes waiting for the guest.
// The muxer owns connections and decides what to send; this file holds the per-connection arithmetic.

import { VSOCK_BUF_ALLOC } from './host-protocol.js';
import { VSOCK_MAX_PKT_PAYLOAD, VSOCK_SHUTDOWN_RCV } from './packet.js';
import type { ByteSink } from '../queue.js';

/**
 * accepting:   the guest sent REQUEST to a host port; waiting for the host to accept (RESPONSE) or refuse (RST)
 * connecting:  the host asked to connect; REQUEST queued/sent to the guest, waiting for RESPONSE or RST
 * established: data flows both ways (each side may have half-closed)
 * closing:     we sent (or will send) SHUTDOWN both ways; waiting for the guest's RST or the close timeout
 */
export type ConnState = 'accepting' | 'connecting' | 'established' | 'closing';

/** Control packets a connection owes the guest (bit set). */
export const Pending = {
  REQUEST: 1,
  RESPONSE: 2,
  CREDIT_UPDATE: 4,
  SHUTDOWN: 8,
  RST: 16,
} as const;

// Counters are u32 and wrap (virtio_transport_common.c): `>>> 0` reduces mod 2^32 exactly for any integer below
// 2^53, in integer registers (a `%` by 2^32 would be a floating-point fmod on every packet).

/** Bytes waiting to go to the guest: a FIFO of chunks with a read offset into the first. */
export class ByteQueue {
  private chunks: Uint8Array[] = [];
  private head = 0; // index of the first live chunk
  private off = 0; // bytes of chunks[head] already taken
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.total += b.length;
  }

  /**
   * Copy up to n bytes into `sink` (straight from the queued chunks: the one copy of host data into guest
   * memory) and drop them from the queue.
   */
  writeTo(sink: ByteSink, n: number): void {
    let left = Math.min(n, this.total);
    while (left > 0) {
      const c = this.chunks[this.head]!;
      const avail = c.length - this.off;
      const k = Math.min(avail, left);
      // a view built from the buffer directly: cheaper than subarray()'s species lookup, once per packet
      sink.write(k === c.length ? c : new Uint8Array(c.buffer, c.byteOffset + this.off, k));
      left -= k;
      this.total -= k;
      if (k === avail) {
        this.chunks[this.head] = EMPTY;
        this.head++;
        this.off = 0;
      } else {
        this.off += k;
      }
    }
    this.compact();
  }

  /** Drop the consumed slots at the front once they are most of the array. */
  private compact(): void {
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  /** Drop everything; returns how many bytes were dropped. */
  clear(): number {
    const n = this.total;
    this.chunks = [];
    this.head = 0;
    this.off = 0;
    this.total = 0;
    return n;
  }
}
const EMPTY = new Uint8Array(0);

export class Connection {
  state: ConnState;
  /** Pending.* bits: control packets owed to the guest */
  pending = 0;

  // ---- host → guest (we are the sender; the guest's credit limits us) ----
  /** host bytes not yet in the guest's rx buffers */
  readonly toGuest = new ByteQueue();
  /** bytes we have sent the guest, mod 2^32 (tx_cnt in virtio_transport_common.c) */
  txCnt = 0;
  /** the guest's receive buffer and how much of it its reader has taken (from every header it sends) */
  peerBufAlloc = 0;
  peerFwdCnt = 0;
  /** bytes moved to the guest (or dropped) not yet acked to the host */
  unacked = 0;

  // ---- guest → host (we are the receiver; we grant the credit) ----
  /** our receive buffer, advertised as buf_alloc */
  readonly bufAlloc: number;
  /** bytes the host reader has taken, mod 2^32 (fwd_cnt) */
  fwdCnt = 0;
  /** the fwd_cnt we last told the guest */
  lastFwdCntSent = 0;
  /** bytes received from the guest that the host has not consumed yet */
  rxBytes = 0;

  // ---- shutdown ----
  /** VSOCK_SHUTDOWN_* flags the guest sent us */
  peerShutdown = 0;
  /** SHUTDOWN flags to send once queued host data is out (0 = none asked) */
  shutdownWanted = 0;
  /** SHUTDOWN flags already sent */
  shutdownSent = 0;
  /** the host closed: after the SHUTDOWN goes out, wait for the guest's RST (state closing) */
  closeRequested = false;
  /** the close timer, if armed */
  timer: ReturnType<typeof setTimeout> | undefined;

  // ---- muxer bookkeeping ----
  /** the muxer holds this connection (false once it is removed) */
  live = false;
  /** links of the muxer's ready list (muxer.ts ReadyList) */
  readyQueued = false;
  readyPrev: Connection | undefined;
  readyNext: Connection | undefined;
  /** in the muxer's list of connections to ack */
  ackQueued = false;

  constructor(
    readonly id: number,
    readonly hostPort: number,
    readonly guestPort: number,
    state: ConnState,
    bufAlloc = VSOCK_BUF_ALLOC,
  ) {
    this.state = state;
    this.bufAlloc = bufAlloc;
  }

  /** Record the guest's credit info; every packet carries it (virtio_transport_space_update()). */
  updatePeerCredit(bufAlloc: number, fwdCnt: number): void {
    this.peerBufAlloc = bufAlloc;
    this.peerFwdCnt = fwdCnt;
  }

  /**
   * Bytes the guest can take now: buf_alloc - (tx_cnt - peer_fwd_cnt), never negative
   * (virtio_transport_has_space(); u32 wrap-around arithmetic on the in-flight count).
   */
  peerCredit(): number {
    const inFlight = (this.txCnt - this.peerFwdCnt) >>> 0;
    const c = this.peerBufAlloc - inFlight;
    return c > 0 ? c : 0;
  }

  /** True when host data may go to the guest now (established, guest still reading, credit left). */
  canSendData(): boolean {
    return (
      this.state === 'established' &&
      this.toGuest.length > 0 &&
      (this.peerShutdown & VSOCK_SHUTDOWN_RCV) === 0 &&
      this.peerCredit() > 0
    );
  }

  /** Payload size for the next RW packet given `room` bytes of rx buffer after the header. */
  nextDataLen(room: number): number {
    return Math.min(this.toGuest.length, this.peerCredit(), room, VSOCK_MAX_PKT_PAYLOAD);
  }

  /** Account `n` payload bytes sent to the guest. */
  sent(n: number): void {
    this.txCnt = (this.txCnt + n) >>> 0;
    this.unacked += n;
  }

  /** The guest may send `len` more bytes without overrunning the buffer it was granted. */
  fitsOurBuffer(len: number): boolean {
    return this.rxBytes + len <= this.bufAlloc; // virtio_transport_inc_rx_pkt()
  }

  /** The host reader took n bytes: they leave our buffer and count in fwd_cnt. */
  consumed(n: number): void {
    const k = Math.min(n, this.rxBytes);
    this.rxBytes -= k;
    this.fwdCnt = (this.fwdCnt + k) >>> 0;
  }

  /** Credit the guest believes it has: buf_alloc - (its tx_cnt - the fwd_cnt we last told it). */
  guestVisibleCredit(): number {
    const unreported = (this.fwdCnt - this.lastFwdCntSent) >>> 0;
    return this.bufAlloc - (this.rxBytes + unreported);
  }

  /**
   * Whether a CREDIT_UPDATE is worth sending after consumption: the guest's view of our free space fell
   * below one maximum packet while we really have more (virtio_transport_notify_buffer_size/recvmsg logic).
   */
  creditUpdateWorthwhile(): boolean {
    if (this.fwdCnt === this.lastFwdCntSent) return false;
    const unreported = (this.fwdCnt - this.lastFwdCntSent) >>> 0;
    return this.guestVisibleCredit() < VSOCK_MAX_PKT_PAYLOAD || unreported >= this.bufAlloc / 2;
  }

  /** Something to send the guest right now (given a non-empty rx buffer)? */
  hasSendable(): boolean {
    if ((this.pending & ~Pending.SHUTDOWN) !== 0) return true;
    if (this.canSendData()) return true;
    return this.shutdownReady();
  }

  /** A SHUTDOWN is owed and every queued host byte is out (or the guest stopped reading). */
  shutdownReady(): boolean {
    if ((this.pending & Pending.SHUTDOWN) === 0 || this.state !== 'established') return false;
    return this.toGuest.length === 0 || (this.peerShutdown & VSOCK_SHUTDOWN_RCV) !== 0;
  }
}

// One vsock connection seen from the host, as a Node Duplex: host → guest writes are posted to the device
// a flow-control window at a time and wait for acks; guest → host bytes are pushed to the reader, whose
// progress goes back to the device as credit (host-protocol.ts). The VsockHost (host.ts) owns the streams.

import { Duplex } from 'node:stream';
import type { HostToDevice, VsockCloseReason } from '../vsock/host-protocol.js';
import { VsockConnectionReset } from './errors.js';

/** What a stream needs from the VsockHost that owns it. */
export interface VsockStreamOwner {
  /** send a message for this connection to the device */
  post(m: HostToDevice): void;
  /** the stream was destroyed: drop it */
  forget(id: number): void;
}

/** A vsock connection seen from the host. */
export class VsockStream extends Duplex {
  private inflight = 0;
  private waitingWrite: ((e?: Error | null) => void) | undefined;
  /** the part of the current write not yet posted to the device */
  private unsent: Uint8Array | undefined;
  private pushed = 0;
  private reported = 0;
  /** the device said the connection is gone */
  private gone = false;

  constructor(
    private readonly owner: VsockStreamOwner,
    /** connection id (host-protocol.ts) */
    readonly id: number,
    /** the host-side vsock port (CID 2) */
    readonly localPort: number,
    /** the guest's vsock port */
    readonly remotePort: number,
    private readonly window: number,
  ) {
    super({ allowHalfOpen: true });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.gone) {
      cb(new VsockConnectionReset('closed'));
      return;
    }
    if (chunk.length === 0) {
      cb();
      return;
    }
    // our own copy: the caller may reuse chunk after cb, and it is transferred
    this.unsent = new Uint8Array(chunk);
    this.waitingWrite = cb;
    this.pump();
  }

  /**
   * Post what the window allows of the chunk being written, a window-sized piece at a time; the rest waits for
   * acks (host-protocol.ts: host → guest flow control), so one large write never overruns the device's buffer.
   */
  private pump(): void {
    while (this.unsent !== undefined && this.inflight < this.window) {
      const n = Math.min(this.unsent.length, this.window - this.inflight);
      const data = n === this.unsent.length ? this.unsent : this.unsent.slice(0, n);
      this.unsent = n === this.unsent.length ? undefined : this.unsent.subarray(n);
      this.inflight += data.length;
      this.owner.post({ t: 'data', id: this.id, data });
    }
    if (this.unsent === undefined && this.inflight < this.window && this.waitingWrite !== undefined) {
      const w = this.waitingWrite;
      this.waitingWrite = undefined;
      w();
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (!this.gone) this.owner.post({ t: 'shutdown', id: this.id });
    cb();
  }

  override _read(): void {
    this.reportConsumed();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.gone) {
      this.gone = true;
      // orderly only when both directions finished; otherwise RST (like closing a socket with unread data)
      const orderly = err === null && this.writableFinished && this.readableEnded;
      this.owner.post({ t: 'close', id: this.id, abort: !orderly });
    }
    this.owner.forget(this.id);
    this.unsent = undefined;
    const w = this.waitingWrite;
    this.waitingWrite = undefined;
    w?.(err ?? new VsockConnectionReset('closed'));
    cb(err);
  }

  /** bytes from the guest */
  onData(d: Uint8Array): void {
    if (this.destroyed) return;
    this.pushed += d.length;
    this.push(d);
  }

  /** the guest took n of our bytes */
  onAcked(n: number): void {
    this.inflight -= n;
    this.pump();
  }

  onEof(): void {
    if (!this.destroyed) this.push(null);
  }

  onClosed(reason: VsockCloseReason): void {
    this.gone = true;
    if (this.destroyed) return;
    if (reason === 'closed') {
      // orderly: the reader still gets what is buffered, then EOF; our writes have nowhere to go
      this.push(null);
      this.unsent = undefined;
      const w = this.waitingWrite;
      this.waitingWrite = undefined;
      w?.();
      this.end();
    } else {
      this.destroy(new VsockConnectionReset(reason));
    }
  }

  /** Tell the device how much guest data our reader has taken (credit for the guest). */
  private reportConsumed(): void {
    if (this.gone) return;
    const consumed = this.pushed - this.readableLength;
    const n = consumed - this.reported;
    if (n > 0) {
      this.reported = consumed;
      this.owner.post({ t: 'consumed', id: this.id, n });
    }
  }
}

// Two connected in-memory Duplex streams: what one end writes the other reads; end() is EOF on the other side,
// destroy() closes both. Node 20 has no stream.duplexPair (22.6+). Used as a fake vsock connection.

import { Duplex } from 'node:stream';

class End extends Duplex {
  peer!: End;

  override _read(): void {
    // data arrives through the peer's _write
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(chunk);
    cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.destroy();
    cb(err);
  }
}

export function duplexPair(): [Duplex, Duplex] {
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

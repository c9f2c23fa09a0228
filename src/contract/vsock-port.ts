// The host side of a guest's vsock device as its users see it: byte streams to and from guest ports. The
// in-process VMM, a vhost-user backend and the qemu backend all offer it; the agent client and the runtime
// use nothing else of vsock.

import type { Duplex } from 'node:stream';

export interface VsockConnectOptions {
  /** give up when the guest neither accepts nor refuses within this time */
  timeoutMs?: number;
}

export interface VsockPort {
  /** Connect to a port the guest listens on; rejects when the guest refuses (RST) or does not answer. */
  connect(port: number, opts?: VsockConnectOptions): Promise<Duplex>;
  /** Accept guest connections to a host port; returns a function that stops listening. */
  listen(port: number, onConnection: (s: Duplex) => void): () => void;
  /** Reset every connection and stop listening. */
  close(): void;
}

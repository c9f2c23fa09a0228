// The host side of virtio-vsock, in the VM owner's (main) thread: connections to and from the guest as
// Node Duplex streams (DESIGN decision 7). It talks to the device worker over a MessagePort using the
// protocol in ../vsock/host-protocol.ts; InProcessVsockHost runs the same code against a device in this
// thread. The device worker never imports this folder.
//
//   const { host, workerPort } = createVsockChannel();     // workerPort → device worker (DeviceContext.hostPort)
//   const s = await host.connect(1024);                     // host → guest port 1024
//   const stop = host.listen(5000, (s) => s.pipe(s));       // guest → host port 5000

import type { Duplex } from 'node:stream';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { VsockConnectOptions, VsockPort } from '../../contract/vsock-port.js';
import { linkVsockBackend, type VsockBackend } from '../vsock/backend.js';
import {
  VSOCK_HOST_WINDOW,
  inThreadLinkPair,
  portLink,
  type DeviceToHost,
  type HostToDevice,
  type VsockLink,
} from '../vsock/host-protocol.js';
import { VsockConnectError } from './errors.js';
import { VsockStream, type VsockStreamOwner } from './stream.js';

export interface VsockHostOptions {
  /** connect() gives up after this long (ms; 0 = wait forever). Default 5000. */
  connectTimeoutMs?: number;
  /** host → guest bytes in flight per connection before writes wait (default VSOCK_HOST_WINDOW) */
  window?: number;
}

interface PendingConnect {
  port: number;
  resolve: (s: VsockStream) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Decides what to do with a guest connection to a port nobody listens on (hybrid vsock uses it). */
export type UnclaimedHandler = (port: number, peerPort: number) => Promise<((s: VsockStream) => void) | undefined>;

type HostLink = VsockLink<HostToDevice, DeviceToHost>;

function isMessagePort(x: MessagePort | HostLink): x is MessagePort {
  return typeof (x as MessagePort).postMessage === 'function';
}

export class VsockHost implements VsockPort, VsockStreamOwner {
  private readonly link: HostLink;
  private readonly streams = new Map<number, VsockStream>();
  private readonly connects = new Map<number, PendingConnect>();
  private readonly listeners = new Map<number, (s: VsockStream) => void>();
  /** guest connections waiting for the unclaimed handler */
  private readonly undecided = new Set<number>();
  private unclaimed: UnclaimedHandler | undefined;
  private nextId = 1; // odd ids: host-initiated (host-protocol.ts)
  private closed = false;
  private readonly connectTimeoutMs: number;
  private readonly window: number;

  constructor(channel: MessagePort | HostLink, opts: VsockHostOptions = {}) {
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.window = opts.window ?? VSOCK_HOST_WINDOW;
    if (isMessagePort(channel)) {
      this.link = portLink<HostToDevice, DeviceToHost>(channel);
      this.link.onMessage((m) => this.onMessage(m));
      channel.unref(); // vsock alone does not keep the process alive
    } else {
      this.link = channel;
      this.link.onMessage((m) => this.onMessage(m));
    }
  }

  /** Open a connection to guest port `port` (a guest process listening on AF_VSOCK). */
  connect(port: number, opts: VsockConnectOptions = {}): Promise<VsockStream> {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff_ffff) {
      return Promise.reject(new RangeError(`vsock port ${String(port)} must be an integer from 0 to 4294967295`));
    }
    if (this.closed) return Promise.reject(new VsockConnectError(port, 'host-closed'));
    const id = this.nextId;
    this.nextId += 2;
    return new Promise<VsockStream>((resolve, reject) => {
      const ms = opts.timeoutMs ?? this.connectTimeoutMs;
      const p: PendingConnect = { port, resolve, reject, timer: undefined };
      if (ms > 0) {
        p.timer = setTimeout(() => {
          if (this.connects.delete(id)) {
            this.post({ t: 'close', id, abort: true });
            reject(new VsockConnectError(port, 'timeout'));
          }
        }, ms);
      }
      this.connects.set(id, p);
      this.post({ t: 'connect', id, port });
    });
  }

  /** Accept guest connections to host port `port`. Returns a function that stops listening. */
  listen(port: number, onConnection: (s: Duplex) => void): () => void {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff_ffff) {
      throw new RangeError(`vsock port ${String(port)} must be an integer from 0 to 4294967295`);
    }
    if (this.listeners.has(port)) throw new Error(`vsock host port ${String(port)} already has a listener: stop it first`);
    this.listeners.set(port, onConnection);
    return () => {
      if (this.listeners.get(port) === onConnection) this.listeners.delete(port);
    };
  }

  /** Route guest connections to ports without a listener (set once; used by serveHybridVsock). */
  onUnclaimed(handler: UnclaimedHandler | undefined): void {
    this.unclaimed = handler;
  }

  /** Reset every connection and stop talking to the device. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.connects) {
      if (p.timer !== undefined) clearTimeout(p.timer);
      this.link.post({ t: 'close', id, abort: true });
      p.reject(new VsockConnectError(p.port, 'host-closed'));
    }
    this.connects.clear();
    // destroyed without an error (like a socket torn down by its owner): no unhandled 'error' events
    for (const s of [...this.streams.values()]) s.destroy();
    this.link.close();
  }

  /** Open connections (for tests and metrics). */
  get connectionCount(): number {
    return this.streams.size;
  }

  /** @internal used by VsockStream */
  post(m: HostToDevice): void {
    if (!this.closed) this.link.post(m);
  }

  /** @internal a stream was destroyed */
  forget(id: number): void {
    this.streams.delete(id);
  }

  private onMessage(m: DeviceToHost): void {
    switch (m.t) {
      case 'incoming':
        this.onIncoming(m.id, m.port, m.peerPort);
        return;
      case 'connected': {
        const p = this.connects.get(m.id);
        if (p === undefined) return; // timed out meanwhile: close was sent
        this.connects.delete(m.id);
        if (p.timer !== undefined) clearTimeout(p.timer);
        const s = new VsockStream(this, m.id, m.localPort, p.port, this.window);
        this.streams.set(m.id, s);
        p.resolve(s);
        return;
      }
      case 'data':
        this.streams.get(m.id)?.onData(m.data);
        return;
      case 'acked':
        this.streams.get(m.id)?.onAcked(m.n);
        return;
      case 'eof':
        this.streams.get(m.id)?.onEof();
        return;
      case 'closed': {
        this.undecided.delete(m.id);
        const p = this.connects.get(m.id);
        if (p !== undefined) {
          this.connects.delete(m.id);
          if (p.timer !== undefined) clearTimeout(p.timer);
          p.reject(new VsockConnectError(p.port, m.reason));
          return;
        }
        const s = this.streams.get(m.id);
        this.streams.delete(m.id);
        s?.onClosed(m.reason);
        return;
      }
    }
  }

  private onIncoming(id: number, port: number, peerPort: number): void {
    const l = this.listeners.get(port);
    if (l !== undefined) {
      this.accept(id, port, peerPort, l);
      return;
    }
    const u = this.unclaimed;
    if (u === undefined) {
      this.post({ t: 'refuse', id });
      return;
    }
    this.undecided.add(id);
    u(port, peerPort).then(
      (handler) => {
        if (!this.undecided.delete(id)) return; // the guest gave up meanwhile
        if (handler === undefined) this.post({ t: 'refuse', id });
        else this.accept(id, port, peerPort, handler);
      },
      () => {
        if (this.undecided.delete(id)) this.post({ t: 'refuse', id });
      },
    );
  }

  private accept(id: number, port: number, peerPort: number, handler: (s: VsockStream) => void): void {
    const s = new VsockStream(this, id, port, peerPort, this.window);
    this.streams.set(id, s);
    this.post({ t: 'accept', id });
    handler(s);
  }
}

/** A VsockHost wired to a device in the same thread (tests, tools): give `backend` to the VsockDevice. */
export class InProcessVsockHost extends VsockHost {
  readonly backend: VsockBackend;
  constructor(opts: VsockHostOptions = {}) {
    const pair = inThreadLinkPair();
    super(pair.host, opts);
    this.backend = linkVsockBackend(pair.device);
  }
}

/** A MessageChannel for a device worker: keep `host` here, transfer `workerPort` to the worker. */
export function createVsockChannel(opts: VsockHostOptions = {}): { host: VsockHost; workerPort: MessagePort } {
  const ch = new MessageChannel();
  return { host: new VsockHost(ch.port1, opts), workerPort: ch.port2 };
}

// ttRPC client over any Duplex: unary calls on odd stream ids (containerd/ttrpc client.go), with per-call
// timeouts (also sent as timeout_nano), AbortSignal cancellation and PeerGone once the connection is gone.
import type { Duplex } from 'node:stream';
import { Code } from './grpc-codes.js';
import { CallCancelled, CallTimeout, MalformedMessage, OversizeFrame, PeerGone, TruncatedFrame, TtrpcStatusError, WrongStreamId } from './ttrpc-errors.js';
import { FrameDecoder, MessageType, TTRPC_MAX_STREAM_ID, encodeFrame, type Frame } from './ttrpc-frame.js';
import { decodeResponse, encodeRequest, type KeyValue } from './ttrpc-messages.js';

export interface CallOptions {
  /** Milliseconds to wait for the response; overrides the client default; 0 or Infinity = wait forever. */
  timeoutMs?: number;
  signal?: AbortSignal;
  metadata?: Record<string, string | string[]>;
}

export interface TtrpcClientOptions {
  /** Default per-call timeout in ms (default 30 000); 0 or Infinity = none. */
  timeoutMs?: number;
  /** Protocol violations by the server (responses nobody waits for, unknown types, truncation). */
  onProtocolError?: (error: Error) => void;
}

interface Waiter {
  service: string;
  method: string;
  resolve: (payload: Uint8Array) => void;
  reject: (e: Error) => void;
}

export class TtrpcClient {
  private nextStreamId = 1;
  private readonly waiters = new Map<number, Waiter>();
  /** Streams whose caller gave up (timeout/cancel): their late responses are dropped quietly. */
  private readonly abandoned = new Set<number>();
  private readonly decoder = new FrameDecoder();
  private gone: PeerGone | undefined;
  private readonly defaultTimeoutMs: number;

  constructor(private readonly conn: Duplex, private readonly options: TtrpcClientOptions = {}) {
    this.defaultTimeoutMs = options.timeoutMs ?? 30_000;
    if (conn.destroyed) this.gone = new PeerGone('connection was already closed');
    conn.on('data', (chunk: Buffer) => this.onData(chunk));
    conn.on('end', () => {
      try {
        this.decoder.end();
      } catch (e) {
        if (e instanceof TruncatedFrame) this.protocolError(e);
      }
      this.fail(new PeerGone('the peer closed the connection'));
    });
    conn.on('error', (e: Error) => this.fail(new PeerGone(`connection error: ${e.message}`)));
    conn.on('close', () => this.fail(new PeerGone('connection closed')));
  }

  /** True once the connection is unusable; every later call rejects with PeerGone. */
  get closed(): boolean {
    return this.gone !== undefined;
  }

  /** Calls `service`/`method` with an encoded request; resolves with the encoded response payload. */
  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.gone) return Promise.reject(this.gone);
    if (opts.signal?.aborted) return Promise.reject(new CallCancelled(service, method, opts.signal.reason));
    if (this.nextStreamId > TTRPC_MAX_STREAM_ID) return Promise.reject(new PeerGone('stream ids exhausted; open a new connection'));
    const streamId = this.nextStreamId;
    this.nextStreamId += 2; // containerd/ttrpc client.go: odd, client-initiated ids
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    const hasTimeout = timeoutMs > 0 && Number.isFinite(timeoutMs);
    const metadata: KeyValue[] = [];
    for (const [key, v] of Object.entries(opts.metadata ?? {})) for (const value of Array.isArray(v) ? v : [v]) metadata.push({ key, value });
    let frame: Buffer;
    try {
      const req = encodeRequest({ service, method, payload, timeout_nano: hasTimeout ? Math.round(timeoutMs * 1e6) : 0, metadata });
      frame = encodeFrame(streamId, MessageType.Request, req);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => giveUp(new CallCancelled(service, method, opts.signal?.reason));
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(streamId);
      };
      const giveUp = (e: Error): void => {
        if (!this.waiters.has(streamId)) return;
        cleanup();
        this.abandoned.add(streamId);
        reject(e);
      };
      this.waiters.set(streamId, {
        service,
        method,
        resolve: (p) => {
          cleanup();
          resolve(p);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      });
      if (hasTimeout) timer = setTimeout(() => giveUp(new CallTimeout(service, method, timeoutMs)), Math.min(timeoutMs, 2 ** 31 - 1));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.conn.write(frame, (err) => {
        if (err) this.fail(new PeerGone(`write failed: ${err.message}`));
      });
    });
  }

  /** Closes the connection; pending calls reject with PeerGone. */
  close(): void {
    this.fail(new PeerGone('client closed'));
    this.conn.destroy();
  }

  private onData(chunk: Buffer): void {
    for (const ev of this.decoder.push(chunk)) {
      if (ev.kind === 'frame') this.onFrame(ev.frame);
      else {
        const w = this.waiters.get(ev.streamId);
        if (w && ev.error instanceof OversizeFrame) w.reject(ev.error);
        else this.protocolError(ev.error);
      }
    }
  }

  private onFrame(frame: Frame): void {
    if (frame.type !== MessageType.Response) {
      this.protocolError(new WrongStreamId(frame.streamId, `client got a message of type ${frame.type}, expected a response`));
      return;
    }
    const w = this.waiters.get(frame.streamId);
    if (!w) {
      if (!this.abandoned.delete(frame.streamId)) this.protocolError(new WrongStreamId(frame.streamId, 'response for a call that was never made'));
      return;
    }
    let resp;
    try {
      resp = decodeResponse(frame.payload);
    } catch (e) {
      w.reject(e instanceof MalformedMessage ? e : new MalformedMessage('ttrpc.Response', e));
      return;
    }
    if (resp.status && resp.status.code !== Code.OK) w.reject(new TtrpcStatusError(resp.status.code, resp.status.message, w.service, w.method));
    else w.resolve(resp.payload);
  }

  private fail(e: PeerGone): void {
    if (!this.gone) this.gone = e;
    for (const w of [...this.waiters.values()]) w.reject(e);
    this.waiters.clear();
  }

  private protocolError(e: Error): void {
    this.options.onProtocolError?.(e);
  }
}

// ttRPC server over any Duplex (a vsock stream, a unix socket): unary calls only, as containerd/ttrpc 1.1
// serves them. The guest-facing agent client does not use it; the containerd shim v2 and the tests do.
import type { Duplex } from 'node:stream';
import { Code } from './grpc-codes.js';
import { MalformedMessage, OversizeFrame, PeerGone, TruncatedFrame, TtrpcStatusError, WrongStreamId } from './ttrpc-errors.js';
import { FrameDecoder, MessageType, encodeFrame, type Frame } from './ttrpc-frame.js';
import { decodeRequest, encodeResponse, type RpcStatus } from './ttrpc-messages.js';

export interface CallContext {
  service: string;
  method: string;
  streamId: number;
  /** Request metadata, values grouped by key (ttrpc metadata.go MD). */
  metadata: Map<string, string[]>;
  /** Milliseconds the client allowed (timeout_nano / 1e6), or undefined for no deadline. */
  timeoutMs: number | undefined;
  /** Fires at the deadline or when the connection goes away. */
  signal: AbortSignal;
}

/** Answers one call: return the response payload, or throw TtrpcStatusError for a specific status code. */
export type UnaryHandler = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array> | Uint8Array;

export interface TtrpcServerOptions {
  /** Protocol violations by a client (bad stream id, unknown type, oversize, truncated); default: ignored. */
  onProtocolError?: (error: Error) => void;
  /** A handler threw something that is not a TtrpcStatusError (answered as INTERNAL); default: ignored. */
  onHandlerError?: (error: unknown, ctx: CallContext) => void;
}

export interface ServerConnection {
  /** Resolves when the connection has closed and every in-flight call was aborted. */
  readonly closed: Promise<void>;
  close(): void;
}

export class TtrpcServer {
  private readonly services = new Map<string, Map<string, UnaryHandler>>();

  constructor(private readonly options: TtrpcServerOptions = {}) {}

  register(service: string, methods: Record<string, UnaryHandler>): void {
    if (this.services.has(service)) throw new Error(`ttRPC service ${service} is already registered`);
    this.services.set(service, new Map(Object.entries(methods)));
  }

  /** Serves calls arriving on `conn` until it closes. */
  serve(conn: Duplex): ServerConnection {
    const decoder = new FrameDecoder();
    const inflight = new Map<number, AbortController>();
    let open = true;
    let resolveClosed!: () => void;
    const closed = new Promise<void>((r) => (resolveClosed = r));
    const protocolError = (e: Error): void => this.options.onProtocolError?.(e);

    const send = (streamId: number, status: RpcStatus | null, payload: Uint8Array = new Uint8Array(0)): void => {
      if (!open || conn.destroyed) return;
      let bytes: Uint8Array;
      try {
        bytes = encodeResponse({ status, payload });
        conn.write(encodeFrame(streamId, MessageType.Response, bytes));
      } catch (e) {
        // A handler's payload over 4 MiB: tell the client instead (containerd answers ResourceExhausted).
        if (e instanceof OversizeFrame) conn.write(encodeFrame(streamId, MessageType.Response, encodeResponse({ status: { code: Code.RESOURCE_EXHAUSTED, message: e.message }, payload: new Uint8Array(0) })));
        else throw e;
      }
    };

    const shutdown = (): void => {
      if (!open) return;
      open = false;
      for (const ac of inflight.values()) ac.abort(new PeerGone('connection closed'));
      inflight.clear();
      resolveClosed();
    };

    const onFrame = (frame: Frame): void => {
      if (frame.type !== MessageType.Request) {
        // containerd/ttrpc server.go: non-request frames are ignored "for future compat".
        protocolError(new WrongStreamId(frame.streamId, `server got a message of type ${frame.type}, expected a request`));
        return;
      }
      let req;
      try {
        req = decodeRequest(frame.payload);
      } catch (e) {
        const err = e instanceof MalformedMessage ? e : new MalformedMessage('ttrpc.Request', e);
        protocolError(err);
        send(frame.streamId, { code: Code.INVALID_ARGUMENT, message: `unmarshal request error: ${err.message}` });
        return;
      }
      // containerd/ttrpc server.go: "StreamID must be odd for client initiated streams".
      if (frame.streamId % 2 !== 1) {
        protocolError(new WrongStreamId(frame.streamId, 'client-initiated stream ids must be odd'));
        send(frame.streamId, { code: Code.INVALID_ARGUMENT, message: 'StreamID must be odd for client initiated streams' });
        return;
      }
      if (inflight.has(frame.streamId)) {
        protocolError(new WrongStreamId(frame.streamId, 'a call on this stream is still in flight'));
        send(frame.streamId, { code: Code.INVALID_ARGUMENT, message: `stream ${frame.streamId} is already in use` });
        return;
      }
      const handler = this.services.get(req.service)?.get(req.method);
      if (!handler) {
        const what = this.services.has(req.service) ? `method ${req.method}` : `service ${req.service}`;
        send(frame.streamId, { code: Code.UNIMPLEMENTED, message: what });
        return;
      }
      const metadata = new Map<string, string[]>();
      for (const kv of req.metadata) metadata.set(kv.key, [...(metadata.get(kv.key) ?? []), kv.value]);
      const ac = new AbortController();
      inflight.set(frame.streamId, ac);
      const timeoutMs = req.timeout_nano > 0 ? req.timeout_nano / 1e6 : undefined;
      const ctx: CallContext = { service: req.service, method: req.method, streamId: frame.streamId, metadata, timeoutMs, signal: ac.signal };
      let done = false;
      const finish = (status: RpcStatus | null, payload?: Uint8Array): void => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        if (inflight.get(frame.streamId) === ac) inflight.delete(frame.streamId);
        send(frame.streamId, status, payload);
      };
      const timer =
        timeoutMs !== undefined
          ? setTimeout(() => {
              ac.abort(new TtrpcStatusError(Code.DEADLINE_EXCEEDED, 'deadline exceeded'));
              finish({ code: Code.DEADLINE_EXCEEDED, message: `${req.service}/${req.method}: deadline of ${timeoutMs} ms exceeded` });
            }, Math.min(timeoutMs, 2 ** 31 - 1))
          : undefined;
      Promise.resolve()
        .then(() => handler(req.payload, ctx))
        .then(
          (payload) => finish(null, payload),
          (e: unknown) => {
            if (e instanceof TtrpcStatusError) return finish({ code: e.code, message: e.details });
            this.options.onHandlerError?.(e, ctx);
            finish({ code: Code.INTERNAL, message: e instanceof Error ? e.message : String(e) });
          },
        );
    };

    conn.on('data', (chunk: Buffer) => {
      if (!open) return;
      for (const ev of decoder.push(chunk)) {
        if (ev.kind === 'frame') onFrame(ev.frame);
        else {
          protocolError(ev.error);
          // containerd/ttrpc channel.go: an oversize message is answered with ResourceExhausted; a frame of
          // unknown type (UnknownMessageType, the only other decoder error) is dropped once reported.
          if (ev.error instanceof OversizeFrame) send(ev.streamId, { code: Code.RESOURCE_EXHAUSTED, message: ev.error.message });
        }
      }
    });
    conn.on('end', () => {
      try {
        decoder.end();
      } catch (e) {
        if (e instanceof TruncatedFrame) protocolError(e);
      }
      // Our write side follows the Duplex's allowHalfOpen: net sockets end it; in-flight answers may be lost.
    });
    conn.on('error', (e: Error) => protocolError(new PeerGone(e.message)));
    conn.on('close', shutdown);

    return {
      closed,
      close: () => {
        shutdown();
        conn.destroy();
      },
    };
  }
}

// Named errors of the ttRPC codec, client and server (src/agent/ttrpc.proto describes the wire).
import { codeName } from './grpc-codes.js';

export class TtrpcError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A frame header announced more than 4 MiB (containerd/ttrpc channel.go messageLengthMax). */
export class OversizeFrame extends TtrpcError {
  constructor(readonly length: number, readonly max: number, readonly streamId: number) {
    super(`ttRPC frame on stream ${streamId} is ${length} bytes, over the ${max}-byte limit; the peer must split or shrink the message`);
  }
}

/** The connection ended inside a frame (header or payload incomplete). */
export class TruncatedFrame extends TtrpcError {
  constructor(readonly have: number, readonly need: number) {
    super(`ttRPC connection ended inside a frame: ${have} of ${need} bytes received; the peer closed or crashed mid-message`);
  }
}

/** The header's type byte is not 1 (request), 2 (response) or 3 (data). */
export class UnknownMessageType extends TtrpcError {
  constructor(readonly type: number, readonly streamId: number) {
    super(`ttRPC frame on stream ${streamId} has unknown message type ${type} (expected 1 request, 2 response or 3 data)`);
  }
}

/** A stream id that breaks the rules: even/zero for a client request, or a response nobody waits for. */
export class WrongStreamId extends TtrpcError {
  constructor(readonly streamId: number, reason: string) {
    super(`ttRPC stream id ${streamId}: ${reason}`);
  }
}

/** A frame's payload is not a valid protobuf message of the expected type. */
export class MalformedMessage extends TtrpcError {
  constructor(readonly what: string, cause: unknown) {
    super(`malformed ${what}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/** The peer answered with a non-OK google.rpc.Status. */
export class TtrpcStatusError extends TtrpcError {
  readonly codeName: string;
  constructor(readonly code: number, readonly details: string, readonly service = '', readonly method = '') {
    super(`${service ? `${service}/${method}: ` : ''}${codeName(code)} (${code}): ${details}`);
    this.codeName = codeName(code);
  }
}

/** No response within the call's timeout. */
export class CallTimeout extends TtrpcError {
  constructor(readonly service: string, readonly method: string, readonly timeoutMs: number) {
    super(`ttRPC call ${service}/${method} got no response within ${timeoutMs} ms; the peer may be hung or overloaded`);
  }
}

/** ": why" for a CallCancelled message, from the AbortSignal's reason (by default a DOMException, an Error). */
function abortReasonText(reason: unknown): string {
  if (reason === undefined) return '';
  if (reason instanceof Error) return `: ${reason.message}`;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a caller's own non-Error reason, printed as JS prints it
  return `: ${String(reason)}`;
}

/** The caller's AbortSignal fired before the response arrived. */
export class CallCancelled extends TtrpcError {
  constructor(readonly service: string, readonly method: string, reason: unknown) {
    super(`ttRPC call ${service}/${method} was cancelled${abortReasonText(reason)}`);
  }
}

/** The connection is closed (by the peer, by an error, or by close()); the call cannot complete. */
export class PeerGone extends TtrpcError {
  constructor(readonly reason: string) {
    super(`ttRPC peer is gone (${reason}); reconnect, or check whether the agent/VM is still running`);
  }
}

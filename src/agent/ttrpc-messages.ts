// ttRPC Request/Response payloads (containerd/ttrpc types.go; src/agent/ttrpc.proto).
import { MessageCodec } from './proto-codec.js';

export interface KeyValue {
  key: string;
  value: string;
}

export interface TtrpcRequest {
  service: string;
  method: string;
  payload: Uint8Array;
  /** Nanoseconds the server may spend; 0 = no deadline. */
  timeout_nano: number;
  metadata: KeyValue[];
}

export interface RpcStatus {
  code: number;
  message: string;
}

export interface TtrpcResponse {
  /** Absent or code 0: OK. */
  status: RpcStatus | null;
  payload: Uint8Array;
}

let requestCodec: MessageCodec<TtrpcRequest> | undefined;
let responseCodec: MessageCodec<TtrpcResponse> | undefined;

export function ttrpcRequestCodec(): MessageCodec<TtrpcRequest> {
  return (requestCodec ??= new MessageCodec<TtrpcRequest>('ttrpc.proto', 'ttrpc.Request'));
}

export function ttrpcResponseCodec(): MessageCodec<TtrpcResponse> {
  return (responseCodec ??= new MessageCodec<TtrpcResponse>('ttrpc.proto', 'ttrpc.Response'));
}

export function encodeRequest(r: TtrpcRequest): Uint8Array {
  return ttrpcRequestCodec().encode(r);
}

export function decodeRequest(bytes: Uint8Array): TtrpcRequest {
  return ttrpcRequestCodec().decode(bytes);
}

export function encodeResponse(r: TtrpcResponse): Uint8Array {
  // A null status is left out on the wire (containerd sends none for OK).
  return ttrpcResponseCodec().encode(r.status && r.status.code !== 0 ? r : { status: null, payload: r.payload });
}

export function decodeResponse(bytes: Uint8Array): TtrpcResponse {
  return ttrpcResponseCodec().decode(bytes);
}

// ttRPC (containerd/ttrpc) for kata-ts: framing, wire messages, client and server. See ttrpc.proto.
export { Code, codeName, type CodeName } from './grpc-codes.js';
export * from './ttrpc-errors.js';
export { FrameDecoder, MessageType, TTRPC_HEADER_LENGTH, TTRPC_MAX_MESSAGE, TTRPC_MAX_STREAM_ID, encodeFrame, isMessageType, type Frame, type FrameEvent, type MessageTypeValue } from './ttrpc-frame.js';
export { decodeRequest, decodeResponse, encodeRequest, encodeResponse, type KeyValue, type RpcStatus, type TtrpcRequest, type TtrpcResponse } from './ttrpc-messages.js';
export { TtrpcClient, type CallOptions, type TtrpcClientOptions } from './ttrpc-client.js';
export { TtrpcServer, type CallContext, type ServerConnection, type TtrpcServerOptions, type UnaryHandler } from './ttrpc-server.js';

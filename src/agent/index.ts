// The agent package: agent.proto client, stdio binding, and the ttRPC codec it rides on.
export * from './agent-types.js';
export { agentCodecs } from './agent-codecs.js';
export { AgentClient, type AgentCallOptions } from './client.js';
export { BadStdioPrefix, STDIO_PREFIX_MAX, StdioBindRefused, bindStdioStream, encodeLengthPrefixed, readLengthPrefixed, readStdioHeader, writeStdioAck } from './stdio.js';
export { MessageCodec } from './proto-codec.js';
export { protoPath, protoRoot, ProtoFileMissing, type ProtoFileName } from './proto-files.js';
export * from './ttrpc.js';

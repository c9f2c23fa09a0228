// A typed encode/decode pair for one protobuf message type, on protobufjs reflection.
import type protobuf from 'protobufjs';
import { MalformedMessage } from './ttrpc-errors.js';
import { protoRoot, type ProtoFileName } from './proto-files.js';

export class MessageCodec<T extends object> {
  private readonly type: protobuf.Type;

  constructor(file: ProtoFileName, readonly fullName: string) {
    this.type = protoRoot(file).lookupType(fullName);
  }

  /** Encodes `value`; unset fields take proto3 defaults. Throws MalformedMessage for values of the wrong shape. */
  encode(value: T): Uint8Array {
    const problem = this.type.verify(value);
    if (problem) throw new MalformedMessage(`${this.fullName} to send`, problem);
    return this.type.encode(this.type.fromObject(value)).finish();
  }

  /** Decodes bytes from the peer; every field present with its default; 64-bit numbers as JS numbers. */
  decode(bytes: Uint8Array): T {
    let message: protobuf.Message;
    try {
      message = this.type.decode(bytes);
    } catch (e) {
      throw new MalformedMessage(this.fullName, e);
    }
    return this.type.toObject(message, { defaults: true, arrays: true, longs: Number, enums: Number }) as T;
  }
}

// ttRPC framing (containerd/ttrpc channel.go): a 10-byte big-endian header, then the payload.
//   [0..4) length u32 · [4..8) stream id u32 · [8] type u8 · [9] flags u8
import { OversizeFrame, TruncatedFrame, UnknownMessageType } from './ttrpc-errors.js';

export const TTRPC_HEADER_LENGTH = 10;
/** containerd/ttrpc channel.go: messageLengthMax = 4 << 20. */
export const TTRPC_MAX_MESSAGE = 4 << 20;
export const TTRPC_MAX_STREAM_ID = 0xffff_ffff;

export const MessageType = {
  Request: 1,
  Response: 2,
  /** ttrpc >= 1.2 streaming; decoded, never sent by kata-ts. */
  Data: 3,
} as const;
export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType];

export interface Frame {
  streamId: number;
  type: MessageTypeValue;
  flags: number;
  payload: Buffer;
}

/** One decoder result: a whole frame, or a per-frame error after which the stream stays in sync. */
export type FrameEvent =
  | { kind: 'frame'; frame: Frame }
  | { kind: 'error'; error: OversizeFrame | UnknownMessageType; streamId: number };

export function isMessageType(t: number): t is MessageTypeValue {
  return t === MessageType.Request || t === MessageType.Response || t === MessageType.Data;
}

/** Header + payload in one buffer. Throws OversizeFrame over 4 MiB and RangeError for ids/flags out of range. */
export function encodeFrame(streamId: number, type: MessageTypeValue, payload: Uint8Array, flags = 0): Buffer {
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > TTRPC_MAX_STREAM_ID) throw new RangeError(`ttRPC stream id ${streamId} is not a u32`);
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xff) throw new RangeError(`ttRPC flags ${flags} is not a u8`);
  if (payload.length > TTRPC_MAX_MESSAGE) throw new OversizeFrame(payload.length, TTRPC_MAX_MESSAGE, streamId);
  const out = Buffer.allocUnsafe(TTRPC_HEADER_LENGTH + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(streamId, 4);
  out.writeUInt8(type, 8);
  out.writeUInt8(flags, 9);
  out.set(payload, TTRPC_HEADER_LENGTH);
  return out;
}

/**
 * Streaming decoder: push() chunks as they arrive, get whole frames back. An oversize frame's payload is
 * skipped without buffering (as containerd's channel.recv discards it) and reported; an unknown type is
 * reported after its payload; both keep the stream in sync. end() throws TruncatedFrame mid-frame.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private discard = 0;

  constructor(private readonly maxMessage = TTRPC_MAX_MESSAGE) {}

  push(chunk: Buffer): FrameEvent[] {
    const events: FrameEvent[] = [];
    if (this.discard > 0) {
      const skip = Math.min(this.discard, chunk.length);
      this.discard -= skip;
      chunk = chunk.subarray(skip);
    }
    if (chunk.length) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.discard > 0 || this.buffered < TTRPC_HEADER_LENGTH) break;
      const head = this.peek(TTRPC_HEADER_LENGTH);
      const length = head.readUInt32BE(0);
      const streamId = head.readUInt32BE(4);
      const type = head.readUInt8(8);
      const flags = head.readUInt8(9);
      if (length > this.maxMessage) {
        // containerd/ttrpc channel.go recv: discard the oversized payload, report ResourceExhausted.
        this.take(TTRPC_HEADER_LENGTH);
        const skip = Math.min(length, this.buffered);
        this.take(skip);
        this.discard = length - skip;
        events.push({ kind: 'error', error: new OversizeFrame(length, this.maxMessage, streamId), streamId });
        continue;
      }
      if (this.buffered < TTRPC_HEADER_LENGTH + length) break;
      this.take(TTRPC_HEADER_LENGTH);
      const payload = this.take(length);
      if (!isMessageType(type)) {
        events.push({ kind: 'error', error: new UnknownMessageType(type, streamId), streamId });
        continue;
      }
      events.push({ kind: 'frame', frame: { streamId, type, flags, payload } });
    }
    return events;
  }

  /** Call when the peer ended the stream: throws TruncatedFrame if a frame was left incomplete. */
  end(): void {
    if (this.discard > 0) throw new TruncatedFrame(0, this.discard);
    if (this.buffered === 0) return;
    const need = this.buffered < TTRPC_HEADER_LENGTH ? TTRPC_HEADER_LENGTH : TTRPC_HEADER_LENGTH + this.peek(TTRPC_HEADER_LENGTH).readUInt32BE(0);
    throw new TruncatedFrame(this.buffered, need);
  }

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0]!;
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

// Reassembles vhost-user messages from a unix stream socket. recvmsg(2) may return part of a message or
// several messages; Linux returns fds together with the bytes of the skb (one sendmsg) that carried them
// and stops reading right after that skb, so a chunk with fds ENDS inside the message they were sent with.
// Each fd is remembered with the stream offset of its chunk's last byte and handed to the message that
// holds that byte. Limits: a header announcing more than VHOST_USER_MAX_PAYLOAD bytes, or more than
// VHOST_USER_MAX_FDS fds pending for one message, is a FramingError: the stream cannot be trusted after it.

import { FramingError, TooManyFds, decodeHeader, type RawMessage } from './codec.js';
import { VHOST_USER_HDR_SIZE, VHOST_USER_MAX_FDS, VHOST_USER_MAX_PAYLOAD } from './protocol.js';

export class MessageReader {
  /** bytes received and not yet consumed */
  private buf = new Uint8Array(2 * (VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD));
  private len = 0;
  /** stream offset of buf[0] */
  private base = 0;
  /** fds not yet handed out, with the stream offset of the chunk they arrived with */
  private fds: Array<{ at: number; fd: number }> = [];

  constructor(private readonly closeFd: (fd: number) => void) {}

  /** Bytes waiting in the buffer (for tests). */
  get buffered(): number {
    return this.len;
  }

  /**
   * Feed one recvmsg result. Returns the complete messages it finished (their fds now belong to the
   * caller) and, when the stream broke after them, the FramingError (every fd still held is then closed:
   * handle the messages, then close the connection).
   */
  push(chunk: Uint8Array, fds: readonly number[]): { messages: RawMessage[]; error?: FramingError } {
    // the kernel ends a recvmsg right after the skb that carried fds (unix_stream_read_generic), and a
    // front-end sends each message with its fds in one sendmsg: the fds belong to the chunk's LAST byte
    const at = this.base + this.len + chunk.byteLength - 1;
    for (const fd of fds) this.fds.push({ at, fd });
    const messages: RawMessage[] = [];
    try {
      if (this.fds.length > VHOST_USER_MAX_FDS) {
        throw new TooManyFds(`${this.fds.length} file descriptors are pending for one message; at most ${VHOST_USER_MAX_FDS} are allowed`);
      }
      if (this.len + chunk.byteLength > this.buf.byteLength) {
        // a chunk never exceeds the read size we use; grow once for odd callers, bounded by the limits below
        const next = new Uint8Array(this.len + chunk.byteLength);
        next.set(this.buf.subarray(0, this.len));
        this.buf = next;
      }
      this.buf.set(chunk, this.len);
      this.len += chunk.byteLength;
      this.drain(messages);
      return { messages };
    } catch (e) {
      this.dispose();
      if (e instanceof FramingError) return { messages, error: e };
      throw e;
    }
  }

  /** Close every fd still held (connection closed). */
  dispose(): void {
    for (const { fd } of this.fds) this.closeFd(fd);
    this.fds = [];
    this.len = 0;
  }

  private drain(out: RawMessage[]): void {
    let pos = 0;
    while (this.len - pos >= VHOST_USER_HDR_SIZE) {
      const h = decodeHeader(this.buf.subarray(pos, pos + VHOST_USER_HDR_SIZE)); // FramingError on version/size
      const total = VHOST_USER_HDR_SIZE + h.size;
      if (this.len - pos < total) break;
      const start = this.base + pos;
      const end = start + total;
      // every pending fd that arrived with a chunk starting before this message's end is this message's
      const mine: number[] = [];
      while (this.fds.length > 0 && this.fds[0]!.at < end) mine.push(this.fds.shift()!.fd);
      out.push({ ...h, payload: this.buf.slice(pos + VHOST_USER_HDR_SIZE, pos + total), fds: mine });
      pos += total;
      this.consume(pos);
      pos = 0;
    }
    if (this.len > VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD) {
      throw new FramingError(`${this.len} bytes buffered without a complete message`);
    }
  }

  private consume(pos: number): void {
    if (pos > 0) {
      this.buf.copyWithin(0, pos, this.len);
      this.len -= pos;
      this.base += pos;
    }
  }
}

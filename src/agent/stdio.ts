// Binding a process's stdio stream to a connection to the agent's stdio port (agent.proto header, "Process
// stdio"): u32 big-endian length + StdioStreamHeader from the host, u32 length + StdioStreamAck back, then raw bytes.
import type { Duplex } from 'node:stream';
import { agentCodecs } from './agent-codecs.js';
import type { StdioStreamAck, StdioStreamHeader } from './agent-types.js';
import { codeName } from './grpc-codes.js';
import { CallCancelled, CallTimeout, PeerGone } from './ttrpc-errors.js';

/** Largest header or ack body (agent.proto: 1..4096 / 0..4096 bytes). */
export const STDIO_PREFIX_MAX = 4096;

/** The agent refused to bind the stream (unknown process, already bound, ...). */
export class StdioBindRefused extends Error {
  readonly codeName: string;
  constructor(readonly code: number, readonly details: string, header: StdioStreamHeader) {
    super(`agent refused stdio stream ${header.kind} of ${header.container_id}/${header.exec_id ?? ''}: ${codeName(code)} (${code}): ${details}`);
    this.name = 'StdioBindRefused';
    this.codeName = codeName(code);
  }
}

/** A length prefix outside 0..4096 (or 1..4096 for a header). */
export class BadStdioPrefix extends Error {
  constructor(readonly length: number, readonly max: number) {
    super(`stdio stream length prefix ${length} is outside 0..${max}; the peer does not speak the kata-ts stdio protocol`);
    this.name = 'BadStdioPrefix';
  }
}

export function encodeLengthPrefixed(body: Uint8Array): Buffer {
  if (body.length > STDIO_PREFIX_MAX) throw new BadStdioPrefix(body.length, STDIO_PREFIX_MAX);
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

export interface ReadOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Smallest accepted body length (1 for headers). */
  min?: number;
}

/**
 * Reads one u32-length-prefixed body from `conn`. Bytes after it are pushed back (unshift) and the stream is
 * left explicitly paused: the caller attaches handlers, then resume() or pipe(); the pushed-back bytes come first.
 */
export function readLengthPrefixed(conn: Duplex, opts: ReadOptions = {}): Promise<Buffer> {
  const what = 'stdio';
  return new Promise<Buffer>((resolve, reject) => {
    let chunks: Buffer[] = [];
    let have = 0;
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      conn.off('data', onData);
      conn.off('end', onEnd);
      conn.off('close', onEnd);
      conn.off('error', onError);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const onEnd = (): void => fail(new PeerGone(`${what} connection ended after ${have} bytes of its length-prefixed header`));
    const onError = (e: Error): void => fail(new PeerGone(`${what} connection error: ${e.message}`));
    const onAbort = (): void => fail(new CallCancelled(what, 'bind', opts.signal?.reason));
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      have += chunk.length;
      if (have < 4) return;
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      chunks = [all];
      const len = all.readUInt32BE(0);
      if (len > STDIO_PREFIX_MAX || len < (opts.min ?? 0)) return fail(new BadStdioPrefix(len, STDIO_PREFIX_MAX));
      if (have < 4 + len) return;
      cleanup();
      conn.pause();
      const rest = all.subarray(4 + len);
      if (rest.length) conn.unshift(rest);
      resolve(all.subarray(4, 4 + len));
    };
    if (opts.signal?.aborted) return onAbort();
    if (opts.timeoutMs !== undefined && opts.timeoutMs > 0 && Number.isFinite(opts.timeoutMs)) {
      const ms = opts.timeoutMs;
      timer = setTimeout(() => fail(new CallTimeout(what, 'bind', ms)), ms);
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    conn.on('data', onData);
    conn.on('end', onEnd);
    conn.on('close', onEnd);
    conn.on('error', onError);
  });
}

/**
 * Host side: sends the header on a fresh connection to the agent's stdio port and waits for the ack.
 * Resolves with the same connection, now carrying raw bytes. It is left explicitly paused so no byte is lost:
 * attach handlers, then resume() or pipe() it. Throws StdioBindRefused when the agent says no.
 */
export async function bindStdioStream(conn: Duplex, header: StdioStreamHeader, opts: Omit<ReadOptions, 'min'> = {}): Promise<Duplex> {
  conn.write(encodeLengthPrefixed(agentCodecs.StdioStreamHeader().encode(header)));
  const ack: StdioStreamAck = agentCodecs.StdioStreamAck().decode(await readLengthPrefixed(conn, opts));
  if (ack.code !== 0) {
    conn.destroy();
    throw new StdioBindRefused(ack.code, ack.message, header);
  }
  return conn;
}

/** Agent side (fake agents in tests, or a host-side agent): reads the header of a new stdio connection. */
export async function readStdioHeader(conn: Duplex, opts: Omit<ReadOptions, 'min'> = {}): Promise<StdioStreamHeader> {
  return agentCodecs.StdioStreamHeader().decode(await readLengthPrefixed(conn, { ...opts, min: 1 }));
}

/** Agent side: answers a stdio header (code 0 = bound). */
export function writeStdioAck(conn: Duplex, ack: StdioStreamAck): void {
  conn.write(encodeLengthPrefixed(agentCodecs.StdioStreamAck().encode(ack)));
}

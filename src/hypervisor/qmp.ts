// A tiny QMP client (QEMU Machine Protocol, QEMU docs/interop/qmp-spec.rst): JSON objects, one per line
// ("\r\n"-terminated). The server greets with {"QMP": {...}}, the client must send qmp_capabilities first;
// then each command {"execute", "arguments"?, "id"?} gets exactly one {"return"} or {"error": {class, desc}}
// with the same id, and asynchronous {"event", "data", "timestamp"} messages may arrive at any point.

import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';

/** A QMP line longer than this is a protocol error, not something to buffer forever. */
export const MAX_QMP_LINE = 1 << 20;

export type QmpValue = null | boolean | number | string | QmpValue[] | { [k: string]: QmpValue };
export type QmpObject = { [k: string]: QmpValue };

export type QmpMessage =
  | { type: 'greeting'; version: QmpObject; capabilities: QmpValue[] }
  | { type: 'return'; id?: QmpValue; value: QmpValue }
  | { type: 'error'; id?: QmpValue; errorClass: string; desc: string }
  | { type: 'event'; event: string; data: QmpObject; timestamp?: { seconds: number; microseconds: number } };

export class QmpProtocolError extends Error {
  constructor(what: string) {
    super(`QMP protocol error: ${what}`);
    this.name = 'QmpProtocolError';
  }
}

export class QmpCommandError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP command '${command}' failed: ${errorClass}: ${desc}`);
    this.name = 'QmpCommandError';
  }
}

export class QmpConnectionClosed extends Error {
  constructor(command?: string) {
    super(command ? `QMP connection closed before '${command}' was answered (did QEMU exit?)` : 'QMP connection closed');
    this.name = 'QmpConnectionClosed';
  }
}

function isObject(v: unknown): v is QmpObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Classify one parsed QMP object (qmp-spec.rst §2: greeting, success, error, event). */
export function classifyQmp(v: unknown): QmpMessage {
  if (!isObject(v)) throw new QmpProtocolError(`expected a JSON object, got ${JSON.stringify(v)?.slice(0, 80)}`);
  const id = 'id' in v ? { id: v.id! } : {};
  if (isObject(v.QMP)) {
    const q = v.QMP;
    return { type: 'greeting', version: isObject(q.version) ? q.version : {}, capabilities: Array.isArray(q.capabilities) ? q.capabilities : [] };
  }
  if ('return' in v) return { type: 'return', ...id, value: v.return! };
  if (isObject(v.error)) {
    const e = v.error;
    return { type: 'error', ...id, errorClass: typeof e.class === 'string' ? e.class : 'GenericError', desc: typeof e.desc === 'string' ? e.desc : '' };
  }
  if (typeof v.event === 'string') {
    const ts = v.timestamp;
    const timestamp =
      isObject(ts) && typeof ts.seconds === 'number' && typeof ts.microseconds === 'number'
        ? { seconds: ts.seconds, microseconds: ts.microseconds }
        : undefined;
    return { type: 'event', event: v.event, data: isObject(v.data) ? v.data : {}, ...(timestamp ? { timestamp } : {}) };
  }
  throw new QmpProtocolError(`unrecognised message ${JSON.stringify(v).slice(0, 120)}`);
}

/** Splits a byte stream into QMP messages. */
export class QmpDecoder {
  private buf = '';

  /** Feed bytes; returns the complete messages they finished. Throws QmpProtocolError on bad input. */
  push(chunk: Uint8Array | string): QmpMessage[] {
    this.buf += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    const out: QmpMessage[] = [];
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        throw new QmpProtocolError(`not JSON: ${line.slice(0, 120)}`);
      }
      out.push(classifyQmp(parsed));
    }
    if (this.buf.length > MAX_QMP_LINE) throw new QmpProtocolError(`a line exceeds ${MAX_QMP_LINE} bytes`);
    return out;
  }
}

/** One command as it goes on the wire. */
export function encodeQmpCommand(execute: string, args?: QmpObject, id?: number): string {
  return JSON.stringify({ execute, ...(args ? { arguments: args } : {}), ...(id !== undefined ? { id } : {}) }) + '\r\n';
}

interface Pending {
  command: string;
  resolve: (v: QmpValue) => void;
  reject: (e: Error) => void;
}

/** Events: 'event' (QmpMessage of type 'event'), 'close', 'error' (protocol errors). */
export class QmpClient extends EventEmitter {
  greeting: Extract<QmpMessage, { type: 'greeting' }> | undefined;
  private readonly decoder = new QmpDecoder();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  private greeted: Promise<void>;

  constructor(private readonly stream: Duplex) {
    super();
    let onGreeting!: () => void;
    let onClosedEarly!: (e: Error) => void;
    this.greeted = new Promise((res, rej) => {
      onGreeting = res;
      onClosedEarly = rej;
    });
    this.greeted.catch(() => undefined);
    stream.on('data', (chunk: Buffer) => {
      let msgs: QmpMessage[];
      try {
        msgs = this.decoder.push(chunk);
      } catch (e) {
        this.emit('error', e);
        this.close();
        return;
      }
      for (const m of msgs) {
        if (m.type === 'greeting') {
          this.greeting = m;
          onGreeting();
        } else if (m.type === 'event') {
          this.emit('event', m);
        } else {
          const id = typeof m.id === 'number' ? m.id : undefined;
          const p = id !== undefined ? this.pending.get(id) : undefined;
          if (!p || id === undefined) continue; // an answer to nothing we asked: ignore
          this.pending.delete(id);
          if (m.type === 'return') p.resolve(m.value);
          else p.reject(new QmpCommandError(p.command, m.errorClass, m.desc));
        }
      }
    });
    const onEnd = (): void => {
      if (this.closed) return;
      this.closed = true;
      onClosedEarly(new QmpConnectionClosed('greeting'));
      for (const p of this.pending.values()) p.reject(new QmpConnectionClosed(p.command));
      this.pending.clear();
      this.emit('close');
    };
    stream.on('close', onEnd);
    stream.on('end', onEnd);
    stream.on('error', onEnd);
  }

  /** Wait for the greeting and leave capabilities negotiation mode (qmp-spec.rst: qmp_capabilities). */
  async handshake(): Promise<void> {
    await this.greeted;
    await this.execute('qmp_capabilities');
  }

  execute(command: string, args?: QmpObject): Promise<QmpValue> {
    if (this.closed) return Promise.reject(new QmpConnectionClosed(command));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { command, resolve, reject });
      this.stream.write(encodeQmpCommand(command, args, id));
    });
  }

  close(): void {
    this.stream.destroy();
  }
}

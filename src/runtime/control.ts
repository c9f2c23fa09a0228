// The sandbox process's control protocol on <root>/<sid>/control.sock: one request per connection.
// The client writes one JSON line (ControlRequest). For calls the server answers one JSON line
// (ControlReply) and closes. For `attach` it answers `{"ok":true}` and the connection then carries the raw
// bytes of one stdio stream of one process (stdin: client → guest; stdout/stderr: guest → client). For
// `shim` it answers `{"ok":true}` at once and later one line `{"ok":true,"result":{"exitCode":N}}` when the
// process has exited.

import { connect, type Socket } from 'node:net';
import { RuntimeError, type RuntimeErrorCode } from './errors.js';

/** Largest header line (a config.json can be large; the bundle's spec travels in `create`). */
export const MAX_LINE = 4 * 1024 * 1024;

export type StreamName = 'stdin' | 'stdout' | 'stderr';

export type ControlRequest =
  | { op: 'create'; id: string; bundle: string; rootfs: string; spec: Record<string, unknown>; annotations: Record<string, string> }
  | { op: 'start'; id: string }
  | { op: 'kill'; id: string; signal: number; all: boolean }
  | { op: 'delete'; id: string; force: boolean }
  | { op: 'exec'; id: string; process: Record<string, unknown> }
  | { op: 'ps'; id: string }
  | { op: 'wait'; id: string; exec: string }
  | { op: 'attach'; id: string; exec: string; stream: StreamName }
  | { op: 'shim'; id: string; exec: string; pid: number };

export type ControlReply = { ok: true; result?: unknown } | { ok: false; code: RuntimeErrorCode; message: string };

/** Reads one '\n'-terminated line; bytes after it are pushed back and the socket is left paused. */
export function readLine(s: Socket, timeoutMs = 0): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      if (timer) clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('close', onEnd);
      s.off('error', onError);
    };
    const onData = (b: Buffer): void => {
      buf = Buffer.concat([buf, b]);
      const nl = buf.indexOf(10);
      if (nl < 0) {
        if (buf.length > MAX_LINE) {
          done();
          reject(new RuntimeError('INTERNAL', `control message longer than ${MAX_LINE} bytes`));
        }
        return;
      }
      done();
      s.pause();
      const rest = buf.subarray(nl + 1);
      if (rest.length) s.unshift(rest);
      resolve(buf.subarray(0, nl).toString('utf8'));
    };
    const onEnd = (): void => {
      done();
      reject(new RuntimeError('INTERNAL', 'the sandbox process closed the control connection without answering (see its log)'));
    };
    const onError = (e: Error): void => {
      done();
      reject(new RuntimeError('INTERNAL', `control connection: ${e.message}`));
    };
    if (timeoutMs > 0) timer = setTimeout(() => { done(); s.destroy(); reject(new RuntimeError('INTERNAL', `the sandbox process did not answer within ${timeoutMs} ms`)); }, timeoutMs);
    s.on('data', onData);
    s.on('end', onEnd);
    s.on('close', onEnd);
    s.on('error', onError);
    s.resume();
  });
}

export function connectControl(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.off('error', onErr);
      resolve(s);
    });
    const onErr = (e: NodeJS.ErrnoException): void =>
      reject(new RuntimeError('STATE', `cannot reach the sandbox process at ${path} (${e.code ?? e.message}): it has exited; run \`kata-ts delete --force\` on its containers`));
    s.once('error', onErr);
  });
}

export function parseReply(line: string): ControlReply {
  const r = JSON.parse(line) as ControlReply;
  if (typeof r !== 'object' || r === null || typeof r.ok !== 'boolean') throw new RuntimeError('INTERNAL', 'malformed reply from the sandbox process');
  return r;
}

/** One call: sends the request and resolves with the reply's result, or throws its RuntimeError. */
export async function call(path: string, req: ControlRequest, timeoutMs = 0): Promise<unknown> {
  const s = await connectControl(path);
  try {
    s.write(`${JSON.stringify(req)}\n`);
    const r = parseReply(await readLine(s, timeoutMs));
    if (!r.ok) throw new RuntimeError(r.code, r.message);
    return r.result;
  } finally {
    s.destroy();
  }
}

/** Opens a request whose connection stays open after the first `{"ok":true}` line (attach, shim). */
export async function open(path: string, req: ControlRequest): Promise<Socket> {
  const s = await connectControl(path);
  s.write(`${JSON.stringify(req)}\n`);
  let r: ControlReply;
  try {
    r = parseReply(await readLine(s, 30_000));
  } catch (e) {
    s.destroy();
    throw e;
  }
  if (!r.ok) {
    s.destroy();
    throw new RuntimeError(r.code, r.message);
  }
  return s;
}

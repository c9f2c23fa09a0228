// The sandbox process's control protocol on <root>/<sid>/control.sock: one request per connection.
// The client writes one JSON line (ControlRequest). For calls the server answers one JSON line
// (ControlReply) and closes. For `attach` it answers `{"ok":true}` and the connection then carries the raw
// bytes of one stdio stream of one process (stdin: client → guest; stdout/stderr: guest → client). For
// `relay` (sent by a process's stdio relay, stdio-relay-main.ts) it answers `{"ok":true}` at once and later
// one line `{"ok":true,"result":{"exitCode":N}}` when the process has exited.
// Both sides check what they read against the schemas below (validate.ts): a malformed line is a one-line
// RuntimeError that names the bad field.

import { connect, type Socket } from 'node:net';
import { RuntimeError, type RuntimeErrorCode } from './errors.js';
import { isValidId } from './state.js';
import {
  anyObject,
  anything,
  array,
  boolean,
  define,
  fail,
  int,
  InvalidJson,
  isPlainObject,
  literal,
  nonEmptyString,
  object,
  oneOf,
  optional,
  parseJson,
  validate,
  record,
  string,
  sub,
  tagged,
  type Check,
} from './validate.js';

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
  | { op: 'pause'; id: string }
  | { op: 'resume'; id: string }
  | { op: 'wait'; id: string; exec: string }
  | { op: 'attach'; id: string; exec: string; stream: StreamName }
  | { op: 'relay'; id: string; exec: string; pid: number }
  | { op: 'resize'; id: string; exec: string; rows: number; cols: number };

export type ControlReply = { ok: true; result?: unknown } | { ok: false; code: RuntimeErrorCode; message: string };

export const RUNTIME_ERROR_CODES: readonly RuntimeErrorCode[] = ['NOT_FOUND', 'EXISTS', 'INVALID', 'STATE', 'INTERNAL'];

/** A container id as state.ts accepts it (it names a directory under the state root). */
const containerId: Check<string> = define('a container id ([A-Za-z0-9_.-], 1..64 characters)', (v, p) =>
  typeof v === 'string' && isValidId(v) ? v : fail(p, 'a container id ([A-Za-z0-9_.-], 1..64 characters)', v),
);
const streamName = oneOf('stdin', 'stdout', 'stderr');

export const controlRequest: Check<ControlRequest> = tagged('op', {
  create: object({ op: literal('create'), id: containerId, bundle: nonEmptyString, rootfs: nonEmptyString, spec: anyObject, annotations: record(string) }),
  start: object({ op: literal('start'), id: containerId }),
  // signal(7): 1..64 (SIGRTMAX)
  kill: object({ op: literal('kill'), id: containerId, signal: int(1, 64), all: boolean }),
  delete: object({ op: literal('delete'), id: containerId, force: boolean }),
  exec: object({ op: literal('exec'), id: containerId, process: anyObject }),
  ps: object({ op: literal('ps'), id: containerId }),
  pause: object({ op: literal('pause'), id: containerId }),
  resume: object({ op: literal('resume'), id: containerId }),
  wait: object({ op: literal('wait'), id: containerId, exec: string }),
  attach: object({ op: literal('attach'), id: containerId, exec: string, stream: streamName }),
  relay: object({ op: literal('relay'), id: containerId, exec: string, pid: int(1) }),
  resize: object({ op: literal('resize'), id: containerId, exec: string, rows: int(0, 65535), cols: int(0, 65535) }),
});

const okReply = object({ ok: literal(true), result: optional(anything) });
const errorReply = object({ ok: literal(false), code: oneOf(...RUNTIME_ERROR_CODES), message: string });
export const controlReply: Check<ControlReply> = define('an object with ok true or false', (v, p) => {
  if (!isPlainObject(v)) fail(p, 'an object', v);
  return boolean(v['ok'], sub(p, 'ok')) ? okReply(v, p) : errorReply(v, p);
});

/** The result of `exec`: the id the sandbox gave the new process. */
export const execResult = object({ exec: nonEmptyString });
/** The result of `ps`: the container's processes as the guest agent lists them (guest pids, agent.proto ProcessStatus). */
export const psResult = array(
  object({
    pid: int(1),
    ppid: int(0),
    uid: int(0),
    start_time: int(0),
    cpu_millis: int(0),
    tty: string,
    cmd: string,
  }),
);
/** The result of `wait`, and the second line of `relay`: the process's exit code. */
export const exitResult = object({ exitCode: int(0, 255) });

/** A request line read by the sandbox process; RuntimeError INVALID naming the bad field otherwise. */
export function parseRequest(line: string): ControlRequest {
  return checked('INVALID', () => parseJson(line, controlRequest, 'malformed control request'));
}

/** Runs a parse or check; its InvalidJson becomes a RuntimeError with `code` and the same one-line message. */
function checked<T>(code: RuntimeErrorCode, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof InvalidJson) throw new RuntimeError(code, e.message);
    throw e;
  }
}

const replyTo = (op: string): string => `malformed reply from the sandbox process to ${op}`;

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

/** A reply line; `op` names the request in the error (RuntimeError INTERNAL naming the bad field). */
export function parseReply(line: string, op = 'a request'): ControlReply {
  return checked('INTERNAL', () => parseJson(line, controlReply, replyTo(op)));
}

/** The `result` of an ok reply, checked; RuntimeError INTERNAL naming the bad field otherwise. */
export function checkResult<T>(result: unknown, c: Check<T>, op: string): T {
  return checked('INTERNAL', () => validate({ result }, object({ result: c }), replyTo(op)).result);
}

/**
 * One call: sends the request and resolves with the reply's result (checked by `result`), or throws its
 * RuntimeError.
 */
export async function call<T = unknown>(path: string, req: ControlRequest, timeoutMs = 0, result?: Check<T>): Promise<T> {
  const s = await connectControl(path);
  try {
    s.write(`${JSON.stringify(req)}\n`);
    const r = parseReply(await readLine(s, timeoutMs), `'${req.op}'`);
    if (!r.ok) throw new RuntimeError(r.code, r.message);
    return result ? checkResult(r.result, result, `'${req.op}'`) : (r.result as T);
  } finally {
    s.destroy();
  }
}

/** Opens a request whose connection stays open after the first `{"ok":true}` line (attach, relay). */
export async function open(path: string, req: ControlRequest): Promise<Socket> {
  const s = await connectControl(path);
  s.write(`${JSON.stringify(req)}\n`);
  let r: ControlReply;
  try {
    r = parseReply(await readLine(s, 30_000), `'${req.op}'`);
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

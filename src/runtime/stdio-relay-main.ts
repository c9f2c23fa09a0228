// The stdio relay of one container process:
//   node dist/src/runtime/stdio-relay-main.js <control.sock> <container-id> <exec-id|-> <tty 0|1> <stdin 0|1> [ctty 0|1]
// Spawned by the CLI (api.ts) with the caller's stdio as its fds 0/1/2 (detached for `create`, so it outlives the
// CLI). It forwards the guest process's stdout/stderr to fds 1/2 and fd 0 to its stdin over the sandbox's control
// socket (`attach`), announces itself (`relay`), and exits with the process's exit code once the process has
// exited and its output has drained. The relay of a container's init process is the container's `state.pid`:
// its exit means the container stopped. If the sandbox process goes away it exits 255.
// (Not a containerd shim: that is src/shim/, which speaks containerd's shim v2 API.)
// Readiness: "ready\n" or "error <message>\n" on fd 3 (a socket pair with the spawning CLI), once every stream is
// bound. Exec id `?` starts the relay before its process exists: it waits for "go EXEC\n" on fd 3 first.
// With a terminal its size goes to the guest's pty (control op `resize`) at start and on every SIGWINCH; `ctty` 1
// (create --console-socket: fds 0-2 are the slave of the pty whose master the caller holds) makes that terminal
// the relay's controlling terminal first, so the kernel tells it when the caller resizes the master.

import { closeSync, readSync, writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { WriteStream } from 'node:tty';
import { makeRawTty, restoreTty, setControllingTty } from '../host/pty.js';
import { call, checkResult, exitResult, open, parseReply, readLine, type StreamName } from './control.js';

const [sock, id, execArg, ttyArg, stdinArg, cttyArg] = process.argv.slice(2);
let exec = execArg === '-' ? '' : (execArg ?? '');
const tty = ttyArg === '1';
const withStdin = stdinArg === '1';

function ready(msg: string): void {
  try {
    writeSync(3, `${msg}\n`);
    closeSync(3);
  } catch {
    // no readiness pipe (run by hand)
  }
}

function drained(s: Socket, out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    s.pipe(out, { end: false });
    s.once('close', () => resolve());
    s.resume();
  });
}

/** The guest's pty does the line discipline: ours passes bytes both ways untouched (libuv's raw mode keeps ONLCR). */
function rawTerminal(): Uint8Array | undefined {
  try {
    return makeRawTty(0);
  } catch {
    process.stdin.setRawMode(true);
    return undefined;
  }
}

function restoreTerminal(saved: Uint8Array): void {
  try {
    restoreTty(0, saved);
  } catch {
    // the terminal is gone
  }
}

/**
 * Exec id `?`: started ahead of its process (api.ts prestartRelay), wait for "go EXEC" on fd 3 (a socket pair with
 * the spawning CLI). EOF first means the CLI went away or gave up: exit quietly, nothing was attached.
 */
function awaitGo(): string {
  const buf = Buffer.alloc(256);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  let line = '';
  for (;;) {
    let n: number;
    try {
      n = readSync(3, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EINTR') {
        Atomics.wait(nap, 0, 0, 5);
        continue;
      }
      process.exit(255);
    }
    if (n === 0) process.exit(255);
    line += buf.toString('utf8', 0, n);
    const nl = line.indexOf('\n');
    if (nl >= 0) {
      const m = /^go (\S{1,128})$/.exec(line.slice(0, nl));
      if (!m) {
        ready('error malformed go line');
        process.exit(255);
      }
      return m[1] === '-' ? '' : m[1]!;
    }
    if (line.length > 256) process.exit(255);
  }
}

async function main(): Promise<void> {
  if (execArg === '?') exec = awaitGo();
  let saved: Uint8Array | undefined;
  const outputs: Promise<void>[] = [];
  const attach = (stream: StreamName): Promise<Socket> => open(sock!, { op: 'attach', id: id!, exec, stream });
  const out = await attach('stdout');
  const err = tty ? undefined : await attach('stderr');
  const inp = withStdin ? await attach('stdin') : undefined;
  const waiter = await open(sock!, { op: 'relay', id: id!, exec, pid: process.pid });
  outputs.push(drained(out, process.stdout));
  if (err) outputs.push(drained(err, process.stderr));
  if (inp) {
    if (tty && process.stdin.isTTY) saved = rawTerminal();
    process.stdin.pipe(inp);
    inp.on('error', () => undefined);
    process.stdin.on('error', () => inp.end());
  }
  if (tty && process.stdout.isTTY) followWindowSize(process.stdout);
  ready('ready');
  let code = 255;
  try {
    const r = parseReply(await readLine(waiter), "'relay'");
    if (r.ok) code = checkResult(r.result, exitResult, "'relay'").exitCode;
  } catch {
    // the sandbox process went away (the container is gone) or answered a malformed line: exit 255. Nothing is
    // written: fds 1/2 belong to the container's output.
  }
  await Promise.race([Promise.all(outputs), new Promise((r) => setTimeout(r, 5000))]);
  if (saved) restoreTerminal(saved);
  else if (tty && process.stdin.isTTY) process.stdin.setRawMode(false);
  process.exitCode = code;
  // flush fds 1/2 then leave even if stdin is still open
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

/** Sends the terminal's size to the guest pty now and whenever it changes (best effort: a lost resize is cosmetic). */
function followWindowSize(term: WriteStream): void {
  const send = (): void => {
    const [cols, rows] = term.getWindowSize();
    if (!(rows > 0 && cols > 0)) return;
    call(sock!, { op: 'resize', id: id!, exec, rows, cols }, 10_000).catch(() => undefined);
  };
  term.on('resize', send);
  send();
}

if (cttyArg === '1' && process.stdin.isTTY) {
  try {
    setControllingTty(0); // a session leader (spawned detached) without a controlling terminal
  } catch {
    // then no SIGWINCH: the size stays the one sent at start
  }
}

// the caller may close its end of our stdout/stderr (EPIPE): keep running so state.pid still means "running"
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

main().catch((e: Error) => {
  ready(`error ${e.message.replace(/\n/g, ' ')}`);
  process.exit(255);
});

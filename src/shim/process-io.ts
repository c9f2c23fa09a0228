// A container process's stdio as containerd hands it over: paths of FIFOs its client (ctr, CRI) made and reads
// or writes (containerd/cio), an empty path for a stream nobody wants, or file:///path (ctr --log-uri). Each
// stream is joined to the process's agent stdio stream (agent.proto "Process stdio", bound by `bind`):
//   stdin FIFO ──> guest stdin (ended at the FIFO's EOF, or by CloseIO)
//   guest stdout/stderr ──> the FIFOs; with a terminal the pty is stdout and there is no stderr.
// Guest output is always read, also when nobody listens (no path, or the reader went away): a process must
// never block on a full pipe because its client detached. `done` resolves once stdout and stderr have ended.

import { closeSync, constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Duplex, Writable } from 'node:stream';
import { createWriteStream } from 'node:fs';
import { ShimError } from './errors.js';

export type StreamKindName = 'stdin' | 'stdout' | 'stderr';

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** Connects one agent stdio stream of the process (bindStdioStream over the VM's vsock). */
export type BindStream = (kind: StreamKindName) => Promise<Duplex>;

/** A FIFO end as a non-blocking libuv pipe. O_NONBLOCK: opening never waits for the other side. */
function openFifo(path: string, write: boolean): Socket {
  let fd: number;
  if (write) {
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (e) {
      // ENXIO: no reader yet; O_RDWR keeps the FIFO open for a reader that comes later (Linux fifo(7))
      if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw e;
      fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    }
  } else {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  }
  try {
    return new Socket({ fd, readable: !write, writable: write });
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function outputTarget(uri: string): Writable | undefined {
  if (uri === '') return undefined;
  if (uri.startsWith('file://')) return createWriteStream(uri.slice('file://'.length), { flags: 'a', mode: 0o600 });
  if (uri.startsWith('/')) return openFifo(uri, true);
  throw new ShimError('INVALID_ARGUMENT', `stdio '${uri}' is not supported by the kata-ts shim: use FIFOs (the default) or file:// paths`);
}

export class ProcessIo {
  /** stdout and stderr have ended (the process exited and its output was delivered) */
  readonly done: Promise<void>;
  private stdinStream: Duplex | undefined;
  private stdinSource: Socket | undefined;
  private readonly opened: (Socket | Writable)[] = [];

  private constructor(outputs: Promise<void>[]) {
    this.done = Promise.all(outputs).then(() => undefined);
  }

  /** Binds the process's streams and joins them to `paths`. Call before the process can produce much output. */
  static async open(paths: StdioPaths, bind: BindStream): Promise<ProcessIo> {
    const outs: Promise<void>[] = [];
    const pending: (() => void)[] = [];
    const opened: (Socket | Writable)[] = [];
    let stdinStream: Duplex | undefined;
    let stdinSource: Socket | undefined;
    try {
      for (const kind of paths.terminal ? (['stdout'] as const) : (['stdout', 'stderr'] as const)) {
        const target = outputTarget(paths[kind]);
        if (target) opened.push(target);
        const g = await bind(kind);
        outs.push(
          new Promise<void>((resolve) => {
            g.on('error', () => resolve());
            g.on('close', () => resolve());
            g.on('end', () => {
              if (target) target.end(() => resolve());
              else resolve();
            });
          }),
        );
        pending.push(() => {
          if (!target) return void g.resume();
          target.on('error', () => {
            // the reader went away (EPIPE): keep draining the guest so the process never blocks
            g.unpipe(target);
            g.resume();
          });
          g.pipe(target, { end: false });
        });
      }
      if (paths.stdin) {
        stdinSource = openFifo(paths.stdin, false);
        opened.push(stdinSource);
        stdinStream = await bind('stdin');
        const src = stdinSource;
        const dst = stdinStream;
        dst.on('error', () => src.destroy());
        src.on('error', () => dst.end());
        pending.push(() => src.pipe(dst));
      }
    } catch (e) {
      for (const o of opened) o.destroy();
      stdinStream?.destroy();
      throw e;
    }
    for (const p of pending) p();
    const io = new ProcessIo(outs);
    io.stdinStream = stdinStream;
    io.stdinSource = stdinSource;
    io.opened.push(...opened);
    return io;
  }

  /** CloseIO(stdin): the process sees EOF on its stdin. */
  closeStdin(): void {
    this.stdinSource?.unpipe();
    this.stdinSource?.destroy();
    this.stdinStream?.end();
  }

  /** Stops everything (the process is gone). */
  close(): void {
    this.closeStdin();
    for (const o of this.opened) o.destroy();
  }
}

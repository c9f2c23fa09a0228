// The vhost-user socket: listen on a unix socket path, serve one front-end connection at a time (a second
// one is refused while the first lives; after a disconnect the next connection gets a fresh session with
// the same device, which QEMU's reconnect relies on). Everything runs on the calling thread's event loop:
// the listening socket, the connection and the kick eventfds are watched with the addon's uv_poll watchers,
// and the device's queue processing runs in those callbacks (no device worker thread yet). Every fd a
// front end sends is made O_NONBLOCK on arrival (session.ts: nothing it hands us may block the loop).

import { EventEmitter } from 'node:events';
import { lstatSync, rmSync, type Stats } from 'node:fs';
import type { NativeAddon } from '../kvm/native.js';
import type { VirtioDevice } from '../virtio/device.js';
import { FramingError } from './codec.js';
import { MessageReader } from './message-reader.js';
import { VHOST_USER_MAX_FDS } from './protocol.js';
import { VhostUserSession, type SessionIo, type VhostLog } from './session.js';

export type ServerIo = SessionIo &
  Pick<NativeAddon, 'unixListen' | 'unixAccept' | 'recvmsgFds' | 'sendmsgFds' | 'fdSetNonblock' | 'unixConnectProbe'>;

/** How many recvmsg calls one readable callback makes before yielding to the event loop. */
const READS_PER_TURN = 64;
const READ_SIZE = 8192;

export class SocketInUse extends Error {
  override readonly name = 'SocketInUse';
}

/**
 * Make `path` free for a new listening socket: nothing there, or a stale socket (a socket file nobody
 * listens on: a non-blocking connect is refused), which is removed. Anything else (a regular file, a
 * directory, a symbolic link, a socket something listens on) is refused with a SocketInUse naming the path.
 */
export function claimSocketPath(path: string, probe: (path: string) => string | null): void {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new SocketInUse(`cannot check the socket path ${path}: ${(e as Error).message}`);
  }
  const what = st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : st.isSocket() ? undefined : 'not a socket';
  if (what !== undefined) throw new SocketInUse(`${path} exists and is ${what}: refusing to replace it; remove it or choose another socket path`);
  const err = probe(path);
  if (err === null || err === 'EAGAIN') throw new SocketInUse(`${path} is a socket another process is listening on: stop it or choose another socket path`);
  if (err !== 'ECONNREFUSED') throw new SocketInUse(`cannot tell whether the socket ${path} is in use (connect: ${err}): remove it or choose another socket path`);
  rmSync(path, { force: true }); // stale: its listener is gone
}

export interface VhostUserServerEvents {
  connection: [];
  disconnect: [reason: string];
}

export class VhostUserServer extends EventEmitter<VhostUserServerEvents> {
  private listenFd: number | undefined;
  private listenWatch: number | undefined;
  /** inode of the socket file we bound: close() removes that file only */
  private socketIno: number | undefined;
  private conn: { fd: number; watch: number; reader: MessageReader; session: VhostUserSession } | undefined;
  private readonly readBuf = new Uint8Array(READ_SIZE);
  private readonly totals = { connections: 0, refusedConnections: 0, disconnects: 0, framingErrors: 0 };
  /** the last session's counters survive its connection (metrics) */
  private lastSession: VhostUserSession | undefined;

  private constructor(
    readonly socketPath: string,
    readonly device: VirtioDevice,
    private readonly io: ServerIo,
    private readonly log: VhostLog,
  ) {
    super();
  }

  /**
   * Listen on `socketPath`. A stale socket file there (nobody listens on it) is replaced; a live socket
   * or any other file is refused (SocketInUse naming the path).
   */
  static listen(socketPath: string, device: VirtioDevice, io: ServerIo, log: VhostLog = () => undefined): VhostUserServer {
    claimSocketPath(socketPath, (p) => io.unixConnectProbe(p));
    const s = new VhostUserServer(socketPath, device, io, log);
    s.listenFd = io.unixListen(socketPath, 4);
    try {
      s.socketIno = lstatSync(socketPath).ino;
      s.listenWatch = io.watchReadable(s.listenFd, () => s.onAcceptable());
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  get connected(): boolean {
    return this.conn !== undefined;
  }

  /** The current connection's session (tests). */
  get session(): VhostUserSession | undefined {
    return this.conn?.session;
  }

  metrics(): Record<string, number> {
    const m: Record<string, number> = { ...this.totals, connected: this.conn ? 1 : 0 };
    const s = this.conn?.session ?? this.lastSession;
    if (s) for (const [k, v] of Object.entries(s.metrics())) m[`session.${k}`] = v;
    for (const [k, v] of Object.entries(this.device.metrics())) m[`device.${k}`] = v;
    return m;
  }

  /** Stop listening, drop the connection (the device is reset), remove the socket file. */
  close(): void {
    this.disconnect('server closed');
    if (this.listenWatch !== undefined) this.io.unwatch(this.listenWatch);
    if (this.listenFd !== undefined) this.io.close(this.listenFd);
    this.listenWatch = undefined;
    this.listenFd = undefined;
    try {
      // only our socket: whatever replaced it meanwhile is not ours to delete
      if (this.socketIno !== undefined && lstatSync(this.socketPath).ino === this.socketIno) rmSync(this.socketPath, { force: true });
    } catch {
      // already gone
    }
    this.socketIno = undefined;
  }

  private onAcceptable(): void {
    if (this.listenFd === undefined) return;
    for (;;) {
      let fd: number | null;
      try {
        fd = this.io.unixAccept(this.listenFd);
      } catch (e) {
        this.log('warn', `vhost-user: accept failed: ${(e as Error).message}`);
        return;
      }
      if (fd === null) return;
      if (this.conn !== undefined) {
        // vhost-user.rst "Backend program conventions": one front-end per back-end socket
        this.totals.refusedConnections++;
        this.log('warn', 'vhost-user: a second front-end connected while one is served: refused');
        this.io.close(fd);
        continue;
      }
      this.adopt(fd);
    }
  }

  private adopt(fd: number): void {
    const session = new VhostUserSession(this.device, this.io, (b) => this.sendAll(fd, b), this.log);
    const reader = new MessageReader((x) => this.io.close(x));
    let watch: number;
    try {
      watch = this.io.watchReadable(fd, () => this.onReadable());
    } catch (e) {
      this.log('warn', `vhost-user: cannot watch the connection: ${(e as Error).message}`);
      this.io.close(fd);
      return;
    }
    this.conn = { fd, watch, reader, session };
    this.totals.connections++;
    this.log('info', `vhost-user: front-end connected on ${this.socketPath}`);
    this.emit('connection');
  }

  /** Replies are small (<= 268 bytes); a socket that cannot take one at once is treated as dead. */
  private sendAll(fd: number, b: Uint8Array): void {
    const n = this.io.sendmsgFds(fd, b, []);
    if (n !== b.byteLength) throw new Error(`reply not sent (${n === null ? 'socket full' : `${n} of ${b.byteLength} bytes`})`);
  }

  private onReadable(): void {
    const c = this.conn;
    if (c === undefined) return;
    for (let turn = 0; turn < READS_PER_TURN && this.conn === c; turn++) {
      let r: ReturnType<ServerIo['recvmsgFds']>;
      try {
        r = this.io.recvmsgFds(c.fd, this.readBuf, VHOST_USER_MAX_FDS);
      } catch (e) {
        this.disconnect(`recvmsg failed: ${(e as Error).message}`);
        return;
      }
      if (r === null) return;
      // O_NONBLOCK on everything the front end sent (kick/call/err/log eventfds; harmless on memory fds)
      for (const fd of r.fds) {
        try {
          this.io.fdSetNonblock(fd, true);
        } catch (e) {
          this.log('warn', `vhost-user: cannot make a received fd non-blocking: ${(e as Error).message}`);
        }
      }
      if (r.truncated) {
        for (const fd of r.fds) this.io.close(fd);
        this.totals.framingErrors++;
        this.disconnect(`the front-end sent more than ${VHOST_USER_MAX_FDS} file descriptors with one message`);
        return;
      }
      if (r.bytes === 0) {
        for (const fd of r.fds) this.io.close(fd);
        this.disconnect('front-end closed the connection');
        return;
      }
      const { messages, error } = c.reader.push(this.readBuf.subarray(0, r.bytes), r.fds);
      for (let i = 0; i < messages.length; i++) {
        const keep = this.conn === c && c.session.handle(messages[i]!);
        if (!keep) {
          for (const m of messages.slice(i + 1)) for (const fd of m.fds) this.io.close(fd);
          this.disconnect(`closing after a refused ${String(c.session.lastError?.name ?? 'message')}: ${c.session.lastError?.message ?? ''}`);
          return;
        }
      }
      if (error !== undefined) {
        this.totals.framingErrors++;
        c.session.lastError = error;
        this.disconnect(`${error.name}: ${error.message}`);
        return;
      }
    }
  }

  private disconnect(reason: string): void {
    const c = this.conn;
    if (c === undefined) return;
    this.conn = undefined;
    this.io.unwatch(c.watch);
    this.io.close(c.fd);
    c.reader.dispose();
    c.session.close();
    this.lastSession = c.session;
    this.totals.disconnects++;
    this.log('info', `vhost-user: front-end disconnected: ${reason}`);
    this.emit('disconnect', reason);
  }
}

export { FramingError };

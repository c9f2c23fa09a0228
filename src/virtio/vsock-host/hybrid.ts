// Hybrid vsock (Firecracker's docs/vsock.md): outside tools reach the guest through a unix socket.
// - host → guest: connect to `udsPath`, send `CONNECT <port>\n`, read `OK <hostport>\n`, then the socket
//   is the connection. Anything else gets the socket closed.
// - guest → host: a guest connection to host port P goes to the unix socket `<udsPath>_<P>` if something
//   listens there (and no in-process VsockHost.listen() claimed P first); otherwise it is refused (RST).
// The path is ours only if it is free or holds a stale socket (nobody listens on it); anything else there is
// refused, never deleted, and close() removes only the socket it made.

import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { VsockHost } from './host.js';
import type { VsockStream } from './stream.js';

/** The longest CONNECT line we read ("CONNECT 4294967295\n" is 19 bytes). */
const MAX_LINE = 64;

export class HybridVsockError extends Error {
  override readonly name = 'HybridVsockError';
}

export interface HybridVsockServer {
  readonly path: string;
  close(): Promise<void>;
}

/** Splice two streams both ways; an error on either destroys both, a close ends the other's writing. */
function splice(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const kill = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', kill);
  b.on('error', kill);
  a.on('close', () => {
    if (!b.writableEnded) b.end();
  });
  b.on('close', () => {
    if (!a.writableEnded) a.end();
  });
}

/** Parse `CONNECT <port>` (Firecracker accepts exactly this form; we also take lowercase). */
export function parseConnectLine(line: string): number | undefined {
  const m = /^connect ([0-9]{1,10})$/i.exec(line.trim());
  if (m === null) return undefined;
  const port = Number(m[1]);
  return port <= 0xffff_ffff ? port : undefined;
}

/** How a connect(2) to a unix socket path ended: null when something accepted it, else the errno code. */
function probeUnixSocket(path: string): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(null);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

/**
 * Make `path` free for the hybrid vsock listener: nothing there, or a stale socket from an earlier run
 * (a socket file whose connect is refused), which is removed. A regular file, a directory, a symbolic link
 * or a socket something listens on is refused with a HybridVsockError naming the path.
 */
export async function claimHybridSocketPath(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new HybridVsockError(`cannot check the hybrid vsock socket path ${path}: ${(e as Error).message}`);
  }
  const what = st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : st.isSocket() ? undefined : 'not a socket';
  if (what !== undefined) throw new HybridVsockError(`hybrid vsock socket path ${path} exists and is ${what}: refusing to replace it; remove it or choose another --vsock-uds path`);
  const err = await probeUnixSocket(path);
  if (err === null || err === 'EAGAIN') throw new HybridVsockError(`hybrid vsock socket path ${path} is a socket another process is listening on: stop it or choose another --vsock-uds path`);
  if (err !== 'ECONNREFUSED') throw new HybridVsockError(`cannot tell whether the socket ${path} is in use (connect: ${err}): remove it or choose another --vsock-uds path`);
  fs.rmSync(path, { force: true }); // stale: its listener is gone
}

export async function serveHybridVsock(host: VsockHost, udsPath: string): Promise<HybridVsockServer> {
  await claimHybridSocketPath(udsPath);
  const clients = new Set<net.Socket>();
  const server = net.createServer((client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    handleClient(host, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new HybridVsockError(`cannot listen on hybrid vsock socket ${udsPath}: ${e.message}`)));
    server.listen(udsPath, () => resolve());
  });
  server.unref();
  const ino = fs.lstatSync(udsPath).ino;

  host.onUnclaimed((port) => connectGuestToUds(`${udsPath}_${String(port)}`));

  return {
    path: udsPath,
    close: () =>
      new Promise<void>((resolve) => {
        host.onUnclaimed(undefined);
        for (const c of clients) c.destroy(); // server.close() waits for every connection to end
        server.close(() => {
          try {
            // only our socket: whatever replaced it meanwhile is not ours to delete
            if (fs.lstatSync(udsPath).ino === ino) fs.unlinkSync(udsPath);
          } catch {
            // already gone
          }
          resolve();
        });
      }),
  };
}

function handleClient(host: VsockHost, client: net.Socket): void {
  let buf = Buffer.alloc(0);
  const onData = (d: Buffer): void => {
    buf = Buffer.concat([buf, d]);
    const nl = buf.indexOf(0x0a);
    if (nl < 0) {
      if (buf.length > MAX_LINE) client.destroy();
      return;
    }
    client.off('data', onData);
    client.pause();
    const port = parseConnectLine(buf.subarray(0, nl).toString('latin1'));
    const rest = buf.subarray(nl + 1);
    if (port === undefined) {
      client.destroy();
      return;
    }
    host.connect(port).then(
      (s) => {
        if (client.destroyed) {
          s.destroy();
          return;
        }
        client.write(`OK ${String(s.localPort)}\n`);
        if (rest.length > 0) s.write(rest);
        splice(client, s);
        client.resume();
      },
      () => client.destroy(),
    );
  };
  client.on('data', onData);
  client.on('error', () => client.destroy());
}

/** A guest connection to a port with no in-process listener: try the unix socket `<udsPath>_<port>`. */
function connectGuestToUds(path: string): Promise<((s: VsockStream) => void) | undefined> {
  return new Promise((resolve) => {
    let st: fs.Stats;
    try {
      st = fs.statSync(path);
    } catch {
      resolve(undefined);
      return;
    }
    if (!st.isSocket()) {
      resolve(undefined);
      return;
    }
    const sock = net.connect(path);
    sock.once('error', () => resolve(undefined));
    sock.once('connect', () => {
      sock.removeAllListeners('error');
      sock.pause();
      resolve((s) => {
        splice(sock, s);
        sock.resume();
      });
    });
  });
}

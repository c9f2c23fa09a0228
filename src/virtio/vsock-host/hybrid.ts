// Hybrid vsock (Firecracker's docs/vsock.md): outside tools reach the guest through a unix socket.
// - host → guest: connect to `udsPath`, send `CONNECT <port>\n`, read `OK <hostport>\n`, then the socket
//   is the connection. Anything else gets the socket closed.
// - guest → host: a guest connection to host port P goes to the unix socket `<udsPath>_<P>` if something
//   listens there (and no in-process VsockHost.listen() claimed P first); otherwise it is refused (RST).

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

export async function serveHybridVsock(host: VsockHost, udsPath: string): Promise<HybridVsockServer> {
  try {
    fs.unlinkSync(udsPath); // a stale socket from an earlier run
  } catch {
    // not there: fine
  }
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

  host.onUnclaimed((port) => connectGuestToUds(`${udsPath}_${String(port)}`));

  return {
    path: udsPath,
    close: () =>
      new Promise<void>((resolve) => {
        host.onUnclaimed(undefined);
        for (const c of clients) c.destroy(); // server.close() waits for every connection to end
        server.close(() => {
          try {
            fs.unlinkSync(udsPath);
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

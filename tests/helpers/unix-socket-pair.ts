// A connected pair of real unix sockets in a scratch directory (for ttRPC tests: real 'end'/'close' events).
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface SocketPair {
  client: net.Socket;
  server: net.Socket;
  close(): void;
}

export async function unixSocketPair(): Promise<SocketPair> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kata-ts-sockpair-'));
  const sock = path.join(dir, 's.sock');
  const listener = net.createServer();
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  await new Promise<void>((resolve) => listener.listen(sock, resolve));
  const client = net.connect(sock);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  const server = await accepted;
  listener.close();
  return {
    client,
    server,
    close() {
      client.destroy();
      server.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Socket paths the back-end listens on (the vhost-user --socket and the hybrid vsock --vsock-uds) are
// claimed, never clobbered: only a stale socket (a socket file nobody listens on) is replaced; a regular
// file, a directory or a live socket there is refused with a one-line error naming the path, and left as
// it was (issue 14 item 8).

import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { loadNative } from '../../src/kvm/native.js';
import { FakeEntropySource } from '../../src/virtio/rng/backend.js';
import { RngDevice } from '../../src/virtio/rng/device.js';
import { startVhostUserBackend } from '../../src/vhost-user/index.js';
import { SocketInUse, VhostUserServer } from '../../src/vhost-user/server.js';
import { HybridVsockError } from '../../src/virtio/vsock-host/hybrid.js';

const native = loadNative();
const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '../../src/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'vu-path-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (what: string): string => join(dir, `${what}${n++}`);

/** Each kind of thing that may already be at a socket path; `check` says it is still there, untouched. */
async function occupied(kind: 'file' | 'directory' | 'live socket'): Promise<{ path: string; check: () => boolean; close: () => Promise<void> }> {
  const path = fresh(kind.replace(' ', '-'));
  if (kind === 'file') {
    writeFileSync(path, 'precious\n');
    return { path, check: () => readFileSync(path, 'utf8') === 'precious\n', close: () => Promise.resolve() };
  }
  if (kind === 'directory') {
    mkdirSync(path);
    writeFileSync(join(path, 'inside'), 'x');
    return { path, check: () => existsSync(join(path, 'inside')), close: () => Promise.resolve() };
  }
  const server: Server = createServer((c) => c.destroy());
  await new Promise<void>((r) => server.listen(path, r));
  const ino = lstatSync(path).ino;
  return { path, check: () => lstatSync(path).ino === ino, close: () => new Promise((r) => server.close(() => r())) };
}

/** A socket file nobody listens on (its listener closed without removing it). */
function staleSocket(): string {
  const path = fresh('stale');
  native.close(native.unixListen(path, 1));
  t.ok(lstatSync(path).isSocket(), 'a stale socket file is there');
  return path;
}

const rng = (): RngDevice => new RngDevice(new FakeEntropySource(1));

for (const kind of ['file', 'directory', 'live socket'] as const) {
  t.test(`vhost-user --socket: a ${kind} at the path is refused and left alone`, async (t) => {
    const o = await occupied(kind);
    t.teardown(o.close);
    const word = kind === 'file' ? 'a regular file' : kind === 'directory' ? 'a directory' : 'a socket another process is listening on';
    t.throws(() => VhostUserServer.listen(o.path, rng(), native), SocketInUse);
    try {
      VhostUserServer.listen(o.path, rng(), native);
    } catch (e) {
      const msg = (e as Error).message;
      t.ok(msg.includes(o.path) && msg.includes(word), `the error names the path and what is there: ${msg}`);
      t.notOk(msg.includes('\n'), 'one line');
    }
    t.ok(o.check(), 'what was there is untouched');
  });

  t.test(`hybrid vsock --vsock-uds: a ${kind} at the path is refused and left alone`, async (t) => {
    const o = await occupied(kind);
    t.teardown(o.close);
    const socketPath = fresh('vu.sock');
    await t.rejects(startVhostUserBackend({ spec: { kind: 'vsock', cid: 3, udsPath: o.path }, socketPath, native }), HybridVsockError);
    await startVhostUserBackend({ spec: { kind: 'vsock', cid: 3, udsPath: o.path }, socketPath, native }).then(
      () => t.fail('started'),
      (e: Error) => {
        t.match(e.message, new RegExp(`^hybrid vsock socket path ${o.path} (exists and is|is a socket another process is listening on)`));
        t.notOk(e.message.includes('\n'), 'one line');
      },
    );
    t.ok(o.check(), 'what was there is untouched');
    t.notOk(existsSync(socketPath), 'no vhost-user socket was left behind');
  });
}

t.test('a stale socket is replaced, and close removes only the socket it made', async (t) => {
  const path = staleSocket();
  const server = VhostUserServer.listen(path, rng(), native);
  t.equal(native.unixConnectProbe(path), null, 'listening on the reclaimed path');
  server.close();
  t.notOk(existsSync(path), 'removed on close');

  const uds = staleSocket();
  const socketPath = fresh('vu.sock');
  const b = await startVhostUserBackend({ spec: { kind: 'vsock', cid: 3, udsPath: uds }, socketPath, native });
  t.equal(native.unixConnectProbe(uds), null, 'the hybrid vsock listens on the reclaimed path');
  await b.close();
  t.notOk(existsSync(uds), 'hybrid socket removed on close');
  t.notOk(existsSync(socketPath), 'vhost-user socket removed on close');

  // someone replaced our socket file while we ran: close leaves theirs
  const p2 = fresh('replaced');
  const s2 = VhostUserServer.listen(p2, rng(), native);
  rmSync(p2);
  writeFileSync(p2, 'theirs');
  s2.close();
  t.equal(readFileSync(p2, 'utf8'), 'theirs', "a file that replaced our socket is not ours to delete");
});

t.test('`kata-ts vhost-user-backend --vsock-uds` on a regular file: a one-line error, the file kept', async (t) => {
  const file = fresh('data');
  writeFileSync(file, 'precious\n');
  const r = spawnSync(process.execPath, [cli, 'vhost-user-backend', '--device', 'vsock', '--vsock-cid', '3', '--socket', fresh('cli.sock'), '--vsock-uds', file], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.not(r.status, 0, 'exit status says it failed');
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line: ${r.stderr}`);
  t.match(lines[0], `${file} exists and is a regular file`);
  t.equal(readFileSync(file, 'utf8'), 'precious\n', 'the file is intact');
});

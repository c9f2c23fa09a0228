// A hostile vhost-user front end must never stop or kill the back-end (issue 14 items 4 and 5):
// - guest RAM shrunk under the back-end's mapping after SET_MEM_TABLE (SIGBUS on the next touch) is ruled
//   out: a sealable memfd gets F_SEAL_SHRINK, one that cannot be sealed is refused up front;
// - call/err/kick fds that block (no O_NONBLOCK, a full counter, O_NONBLOCK cleared again by the front end
//   on the description it shares with us) never hold the event loop: a timer keeps firing and the
//   back-end still closes.
// The SIGBUS and SIGTERM cases run the real `kata-ts vhost-user-backend` in a child process, so a back-end
// that dies or hangs is observed from outside instead of taking the test down with it.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, ftruncateSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { loadNative } from '../../src/kvm/native.js';
import { VIRTIO_F_VERSION_1 } from '../../src/virtio/ids.js';
import { FakeEntropySource } from '../../src/virtio/rng/backend.js';
import { RngDevice } from '../../src/virtio/rng/device.js';
import { encodeVringFile } from '../../src/vhost-user/codec.js';
import { VHOST_USER_F_PROTOCOL_FEATURES, VhostUserRequest as R } from '../../src/vhost-user/protocol.js';
import { VhostUserServer } from '../../src/vhost-user/server.js';
import { FD_DEADLINE_SIGNAL_OFFSET } from '../../src/vhost-user/session.js';
import { MockSplitQueue } from '../support/virtio/mock-driver.js';
import { EFD_CLOEXEC, ScriptedFrontEnd } from '../helpers/vhost-user-frontend.js';

const native = loadNative();
const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '../../src/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'vu-hostile-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const EVENTFD_MAX = 0xffff_ffff_ffff_fffen;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A blocking eventfd (no EFD_NONBLOCK) whose counter is full: a write to it sleeps until someone reads. */
function fullBlockingEventfd(): number {
  const fd = native.eventfd(0, EFD_CLOEXEC);
  native.eventfdWrite(fd, EVENTFD_MAX);
  return fd;
}

/** Counts timer callbacks while `body` runs: a loop held by a blocking call would count none. */
async function withTimer<T>(body: () => Promise<T>): Promise<{ result: T; fired: number }> {
  let fired = 0;
  const iv = setInterval(() => void fired++, 1);
  try {
    const result = await body();
    await sleep(20);
    return { result, fired };
  } finally {
    clearInterval(iv);
  }
}

function rig() {
  const path = join(dir, `s${n++}.sock`);
  const logs: string[] = [];
  const server = VhostUserServer.listen(path, new RngDevice(new FakeEntropySource(3)), native, (_l, m) => logs.push(m));
  return { path, server, logs, connect: (opts?: ConstructorParameters<typeof ScriptedFrontEnd>[3]) => new ScriptedFrontEnd(native, native.unixConnect(path), 1 << 20, opts) };
}

t.test('the addon: bounded eventfd calls come back when the peer made them blocking', async (t) => {
  const signo = native.sigrtmin() + FD_DEADLINE_SIGNAL_OFFSET;
  native.installKickHandler(signo);
  const full = fullBlockingEventfd();
  const { result, fired } = await withTimer(async () => {
    const outcomes: unknown[] = [];
    for (let i = 0; i < 5; i++) {
      try {
        outcomes.push(native.eventfdWriteDeadline(full, 1n, signo, 2));
      } catch (e) {
        outcomes.push((e as NodeJS.ErrnoException).code);
      }
      await tick();
    }
    return outcomes;
  });
  t.same(result, ['ETIMEDOUT', 'ETIMEDOUT', 'ETIMEDOUT', 'ETIMEDOUT', 'ETIMEDOUT'], 'a write to a full blocking eventfd times out');
  t.ok(fired > 0, `the event loop kept running (${fired} timer callbacks)`);
  native.fdSetNonblock(full, true);
  t.equal(native.eventfdWriteDeadline(full, 1n, signo, 2), false, 'non-blocking and full: false (a signal is pending), no wait');
  const empty = native.eventfd(0, EFD_CLOEXEC);
  // RWF_NOWAIT: a blocking, empty eventfd reads as "nothing" at once; a read that slept would time out
  // after the whole (long) deadline instead
  const t0 = Date.now();
  t.equal(native.eventfdReadDeadline(empty, signo, 5000), null, 'a read of an empty blocking eventfd: null (nothing to read), no wait');
  t.ok(Date.now() - t0 < 2500, `and it did not sleep (${Date.now() - t0} ms)`);
  native.eventfdWrite(empty, 5n);
  t.equal(native.eventfdReadDeadline(empty, signo, 2), 5n, 'a read with something to read is not cut short');
  t.equal(native.eventfdWriteDeadline(empty, 1n, signo, 2), true);
  native.close(full);
  native.close(empty);
});

t.test('the addon: the deadline holds for a read that sleeps, and after the watchdog went idle', async (t) => {
  const signo = native.sigrtmin() + FD_DEADLINE_SIGNAL_OFFSET;
  native.installKickHandler(signo);
  // a pty master has no RWF_NOWAIT (EOPNOTSUPP): the read falls back to read(2), which sleeps
  const pty = native.openPty();
  t.teardown(() => {
    native.close(pty.master);
    native.close(pty.slave);
  });
  const t0 = Date.now();
  t.throws(() => native.eventfdReadDeadline(pty.master, signo, 2), { code: 'ETIMEDOUT' }, 'a read that sleeps times out');
  t.ok(Date.now() - t0 < 1000, `promptly (${Date.now() - t0} ms for a 2 ms deadline)`);

  // the watchdog sleeps after 100 ms without a call: the next call that sleeps must wake it
  const full = fullBlockingEventfd();
  t.teardown(() => native.close(full));
  for (const idle of [150, 300]) {
    await sleep(idle);
    const t1 = Date.now();
    t.throws(() => native.eventfdWriteDeadline(full, 1n, signo, 2), { code: 'ETIMEDOUT' }, `after ${idle} ms idle, a write to a full blocking eventfd still times out`);
    t.ok(Date.now() - t1 < 1000, `promptly (${Date.now() - t1} ms)`);
  }

  // a timed-out call leaves no signal behind: the thread's next calls that do not sleep are not cut short
  const ok = native.eventfd(0, EFD_CLOEXEC);
  t.teardown(() => native.close(ok));
  let interrupted = 0;
  for (let i = 0; i < 200; i++) {
    try {
      native.eventfdWriteDeadline(full, 1n, signo, 1);
    } catch {
      // expected: ETIMEDOUT
    }
    try {
      native.eventfdWriteDeadline(ok, 1n, signo, 1000);
      if (native.eventfdReadDeadline(ok, signo, 1000) !== 1n) interrupted++;
    } catch {
      interrupted++;
    }
  }
  t.equal(interrupted, 0, 'calls right after a timeout complete with their values');
});

t.test('a memfd the front end shrinks after SET_MEM_TABLE cannot hurt the back-end', async (t) => {
  const { server, connect, logs } = rig();
  t.teardown(() => server.close());
  // sealable (QEMU's default): the back-end seals it against shrinking
  const fe = connect();
  await fe.handshake({ features: VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES }); // no EVENT_IDX: every used buffer interrupts
  const q = new MockSplitQueue(fe.mem, 0x1000, 16);
  const fds = await fe.startRing(0, q);
  t.equal(await fe.enableRing(0), 0n);
  t.throws(() => ftruncateSync(fe.memfd, 0), { code: 'EPERM' }, 'F_SEAL_SHRINK: the front end can no longer shrink its RAM');
  const head = q.addChain([{ len: 64, writable: true }]);
  q.publish();
  native.eventfdWrite(fds.kick, 1n);
  t.ok((await fe.waitEventfd(fds.call)) > 0n, 'served');
  t.same(q.used(), [{ id: head, len: 64 }]);
  fe.dispose();
  t.ok(await waitFor(() => !server.connected), 'disconnected');

  // not sealable (a memfd without MFD_ALLOW_SEALING: QEMU seal=off): refused before anything is mapped
  const bad = connect({ memfd: 'unsealable' });
  await bad.handshake({ memTable: false });
  t.equal(await bad.setMemTable(), 1n, 'SET_MEM_TABLE refused (REPLY_ACK failure)');
  t.match(server.session?.lastError?.message, /F_SEAL_SEAL is set without F_SEAL_SHRINK.*memory-backend-memfd/);
  t.ok(logs.some((l) => /SET_MEM_TABLE refused: InvalidMemoryTable/.test(l)), 'logged');
  bad.dispose();
});

t.test('blocking, full call and err fds never hold the event loop', async (t) => {
  const { server, connect, logs } = rig();
  const fe = connect();
  await fe.handshake({ features: VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES }); // no EVENT_IDX: every used buffer interrupts
  const q = new MockSplitQueue(fe.mem, 0x1000, 16);
  const fds = await fe.startRing(0, q);
  t.equal(await fe.enableRing(0), 0n);

  // 1. a blocking call fd with a full counter: the server made it O_NONBLOCK on arrival, EAGAIN = pending
  const call = fullBlockingEventfd();
  t.equal(await fe.ack(R.SET_VRING_CALL, encodeVringFile(0, false), [call]), 0n);
  const r1 = await withTimer(async () => {
    q.addChain([{ len: 16, writable: true }]);
    q.publish();
    native.eventfdWrite(fds.kick, 1n);
    return waitFor(() => q.usedIdx() === 1);
  });
  t.ok(r1.result, 'request served');
  t.ok(r1.fired > 0, 'the event loop kept running');
  t.equal(server.session!.counters.signalsPending, 1, 'a full counter: the interrupt was already pending');
  t.equal(server.session!.counters.fdsDropped, 0);

  // 2. the front end clears O_NONBLOCK again on the description it shares: the write sleeps, the deadline ends it
  native.fdSetNonblock(call, false);
  const r2 = await withTimer(async () => {
    q.addChain([{ len: 16, writable: true }]);
    q.publish();
    native.eventfdWrite(fds.kick, 1n);
    return waitFor(() => q.usedIdx() === 2);
  });
  t.ok(r2.result, 'request served');
  t.ok(r2.fired > 0, 'the event loop kept running');
  t.equal(server.session!.counters.fdsDropped, 1, 'the call fd that slept was dropped');
  t.ok(logs.some((l) => /ring 0 call fd write failed .*ETIMEDOUT.*fd dropped/.test(l)), 'and that was logged');

  // 3. the same for the err fd, written when a hostile ring breaks the device
  const err = fullBlockingEventfd();
  t.equal(await fe.ack(R.SET_VRING_ERR, encodeVringFile(0, false), [err]), 0n);
  native.fdSetNonblock(err, false);
  const r3 = await withTimer(async () => {
    q.setAvailIdx(100); // 100 entries ahead of a 16-entry ring: the device breaks
    native.eventfdWrite(fds.kick, 1n);
    return waitFor(() => server.session?.isBroken === true);
  });
  t.ok(r3.result, 'device broken');
  t.ok(r3.fired > 0, 'the event loop kept running');
  t.equal(server.session!.counters.fdsDropped, 2, 'the err fd that slept was dropped');

  // and close still completes
  fe.dispose();
  server.close();
  t.notOk(server.connected);
  native.close(call);
  native.close(err);
});

// ---- the real back-end process

interface Backend {
  child: ChildProcess;
  sock: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startBackend(): Promise<Backend> {
  const sock = join(dir, `cli${n++}.sock`);
  const child = spawn(process.execPath, [cli, 'vhost-user-backend', '--device', 'rng', '--socket', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  // serving once it says so (the socket file appears at bind, before the listener is watched)
  const up = await Promise.race([waitFor(() => err.includes('serving virtio-rng'), 30_000), exited.then(() => false)]);
  if (!up) throw new Error(`the back-end did not start: ${err}`);
  return { child, sock, stderr: () => err, exited };
}

function alive(b: Backend): boolean {
  return b.child.exitCode === null && b.child.signalCode === null;
}

/** A new connection gets a fresh session that answers. */
async function serves(b: Backend): Promise<boolean> {
  const fe = new ScriptedFrontEnd(native, native.unixConnect(b.sock));
  try {
    const r = await fe.call(R.GET_FEATURES);
    return r !== undefined && r.payload.byteLength === 8;
  } finally {
    fe.dispose();
  }
}

t.test('the back-end process survives a front end that shrinks its RAM after SET_MEM_TABLE', async (t) => {
  const b = await startBackend();
  t.teardown(() => void b.child.kill('SIGKILL'));
  for (const memfd of ['unsealable', 'sealable'] as const) {
    const fe = new ScriptedFrontEnd(native, native.unixConnect(b.sock), 1 << 20, { memfd });
    await fe.handshake({ memTable: false, features: VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES });
    const accepted = (await fe.setMemTable()) === 0n;
    t.equal(accepted, memfd === 'sealable', `${memfd} memfd: ${memfd === 'sealable' ? 'accepted (and sealed)' : 'refused'}`);
    // the attack, whatever the answer: rings in the shared RAM, then the RAM shrunk, then a kick
    const q = new MockSplitQueue(fe.mem, 0x1000, 16);
    if (accepted) {
      const fds = await fe.startRing(0, q);
      await fe.enableRing(0);
      q.addChain([{ len: 64, writable: true }]);
      q.publish();
      let shrunk = true;
      try {
        ftruncateSync(fe.memfd, 0); // the front end must not touch fe.mem after this
      } catch (e) {
        shrunk = false;
        t.equal((e as NodeJS.ErrnoException).code, 'EPERM', 'the seal stops the shrink');
      }
      native.eventfdWrite(fds.kick, 1n);
      if (!shrunk) t.ok((await fe.waitEventfd(fds.call)) > 0n, 'the request was served');
      else await sleep(300);
    }
    fe.dispose();
    await sleep(100);
    t.ok(alive(b), `${memfd}: the back-end is alive${alive(b) ? '' : ` (ended: ${JSON.stringify(await b.exited)})`}`);
    if (!alive(b)) return;
    t.ok(await serves(b), `${memfd}: it serves a new connection`);
  }
  t.match(b.stderr(), /SET_MEM_TABLE refused: InvalidMemoryTable: region 0 .*F_SEAL_SEAL is set without F_SEAL_SHRINK/, 'the refusal says why');
});

t.test('SIGTERM ends the back-end process while a front end holds blocking, full call and err fds', async (t) => {
  const b = await startBackend();
  t.teardown(() => void b.child.kill('SIGKILL'));
  const fe = new ScriptedFrontEnd(native, native.unixConnect(b.sock));
  await fe.handshake({ features: VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES });
  const q = new MockSplitQueue(fe.mem, 0x1000, 16);
  const fds = await fe.startRing(0, q);
  await fe.enableRing(0);
  const call = fullBlockingEventfd();
  const err = fullBlockingEventfd();
  t.equal(await fe.ack(R.SET_VRING_CALL, encodeVringFile(0, false), [call]), 0n);
  t.equal(await fe.ack(R.SET_VRING_ERR, encodeVringFile(0, false), [err]), 0n);
  native.fdSetNonblock(call, false); // undo the back-end's O_NONBLOCK on the shared descriptions
  native.fdSetNonblock(err, false);
  for (let i = 0; i < 3; i++) {
    q.addChain([{ len: 16, writable: true }]);
    q.publish();
    native.eventfdWrite(fds.kick, 1n);
    await waitFor(() => q.usedIdx() === i + 1, 5000);
  }
  t.equal(q.usedIdx(), 3, 'every request served');
  q.setAvailIdx(100); // break the device: the err fd is written
  native.eventfdWrite(fds.kick, 1n);
  await sleep(200);
  t.ok(alive(b), 'alive');
  b.child.kill('SIGTERM');
  const end = await Promise.race([b.exited, sleep(20_000).then(() => undefined)]);
  t.same(end, { code: 0, signal: null }, `SIGTERM ended it cleanly${end === undefined ? ` (still running: ${b.stderr()})` : ''}`);
  fe.dispose();
  native.close(call);
  native.close(err);
  t.ok(!existsSync(b.sock), 'the socket file is removed');
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(2);
  }
  return true;
}

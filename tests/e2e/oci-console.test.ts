// End to end: `create --console-socket` with process.terminal true, as podman's conmon and containerd's runc
// shim use it: the runtime hands the pty master over the socket (SCM_RIGHTS), the container's stdio is that
// terminal, the caller's resize of the master reaches the container, and input typed into the master reaches
// it. The receiving side is written here with the addon's unix socket calls; kata-ts and Debian's runc are
// driven the same way and must agree. `exec -t --detach --console-socket --pid-file` (ctr task exec -t and podman
// exec -t through their runc shims) is driven the same way.

import { closeSync, createReadStream, existsSync, readFileSync, rmSync, writeSync, type ReadStream } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadNative } from '../../src/kvm/native.js';
import { RUNTIMES, cli, e2eSkipReason, pidsMentioning, waitStatus, waitText, workdir, type Runtime } from '../helpers/oci-harness.js';

const skip = e2eSkipReason();
const TIMEOUT = 300_000;

/** Listens on `path`; `receive()` accepts one connection and returns the fd it carried and the payload. */
function consoleSocket(path: string): { receive: (ms: number) => Promise<{ fd: number; name: string }>; close: () => void } {
  const n = loadNative();
  const lfd = n.unixListen(path, 1);
  return {
    receive: async (ms) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const c = n.unixAccept(lfd);
        if (c !== null) {
          try {
            const buf = new Uint8Array(4096);
            for (;;) {
              const r = n.recvmsgFds(c, buf, 4);
              if (r === null) {
                await new Promise((res) => setTimeout(res, 20));
                continue;
              }
              if (r.fds.length !== 1) throw new Error(`expected one fd, got ${r.fds.length}`);
              return { fd: r.fds[0]!, name: Buffer.from(buf.subarray(0, r.bytes)).toString() };
            }
          } finally {
            closeSync(c);
          }
        }
        await new Promise((res) => setTimeout(res, 20));
      }
      throw new Error('nothing connected to the console socket');
    },
    close: () => {
      closeSync(lfd);
      rmSync(path, { force: true });
    },
  };
}

/**
 * Ends a ReadStream on a received fd: destroy() closes the fd itself (autoClose only governs end and error), once
 * a read pending in the thread pool returns; closing the fd as well would close a number already reused.
 */
function closeReader(reader: ReadStream): Promise<void> {
  return new Promise((resolve) => {
    reader.once('close', () => resolve());
    reader.destroy();
  });
}

t.test('create --console-socket: the container runs on the handed-over terminal (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const script = 'sleep 2; stty size; [ -t 0 ] && echo stdin-is-a-tty; read line; echo "got:$line"; exit 5';
  const bundle = w.bundle('bundle', ['sh', '-c', script], (s) => ((s['process'] as Record<string, unknown>)['terminal'] = true));
  const res: Record<Runtime, unknown> = { kata: undefined, runc: undefined };
  for (const rt of RUNTIMES) {
    const id = `tty-${rt}`;
    const sock = consoleSocket(join(w.dir, `${rt}-console.sock`));
    t.teardown(() => sock.close());
    const created = cli(w, rt, ['create', '--bundle', bundle, '--console-socket', join(w.dir, `${rt}-console.sock`), id]);
    const master = await sock.receive(120_000);
    const c = await created;
    t.equal(c.code, 0, `${rt} create: ${c.stderr}`);
    t.ok(master.fd > 2, `${rt}: the pty master arrived over the socket (${master.name})`);
    let out = '';
    const reader = createReadStream('', { fd: master.fd, autoClose: false });
    reader.on('data', (b) => (out += b.toString()));
    reader.on('error', () => undefined); // EIO once the last slave closes
    loadNative().setWindowSize(master.fd, 33, 111); // the caller resizes its terminal
    t.equal((await cli(w, rt, ['start', id])).code, 0, `${rt} start`);
    t.ok(await waitText(() => out, 'stdin-is-a-tty', 60_000), `${rt}: the container's stdin is a terminal: ${JSON.stringify(out)}`);
    writeSync(master.fd, 'hello\n');
    t.ok(await waitText(() => out, 'got:hello', 60_000), `${rt}: what was typed into the master reached the container`);
    t.equal(await waitStatus(w, rt, id, 'stopped', 60_000), 'stopped', `${rt}: the container ends`);
    const lines = out.split(/\r?\n/).filter((l) => l !== '' && l !== 'hello');
    t.same(lines, ['33 111', 'stdin-is-a-tty', 'got:hello'], `${rt}: size, tty and input as the container saw them`);
    t.equal((await cli(w, rt, ['delete', id])).code, 0, `${rt} delete`);
    await closeReader(reader);
    res[rt] = lines;
  }
  t.same(res.kata, res.runc, 'kata-ts and runc agree');
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

t.test('exec -t --detach --console-socket --pid-file, as containerd\'s runc shim runs ctr task exec -t (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bundle = w.bundle('bundle', ['sleep', '1000']);
  const res: Record<Runtime, unknown> = { kata: undefined, runc: undefined };
  for (const rt of RUNTIMES) {
    const id = `xtty-${rt}`;
    t.equal((await cli(w, rt, ['create', '--bundle', bundle, id], { stdout: 'ignore', stderr: 'ignore' })).code, 0, `${rt} create`);
    t.equal((await cli(w, rt, ['start', id])).code, 0, `${rt} start`);
    const path = join(w.dir, `${rt}-exec.sock`);
    const sock = consoleSocket(path);
    t.teardown(() => sock.close());
    const pidFile = join(w.dir, `${rt}-exec.pid`);
    const script = 'sleep 2; stty size; [ -t 0 ] && echo stdin-is-a-tty; read line; echo "got:$line"';
    const ex = cli(w, rt, ['exec', '-t', '--detach', '--console-socket', path, '--pid-file', pidFile, id, 'sh', '-c', script]);
    const master = await sock.receive(120_000);
    const e = await ex;
    t.equal(e.code, 0, `${rt} exec --detach returns at once: ${e.stderr}`);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    t.ok(pid > 0, `${rt}: --pid-file names a pid (${pid})`);
    let out = '';
    const reader = createReadStream('', { fd: master.fd, autoClose: false });
    reader.on('data', (b) => (out += b.toString()));
    reader.on('error', () => undefined);
    loadNative().setWindowSize(master.fd, 44, 99);
    t.ok(await waitText(() => out, 'stdin-is-a-tty', 60_000), `${rt}: the exec's stdin is a terminal: ${JSON.stringify(out)}`);
    writeSync(master.fd, 'typed\n');
    t.ok(await waitText(() => out, 'got:typed', 60_000), `${rt}: input typed into the master reached the exec`);
    for (let i = 0; i < 300 && existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'); i++) await new Promise((r) => setTimeout(r, 100));
    t.notOk(existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'), `${rt}: the --pid-file process ends with the exec`);
    const lines = out.split(/\r?\n/).filter((l) => l !== '' && l !== 'typed');
    t.same(lines, ['44 99', 'stdin-is-a-tty', 'got:typed'], `${rt}: size, tty and input as the exec saw them`);
    t.equal((await cli(w, rt, ['delete', '--force', id])).code, 0, `${rt} delete --force`);
    await closeReader(reader);
    res[rt] = lines;
  }
  t.same(res.kata, res.runc, 'kata-ts and runc agree');
  const refused = await cli(w, 'kata', ['exec', '-t', '--detach', 'xtty-kata', 'true']);
  t.match(refused.stderr, /^kata-ts: exec --detach --tty: pass --console-socket SOCKET/, 'a detached terminal with nowhere to go is refused first');
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

t.test('process.terminal without --console-socket is refused by create, with what to do', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bundle = w.bundle('bundle', ['true'], (s) => ((s['process'] as Record<string, unknown>)['terminal'] = true));
  const c = await cli(w, 'kata', ['create', '--bundle', bundle, 'noconsole']);
  t.not(c.code, 0);
  t.match(c.stderr, /^kata-ts: .*process\.terminal true: pass --console-socket/);
  t.same(w.leftovers('kata'), [], 'nothing made');
  const r = await cli(w, 'runc', ['create', '--bundle', bundle, 'noconsole']);
  t.not(r.code, 0, 'runc refuses it too');
});

// End to end (issue 14 items 1-3): what another local user can do to a running kata-ts container, with the CLI
// run under `umask 000` and under `umask 022`. A second, unprivileged user made by this test
// (`useradd --system`, removed at the end) probes everything the sandbox left under the state root and in its
// temp dir (QEMU's work dir: QMP, vhost-user sockets): it can read no file, list no directory and connect to no
// socket. With the socket's and directories' modes loosened by hand, the sandbox still refuses that user
// (SO_PEERCRED). The user's `kata-ts delete --force` fails and the container keeps running; a relay registration
// naming another process's pid (made as root, the runtime's own uid, past the uid check) is refused, so the
// final `delete --force` signals nothing but the container's own processes. Real QEMU path, as the other e2e
// tests; root only, skipped with the reason otherwise (also when useradd/setpriv are missing).

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { open } from '../../src/runtime/control.js';
import { cliPath, e2eSkipReason, pidsMentioning, stateOf, waitStatus, waitText, workdir, type Workdir } from '../helpers/oci-harness.js';

const TIMEOUT = 400_000;

function toolsSkipReason(): string | false {
  for (const tool of ['useradd', 'userdel', 'setpriv']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} not found (apt-get install passwd util-linux): cannot make an unprivileged user`;
  }
  return false;
}
const skip = e2eSkipReason() || toolsSkipReason();

interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

/** A system user with no home, removed when the file's tests end. */
function makeUser(): TestUser {
  const name = `kata-ts-test-${process.pid}`;
  const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`useradd ${name} failed: ${r.stderr}`);
  t.teardown(() => void spawnSync('userdel', [name]));
  const id = (flag: string): number => Number(spawnSync('id', [flag, name], { encoding: 'utf8' }).stdout.trim());
  return { name, uid: id('-u'), gid: id('-g') };
}

/**
 * setpriv's arguments that run node as `u` with no supplementary groups and an empty environment: none of the
 * test runner's (tap adds NODE_OPTIONS to every child, whose hooks write under .tap/, which `u` cannot).
 */
const asUser = (u: TestUser): string[] => [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', 'env', '-i', `PATH=${process.env['PATH'] ?? '/usr/bin:/bin'}`, process.execPath];

interface ProbeResult {
  read: string[];
  list: string[];
  connect: string[];
  /** what each socket that accepted the connection answered to `request` */
  replies: string[];
}

/**
 * As `user`: read each file, list each directory, connect to each socket (and send `request` when given).
 * Reports what succeeded.
 */
function probe(user: TestUser, files: string[], dirs: string[], sockets: string[], request?: string): ProbeResult {
  const script = `
    const fs = require('fs'), net = require('net');
    const [files, dirs, socks, req] = JSON.parse(process.argv[1]);
    const out = { read: [], list: [], connect: [], replies: [] };
    for (const f of files) { try { fs.readFileSync(f); out.read.push(f); } catch {} }
    for (const d of dirs) { try { fs.readdirSync(d); out.list.push(d); } catch {} }
    (async () => {
      for (const s of socks) {
        await new Promise((done) => {
          const c = net.connect(s);
          c.on('error', () => done());
          c.on('connect', () => {
            out.connect.push(s);
            if (!req) { c.destroy(); return done(); }
            let b = '';
            c.on('data', (d) => (b += d));
            c.on('close', () => { out.replies.push(b.trim()); done(); });
            c.write(req + '\\n');
            setTimeout(() => c.destroy(), 5000);
          });
        });
      }
      process.stdout.write(JSON.stringify(out));
    })();`;
  const r = spawnSync(
    'setpriv',
    [...asUser(user), '-e', script, JSON.stringify([files, dirs, sockets, request ?? ''])],
    { encoding: 'utf8', cwd: '/', timeout: 60_000 },
  );
  if (r.status !== 0) throw new Error(`probe as ${user.name} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ProbeResult;
}

/** Every path under `dir`, by kind. */
function walk(dir: string, into = { files: [] as string[], dirs: [] as string[], sockets: [] as string[] }): typeof into {
  const st = lstatSync(dir);
  if (st.isDirectory()) {
    into.dirs.push(dir);
    for (const n of readdirSync(dir)) walk(join(dir, n), into);
  } else if (st.isSocket()) into.sockets.push(dir);
  else if (st.isFile()) into.files.push(dir);
  return into;
}

/** kata-ts with the workdir's --root and no --log, so that sandbox.log lands under the state root too. */
function kata(w: Workdir, args: string[], o: { as?: TestUser; stdout?: number } = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const argv = [cliPath, '--root', w.roots.kata, ...args];
    const child = spawn(o.as ? 'setpriv' : process.execPath, o.as ? [...asUser(o.as), ...argv] : argv, {
      stdio: ['ignore', o.stdout ?? 'ignore', 'pipe'],
      cwd: '/',
    });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      setTimeout(() => resolve({ code, stderr }), 50);
    });
  });
}

const user = skip ? undefined : makeUser();

for (const mask of [0o000, 0o022]) {
  const label = `umask ${mask.toString(8).padStart(3, '0')}`;
  t.test(`${label}: another local user reads, connects to and signals nothing`, { skip, timeout: TIMEOUT }, async (t: Test) => {
    const u = user!;
    const w = workdir(t);
    // the workdir is mkdtemp's 0700, which alone would hide everything: open it so the runtime's own modes are
    // what is tested
    chmodSync(w.dir, 0o755);
    const bundle = w.bundle('bundle', ['sh', '-c', 'echo started; exec sleep 1000']);
    const id = `perm-${mask.toString(8)}`;
    const out = w.outFile('out');
    const oldMask = process.umask(mask);
    let create: { code: number | null; stderr: string };
    try {
      create = await kata(w, ['create', '--bundle', bundle, id], { stdout: out.fd });
    } finally {
      process.umask(oldMask);
    }
    const logTail = (): string => {
      const p = join(w.roots.kata, id, 'sandbox.log');
      return existsSync(p) ? readFileSync(p, 'utf8').slice(-3000) : '(no sandbox.log)';
    };
    t.equal(create.code, 0, `create under ${label}: ${create.stderr} ${create.code === 0 ? '' : logTail()}`);
    if (create.code !== 0) return;
    t.equal((await kata(w, ['start', id])).code, 0, 'start');
    t.ok(await waitText(out.read, 'started'), 'the container runs');
    const before = await stateOf(w, 'kata', id);
    t.equal(before?.status, 'running');
    const relayPid = before?.pid ?? 0;

    // everything the sandbox made: the state root and its temp dir (QEMU's work dir with QMP and vhost-user sockets)
    const sandbox = JSON.parse(readFileSync(join(w.roots.kata, id, 'sandbox.json'), 'utf8')) as { tmpDir: string; pid: number };
    const found = walk(w.roots.kata);
    const tmp = walk(sandbox.tmpDir);
    const files = [...found.files, ...tmp.files];
    const dirs = [...found.dirs, ...tmp.dirs];
    const sockets = [...found.sockets, ...tmp.sockets];
    for (const want of ['state.json', 'sandbox.json', 'sandbox.log', 'console.log']) {
      t.ok(files.includes(join(w.roots.kata, id, want)), `${want} is among the probed files`);
    }
    // the virtio-fs share (its bind mounts are in the sandbox's own mount namespace; here an empty 0700 dir)
    t.ok(dirs.includes(join(w.roots.kata, id, 'shared')), 'the shared/ directory is among the probed directories');
    t.ok(sockets.includes(join(w.roots.kata, id, 'control.sock')), 'control.sock is among the probed sockets');
    t.ok(tmp.sockets.length > 0, `the temp dir's sockets are probed too (${tmp.sockets.map((s) => s.slice(sandbox.tmpDir.length + 1)).join(', ')})`);
    for (const f of found.files) t.equal((lstatSync(f).mode & 0o777).toString(8), '600', `mode of ${f.slice(w.dir.length + 1)}`);
    // the virtio-fs share's own directories are traverse-only (0711: a user-namespaced container's mapped root
    // passes them in the guest); the sandbox directory above them is 0700, so no host user reaches them
    const shared = join(w.roots.kata, id, 'shared');
    const traverseOnly = [shared, join(shared, id), join(shared, id, 'mounts')];
    for (const d of found.dirs) t.equal((lstatSync(d).mode & 0o777).toString(8), traverseOnly.includes(d) ? '711' : '700', `mode of ${d.slice(w.dir.length + 1)}/`);
    for (const s of found.sockets) t.equal((lstatSync(s).mode & 0o777).toString(8), '600', `mode of ${s.slice(w.dir.length + 1)}`);

    // the probe itself works: a world-readable file and a world-connectable socket next to the root are reached
    const openFile = join(w.dir, 'readable.txt');
    writeFileSync(openFile, 'x');
    chmodSync(openFile, 0o644);
    const openSock = join(w.dir, 'open.sock');
    const server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(openSock, r));
    chmodSync(openSock, 0o777);
    t.teardown(() => server.close());
    const control = probe(u, [openFile], [w.dir], [openSock]);
    t.same(control, { read: [openFile], list: [w.dir], connect: [openSock], replies: [] }, `as ${u.name}: the probe reaches what is open to it`);

    const p = probe(u, files, dirs, sockets);
    t.same(p.read, [], `as ${u.name}: no file under the state root or the temp dir is readable (${files.length} probed)`);
    t.same(p.list, [], `as ${u.name}: no directory is listable (${dirs.length} probed)`);
    t.same(p.connect, [], `as ${u.name}: no socket accepts a connection (${sockets.length} probed)`);

    // loosen the modes by hand (a mistake, or a root made by someone else): the control socket still refuses the user
    const ctlSock = join(w.roots.kata, id, 'control.sock');
    chmodSync(w.roots.kata, 0o711);
    chmodSync(join(w.roots.kata, id), 0o711);
    chmodSync(ctlSock, 0o777);
    try {
      const loose = probe(u, [], [], [ctlSock], JSON.stringify({ op: 'relay', id, exec: '', pid: sandbox.pid }));
      t.same(loose.connect, [ctlSock], 'with the modes loosened the user can connect');
      t.equal(loose.replies.length, 1);
      t.match(loose.replies[0], new RegExp(`"ok":false.*permission denied: uid ${u.uid} may not use the control socket`), 'and is refused by SO_PEERCRED');
    } finally {
      chmodSync(ctlSock, 0o600);
      chmodSync(join(w.roots.kata, id), 0o700);
      chmodSync(w.roots.kata, 0o700);
    }

    // the user's own `kata-ts delete --force` fails: it can neither read the state nor reach the sandbox
    const del = await kata(w, ['delete', '--force', id], { as: u });
    t.not(del.code, 0, `as ${u.name}: delete --force fails`);
    t.match(del.stderr, /^kata-ts: [^\n]+\n$/, `one error line: ${del.stderr.trim()}`);
    t.equal((await stateOf(w, 'kata', id))?.status, 'running', 'the container still runs');

    // a forged relay registration by the runtime's own uid: another process's pid is refused
    const victim = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
    t.teardown(() => void victim.kill('SIGKILL'));
    await t.rejects(open(ctlSock, { op: 'relay', id, exec: '', pid: victim.pid! }), /relay registration refused: pid \d+ is not the connecting process/, 'a relay naming another pid is refused');
    t.equal((await stateOf(w, 'kata', id))?.pid, relayPid, 'state.pid is still the real relay');

    const fin = await kata(w, ['delete', '--force', id]);
    t.equal(fin.code, 0, `delete --force: ${fin.stderr}`);
    t.ok(existsSync(`/proc/${victim.pid!}`), 'the process the forged registration named was not signalled');
    t.equal(await waitStatus(w, 'kata', id, 'gone', 10_000), 'gone');
    t.same(w.leftovers('kata'), [], 'nothing left under --root');
    t.same(pidsMentioning(w.roots.kata), [], 'no sandbox process left');
    t.same(pidsMentioning(sandbox.tmpDir), [], 'no QEMU or backend left');
    out.close();
  });
}

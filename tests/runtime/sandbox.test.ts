// The runtime API (src/runtime/api.ts) against a real sandbox: QEMU (TCG here) boots the guest kernel and the
// agent initrd, runc runs busybox containers in the guest. Covers: run with output and exit code; a second
// container joining the sandbox through io.kubernetes.cri.sandbox-id and a block slot reused by a third one
// (the guest must see the new file system, not a cached one); crash recovery (kill -9 of the sandbox
// process, then delete removes the state, QEMU and the temp dir).
// Skipped with the reason when qemu, the cached full kernel, mkfs.ext4 or busybox is missing.

import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as api from '../../src/runtime/api.js';
import { isAlive, readSandbox } from '../../src/runtime/state.js';

function cachedKernel(): boolean {
  const root = join(process.env['KATA_TS_CACHE'] ?? join(homedir(), '.cache/kata-ts'), 'kernel');
  return existsSync(root) && readdirSync(root).some((d) => d.startsWith('full-') && existsSync(join(root, d, 'vmlinux')));
}
const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
const qemu = spawnSync('qemu-system-x86_64', ['-device', 'help'], { encoding: 'utf8' });
const skip =
  qemu.status !== 0 ? 'qemu-system-x86_64 not found (guest/install-deps.sh)'
  : !qemu.stdout.includes('vhost-user-vsock-device') ? 'qemu has no vhost-user-vsock-device'
  : !cachedKernel() ? 'no cached full guest kernel: run `npm run guest:kernel`'
  : spawnSync('mkfs.ext4', ['-V']).status !== 0 ? 'mkfs.ext4 not found (apt-get install e2fsprogs)'
  : !busybox ? 'busybox not found (apt-get install busybox-static)'
  : false;

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-rt-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, 'state');
const o: api.RuntimeOptions = { root, hypervisor: 'qemu' };

function bundle(name: string, args: string[], marker: string, annotations?: Record<string, string>): string {
  const b = join(dir, name);
  const rootfs = join(b, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'etc']) mkdirSync(join(rootfs, d));
  copyFileSync(busybox!, join(rootfs, 'bin/busybox'));
  for (const app of ['sh', 'cat', 'echo', 'sleep', 'uname']) symlinkSync('busybox', join(rootfs, 'bin', app));
  writeFileSync(join(rootfs, 'etc/marker'), `${marker}\n`);
  const spec = {
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin'], cwd: '/' },
    root: { path: 'rootfs', readonly: true },
    hostname: 'kata-ts-test',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
    ],
    linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }] },
    ...(annotations ? { annotations } : {}),
  };
  writeFileSync(join(b, 'config.json'), JSON.stringify(spec));
  return b;
}

/** stdio to files; returns the fds and a reader */
function files(name: string): { stdio: api.StdioFds; out: () => string; err: () => string; close: () => void } {
  const o = join(dir, `${name}.out`);
  const e = join(dir, `${name}.err`);
  const stdio = { stdin: openSync('/dev/null', 'r'), stdout: openSync(o, 'w'), stderr: openSync(e, 'w') };
  return {
    stdio,
    out: () => readFileSync(o, 'utf8'),
    err: () => readFileSync(e, 'utf8'),
    close: () => [stdio.stdin, stdio.stdout, stdio.stderr].forEach((fd) => closeSync(fd)),
  };
}

t.test('run: output, stderr and the exit code; nothing left behind', { skip, timeout: 120_000 }, async (t) => {
  const b = bundle('b-run', ['sh', '-c', 'uname -s; cat /etc/marker; echo oops >&2; exit 3'], 'run-marker');
  const f = files('run');
  const code = await api.run(o, 'r1', { bundle: b, stdio: f.stdio });
  f.close();
  t.equal(code, 3, 'exit code of the container');
  t.equal(f.out(), 'Linux\nrun-marker\n');
  t.equal(f.err(), 'oops\n');
  t.same(readdirSync(root), [], 'run deleted the container and the sandbox');
});

t.test('joined containers and block slot reuse; crash recovery', { skip, timeout: 180_000 }, async (t) => {
  const first = bundle('b-first', ['sh', '-c', 'echo up; sleep 1000'], 'first');
  const f1 = files('first');
  t.teardown(() => api.remove(o, 'sb', true).catch(() => undefined));
  await api.create(o, 'sb', { bundle: first, stdio: f1.stdio });
  f1.close();
  t.match(await api.state(o, 'sb'), { id: 'sb', status: 'created', bundle: first });
  await api.start(o, 'sb');
  t.match(await api.state(o, 'sb'), { status: 'running' });
  const join1 = { 'io.kubernetes.cri.sandbox-id': 'sb' };
  for (const [i, marker] of ['second', 'third', 'second-again'].entries()) {
    const b = bundle(`b-j${i}`, ['cat', '/etc/marker'], marker, join1);
    const f = files(`j${i}`);
    t.equal(await api.run(o, `j${i}`, { bundle: b, stdio: f.stdio }), 0, `joined container ${i} exit code`);
    f.close();
    t.equal(f.out(), `${marker}\n`, `joined container ${i} sees its own rootfs (slot reused after the previous one was deleted)`);
  }
  t.same((await api.list(o)).map((s) => s.id), ['sb'], 'only the first container remains');

  const sb = readSandbox(root, 'sb')!;
  t.ok(isAlive(sb.pid, sb.pidStart), 'the sandbox process runs');
  process.kill(sb.pid, 'SIGKILL');
  for (let i = 0; i < 100 && isAlive(sb.pid, sb.pidStart); i++) await new Promise((r) => setTimeout(r, 20));
  t.match(await api.state(o, 'sb'), { status: 'stopped' }, 'a dead sandbox reads as stopped');
  await api.remove(o, 'sb');
  t.same(readdirSync(root), [], 'delete removed the state directory');
  t.notOk(existsSync(sb.tmpDir), 'and the sandbox temp dir (QEMU sockets)');
  // zombies do not count: this machine's PID 1 may not reap orphans
  let live = '';
  for (let i = 0; i < 50; i++) {
    const ps = spawnSync('ps', ['-o', 'pid=,stat=,comm=', '-g', String(sb.pid)], { encoding: 'utf8' });
    live = ps.stdout.split('\n').filter((l) => l.trim() && !/^\s*\d+\s+Z/.test(l)).join('; ');
    if (!live) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(live, '', 'no live process of the sandbox group (QEMU, backends) is left');
  t.equal(readFileSync(join(dir, 'first.out'), 'utf8'), 'up\n', 'the first container wrote to the stdio given to create');
});

// End to end: linux.cgroupsPath (cgroupfs driver). runc puts the container's processes in that cgroup; kata-ts
// puts the sandbox's host processes there (the sandbox process, the VMM, its helpers), so what reads the
// container's cgroup (containerd's runc shim for `ctr task metrics`) sees what the sandbox uses. Both remove
// it on delete. A path with '..' or in systemd's slice:prefix:name form is refused before anything starts.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hierarchies } from '../../src/host/cgroup.js';
import { RUNTIMES, cli, e2eSkipReason, pidsMentioning, stateOf, waitStatus, workdir } from '../helpers/oci-harness.js';

const skip = e2eSkipReason();
const TIMEOUT = 300_000;

/** The directory of a cgroup path in the memory (v1) or unified (v2) hierarchy, whichever this host has. */
function memoryDir(path: string): { dir: string; usage: string } {
  const hs = hierarchies();
  const v1 = hs.find((h) => h.key === 'memory');
  if (v1) return { dir: join(v1.dir, path), usage: 'memory.usage_in_bytes' };
  const v2 = hs.find((h) => h.key === '');
  return { dir: join(v2!.dir, path), usage: 'memory.current' };
}

const procs = (dir: string): number[] => readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim().split('\n').filter((l) => l !== '').map(Number);

t.test('cgroupsPath: the sandbox runs in it and delete removes it (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const tag = `kata-ts-e2e-${process.pid}`;
  for (const rt of RUNTIMES) {
    const path = `/${tag}/${rt}`;
    const bundle = w.bundle(`b-${rt}`, ['sleep', '1000'], (s) => ((s['linux'] as Record<string, unknown>)['cgroupsPath'] = path));
    const id = `cg-${rt}`;
    t.equal((await cli(w, rt, ['create', '--bundle', bundle, id], { stdout: 'ignore', stderr: 'ignore' })).code, 0, `${rt} create`);
    t.equal((await cli(w, rt, ['start', id])).code, 0, `${rt} start`);
    t.equal(await waitStatus(w, rt, id, 'running'), 'running');
    const m = memoryDir(path);
    t.ok(existsSync(m.dir), `${rt}: ${m.dir} exists`);
    const members = procs(m.dir);
    t.ok(members.length >= 1, `${rt}: the cgroup has members (${members.join(' ')})`);
    const usage = Number(readFileSync(join(m.dir, m.usage), 'utf8'));
    t.ok(usage > 0, `${rt}: its memory usage is counted (${usage} bytes)`);
    if (rt === 'kata') {
      const cmd = (p: number): string => readFileSync(`/proc/${p}/cmdline`, 'utf8');
      t.ok(members.some((p) => cmd(p).includes('sandbox-main')), 'kata-ts: the sandbox process is in it');
      t.ok(members.some((p) => cmd(p).includes('qemu-system')), 'kata-ts: the VMM (QEMU) is in it');
      t.ok(usage > 32 * 2 ** 20, `kata-ts: the VM's memory is charged to it (${usage} bytes)`);
    } else {
      const st = await stateOf(w, rt, id);
      t.ok(members.includes(st!.pid), 'runc: the container process is in it');
    }
    t.equal((await cli(w, rt, ['delete', '--force', id])).code, 0, `${rt} delete --force`);
    for (let i = 0; i < 50 && existsSync(m.dir); i++) await new Promise((r) => setTimeout(r, 100));
    t.notOk(existsSync(m.dir), `${rt}: delete removed the cgroup`);
  }
  for (const h of hierarchies()) {
    try {
      (await import('node:fs')).rmdirSync(join(h.dir, tag));
    } catch {
      // never made in that hierarchy, or already gone
    }
  }
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

t.test('a cgroupsPath kata-ts cannot use is refused before anything starts', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  for (const [path, msg] of [
    ['/a/../../escape', /must not contain '\.\.'/],
    ['system.slice:kata:x', /systemd form/],
  ] as const) {
    const bundle = w.bundle(`b-${path.length}`, ['true'], (s) => ((s['linux'] as Record<string, unknown>)['cgroupsPath'] = path));
    const c = await cli(w, 'kata', ['create', '--bundle', bundle, 'cgbad']);
    t.not(c.code, 0);
    t.match(c.stderr, msg);
    t.same(w.leftovers('kata'), [], 'nothing made');
  }
});

// End to end: OCI hooks (runtime-spec config.md). kata-ts runs every kind on the host, each once at its point
// with the container's state on stdin; a failing prestart hook fails create and leaves nothing behind. runc
// runs the same bundle's hooks (startContainer it runs inside the container, so that one is compared apart).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { RUNTIMES, cli, e2eSkipReason, pidsMentioning, waitStatus, workdir, type Runtime } from '../helpers/oci-harness.js';

const skip = e2eSkipReason();
const TIMEOUT = 300_000;
const KINDS = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;

interface Entry {
  kind: string;
  state: { id: string; status: string; pid: number; bundle: string; annotations?: Record<string, string> };
}

t.test('each hook kind runs once, in order, with the state on stdin (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const res: Record<Runtime, unknown> = { kata: undefined, runc: undefined };
  for (const rt of RUNTIMES) {
    const log = join(w.dir, `hooks-${rt}.log`);
    writeFileSync(log, '');
    // /bin/sh: the host's for kata-ts; runc runs startContainer inside the container, whose /bin/sh is busybox
    const hook = (kind: string): unknown => ({ path: '/bin/sh', args: ['sh', '-c', `printf '%s %s\\n' "$0" "$(cat)" >> ${rt === 'runc' && kind === 'startContainer' ? '/hooks.log' : log}`, kind], env: ['HOOKVAR=1'], timeout: 30 });
    const bundle = w.bundle(`b-${rt}`, ['sleep', '1000'], (s) => {
      s['hooks'] = Object.fromEntries(KINDS.map((k) => [k, [hook(k)]]));
      s['annotations'] = { 'org.example/hooks': 'yes' };
    });
    const id = `hooks-${rt}`;
    t.equal((await cli(w, rt, ['create', '--bundle', bundle, id], { stdout: 'ignore', stderr: 'ignore' })).code, 0, `${rt} create`);
    t.equal((await cli(w, rt, ['start', id])).code, 0, `${rt} start`);
    t.equal(await waitStatus(w, rt, id, 'running'), 'running');
    t.equal((await cli(w, rt, ['delete', '--force', id])).code, 0, `${rt} delete --force`);
    const entries: Entry[] = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => ({ kind: l.slice(0, l.indexOf(' ')), state: JSON.parse(l.slice(l.indexOf(' ') + 1)) as Entry['state'] }));
    if (rt === 'runc') {
      const inside = join(bundle, 'rootfs', 'hooks.log');
      t.ok(existsSync(inside), 'runc: startContainer ran inside the container');
    }
    const kinds = entries.map((e) => e.kind);
    t.same(kinds, rt === 'kata' ? [...KINDS] : KINDS.filter((k) => k !== 'startContainer'), `${rt}: every hook ran once, in order`);
    for (const e of entries) {
      t.equal(e.state.id, id, `${rt} ${e.kind}: state.id`);
      t.equal(e.state.bundle, bundle, `${rt} ${e.kind}: state.bundle`);
      t.same(e.state.annotations, { 'org.example/hooks': 'yes' }, `${rt} ${e.kind}: state.annotations`);
    }
    const pid = entries.find((e) => e.kind === 'poststart')?.state.pid ?? 0;
    t.ok(pid > 0, `${rt}: poststart sees the container's pid (${pid})`);
    res[rt] = entries.filter((e) => e.kind !== 'startContainer').map((e) => [e.kind, e.state.status]);
    t.same(w.leftovers(rt), [], `${rt}: nothing left under --root`);
  }
  t.comment(`statuses: kata ${JSON.stringify(res.kata)}, runc ${JSON.stringify(res.runc)}`);
  t.same(res.kata, res.runc, 'kata-ts and runc agree on the order and the state.status each hook sees');
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

t.test('a failing prestart hook fails create and leaves nothing (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  for (const rt of RUNTIMES) {
    const bundle = w.bundle(`b-${rt}`, ['sleep', '1000'], (s) => {
      s['hooks'] = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', 'echo hook says no >&2; exit 3'] }] };
    });
    const id = `nohook-${rt}`;
    const c = await cli(w, rt, ['create', '--bundle', bundle, id]);
    t.not(c.code, 0, `${rt}: create fails`);
    if (rt === 'kata') t.match(c.stderr, /^kata-ts: prestart hook \/bin\/sh failed \(exit status 3\): hook says no\n$/, 'kata-ts says which hook failed and why, in one line');
    t.same(w.leftovers(rt), [], `${rt}: nothing left under --root`);
  }
  t.same(pidsMentioning(w.roots.kata), [], 'no VM or helper left behind');
  const bad = w.bundle('bad', ['true'], (s) => (s['hooks'] = { poststart: [{ path: 'relative/hook' }] }));
  const r = await cli(w, 'kata', ['create', '--bundle', bad, 'badhook']);
  t.not(r.code, 0);
  t.match(r.stderr, /hooks\.poststart\[0\]\.path must be an absolute path/, 'a malformed hook is refused before anything starts');
  t.same(w.leftovers('kata'), []);
});

// End to end: two containers in one sandbox (the second joins with the annotation io.kubernetes.cri.sandbox-id,
// as CRI runtimes pass it), and crash recovery (kill -9 the sandbox process, then `delete` cleans everything:
// state, VMM, backends). Under runc the same bundles run as two host containers, which also share one kernel,
// so "same boot_id in both" holds for both runtimes; under kata-ts that kernel is the VM's, not the host's.

import { readFileSync } from 'node:fs';
import t from 'tap';
import { RUNTIMES, cli, e2eSkipReason, pidsMentioning, stateOf, waitStatus, waitText, workdir, type Runtime } from '../helpers/oci-harness.js';

const skip = e2eSkipReason();
const TIMEOUT = 300_000;
const hostBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const ANNOTATION = 'io.kubernetes.cri.sandbox-id';

t.test('two containers in one sandbox (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const args = ['sh', '-c', 'cat /proc/sys/kernel/random/boot_id; exec sleep 1000'];
  const res: Record<Runtime, unknown[]> = { kata: [], runc: [] };
  for (const rt of RUNTIMES) {
    const a = `pod-${rt}`;
    const b = `side-${rt}`;
    const ba = w.bundle(`a-${rt}`, args, (s) => (s['annotations'] = { [ANNOTATION]: a, 'io.kubernetes.cri.container-type': 'sandbox' }));
    const bb = w.bundle(`b-${rt}`, args, (s) => (s['annotations'] = { [ANNOTATION]: a, 'io.kubernetes.cri.container-type': 'container' }));
    const oa = w.outFile(`${a}.out`);
    const ob = w.outFile(`${b}.out`);
    t.equal((await cli(w, rt, ['create', '--bundle', ba, a], { stdout: oa.fd })).code, 0, `${rt} create ${a}`);
    t.equal((await cli(w, rt, ['start', a])).code, 0, `${rt} start ${a}`);
    const cb = await cli(w, rt, ['create', '--bundle', bb, b], { stdout: ob.fd });
    t.equal(cb.code, 0, `${rt} create ${b} (joins ${a}): ${cb.stderr}`);
    t.equal((await cli(w, rt, ['start', b])).code, 0, `${rt} start ${b}`);
    t.ok(await waitText(oa.read, '\n'), `${rt} ${a} printed its boot id`);
    t.ok(await waitText(ob.read, '\n'), `${rt} ${b} printed its boot id`);
    const idA = oa.read().trim();
    const idB = ob.read().trim();
    t.equal(idA, idB, `${rt}: both containers run on one kernel (${idA})`);
    if (rt === 'kata') t.not(idA, hostBootId, 'kata-ts: that kernel is the VM guest, not the host');
    const sb = await stateOf(w, rt, b);
    t.equal(sb?.annotations?.[ANNOTATION], a, `${rt}: state carries the annotations`);
    const ids = (JSON.parse((await cli(w, rt, ['list', '-f', 'json'])).stdout) as { id: string }[]).map((c) => c.id).sort();
    t.same(ids, [a, b].sort(), `${rt} list shows both`);
    // removing the joined container leaves the sandbox running
    t.equal((await cli(w, rt, ['delete', '--force', b])).code, 0, `${rt} delete --force ${b}`);
    const sa = await waitStatus(w, rt, a, 'running', 1000);
    t.equal(sa, 'running', `${rt}: ${a} still running`);
    const e = await cli(w, rt, ['exec', a, 'cat', '/proc/sys/kernel/random/boot_id']);
    t.equal(e.stdout.trim(), idA, `${rt}: exec into ${a} after ${b} left`);
    t.equal((await cli(w, rt, ['delete', '--force', a])).code, 0, `${rt} delete --force ${a}`);
    t.same(w.leftovers(rt), [], `${rt}: nothing left under --root`);
    oa.close();
    ob.close();
    res[rt] = [idA === idB, sa, e.code];
  }
  t.same(res.kata, res.runc, 'kata-ts and runc agree');
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

t.test('crash recovery: kill -9 the sandbox process, then delete cleans everything', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bundle = w.bundle('bundle', ['sleep', '1000']);
  const id = 'crash';
  t.equal((await cli(w, 'kata', ['create', '--bundle', bundle, id], { stdout: 'ignore', stderr: 'ignore' })).code, 0, 'create');
  t.equal((await cli(w, 'kata', ['start', id])).code, 0, 'start');
  t.equal(await waitStatus(w, 'kata', id, 'running'), 'running');
  const all = pidsMentioning(w.roots.kata);
  const sandbox = all.filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('sandbox-main'));
  t.ok(all.length >= 1, `host processes of the sandbox: ${all.join(' ')}`);
  t.ok(sandbox.length >= 1, `the sandbox process: ${sandbox.join(' ')}`);
  for (const p of sandbox) process.kill(p, 'SIGKILL');
  // the container can no longer be reached: it reads as stopped (the VM may linger until delete)
  const status = await waitStatus(w, 'kata', id, 'stopped', 30_000);
  t.equal(status, 'stopped', 'state says stopped once the sandbox process is gone');
  const del = await cli(w, 'kata', ['delete', id]);
  t.equal(del.code, 0, `delete after the crash: ${del.stderr}`);
  t.same(w.leftovers('kata'), [], 'nothing left under --root');
  await new Promise((r) => setTimeout(r, 500));
  t.same(pidsMentioning(w.roots.kata), [], 'VMM, backends and helpers were killed');

  // runc: kill -9 the container's process, then delete
  const rc = 'crash-runc';
  t.equal((await cli(w, 'runc', ['create', '--bundle', bundle, rc], { stdout: 'ignore', stderr: 'ignore' })).code, 0);
  t.equal((await cli(w, 'runc', ['start', rc])).code, 0);
  const pid = (await stateOf(w, 'runc', rc))!.pid;
  process.kill(pid, 'SIGKILL');
  t.equal(await waitStatus(w, 'runc', rc, 'stopped', 30_000), 'stopped', 'runc: stopped');
  const rdel = await cli(w, 'runc', ['delete', rc]);
  t.equal(rdel.code, del.code, 'runc delete succeeds the same way');
  t.same(w.leftovers('runc'), []);
});

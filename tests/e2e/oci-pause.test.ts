// End to end: `pause` freezes a running container and `resume` thaws it, through kata-ts (the agent's
// PauseContainer: runc pause in the guest) and Debian's runc on the same bundle. The container ticks a counter
// into its rootfs, which the host reads directly (virtio-fs shares the bundle's rootfs): frozen, it stops.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { RUNTIMES, cli, e2eSkipReason, pidsMentioning, stateOf, waitStatus, workdir, type Runtime } from '../helpers/oci-harness.js';

const skip = e2eSkipReason();
const TIMEOUT = 300_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('pause and resume (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const res: Record<Runtime, unknown[]> = { kata: [], runc: [] };
  for (const rt of RUNTIMES) {
    const bundle = w.bundle(`b-${rt}`, ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tick; sleep 0.1; done']);
    const tick = (): number => {
      try {
        return Number(readFileSync(join(bundle, 'rootfs', 'tick'), 'utf8').trim() || '0');
      } catch {
        return 0;
      }
    };
    const id = `pause-${rt}`;
    t.equal((await cli(w, rt, ['create', '--bundle', bundle, id], { stdout: 'ignore', stderr: 'ignore' })).code, 0, `${rt} create`);
    t.equal((await cli(w, rt, ['start', id])).code, 0, `${rt} start`);
    t.equal(await waitStatus(w, rt, id, 'running'), 'running');
    for (let i = 0; i < 100 && tick() < 3; i++) await sleep(200);
    t.ok(tick() >= 3, `${rt}: the counter ticks`);
    const p = await cli(w, rt, ['pause', id]);
    t.equal(p.code, 0, `${rt} pause: ${p.stderr}`);
    t.equal((await stateOf(w, rt, id))?.status, 'paused', `${rt}: state says paused`);
    await sleep(500); // a write under way when the freezer hit may still land
    const frozen = tick();
    await sleep(1500);
    t.equal(tick(), frozen, `${rt}: paused, the counter stands still`);
    const ex = await cli(w, rt, ['exec', id, 'true']);
    t.not(ex.code, 0, `${rt}: exec into a paused container is refused`);
    const again = await cli(w, rt, ['pause', id]);
    t.not(again.code, 0, `${rt}: pausing a paused container is refused`);
    const r = await cli(w, rt, ['resume', id]);
    t.equal(r.code, 0, `${rt} resume: ${r.stderr}`);
    t.equal((await stateOf(w, rt, id))?.status, 'running', `${rt}: state says running`);
    for (let i = 0; i < 100 && tick() <= frozen + 2; i++) await sleep(200);
    t.ok(tick() > frozen + 2, `${rt}: resumed, the counter moves again`);
    const r2 = await cli(w, rt, ['resume', id]);
    t.not(r2.code, 0, `${rt}: resuming a running container is refused`);
    t.equal((await cli(w, rt, ['pause', id])).code, 0, `${rt}: pause again`);
    t.equal((await cli(w, rt, ['delete', '--force', id])).code, 0, `${rt}: delete --force of a paused container`);
    t.same(w.leftovers(rt), [], `${rt}: nothing left under --root`);
    res[rt] = [p.code, ex.code === 0, again.code === 0, r.code, r2.code === 0];
  }
  t.same(res.kata, res.runc, 'kata-ts and runc agree');
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

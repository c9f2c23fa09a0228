// End to end: the OCI lifecycle through `kata-ts` (a microVM per sandbox, runc inside the guest) and the same
// steps through Debian's runc on the same bundle, comparing exit codes, statuses and output:
// create/start/state/kill/delete, run with exit codes 0 and non-zero, stdin/stdout/stderr, SIGTERM and SIGKILL
// delivered while `run` waits, `delete --force` of a running container. Each test uses temporary --root dirs
// and checks that nothing is left in them. Root only; skipped with the reason otherwise.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { RUNTIMES, cli, workdir, e2eSkipReason, isOneErrorLine, pidsMentioning, started, stateOf, waitStatus, waitText, type Runtime } from '../helpers/oci-harness.js';

const skip = e2eSkipReason();
const TIMEOUT = 300_000;


t.test('create, start, state, kill, delete (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bundle = w.bundle('bundle', ['sh', '-c', 'echo started; trap "echo got-term; exit 7" TERM; while true; do sleep 0.1; done']);
  const seen: Record<Runtime, unknown[]> = { kata: [], runc: [] };
  for (const rt of RUNTIMES) {
    const id = `life-${rt}`;
    const out = w.outFile(`${rt}.out`);
    const pidFile = join(w.dir, `${id}.pid`);
    const create = await cli(w, rt, ['create', '--bundle', bundle, '--pid-file', pidFile, id], { stdout: out.fd, stderr: out.fd });
    t.equal(create.code, 0, `${rt} create: ${create.stderr}`);
    const s1 = await stateOf(w, rt, id);
    t.match(s1, { id, status: 'created', bundle }, `${rt} state after create`);
    t.equal(existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : -1, s1?.pid, `${rt}: --pid-file holds state.pid`);
    t.ok((s1?.pid ?? 0) > 0, `${rt} state.pid is a host pid (${s1?.pid})`);
    if (s1 && s1.pid > 0) t.doesNotThrow(() => process.kill(s1.pid, 0), `${rt} state.pid ${s1.pid} is alive while created`);
    if (rt === 'kata') {
      // the bundled CLI starts its sandbox process and stdio relay from the bundle too (src/contract/entry-point.ts)
      const scripts = pidsMentioning(w.roots.kata).map((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[1] ?? '');
      t.ok(scripts.some((a) => a.endsWith('/dist/bundle/sandbox-main.js')), `the sandbox process runs dist/bundle/sandbox-main.js (${scripts.join(', ')})`);
      t.ok(scripts.some((a) => a.endsWith('/dist/bundle/stdio-relay-main.js')), 'the stdio relay runs dist/bundle/stdio-relay-main.js');
    }
    const start = await cli(w, rt, ['start', id]);
    t.equal(start.code, 0, `${rt} start: ${start.stderr}`);
    t.ok(await waitText(out.read, 'started'), `${rt}: container output reaches the stdout given to create`);
    const s2 = await stateOf(w, rt, id);
    t.equal(s2?.status, 'running', `${rt} running after start`);
    const again = await cli(w, rt, ['start', id]);
    t.not(again.code, 0, `${rt}: start of a running container fails`);
    if (rt === 'kata') t.ok(isOneErrorLine(again.stderr), `one error line: ${again.stderr}`);
    const list = await cli(w, rt, ['list', '--format', 'json']);
    t.equal(list.code, 0);
    t.same((JSON.parse(list.stdout) as { id: string }[]).map((c) => c.id), [id], `${rt} list`);
    const kill = await cli(w, rt, ['kill', id, 'TERM']);
    t.equal(kill.code, 0, `${rt} kill TERM: ${kill.stderr}`);
    t.equal(await waitStatus(w, rt, id, 'stopped'), 'stopped', `${rt} stopped after SIGTERM`);
    t.ok(await waitText(out.read, 'got-term'), `${rt}: the trap ran`);
    if (s1 && s1.pid > 0) {
      // state.pid's exit means the container stopped (give the host a moment to reap it)
      let alive = true;
      for (let i = 0; i < 50 && alive; i++) {
        try {
          process.kill(s1.pid, 0);
          const st = readFileSync(`/proc/${s1.pid}/stat`, 'utf8');
          if (/^\d+ \(.*\) Z/.test(st)) alive = false;
          else await new Promise((r) => setTimeout(r, 100));
        } catch {
          alive = false;
        }
      }
      t.notOk(alive, `${rt}: state.pid ${s1.pid} exited with the container`);
    }
    const del = await cli(w, rt, ['delete', id]);
    t.equal(del.code, 0, `${rt} delete: ${del.stderr}`);
    const gone = await cli(w, rt, ['state', id]);
    t.not(gone.code, 0, `${rt}: state after delete fails`);
    if (rt === 'kata') t.ok(isOneErrorLine(gone.stderr), `one error line: ${gone.stderr}`);
    t.same(w.leftovers(rt), [], `${rt}: nothing left under --root`);
    out.close();
    seen[rt] = [create.code, s1?.status, start.code, s2?.status, again.code === 0, kill.code, del.code, gone.code === 0, out.read()];
  }
  t.same(seen.kata, seen.runc, 'kata-ts and runc agree (codes, statuses, output)');
  t.same(pidsMentioning(w.roots.kata), [], 'no process (VMM, backends, sandbox) left behind');
});

t.test('run: exit codes, stdin/stdout/stderr (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const cases: { name: string; args: string[]; input?: string }[] = [
    { name: 'true', args: ['/bin/true'] },
    { name: 'exit-3', args: ['sh', '-c', 'exit 3'] },
    { name: 'stdio', args: ['sh', '-c', 'read a; read b; echo "out:$a"; echo "err:$b" >&2; cat; exit 42'], input: 'one\ntwo\nthree\nfour\n' },
    { name: 'uname', args: ['uname', '-s'] },
  ];
  for (const c of cases) {
    const bundle = w.bundle(`b-${c.name}`, c.args);
    const res: Record<Runtime, { code: number | null; stdout: string; stderr: string }> = {} as never;
    for (const rt of RUNTIMES) {
      const r = await cli(w, rt, ['run', '--bundle', bundle, `run-${c.name}-${rt}`], c.input !== undefined ? { input: c.input } : {});
      res[rt] = { code: r.code, stdout: r.stdout, stderr: r.stderr };
      t.same(w.leftovers(rt), [], `${rt} ${c.name}: run removed the container`);
    }
    t.same(res.kata, res.runc, `${c.name}: same exit code, stdout and stderr`);
  }
});

t.test('SIGTERM and SIGKILL while run waits; delete --force of a running container', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const trapper = w.bundle('trap', ['sh', '-c', 'trap "echo bye; exit 9" TERM; echo up; while true; do sleep 0.1; done']);
  const sleeper = w.bundle('sleep', ['sleep', '1000']);
  const res: Record<Runtime, unknown[]> = { kata: [], runc: [] };
  for (const rt of RUNTIMES) {
    // SIGTERM with a trap: run exits with the trap's code
    const id1 = `term-${rt}`;
    const out = w.outFile(`${id1}.out`);
    const r1 = started(w, rt, ['run', '--bundle', trapper, id1], { stdout: out.fd });
    t.ok(await waitText(out.read, 'up'), `${rt}: container up`);
    const k1 = await cli(w, rt, ['kill', id1, 'SIGTERM']);
    const d1 = await r1.done;
    t.equal(k1.code, 0, `${rt} kill SIGTERM`);
    // SIGKILL: run exits with 128+9
    const id2 = `kill-${rt}`;
    const r2 = started(w, rt, ['run', '--bundle', sleeper, id2]);
    t.equal(await waitStatus(w, rt, id2, 'running'), 'running', `${rt} sleeper running`);
    const k2 = await cli(w, rt, ['kill', id2, '9']);
    const d2 = await r2.done;
    // a signal sent to the `run` CLI itself reaches the container (runc forwards signals too)
    const id4 = `fwd-${rt}`;
    const out4 = w.outFile(`${id4}.out`);
    const r4 = started(w, rt, ['run', '--bundle', trapper, id4], { stdout: out4.fd });
    t.ok(await waitText(out4.read, 'up'), `${rt}: container up`);
    process.kill(r4.pid, 'SIGTERM');
    const d4 = await r4.done;
    out4.close();
    // delete --force of a running container
    const id3 = `force-${rt}`;
    const c3 = await cli(w, rt, ['create', '--bundle', sleeper, id3], { stdout: 'ignore' });
    t.equal(c3.code, 0, `${rt} create: ${c3.stderr}`);
    await cli(w, rt, ['start', id3]);
    t.equal(await waitStatus(w, rt, id3, 'running'), 'running');
    const plain = await cli(w, rt, ['delete', id3]);
    t.not(plain.code, 0, `${rt}: delete of a running container without --force fails`);
    const forced = await cli(w, rt, ['delete', '--force', id3]);
    t.equal(forced.code, 0, `${rt} delete --force: ${forced.stderr}`);
    const gone = await cli(w, rt, ['state', id3]);
    t.same(w.leftovers(rt), [], `${rt}: nothing left under --root`);
    out.close();
    res[rt] = [d1.code, out.read(), k2.code, d2.code, plain.code === 0, forced.code, gone.code === 0, d4.code, out4.read()];
  }
  t.same(res.kata, res.runc, 'kata-ts and runc agree');
  t.equal(res.kata[0], 9, 'SIGTERM: exit code of the trap');
  t.equal(res.kata[3], 137, 'SIGKILL: 128 + 9');
  t.equal(res.kata[7], 9, 'SIGTERM to the run CLI was forwarded to the container');
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

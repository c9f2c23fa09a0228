// End to end: `exec` into a running container (stdout/stderr/exit code, stdin, --env/--cwd, a command that does
// not exist), `ps`, and `exec -t` under a pseudo-terminal (util-linux `script` provides one, as runc's exec -t
// needs a controlling terminal), each through kata-ts and Debian's runc on the same bundle. Root only.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { RUNTIMES, cli, cmd, e2eSkipReason, isOneErrorLine, pidsMentioning, started, waitStatus, waitText, workdir, type Runtime } from '../helpers/oci-harness.js';

const skip = e2eSkipReason();
const TIMEOUT = 300_000;

t.test('exec while running, ps (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bundle = w.bundle('bundle', ['sleep', '1000']);
  const res: Record<Runtime, unknown[]> = { kata: [], runc: [] };
  for (const rt of RUNTIMES) {
    const id = `exec-${rt}`;
    const c = await cli(w, rt, ['create', '--bundle', bundle, id], { stdout: 'ignore', stderr: 'ignore' });
    t.equal(c.code, 0, `${rt} create`);
    t.equal((await cli(w, rt, ['start', id])).code, 0, `${rt} start`);
    t.equal(await waitStatus(w, rt, id, 'running'), 'running');
    const e1 = await cli(w, rt, ['exec', id, 'sh', '-c', 'echo x; echo y >&2; exit 4']);
    const e2 = await cli(w, rt, ['exec', id, 'cat'], { input: 'abc\ndef\n' });
    const e3 = await cli(w, rt, ['exec', '--env', 'FOO=bar', '--cwd', '/tmp', id, 'sh', '-c', 'echo "$FOO $(pwd)"']);
    const e4 = await cli(w, rt, ['exec', id, '/nope']);
    t.not(e4.code, 0, `${rt}: exec of a missing command fails`);
    if (rt === 'kata') t.match(e4.stderr, /nope/, `kata-ts says what failed: ${e4.stderr}`);
    const ps = await cli(w, rt, ['ps', '--format', 'json', id]);
    t.equal(ps.code, 0, `${rt} ps: ${ps.stderr}`);
    const pids = ps.code === 0 ? (JSON.parse(ps.stdout) as unknown[]) : [];
    t.ok(pids.length === 1 && pids.every((p) => Number.isInteger(p) && (p as number) > 0), `${rt} ps lists the one live process (the execs have ended): ${ps.stdout.trim()}`);
    // the table has ps -ef's columns: the container's process only, no relay or shim of the host
    const table = await cli(w, rt, ['ps', id]);
    const rows = table.stdout.trim().split('\n');
    const cmds = rows.slice(1).map((l) => l.trim().split(/\s+/).slice(7).join(' '));
    const still = await waitStatus(w, rt, id, 'running', 1000);
    t.equal((await cli(w, rt, ['delete', '--force', id])).code, 0, `${rt} delete --force`);
    t.same(w.leftovers(rt), [], `${rt}: nothing left under --root`);
    res[rt] = [[e1.code, e1.stdout, e1.stderr.replace(/^time=.*\n/gm, '')], [e2.code, e2.stdout], [e3.code, e3.stdout], still, rows[0]?.split(/\s+/), cmds];
  }
  t.same(res.kata, res.runc, 'kata-ts and runc agree (exit codes, stdout, stderr)');
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

const script = spawnSync('script', ['--version']).status === 0;
t.test('exec --detach --pid-file, as containerd\'s runc shim calls it (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bundle = w.bundle('bundle', ['sleep', '1000']);
  const res: Record<Runtime, unknown[]> = { kata: [], runc: [] };
  for (const rt of RUNTIMES) {
    const id = `detach-${rt}`;
    t.equal((await cli(w, rt, ['create', '--bundle', bundle, id], { stdout: 'ignore', stderr: 'ignore' })).code, 0, `${rt} create`);
    t.equal((await cli(w, rt, ['start', id])).code, 0, `${rt} start`);
    t.equal(await waitStatus(w, rt, id, 'running'), 'running');
    const pidFile = join(w.dir, `${rt}.pid`);
    const out = w.outFile(`${rt}-detach.out`);
    const d = await cli(w, rt, ['exec', '--detach', '--pid-file', pidFile, id, 'sh', '-c', 'sleep 2; echo late; touch /tmp/detached-done'], { stdout: out.fd, stderr: out.fd });
    t.equal(d.code, 0, `${rt} exec --detach returns 0 at once: ${d.stderr}`);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    t.ok(Number.isInteger(pid) && pid > 0, `${rt}: the pid file names a pid (${pid})`);
    t.ok(existsSync(`/proc/${pid}`), `${rt}: that process runs after exec returned`);
    const gone = await waitGone(pid, 60_000);
    t.ok(gone, `${rt}: and ends when the command ends`);
    t.ok(await waitText(out.read, 'late'), `${rt}: its output went to the stdio it was given`);
    const check = await cli(w, rt, ['exec', id, 'ls', '/tmp/detached-done']);
    t.equal(check.code, 0, `${rt}: the detached command ran to its end`);
    t.equal((await cli(w, rt, ['delete', '--force', id])).code, 0, `${rt} delete --force`);
    out.close();
    res[rt] = [d.code, out.read(), check.code];
  }
  t.same(res.kata, res.runc, 'kata-ts and runc agree');
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

t.test('exec -t under a terminal (kata-ts and runc)', { skip: skip || (!script && 'util-linux `script` not found'), timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bundle = w.bundle('bundle', ['sleep', '1000']);
  const res: Record<Runtime, unknown[]> = { kata: [], runc: [] };
  for (const rt of RUNTIMES) {
    const id = `tty-${rt}`;
    t.equal((await cli(w, rt, ['create', '--bundle', bundle, id], { stdout: 'ignore', stderr: 'ignore' })).code, 0, `${rt} create`);
    t.equal((await cli(w, rt, ['start', id])).code, 0, `${rt} start`);
    const [file, argv] = cmd(w, rt, ['exec', '-t', id, 'sh', '-c', 'test -t 0 && test -t 1 && echo tty-ok; exit 5']);
    const line = [file, ...argv].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    // script -e: exit with the child's status; -q: no banner; the typescript goes to /dev/null
    const r = spawnSync('script', ['-qefc', line, '/dev/null'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    t.match(r.stdout, /tty-ok/, `${rt}: the process sees a terminal (${JSON.stringify(r.stdout)} ${r.stderr})`);
    const plain = await cli(w, rt, ['exec', id, 'sh', '-c', 'test -t 1 || echo no-tty']);
    t.equal(plain.stdout, 'no-tty\n', `${rt}: without -t there is no terminal`);
    t.equal((await cli(w, rt, ['delete', '--force', id])).code, 0);
    res[rt] = [r.status, /tty-ok/.test(r.stdout)];
  }
  t.same(res.kata, res.runc, 'same exit status and output under a terminal');
});

t.test('errors of exec are one line', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const r = await cli(w, 'kata', ['exec', 'nope', 'true']);
  t.not(r.code, 0);
  t.ok(isOneErrorLine(r.stderr), r.stderr);
  const runc = await cli(w, 'runc', ['exec', 'nope', 'true']);
  t.not(runc.code, 0, 'runc fails too');
  const s = started(w, 'kata', ['exec', 'nope']);
  const d = await s.done;
  t.not(d.code, 0, 'exec without a command fails');
  t.ok(isOneErrorLine(d.stderr), d.stderr);
});

// containerd shim v2 end to end: a real containerd 1.6 (tests/shim/containerd-harness.ts) runs the same ctr
// commands on the same busybox image with `io.containerd.kata-ts.v2` (containerd-shim-kata-ts-v2: a microVM
// per sandbox under QEMU here) and with Debian's runc shim `io.containerd.runc.v2`, and compares output and
// exit codes: ctr run --rm (exit code, stdout, a guest kernel), run -d + task exec/update/ps/metrics/pause/
// resume/kill/delete with the events containerd received (TaskOOM of a process OOM-killed under the updated memory
// limit included), run -t under script(1), two containers of one pod in one VM,
// and a shim killed with SIGKILL cleaned up by `delete`. Root only; skipped with the reason otherwise.

import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { SHIM_STATE_DIR, shimRoot } from '../../src/shim/address.js';
import { containerd, ctrSkipReason, exists, IMAGE, KATA, mountsUnder, RUNC, taskStatus, type Containerd } from './containerd-harness.js';

const skip = ctrSkipReason();
const TIMEOUT = 600_000;
const RUNTIMES = [
  ['runc', RUNC],
  ['kata', KATA],
] as const;
/** the limits Tasks.Update sets in the run -d test (48 MiB: page-aligned, so cgroup v1 and v2 show it as is) */
const MEM_LIMIT = 48 << 20;
const PIDS_LIMIT = 99;
/** ctr's default spec mounts no cgroup file system (CRI's does): this one lets the container read its limits */
const CGROUP_MOUNT = 'type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:noexec:nodev';
const hostKernel = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();

function bundleOf(c: Containerd, id: string): string {
  return join(c.dir, 'state', 'io.containerd.runtime.v2.task', c.ns, id);
}

/** Direct children of `pid` whose command is `comm`. */
function childrenNamed(pid: number, comm: RegExp): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = readFileSync(`/proc/${e}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(st);
      if (m && Number(m[2]) === pid && comm.test(m[1]!)) out.push(Number(e));
    } catch {
      // exited
    }
  }
  return out;
}

/** The long-lived shim processes of a runtime in this containerd's namespace. */
function shimPids(c: Containerd, rt: 'kata' | 'runc'): number[] {
  const bin = rt === 'kata' ? 'bundle/shim.js' : 'containerd-shim-runc-v2';
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv.some((a) => a.endsWith(bin)) && argv.includes(c.ns) && !argv.includes('start') && !argv.includes('delete') && !argv.some((a) => a.endsWith('unshare'));
      } catch {
        return false;
      }
    })
    .map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

t.test('ctr run --rm: output, a guest kernel, exit code 3 (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const c = await containerd(t);
  const seen: Record<string, unknown> = {};
  for (const [rt, runtime] of RUNTIMES) {
    const r = await c.ctr(['run', '--rm', '--runtime', runtime, IMAGE, `rm-${rt}`, 'sh', '-c', 'echo hello from the container; uname -r; echo to-stderr >&2; exit 3']);
    t.equal(r.code, 3, `${rt}: ctr run exits with the container's code 3 (${r.stderr})`);
    const [hello, kernel] = r.stdout.split('\n');
    t.equal(hello, 'hello from the container', `${rt}: stdout reaches ctr`);
    if (rt === 'kata') {
      t.ok(kernel && kernel !== hostKernel, `kata: the container runs on a guest kernel (${kernel}), not the host's (${hostKernel})`);
    } else {
      t.equal(kernel, hostKernel, 'runc: the host kernel');
    }
    t.equal(r.stderr, 'to-stderr\n', `${rt}: stderr reaches ctr's stderr`);
    seen[rt] = [r.code, hello, r.stderr];
    t.equal(await taskStatus(c, `rm-${rt}`, 'gone', 5000), 'gone', `${rt}: --rm removed the task`);
    t.notOk((await c.ctr(['containers', 'ls', '-q'])).stdout.includes(`rm-${rt}`), `${rt}: --rm removed the container`);
  }
  t.same(seen['kata'], seen['runc'], 'kata-ts and runc agree (exit code, stdout, stderr)');
  // the runtime option ConfigPath (ctr --runtime-config-path; CRI's options.ConfigPath) picks configuration.toml
  const cfg = join(c.dir, 'small-vm.toml');
  writeFileSync(cfg, '[hypervisor.qemu]\ndefault_memory = 200\n');
  const mem = await c.ctr(['run', '--rm', '--runtime', KATA, '--runtime-config-path', cfg, IMAGE, 'rm-cfg', 'sh', '-c', 'grep MemTotal /proc/meminfo']);
  const kb = Number(/MemTotal:\s+(\d+)/.exec(mem.stdout)?.[1] ?? 0);
  t.ok(mem.code === 0 && kb > 100_000 && kb <= 200 * 1024, `kata: ConfigPath's default_memory = 200 gives the VM ${kb} kB (${mem.stderr})`);
  t.same(mountsUnder(join(c.dir, 'state')), [], 'no rootfs mount left in the host namespace');
  t.notOk(exists(join(SHIM_STATE_DIR)) && readdirSync(SHIM_STATE_DIR).some((d) => readdirSync(join(SHIM_STATE_DIR, d)).length > 0), 'the shim left no sandbox state');
});

t.test('ctr run -d, task exec/update/ps/metrics/pause/resume/kill/delete, OOM, events (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const c = await containerd(t);
  const seen: Record<string, unknown[]> = {};
  for (const [rt, runtime] of RUNTIMES) {
    const id = `d-${rt}`;
    let events = '';
    const ev = spawn('ctr', ['-a', c.address, '-n', c.ns, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
    ev.stdout.on('data', (b: Buffer) => (events += b.toString('utf8')));
    await new Promise((r) => setTimeout(r, 300));
    const run = await c.ctr(['run', '-d', '--runtime', runtime, '--mount', CGROUP_MOUNT, IMAGE, id, 'sh', '-c', 'trap "exit 7" TERM; sleep 1000 & wait']);
    t.equal(run.code, 0, `${rt}: ctr run -d (${run.stderr})`);
    t.equal(await taskStatus(c, id, 'RUNNING'), 'RUNNING', `${rt}: task RUNNING`);
    const ex = await c.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo in-exec; cat /proc/self/cgroup >/dev/null; exit 5']);
    t.equal(ex.code, 5, `${rt}: task exec exits with 5 (${ex.stderr})`);
    t.equal(ex.stdout, 'in-exec\n', `${rt}: exec stdout`);
    // task update: the new memory limit in the container's own cgroup (v2 memory.max in the guest; runc on this
    // cgroup v1 host: memory.limit_in_bytes); then a process allocating past it is OOM-killed (TaskOOM below)
    const upd = await c.taskUpdate(id, { memory: { limit: MEM_LIMIT }, pids: { limit: PIDS_LIMIT }, cpu: { quota: 50_000, period: 100_000 } });
    t.same(upd, { code: 0, message: '' }, `${rt}: Tasks.Update: memory.limit ${MEM_LIMIT}, pids.limit ${PIDS_LIMIT}, cpu quota 50000/100000 (as ctr task update --memory-limit/--cpu-quota/--resources sends it)`);
    // ctr's spec has no cgroup namespace: the guest's cgroup2 mount shows the root, so the files are found through
    // /proc/self/cgroup; runc on cgroup v1 binds the container's own cgroups at /sys/fs/cgroup/<controller>.
    const show = [
      'd=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)',
      'if [ -f "$d/memory.max" ]; then cat "$d/memory.max" "$d/pids.max" "$d/cpu.max"',
      'else v=/sys/fs/cgroup; cat $v/memory/memory.limit_in_bytes $v/pids/pids.max; echo "$(cat $v/cpu/cpu.cfs_quota_us) $(cat $v/cpu/cpu.cfs_period_us)"; fi',
    ].join('; ');
    const lim = await c.ctr(['task', 'exec', '--exec-id', 'lim', id, 'sh', '-c', show]);
    t.equal(lim.stdout, `${MEM_LIMIT}\n${PIDS_LIMIT}\n50000 100000\n`, `${rt}: the container's cgroup shows the updated limits (${lim.stderr})`);
    // dd makes itself the OOM killer's first choice, and the init above forks nothing meanwhile: on runc's cgroup v1
    // host an OOM kill while the init's loop forked once took the init too (the task then had no process to ps)
    const hog = await c.ctr(['task', 'exec', '--exec-id', 'hog', id, 'sh', '-c', 'echo 1000 > /proc/self/oom_score_adj; exec dd if=/dev/zero of=/dev/null bs=128M count=1']);
    t.equal(hog.code, 137, `${rt}: dd of a 128 MiB block under the limit is OOM-killed: exit 137 (${hog.stderr.trim()})`);
    const ps = await c.ctr(['task', 'ps', id]);
    t.equal(ps.code, 0, `${rt}: task ps (${ps.stderr})`);
    const pids = ps.stdout.trim().split('\n').slice(1).filter((l) => /^\d+/.test(l.trim())).map((l) => Number(l.trim().split(/\s+/)[0]));
    // the container's processes: the shell and its sleep (the execs have ended)
    t.ok(pids.length === 2, `${rt}: task ps lists the task's processes (${ps.stdout.trim()})`);
    if (rt === 'kata') t.notOk(pids.some((p) => shimPids(c, 'kata').includes(p)), 'kata: guest pids (the agent\'s ListProcesses), not the shim\'s');
    const metrics = await c.ctr(['task', 'metrics', id]);
    t.equal(metrics.code, 0, `${rt}: task metrics (${metrics.stderr})`);
    if (rt === 'kata') {
      const cur = /pids\.current\s+(\d+)/.exec(metrics.stdout);
      t.ok(cur && Number(cur[1]) >= 1, `kata: cgroup v2 metrics from the guest: pids.current ${cur?.[1]}`);
      const usage = /cpu\.usage_usec\s+(\d+)/.exec(metrics.stdout);
      t.ok(usage && Number(usage[1]) > 0, `kata: cpu.usage_usec ${usage?.[1]}`);
      const mem = /memory\.usage\s+(\d+)/.exec(metrics.stdout);
      t.ok(mem && Number(mem[1]) > 0, `kata: memory.usage ${mem?.[1]}`);
    }
    const pause = await c.ctr(['task', 'pause', id]);
    t.equal(pause.code, 0, `${rt}: task pause (${pause.stderr})`);
    const paused = await taskStatus(c, id, 'PAUSED', 5000);
    const resume = await c.ctr(['task', 'resume', id]);
    t.equal(resume.code, 0, `${rt}: task resume (${resume.stderr})`);
    const resumed = await taskStatus(c, id, 'RUNNING', 5000);
    const kill = await c.ctr(['task', 'kill', '-s', 'TERM', id]);
    t.equal(kill.code, 0, `${rt}: task kill -s TERM (${kill.stderr})`);
    const stopped = await taskStatus(c, id, 'STOPPED');
    const del = await c.ctr(['task', 'delete', id]);
    const gone = await taskStatus(c, id, 'gone', 10_000);
    const rm = await c.ctr(['containers', 'rm', id]);
    t.equal(rm.code, 0, `${rt}: containers rm`);
    await new Promise((r) => setTimeout(r, 500));
    ev.kill();
    t.match(events, new RegExp(`/tasks/oom.*${id}`), `${rt}: containerd received TaskOOM for ${id}`);
    seen[rt] = [run.code, ex.code, ex.stdout, upd.code, lim.stdout, hog.code, ps.code, metrics.code, pause.code, paused, resume.code, resumed, kill.code, stopped, del.code, del.stdout.replace(/\d+/g, 'N'), gone];
    if (rt === 'kata') {
      const topics = events
        .split('\n')
        .filter((l) => l.includes(id) || /\/tasks\//.test(l))
        .map((l) => /\/tasks\/[a-z-]+/.exec(l)?.[0])
        .filter((x): x is string => x !== undefined);
      const exec = ['/tasks/exec-added', '/tasks/exec-started', '/tasks/exit'];
      const oom = ['/tasks/exec-added', '/tasks/exec-started', '/tasks/oom', '/tasks/exit']; // TaskOOM before the killed process's TaskExit
      const want = ['/tasks/create', '/tasks/start', ...exec, ...exec, ...oom, '/tasks/paused', '/tasks/resumed', '/tasks/exit', '/tasks/delete'];
      t.same(topics, want, `kata: containerd received the task events in order:\n${events}`);
      t.match(events, /\/tasks\/exit.*"exit_status":7|\/tasks\/exit.*exit_status.*7/s, 'kata: TaskExit carries exit status 7');
    }
  }
  t.same(seen['kata'], seen['runc'], 'kata-ts and runc agree (codes, statuses, output)');
});

t.test('ctr run -t: a terminal through script(1) (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const c = await containerd(t);
  const seen: Record<string, unknown> = {};
  for (const [rt, runtime] of RUNTIMES) {
    const r = await c.ctrTty(['run', '--rm', '-t', '--runtime', runtime, IMAGE, `tty-${rt}`, 'sh', '-c', 'tty; test -t 0 && echo stdin-is-a-tty; echo tty-done; exit 4']);
    const out = r.stdout.replace(/\r/g, '');
    t.equal(r.code, 4, `${rt}: exit code 4 through the terminal (${r.stderr})`);
    t.match(out, /^\/dev\/pts\/\d+\nstdin-is-a-tty\ntty-done\n/m, `${rt}: the process has a pty for stdin and stdout: ${JSON.stringify(out)}`);
    seen[rt] = [r.code, out];
  }
  t.same(seen['kata'], seen['runc'], 'kata-ts and runc agree (exit code, terminal output)');
});

t.test('two containers of one pod (CRI sandbox-id annotation) share one shim and one VM', { skip, timeout: TIMEOUT }, async (t) => {
  const c = await containerd(t);
  const seen: Record<string, unknown> = {};
  for (const [rt, runtime] of RUNTIMES) {
    const pod = `pod-${rt}`;
    const app = `app-${rt}`;
    const ann = `io.kubernetes.cri.sandbox-id=${pod}`;
    const r1 = await c.ctr(['run', '-d', '--runtime', runtime, '--annotation', ann, IMAGE, pod, 'sleep', '600']);
    t.equal(r1.code, 0, `${rt}: first container of the pod (${r1.stderr})`);
    const r2 = await c.ctr(['run', '-d', '--runtime', runtime, '--annotation', ann, IMAGE, app, 'sleep', '600']);
    t.equal(r2.code, 0, `${rt}: second container of the pod (${r2.stderr})`);
    const shims = shimPids(c, rt);
    t.equal(shims.length, 1, `${rt}: both containers are served by one shim process (${shims.join(', ')})`);
    const shim1 = String(shims[0] ?? 0);
    if (rt === 'kata') {
      t.equal(readFileSync(join(bundleOf(c, pod), 'shim.pid'), 'utf8').trim(), shim1, 'kata: shim.pid of the first container');
      t.equal(readFileSync(join(bundleOf(c, app), 'shim.pid'), 'utf8').trim(), shim1, 'kata: shim.pid of the second container');
    }
    t.equal(readFileSync(join(bundleOf(c, app), 'address'), 'utf8'), readFileSync(join(bundleOf(c, pod), 'address'), 'utf8'), `${rt}: one shim address`);
    const b1 = await c.ctr(['task', 'exec', '--exec-id', 'b1', pod, 'cat', '/proc/sys/kernel/random/boot_id']);
    const b2 = await c.ctr(['task', 'exec', '--exec-id', 'b2', app, 'cat', '/proc/sys/kernel/random/boot_id']);
    t.ok(b1.code === 0 && b1.stdout.length > 0 && b1.stdout === b2.stdout, `${rt}: both containers run on one kernel (boot_id ${b1.stdout.trim()} / ${b2.stdout.trim()})`);
    if (rt === 'kata') {
      const qemus = childrenNamed(Number(shim1), /qemu-system/);
      t.equal(qemus.length, 1, `kata: one QEMU under the shim (${qemus.join(', ')})`);
      const hostBoot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8');
      t.not(b1.stdout, hostBoot, 'kata: the pod kernel is not the host kernel');
    }
    for (const id of [app, pod]) {
      const k = await c.ctr(['task', 'kill', '-s', 'KILL', id]);
      t.equal(k.code, 0, `${rt}: kill ${id}`);
      t.equal(await taskStatus(c, id, 'STOPPED'), 'STOPPED', `${rt}: ${id} stopped`);
      const d = await c.ctr(['task', 'delete', id]);
      t.equal(d.code, 0, `${rt}: task delete ${id} (${d.stderr})`);
      t.equal((await c.ctr(['containers', 'rm', id])).code, 0, `${rt}: containers rm ${id}`);
    }
    let gone = false;
    for (let i = 0; i < 100 && !gone; i++) {
      gone = !alive(Number(shim1));
      if (!gone) await new Promise((r) => setTimeout(r, 100));
    }
    t.ok(gone, `${rt}: the shim exits after the pod's last container`);
    seen[rt] = [r1.code, r2.code, shims.length, b1.code, b2.code, b1.stdout === b2.stdout, gone];
  }
  t.same(seen['kata'], seen['runc'], 'kata-ts and runc agree');
  t.same(mountsUnder(join(c.dir, 'state')), [], 'no rootfs mount left');
});

t.test('a shim killed with SIGKILL: containerd reports the task gone, delete cleans up after it', { skip, timeout: TIMEOUT }, async (t) => {
  const c = await containerd(t);
  const seen: Record<string, unknown> = {};
  for (const [rt, runtime] of RUNTIMES) {
    const id = `sk-${rt}`;
    const r = await c.ctr(['run', '-d', '--runtime', runtime, IMAGE, id, 'sleep', '600']);
    t.equal(r.code, 0, `${rt}: ctr run -d (${r.stderr})`);
    t.equal(await taskStatus(c, id, 'RUNNING'), 'RUNNING', `${rt}: running`);
    const bundle = bundleOf(c, id);
    const shims = shimPids(c, rt);
    t.equal(shims.length, 1, `${rt}: one shim (${shims.join(', ')})`);
    const shim = shims[0] ?? 0;
    if (rt === 'kata') t.equal(Number(readFileSync(join(bundle, 'shim.pid'), 'utf8').trim()), shim, 'kata: shim.pid names the shim');
    const socket = readFileSync(join(bundle, 'address'), 'utf8').replace(/^unix:\/\//, '');
    t.ok(exists(socket), `${rt}: the shim socket ${socket} exists`);
    let qemus: number[] = [];
    let stateDir = '';
    let tmpDir = '';
    if (rt === 'kata') {
      qemus = childrenNamed(shim, /qemu-system/);
      t.equal(qemus.length, 1, 'kata: one QEMU under the shim');
      stateDir = join(shimRoot(c.address, c.ns), id);
      t.ok(exists(join(stateDir, 'sandbox.json')), `kata: sandbox state in ${stateDir}`);
      tmpDir = (JSON.parse(readFileSync(join(stateDir, 'sandbox.json'), 'utf8')) as { tmpDir: string }).tmpDir;
      t.ok(exists(tmpDir), `kata: the sandbox temp dir ${tmpDir}`);
    }
    process.kill(shim, 'SIGKILL');
    const st = await taskStatus(c, id, 'gone', 60_000);
    t.equal(st, 'gone', `${rt}: containerd reports the task gone after the shim died`);
    const ps = await c.ctr(['task', 'ps', id]);
    t.not(ps.code, 0, `${rt}: task ps of the dead task fails`);
    let clean = false;
    for (let i = 0; i < 100 && !clean; i++) {
      clean = !exists(socket) && qemus.every((q) => !alive(q));
      if (!clean) await new Promise((r) => setTimeout(r, 100));
    }
    if (rt === 'kata') {
      // (runc's shim leaves its socket behind; ours must not)
      t.notOk(exists(socket), 'kata: the shim socket is removed');
      t.ok(qemus.every((q) => !alive(q)), 'kata: QEMU is gone');
      t.notOk(exists(stateDir), 'kata: the sandbox state dir is removed');
      t.notOk(exists(tmpDir), 'kata: the sandbox temp dir is removed');
      t.same(
        readdirSync('/proc').filter((p) => /^\d+$/.test(p) && (() => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(tmpDir); } catch { return false; } })()),
        [],
        'kata: no process uses the sandbox temp dir',
      );
    }
    t.same(mountsUnder(bundle), [], `${rt}: nothing mounted under the bundle`);
    const rm = await c.ctr(['containers', 'rm', id]);
    t.equal(rm.code, 0, `${rt}: containers rm (${rm.stderr})`);
    seen[rt] = [r.code, st, ps.code === 0];
  }
  t.same(seen['kata'], seen['runc'], 'kata-ts and runc agree');
});

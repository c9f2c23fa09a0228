// containerd's own runc shim (io.containerd.runc.v2) with `--runc-binary` naming kata-ts: the shim drives
// kata-ts exactly as it drives runc (create --pid-file --console-socket, start, exec --detach --pid-file,
// pause/resume, kill, delete, JSON logs it parses for errors; metrics from the container's cgroupsPath, which
// the sandbox's host processes join). Every case is compared with the same shim driving Debian's runc.

import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { cliPath } from '../helpers/oci-harness.js';
import { containerd, ctrSkipReason, IMAGE, RUNC, taskStatus, type Containerd } from './containerd-harness.js';

const skip = ctrSkipReason();
const TIMEOUT = 600_000;
const BINARIES = ['runc', 'kata'] as const;

/** A runc-compatible executable that runs kata-ts (the runc shim wants a path). */
function kataBinary(c: Containerd): string {
  const p = join(c.dir, 'kata-ts-as-runc');
  writeFileSync(p, `#!/bin/sh\nexec ${process.execPath} ${cliPath} "$@"\n`, { mode: 0o755 });
  return p;
}

/** `ctr run` arguments for one binary: the runc shim, with kata-ts as its runc for 'kata'. */
function runArgs(c: Containerd, b: (typeof BINARIES)[number]): string[] {
  return ['--runtime', RUNC, ...(b === 'kata' ? ['--runc-binary', kataBinary(c)] : [])];
}

/** kata-ts sandboxes the runc shim left under its state root (a failed test): removed at the end. */
function reapKata(c: Containerd): void {
  const root = join('/run/containerd/runc', c.ns);
  let ids: string[] = [];
  try {
    ids = readdirSync(root);
  } catch {
    return;
  }
  for (const id of ids) spawnSync(process.execPath, [cliPath, '--root', root, 'delete', '--force', id], { stdio: 'ignore', timeout: 60_000 });
}

t.test('ctr run --rm, run -d + exec + pause/resume + metrics + kill, run -t: kata-ts as the runc shim\'s runc', { skip, timeout: TIMEOUT }, async (t) => {
  const c = await containerd(t);
  t.teardown(() => reapKata(c));
  const seen: Record<string, unknown[]> = {};
  for (const b of BINARIES) {
    const rm = await c.ctr(['run', '--rm', ...runArgs(c, b), IMAGE, `rm-${b}`, 'sh', '-c', 'echo hello; echo err >&2; exit 3']);
    t.equal(rm.code, 3, `${b}: ctr run --rm exits 3 (${rm.stderr})`);
    t.equal(rm.stdout, 'hello\n', `${b}: stdout`);

    const id = `d-${b}`;
    const run = await c.ctr(['run', '-d', ...runArgs(c, b), IMAGE, id, 'sh', '-c', 'trap "exit 7" TERM; while true; do sleep 0.1; done']);
    t.equal(run.code, 0, `${b}: ctr run -d (${run.stderr})`);
    t.equal(await taskStatus(c, id, 'RUNNING'), 'RUNNING', `${b}: RUNNING`);
    const ex = await c.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo in-exec; exit 5']);
    t.equal(ex.code, 5, `${b}: task exec exits 5 (${ex.stderr})`);
    t.equal(ex.stdout, 'in-exec\n', `${b}: exec stdout`);
    // task exec -t: the runc shim calls `exec --detach --tty --console-socket S --pid-file P`
    const ext = await c.ctrTty(['task', 'exec', '-t', '--exec-id', 'e2', id, 'sh', '-c', 'test -t 0 && echo exec-has-a-tty; exit 6']);
    const extOut = ext.stdout.replace(/\r/g, '');
    t.equal(ext.code, 6, `${b}: task exec -t exits 6 (${ext.stderr})`);
    t.match(extOut, /exec-has-a-tty/, `${b}: the exec has a terminal: ${JSON.stringify(extOut)}`);
    const metrics = await c.ctr(['task', 'metrics', id]);
    t.equal(metrics.code, 0, `${b}: task metrics (${metrics.stderr})`);
    const usage = /memory\.usage_in_bytes\s+(\d+)|memory\.usage\s+(\d+)/.exec(metrics.stdout);
    const bytes = Number(usage?.[1] ?? usage?.[2] ?? 0);
    t.ok(bytes > 0, `${b}: metrics report memory use (${bytes} bytes)`);
    if (b === 'kata') t.ok(bytes > 32 * 2 ** 20, `kata: that is the sandbox's (the VM's memory is charged to its cgroup): ${bytes}`);
    const pause = await c.ctr(['task', 'pause', id]);
    t.equal(pause.code, 0, `${b}: task pause (${pause.stderr})`);
    const paused = await taskStatus(c, id, 'PAUSED', 5000);
    const resume = await c.ctr(['task', 'resume', id]);
    t.equal(resume.code, 0, `${b}: task resume (${resume.stderr})`);
    const resumed = await taskStatus(c, id, 'RUNNING', 5000);
    const kill = await c.ctr(['task', 'kill', '-s', 'TERM', id]);
    t.equal(kill.code, 0, `${b}: task kill -s TERM (${kill.stderr})`);
    const stopped = await taskStatus(c, id, 'STOPPED');
    const del = await c.ctr(['task', 'delete', id]);
    t.equal(del.code, 0, `${b}: task delete (${del.stderr})`);
    t.equal((await c.ctr(['containers', 'rm', id])).code, 0, `${b}: containers rm`);

    const tty = await c.ctrTty(['run', '--rm', '-t', ...runArgs(c, b), IMAGE, `tty-${b}`, 'sh', '-c', 'test -t 0 && echo stdin-is-a-tty; echo tty-done; exit 4']);
    const out = tty.stdout.replace(/\r/g, '');
    t.equal(tty.code, 4, `${b}: ctr run -t exits 4 (${tty.stderr})`);
    t.match(out, /stdin-is-a-tty\ntty-done\n/, `${b}: the process has the terminal: ${JSON.stringify(out)}`);

    seen[b] = [rm.code, rm.stdout, run.code, ex.code, ex.stdout, ext.code, /exec-has-a-tty/.test(extOut), metrics.code, pause.code, paused, resume.code, resumed, kill.code, stopped, del.code, del.stdout.replace(/\d+/g, 'N'), tty.code, out];
  }
  t.same(seen['kata'], seen['runc'], 'kata-ts and runc under the runc shim agree (codes, statuses, output)');
});

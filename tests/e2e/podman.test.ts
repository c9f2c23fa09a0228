// End to end: Debian's podman 4.3 (with conmon) running containers with `--runtime` kata-ts and with runc on the
// same rootfs, offline (`--rootfs DIR`): run --rm with podman's default network (the VM takes over the pod's
// veth: the container reaches an HTTP server on the host through the pod's gateway), run -t under script(1)
// (conmon hands the terminal over --console-socket), and run -d + exec + exec -t + stop + rm. Same output and exit codes.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { cliPath, e2eSkipReason, pidsMentioning, workdir } from '../helpers/oci-harness.js';

const podman = spawnSync('podman', ['--version']).status === 0;
const skip = e2eSkipReason() || (!podman && 'podman not found (guest/install-deps.sh installs it)');
const TIMEOUT = 600_000;
const RUNTIMES = ['runc', 'kata'] as const;
/** podman's default bridge (cni-podman0) gateway */
const GATEWAY = '10.88.0.1';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function podmanRun(store: string, args: string[], o: { tty?: boolean; timeoutMs?: number } = {}): Promise<Result> {
  const argv = ['--root', join(store, 'root'), '--runroot', join(store, 'run'), ...args];
  const [file, fargs] = o.tty ? ['script', ['-qefc', ['podman', ...argv].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' '), '/dev/null']] : ['podman', argv];
  return new Promise((resolve, reject) => {
    const c = spawn(file, fargs, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    const timer = setTimeout(() => c.kill('SIGKILL'), o.timeoutMs ?? 180_000);
    c.once('error', reject);
    c.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('podman run, run -t, run -d + exec + exec -t + stop + rm (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const rootfs = join(w.bundle('b', ['true']), 'rootfs');
  const kata = join(w.dir, 'kata-ts');
  writeFileSync(kata, `#!/bin/sh\nexec ${process.execPath} ${cliPath} "$@"\n`, { mode: 0o755 });
  const server = createServer((_, res) => res.end('hello from the host\n'));
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const seen: Record<string, unknown[]> = {};
  for (const rt of RUNTIMES) {
    const store = mkdtempSync(join(tmpdir(), `kt-podman-${rt}-`));
    t.teardown(() => {
      spawnSync('podman', ['--root', join(store, 'root'), '--runroot', join(store, 'run'), 'rm', '-af'], { stdio: 'ignore', timeout: 60_000 });
      rmSync(store, { recursive: true, force: true });
    });
    // this host's NOFILE and NPROC hard limits are below podman's defaults, which runc cannot raise
    const common = ['--runtime', rt === 'kata' ? kata : 'runc', 'run', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
    const r = await podmanRun(store, [...common, '--rm', '--rootfs', rootfs, 'sh', '-c', `echo hello; wget -q -O - http://${GATEWAY}:${port}/; exit 3`]);
    t.equal(r.code, 3, `${rt}: podman run exits 3 (${r.stderr})`);
    t.equal(r.stdout, 'hello\nhello from the host\n', `${rt}: output, and the host reached over the pod network`);

    const tty = await podmanRun(store, [...common, '--rm', '-t', '--rootfs', rootfs, 'sh', '-c', 'test -t 0 && echo stdin-is-a-tty; exit 4'], { tty: true });
    const ttyOut = tty.stdout.replace(/\r/g, '');
    t.equal(tty.code, 4, `${rt}: podman run -t exits 4 (${tty.stderr})`);
    t.match(ttyOut, /stdin-is-a-tty/, `${rt}: the process has a terminal: ${JSON.stringify(ttyOut)}`);

    const name = `pd-${rt}`;
    const d = await podmanRun(store, [...common, '-d', '--name', name, '--rootfs', rootfs, 'sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.1; done']);
    t.equal(d.code, 0, `${rt}: podman run -d (${d.stderr})`);
    const ex = await podmanRun(store, ['exec', name, 'sh', '-c', 'echo in-exec; exit 5']);
    t.equal(ex.code, 5, `${rt}: podman exec exits 5 (${ex.stderr})`);
    t.equal(ex.stdout, 'in-exec\n', `${rt}: exec output`);
    // podman exec -t: conmon runs `exec --detach --tty --console-socket S --pid-file P` and relays the master
    const ext = await podmanRun(store, ['exec', '-t', name, 'sh', '-c', 'test -t 0 && echo exec-has-a-tty; exit 6'], { tty: true });
    const extOut = ext.stdout.replace(/\r/g, '');
    t.equal(ext.code, 6, `${rt}: podman exec -t exits 6 (${ext.stderr})`);
    t.match(extOut, /exec-has-a-tty/, `${rt}: the exec has a terminal: ${JSON.stringify(extOut)}`);
    const stop = await podmanRun(store, ['stop', '-t', '5', name]);
    t.equal(stop.code, 0, `${rt}: podman stop (${stop.stderr})`);
    const rm = await podmanRun(store, ['rm', name]);
    t.equal(rm.code, 0, `${rt}: podman rm (${rm.stderr})`);
    seen[rt] = [r.code, r.stdout, tty.code, /stdin-is-a-tty/.test(ttyOut), d.code, ex.code, ex.stdout, ext.code, /exec-has-a-tty/.test(extOut), stop.code, rm.code];
  }
  t.same(seen['kata'], seen['runc'], 'kata-ts and runc agree');
  t.same(pidsMentioning(kata), [], 'no kata-ts process left behind');
});

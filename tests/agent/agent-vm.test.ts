// The guest agent as PID 1 in a VM: QEMU with TCG (this machine's KVM cannot run guest userspace, DESIGN.md)
// boots the full guest kernel with the agent initramfs (guest/build-agent-initrd.sh: agent + runc + libraries);
// our virtio-vsock device model is attached over vhost-user and the host side is its in-process stream.
// The agent answers the health check, runs a busybox container from an ext4 image on virtio-blk with runc,
// returns its output and exit code, execs a second process, updates its cgroup limits (runc update), reports an
// OOM kill under them (GetOOMEvent), delivers SIGTERM, reports cgroup v2 stats, and DestroySandbox ends the VM.
// Phase times are measured on the host from console lines as they arrive (QEMU has no boot-timer port) and
// printed as a comment.
// Skipped with the reason when qemu, the cached full kernel, runc, mkfs.ext4 or busybox is missing.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, copyFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import t from 'tap';
import { AgentClient, AGENT_STDIO_PORT, AGENT_TTRPC_PORT, StreamKind, bindStdioStream } from '../../src/agent/index.js';
import { startVhostUserBackend } from '../../src/vhost-user/index.js';

const QEMU = 'qemu-system-x86_64';

function fullKernel(): string | undefined {
  const root = join(process.env['KATA_TS_CACHE'] ?? join(homedir(), '.cache/kata-ts'), 'kernel');
  if (!existsSync(root) || !readdirSync(root).some((d) => d.startsWith('full-') && existsSync(join(root, d, 'vmlinux')))) return undefined;
  const r = spawnSync('bash', ['kernel-config/build.sh', 'full'], { encoding: 'utf8', timeout: 20_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return r.status === 0 && existsSync(line) ? line : undefined;
}

const qemuOk = spawnSync(QEMU, ['-device', 'help'], { encoding: 'utf8' });
const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
const kernel = qemuOk.status === 0 ? fullKernel() : undefined;
const skip =
  qemuOk.status !== 0
    ? `${QEMU} not found (guest/install-deps.sh)`
    : !qemuOk.stdout.includes('vhost-user-vsock-device')
      ? `${QEMU} has no vhost-user-vsock-device`
      : kernel === undefined
        ? 'no cached full guest kernel: run `npm run guest:kernel`'
        : spawnSync('runc', ['--version']).status !== 0
          ? 'runc not found (guest/install-deps.sh)'
          : spawnSync('mkfs.ext4', ['-V']).status !== 0
            ? 'mkfs.ext4 not found (apt-get install e2fsprogs)'
            : !busybox
              ? 'busybox not found (apt-get install busybox-static)'
              : false;

function collect(s: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (b: Buffer) => parts.push(b));
    s.once('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    s.once('error', reject);
    s.resume();
  });
}

t.test('agent as PID 1 under QEMU: health, container on virtio-blk, exec, update, OOM event, SIGTERM, stats, power-off', { skip, timeout: 240_000 }, async (t) => {
  const build = spawnSync('bash', ['guest/build-agent-initrd.sh'], { encoding: 'utf8', timeout: 300_000 });
  t.equal(build.status, 0, `agent initrd built${build.status ? `: ${build.stderr}` : ''}`);
  const initrd = build.stdout.trim().split('\n').pop() ?? '';

  const dir = mkdtempSync(join(tmpdir(), 'kta-vm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  mkdirSync(join(root, 'bin'), { recursive: true });
  for (const d of ['proc', 'dev', 'tmp', 'sys']) mkdirSync(join(root, d));
  copyFileSync(busybox!, join(root, 'bin/busybox'));
  for (const app of ['sh', 'echo', 'cat', 'sleep', 'true', 'dd']) symlinkSync('busybox', join(root, 'bin', app));
  const disk = join(dir, 'rootfs.img');
  const mkfs = spawnSync('mkfs.ext4', ['-q', '-F', '-d', root, disk, '16M'], { encoding: 'utf8' });
  t.equal(mkfs.status, 0, `rootfs image made${mkfs.status ? `: ${mkfs.stderr}` : ''}`);

  const backend = await startVhostUserBackend({ spec: { kind: 'vsock', cid: 3 }, socketPath: join(dir, 'vsock.sock') });
  t.teardown(() => backend.close());
  const vsock = backend.vsock!;

  const t0 = performance.now();
  const marks: Record<string, number> = {};
  const args = [
    '-M', 'microvm,acpi=off,memory-backend=mem', '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-m', '512M',
    '-accel', 'tcg', '-cpu', 'max', '-global', 'virtio-mmio.force-legacy=false',
    '-chardev', `socket,id=c0,path=${join(dir, 'vsock.sock')}`, '-device', 'vhost-user-vsock-device,chardev=c0',
    '-drive', `file=${disk},if=none,id=d0,format=raw`, '-device', 'virtio-blk-device,drive=d0',
    '-nographic', '-no-reboot', '-kernel', kernel!, '-initrd', initrd, '-append', 'console=ttyS0 reboot=k panic=-1',
  ];
  const qemu = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let consoleText = '';
  const onLine = (b: Buffer): void => {
    consoleText += b.toString();
    const at = performance.now() - t0;
    if (marks['kernel start'] === undefined && /Linux version/.test(consoleText)) marks['kernel start'] = at;
    if (marks['agent start'] === undefined && /kata-ts-agent starting as init/.test(consoleText)) marks['agent start'] = at;
    if (marks['agent ready'] === undefined && /"msg":"ready/.test(consoleText)) marks['agent ready'] = at;
  };
  qemu.stdout.on('data', onLine);
  qemu.stderr.on('data', onLine);
  const qemuExit = new Promise<number | null>((resolve) => qemu.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (qemu.exitCode === null) {
      qemu.kill('SIGKILL');
      await qemuExit;
    }
  });
  t.afterEach(() => {
    if (!t.passing()) t.comment(`console:\n${consoleText.slice(-6000)}`);
  });

  // The agent listens once it is ready; until then connects are refused (VsockConnectError).
  let client: AgentClient | undefined;
  for (let i = 0; i < 600 && !client; i++) {
    if (qemu.exitCode !== null) break;
    try {
      const c = new AgentClient(await vsock.connect(AGENT_TTRPC_PORT, { timeoutMs: 2000 }), { timeoutMs: 60_000 });
      t.equal((await c.check()).status, 1, 'health check: SERVING');
      client = c;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (!client) {
    t.fail(`the agent never answered the health check (qemu exit ${qemu.exitCode})`);
    return;
  }
  marks['health ok'] = performance.now() - t0;
  const details = await client.getGuestDetails();
  t.match(details, { agent_version: /^kata-ts-agent/, runc_version: /runc version/, stdio_port: AGENT_STDIO_PORT });
  const stream = async (exec_id: string, kind: (typeof StreamKind)['STDOUT' | 'STDERR']): Promise<Duplex> =>
    bindStdioStream(await vsock.connect(AGENT_STDIO_PORT), { container_id: 'c1', exec_id, kind }, { timeoutMs: 30_000 });

  const spec = {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false, user: { uid: 0, gid: 0 }, cwd: '/', env: ['PATH=/bin'],
      args: ['sh', '-c', 'trap "echo term; exit 42" TERM; echo hello from the guest; cat /proc/self/cgroup; echo oops >&2; sleep 1000 & wait'],
    },
    root: { path: '/host/bundle/rootfs' },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }, { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] }],
    linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }] },
  };
  await client.createContainer({
    container_id: 'c1',
    oci_spec_json: Buffer.from(JSON.stringify(spec)),
    storages: [{ driver: 'blk', source: '/dev/vda', mount_point: '/run/kata-ts/storage/c1', fstype: 'ext4', options: ['ro'] }],
    rootfs: '/run/kata-ts/storage/c1',
  });
  const out = collect(await stream('', StreamKind.STDOUT));
  const err = collect(await stream('', StreamKind.STDERR));
  await client.startContainer({ container_id: 'c1' });
  marks['container started'] = performance.now() - t0;

  await client.execProcess({
    container_id: 'c1', exec_id: 'e1',
    process_json: Buffer.from(JSON.stringify({ args: ['sh', '-c', 'echo exec-ok; exit 3'], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } })),
  });
  const eout = collect(await stream('e1', StreamKind.STDOUT));
  t.same(await client.waitProcess({ container_id: 'c1', exec_id: 'e1' }), { exit_code: 3, signal: 0 }, 'exec exit code');
  t.equal(await eout, 'exec-ok\n', 'exec stdout');

  const stats = await client.statsContainer({ container_id: 'c1' });
  t.ok((stats.cgroup?.cpu_usage_usec ?? 0) > 0, `cgroup v2 cpu.stat read (usage ${stats.cgroup?.cpu_usage_usec} us)`);
  t.ok((stats.cgroup?.pids_current ?? 0) >= 1, `pids.current ${stats.cgroup?.pids_current}`);

  // UpdateContainer (runc update in the guest) writes the cgroup v2 files; an OOM kill under the new memory.max
  // comes back from GetOOMEvent (the long poll waits meanwhile), answered before the killed process's exit.
  const order: string[] = [];
  const oom = client.getOomEvent().then((e) => (order.push('oom'), e));
  await client.updateContainer({ container_id: 'c1', resources_json: Buffer.from(JSON.stringify({ memory: { limit: 32 << 20 }, pids: { limit: 64 } })) });
  const limited = await client.statsContainer({ container_id: 'c1' });
  t.same([limited.cgroup?.memory_max, limited.cgroup?.pids_max], [32 << 20, 64], 'UpdateContainer: memory.max 32 MiB and pids.max 64 in the guest cgroup');
  await client.execProcess({
    container_id: 'c1', exec_id: 'hog',
    process_json: Buffer.from(JSON.stringify({ args: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } })),
  });
  const hog = await client.waitProcess({ container_id: 'c1', exec_id: 'hog' }).then((r) => (order.push('exit'), r));
  t.same(hog, { exit_code: 137, signal: 9 }, 'dd of a 64 MiB block under a 32 MiB memory.max: killed by the OOM killer');
  t.same(await oom, { container_id: 'c1' }, 'GetOOMEvent names the container');
  t.same(order, ['oom', 'exit'], 'the OOM event is answered before the exit of the killed process');

  const initWait = client.waitProcess({ container_id: 'c1' });
  await client.signalProcess({ container_id: 'c1', signal: 15 });
  t.same(await initWait, { exit_code: 42, signal: 0 }, 'SIGTERM reached the trap; exit code 42');
  t.equal(await out, 'hello from the guest\n0::/c1\nterm\n', 'container stdout (its own cgroup v2 path)');
  t.equal(await err, 'oops\n', 'container stderr');
  await client.removeContainer({ container_id: 'c1' });

  await client.destroySandbox();
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([qemuExit, new Promise<string>((r) => (timer = setTimeout(() => r('still running'), 60_000)))]);
  clearTimeout(timer);
  marks['vm exited'] = performance.now() - t0;
  t.equal(code, 0, 'DestroySandbox ended the VM (QEMU exited)');
  client.close();
  t.comment(`phase times (ms since QEMU spawn, QEMU TCG): ${Object.entries(marks).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`);
});

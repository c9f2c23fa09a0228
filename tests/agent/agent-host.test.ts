// The guest agent (guest/agent/, C++) on the host: built static, run with `--listen unix:PATH` in a scratch
// directory with Debian's real runc and a busybox rootfs, driven by the TypeScript AgentClient over ttRPC.
// Covers create/start/wait with exit codes, stdout/stderr/stdin streams, exec, SIGTERM, a terminal exec with
// TtyWinResize, malformed messages (the agent answers and survives), unknown ids, and DestroySandbox.
// Needs root (runc, mounts) and runc (apt-get install runc); skipped with the reason otherwise.
//
// This host uses cgroups v1 (DESIGN.md); runc 1.1 runs these containers with its default cgroupfs driver and
// pivot_root as is. StatsContainer reads cgroup v2 files, so on such a host it answers zeros.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, copyFileSync, chmodSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import {
  AgentClient,
  StdioBindRefused,
  StreamKind,
  type StreamKindValue,
  TtrpcStatusError,
  Code,
  MessageType,
  bindStdioStream,
  decodeResponse,
  encodeFrame,
  encodeRequest,
  type TtrpcResponse,
  type ProcessStatus,
  AGENT_SERVICE,
  HEALTH_SERVICE,
} from '../../src/agent/index.js';

const isRoot = process.getuid?.() === 0;
const runc = spawnSync('runc', ['--version'], { encoding: 'utf8' });
const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
const skip = !isRoot
  ? 'needs root (runc and mounts)'
  : runc.status !== 0
    ? 'runc not found: apt-get install runc (guest/install-deps.sh)'
    : !busybox
      ? 'busybox not found: apt-get install busybox-static'
      : false;

function buildAgent(): string {
  const r = spawnSync('bash', ['guest/agent/build.sh'], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`guest/agent/build.sh failed:\n${r.stderr}`);
  const bin = r.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(bin)) throw new Error(`guest/agent/build.sh printed no binary path:\n${r.stdout}`);
  return bin;
}

/** An OCI runtime spec (as `runc spec` writes it, rootless bits left out) running `args`. */
function ociSpec(args: string[], terminal = false): Uint8Array {
  const spec = {
    ociVersion: '1.0.2-dev',
    process: {
      terminal,
      user: { uid: 0, gid: 0 },
      args,
      env: ['PATH=/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: {
        bounding: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_AUDIT_WRITE'],
        effective: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_AUDIT_WRITE'],
        permitted: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_AUDIT_WRITE'],
        ambient: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_AUDIT_WRITE'],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: '/host/path/that/the/agent/rewrites', readonly: true },
    hostname: 'agent-test',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] },
    ],
    hooks: { prestart: [{ path: '/host/only/hook' }] },
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/kcore'],
      readonlyPaths: ['/proc/sys'],
    },
  };
  return Buffer.from(JSON.stringify(spec));
}

function processJson(args: string[], terminal = false): Uint8Array {
  return Buffer.from(JSON.stringify({ terminal, user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin', 'TERM=xterm'], cwd: '/' }));
}

function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

async function waitForSocket(path: string, agent: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (agent.exitCode !== null) throw new Error(`agent exited early with status ${agent.exitCode}`);
    if (existsSync(path)) {
      try {
        (await connectUnix(path)).destroy();
        return;
      } catch {
        /* not listening yet */
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`agent did not listen on ${path}`);
}

/** Collects everything a stream sends until it ends. */
function collect(s: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (b: Buffer) => parts.push(b));
    s.once('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    s.once('error', reject);
    s.resume();
  });
}

/** Sends one raw ttRPC frame on a fresh connection and returns the decoded response to it. */
async function rawCall(sock: string, frame: Buffer): Promise<{ streamId: number; resp: TtrpcResponse }> {
  const s = await connectUnix(sock);
  try {
    return await new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => reject(new Error('no response to the raw frame within 10 s')), 10_000);
      s.on('data', (b: Buffer) => {
        buf = Buffer.concat([buf, b]);
        if (buf.length < 10) return;
        const len = buf.readUInt32BE(0);
        if (buf.length < 10 + len) return;
        clearTimeout(timer);
        if (buf.readUInt8(8) !== MessageType.Response) reject(new Error(`expected a response, got type ${buf.readUInt8(8)}`));
        resolve({ streamId: buf.readUInt32BE(4), resp: decodeResponse(buf.subarray(10, 10 + len)) });
      });
      s.once('error', reject);
      s.write(frame);
    });
  } finally {
    s.destroy();
  }
}

async function rejectsWithCode(tt: Test, p: Promise<unknown>, code: number, what: string): Promise<void> {
  try {
    await p;
    tt.fail(`${what}: expected ${code}, but the call succeeded`);
  } catch (e) {
    tt.ok(e instanceof TtrpcStatusError, `${what}: a status error`);
    tt.equal((e as TtrpcStatusError).code, code, `${what}: ${(e as Error).message}`);
  }
}

t.test('guest agent on the host with real runc', { skip }, async (t) => {
  const agentBin = buildAgent();
  const dir = mkdtempSync('/tmp/kta-');
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  for (const d of ['proc', 'dev', 'tmp', 'sys']) mkdirSync(join(rootfs, d));
  copyFileSync(busybox!, join(rootfs, 'bin/busybox'));
  chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  for (const app of ['sh', 'echo', 'cat', 'sleep', 'stty', 'true']) symlinkSync('busybox', join(rootfs, 'bin', app));

  const sock = join(dir, 'agent.sock');
  const stdioSock = join(dir, 'stdio.sock');
  const agentLog: Buffer[] = [];
  const agent = spawn(agentBin, ['--listen', `unix:${sock}`, '--stdio-listen', `unix:${stdioSock}`, '--state-dir', join(dir, 'state')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  agent.stderr.on('data', (b: Buffer) => agentLog.push(b));
  const agentExit = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (agent.exitCode === null) {
      agent.kill('SIGKILL');
      await agentExit;
    }
    // After a failure midway: containers and storage mounts the agent did not get to remove.
    const runcRoot = join(dir, 'state/runc');
    const left = spawnSync('runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8' }).stdout ?? '';
    for (const id of left.split('\n').filter((l) => l.trim() !== '')) spawnSync('runc', ['--root', runcRoot, 'delete', '--force', id], { stdio: 'ignore' });
    if (existsSync(join(dir, 'mnt'))) for (const m of readdirSync(join(dir, 'mnt'))) spawnSync('umount', ['-l', join(dir, 'mnt', m)], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  });
  t.afterEach(() => {
    if (t.passing()) return;
    t.comment(`agent log:\n${Buffer.concat(agentLog).toString('utf8')}`);
  });
  await waitForSocket(sock, agent);
  const client = new AgentClient(await connectUnix(sock), { timeoutMs: 30_000 });
  t.teardown(() => client.close());

  const bind = async (container_id: string, exec_id: string, kind: StreamKindValue): Promise<Socket> =>
    (await bindStdioStream(await connectUnix(stdioSock), { container_id, exec_id, kind }, { timeoutMs: 10_000 })) as Socket;
  const storage = (id: string): { driver: string; source: string; mount_point: string; options: string[] } => ({
    driver: 'bind',
    source: rootfs,
    mount_point: join(dir, 'mnt', id),
    options: ['ro'],
  });

  await t.test('health check and guest details', async (t) => {
    t.equal((await client.check()).status, 1, 'SERVING');
    const d = await client.getGuestDetails();
    t.match(d.agent_version, /^kata-ts-agent /);
    t.match(d.runc_version, /runc version/);
    t.ok(d.mem_total_bytes > 0, 'MemTotal read');
    t.ok(d.cpus >= 1, 'online cpus');
    t.equal(d.stdio_port, 1025);
  });

  await t.test('create, bind stdio, start, wait: exit code, stdout, stderr, stdin', async (t) => {
    await client.createContainer({
      container_id: 'c1',
      oci_spec_json: ociSpec(['sh', '-c', 'echo hello; echo oops >&2; read line; echo got:$line; exit 7']),
      storages: [storage('c1')],
      rootfs: join(dir, 'mnt', 'c1'),
    });
    const config = JSON.parse(readFileSync(join(dir, 'state/containers/c1/config.json'), 'utf8')) as { root: { path: string }; hooks?: unknown };
    t.equal(config.root.path, join(dir, 'mnt', 'c1'), 'root.path rewritten to rootfs');
    t.equal(config.hooks, undefined, 'hooks dropped');
    const out = collect(await bind('c1', '', StreamKind.STDOUT));
    const err = collect(await bind('c1', '', StreamKind.STDERR));
    const stdin = await bind('c1', '', StreamKind.STDIN);
    try {
      await bind('c1', '', StreamKind.STDOUT);
      t.fail('second STDOUT bind accepted');
    } catch (e) {
      t.ok(e instanceof StdioBindRefused && e.code === Code.ALREADY_EXISTS, `second bind refused: ${(e as Error).message}`);
    }
    await client.startContainer({ container_id: 'c1' });
    await rejectsWithCode(t, client.startContainer({ container_id: 'c1' }), Code.FAILED_PRECONDITION, 'second start');
    stdin.end('ping\n');
    const w = await client.waitProcess({ container_id: 'c1' }, { timeoutMs: 30_000 });
    t.same(w, { exit_code: 7, signal: 0 }, 'exit status 7');
    t.equal(await out, 'hello\ngot:ping\n', 'stdout, with the line read from stdin');
    t.equal(await err, 'oops\n', 'stderr');
    const again = await client.waitProcess({ container_id: 'c1' });
    t.equal(again.exit_code, 7, 'WaitProcess after the exit answers at once');
    const stats = await client.statsContainer({ container_id: 'c1' });
    t.ok(stats.cgroup !== null, 'stats has a cgroup message');
    await client.removeContainer({ container_id: 'c1' });
    t.notOk(existsSync(join(dir, 'state/containers/c1')), 'bundle removed');
    await rejectsWithCode(t, client.waitProcess({ container_id: 'c1' }), Code.NOT_FOUND, 'wait after remove');
  });

  await t.test('exec, SIGTERM to an exec and to the init, terminal exec with resize', async (t) => {
    await client.createContainer({
      container_id: 'c2',
      oci_spec_json: ociSpec(['sh', '-c', 'trap "echo term; exit 42" TERM; echo up; sleep 1000 & wait']),
      storages: [storage('c2')],
      rootfs: join(dir, 'mnt', 'c2'),
    });
    const initOut = await bind('c2', '', StreamKind.STDOUT);
    const initText = collect(initOut);
    await rejectsWithCode(
      t,
      client.execProcess({ container_id: 'c2', exec_id: 'e0', process_json: processJson(['true']) }),
      Code.FAILED_PRECONDITION,
      'exec before start',
    );
    await client.startContainer({ container_id: 'c2' });

    await client.execProcess({ container_id: 'c2', exec_id: 'e1', process_json: processJson(['sh', '-c', 'echo from-exec; echo e1err >&2; exit 5']) });
    const e1out = collect(await bind('c2', 'e1', StreamKind.STDOUT));
    const e1err = collect(await bind('c2', 'e1', StreamKind.STDERR));
    t.same(await client.waitProcess({ container_id: 'c2', exec_id: 'e1' }), { exit_code: 5, signal: 0 }, 'exec exit status 5');
    t.equal(await e1out, 'from-exec\n');
    t.equal(await e1err, 'e1err\n');
    await rejectsWithCode(
      t,
      client.execProcess({ container_id: 'c2', exec_id: 'e1', process_json: processJson(['true']) }),
      Code.ALREADY_EXISTS,
      'duplicate exec id',
    );

    await client.execProcess({ container_id: 'c2', exec_id: 'e2', process_json: processJson(['sleep', '1000']) });
    const e2wait = client.waitProcess({ container_id: 'c2', exec_id: 'e2' });
    await client.signalProcess({ container_id: 'c2', exec_id: 'e2', signal: 15 });
    t.same(await e2wait, { exit_code: 143, signal: 15 }, 'SIGTERM: 128 + 15, signal 15');

    await client.execProcess({ container_id: 'c2', exec_id: 't1', process_json: processJson(['sh', '-c', 'read x; stty size; echo tty:$x'], true) });
    await client.ttyWinResize({ container_id: 'c2', exec_id: 't1', rows: 33, columns: 77 });
    await rejectsWithCode(t, bind('c2', 't1', StreamKind.STDERR).then(() => undefined, (e: unknown) => {
      if (e instanceof StdioBindRefused) throw new TtrpcStatusError(e.code, e.details);
      throw e;
    }), Code.FAILED_PRECONDITION, 'STDERR of a terminal process');
    const ttyOut = collect(await bind('c2', 't1', StreamKind.STDOUT));
    const ttyIn = await bind('c2', 't1', StreamKind.STDIN);
    ttyIn.write('go\n');
    t.equal((await client.waitProcess({ container_id: 'c2', exec_id: 't1' })).exit_code, 0, 'terminal exec exits 0');
    const tty = await ttyOut;
    t.match(tty, /33 77/, 'stty sees the resized window');
    t.match(tty, /tty:go/, 'terminal input reached the process');
    ttyIn.destroy();
    await rejectsWithCode(t, client.ttyWinResize({ container_id: 'c2', exec_id: 'e1', rows: 1, columns: 1 }), Code.FAILED_PRECONDITION, 'resize of a non-tty');

    const initWait = client.waitProcess({ container_id: 'c2' });
    await client.signalProcess({ container_id: 'c2', signal: 15 });
    t.same(await initWait, { exit_code: 42, signal: 0 }, 'the init trapped SIGTERM and exited 42');
    t.equal(await initText, 'up\nterm\n', 'init stdout');
    await client.removeContainer({ container_id: 'c2', timeout_seconds: 1 });
  });

  await t.test('4 MiB through stdin -> cat -> stdout (backpressure both ways), CloseStdin', async (t) => {
    await client.createContainer({ container_id: 'big', oci_spec_json: ociSpec(['sleep', '1000']), storages: [storage('big')], rootfs: join(dir, 'mnt', 'big') });
    await client.startContainer({ container_id: 'big' });
    await client.execProcess({ container_id: 'big', exec_id: 'cat', process_json: processJson(['cat']) });
    const stdin = await bind('big', 'cat', StreamKind.STDIN);
    const payload = Buffer.alloc(4 << 20);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + (i >> 12)) & 0xff;
    // write everything before stdout is bound: the pipes fill up and the agent must stop reading the socket
    stdin.write(payload);
    await new Promise((r) => setTimeout(r, 200));
    const outSock = await bind('big', 'cat', StreamKind.STDOUT);
    const parts: Buffer[] = [];
    outSock.on('data', (b: Buffer) => parts.push(b));
    const ended = new Promise<void>((resolve) => outSock.once('end', () => resolve()));
    outSock.resume();
    while (parts.reduce((n, b) => n + b.length, 0) < payload.length) await new Promise((r) => setTimeout(r, 20));
    await client.closeStdin({ container_id: 'big', exec_id: 'cat' });
    t.same(await client.waitProcess({ container_id: 'big', exec_id: 'cat' }), { exit_code: 0, signal: 0 }, 'cat saw EOF after CloseStdin');
    await ended;
    const got = Buffer.concat(parts);
    t.equal(got.length, payload.length, 'every byte came back');
    t.ok(got.equals(payload), 'in order and unchanged');
    stdin.destroy();
    await client.removeContainer({ container_id: 'big' });
  });

  await t.test('RemoveContainer stops a running container (SIGTERM ignored by a pid-ns init → SIGKILL)', async (t) => {
    await client.createContainer({ container_id: 'c3', oci_spec_json: ociSpec(['sleep', '1000']), storages: [storage('c3')], rootfs: join(dir, 'mnt', 'c3') });
    await client.startContainer({ container_id: 'c3' });
    const w = client.waitProcess({ container_id: 'c3' });
    await client.removeContainer({ container_id: 'c3', timeout_seconds: 1 });
    const r = await w;
    t.same(r, { exit_code: 137, signal: 9 }, 'killed by SIGKILL after the timeout');
    t.notOk(existsSync(join(dir, 'mnt', 'c3', 'bin')), 'storage unmounted');
  });

  await t.test('ListProcesses: the container\'s processes (its own and exec\'d, with their children) as ps -ef shows them', async (t) => {
    await client.createContainer({
      container_id: 'ps1',
      oci_spec_json: ociSpec(['sh', '-c', 'sleep 1001 & sleep 1002 & wait']),
      storages: [storage('ps1')],
      rootfs: join(dir, 'mnt', 'ps1'),
    });
    await client.startContainer({ container_id: 'ps1' });
    await client.execProcess({ container_id: 'ps1', exec_id: 'e', process_json: processJson(['sleep', '1003']) });
    await client.execProcess({ container_id: 'ps1', exec_id: 't', process_json: processJson(['sleep', '1004'], true) });
    const byCmd = async (): Promise<Map<string, ProcessStatus>> => new Map((await client.listProcesses({ container_id: 'ps1' })).map((p) => [p.cmd, p]));
    let procs = await byCmd();
    for (let i = 0; i < 100 && procs.size < 5; i++) {
      await new Promise((r) => setTimeout(r, 50));
      procs = await byCmd();
    }
    t.same([...procs.keys()].sort(), ['sh -c sleep 1001 & sleep 1002 & wait', 'sleep 1001', 'sleep 1002', 'sleep 1003', 'sleep 1004'], 'the init, its children and both execs; nothing else');
    const sh = procs.get('sh -c sleep 1001 & sleep 1002 & wait')!;
    t.equal(procs.get('sleep 1001')?.ppid, sh.pid, 'a child names the init as its parent');
    t.equal(procs.get('sleep 1002')?.ppid, sh.pid);
    for (const p of procs.values()) {
      t.equal(p.uid, 0, `${p.cmd}: uid 0`);
      t.ok(Math.abs(p.start_time - Date.now() / 1000) < 120, `${p.cmd}: started just now (${p.start_time})`);
      t.ok(existsSync(`/proc/${p.pid}`), `${p.cmd}: pid ${p.pid} is a live (host) process`);
    }
    t.equal(procs.get('sleep 1003')?.tty, '', 'no terminal: no tty');
    t.match(procs.get('sleep 1004')?.tty, /^pts\/\d+$/, 'a terminal exec runs on a pts');

    const w = client.waitProcess({ container_id: 'ps1' });
    await client.signalProcess({ container_id: 'ps1', signal: 9 });
    await w;
    t.same(await client.listProcesses({ container_id: 'ps1' }), [], 'a stopped container has no processes');
    await rejectsWithCode(t, client.listProcesses({ container_id: 'nope' }), Code.NOT_FOUND, 'unknown container');
    await client.removeContainer({ container_id: 'ps1' });
  });

  await t.test('UpdateContainer: runc update sets the cgroup limits; bad requests get their codes; GetOOMEvent waits without blocking the agent', async (t) => {
    // cgroups v1 here (no memory.events): the agent watches nothing and the long poll just stays pending.
    let oomSettled = false;
    const oom = client.getOomEvent().then(
      (e) => ((oomSettled = true), e),
      () => ((oomSettled = true), undefined),
    );
    await client.createContainer({ container_id: 'up', oci_spec_json: ociSpec(['sleep', '1000']), storages: [storage('up')], rootfs: join(dir, 'mnt', 'up') });
    const limits = Buffer.from(JSON.stringify({ memory: { limit: 48 << 20 }, pids: { limit: 17 } }));
    await client.updateContainer({ container_id: 'up', resources_json: limits });
    await client.startContainer({ container_id: 'up' });
    await client.updateContainer({ container_id: 'up', resources_json: Buffer.from(JSON.stringify({ memory: { limit: 40 << 20 } })) });
    const st = JSON.parse(spawnSync('runc', ['--root', join(dir, 'state/runc'), 'state', 'up'], { encoding: 'utf8' }).stdout) as { pid: number };
    const cgroupOf = (ctl: string): string => {
      const line = readFileSync(`/proc/${st.pid}/cgroup`, 'utf8').split('\n').find((l) => l.split(':')[1]!.split(',').includes(ctl));
      return line ? line.split(':').slice(2).join(':') : '';
    };
    const memFile = existsSync('/sys/fs/cgroup/memory') ? join('/sys/fs/cgroup/memory', cgroupOf('memory'), 'memory.limit_in_bytes') : '';
    const pidsFile = existsSync('/sys/fs/cgroup/pids') ? join('/sys/fs/cgroup/pids', cgroupOf('pids'), 'pids.max') : '';
    if (memFile && existsSync(memFile)) t.equal(readFileSync(memFile, 'utf8').trim(), String(40 << 20), `${memFile}: the second update's memory limit`);
    else t.comment('no cgroup v1 memory controller here: memory.limit_in_bytes not checked');
    if (pidsFile && existsSync(pidsFile)) t.equal(readFileSync(pidsFile, 'utf8').trim(), '17', `${pidsFile}: the first update's pids limit kept (fields left out keep their values)`);
    await rejectsWithCode(t, client.updateContainer({ container_id: 'up', resources_json: Buffer.from('[1]') }), Code.INVALID_ARGUMENT, 'resources that are not a JSON object');
    await rejectsWithCode(t, client.updateContainer({ container_id: 'up', resources_json: Buffer.from('{"memory":') }), Code.INVALID_ARGUMENT, 'truncated JSON');
    await rejectsWithCode(t, client.updateContainer({ container_id: 'up', resources_json: Buffer.from('{"memory":{"limit":"lots"}}') }), Code.INTERNAL, 'runc refuses a wrong field type');
    await rejectsWithCode(t, client.updateContainer({ container_id: 'nope', resources_json: Buffer.from('{}') }), Code.NOT_FOUND, 'unknown container');
    await rejectsWithCode(t, client.updateContainer({ container_id: '../x', resources_json: Buffer.from('{}') }), Code.INVALID_ARGUMENT, 'invalid id');
    const w = client.waitProcess({ container_id: 'up' });
    await client.signalProcess({ container_id: 'up', signal: 9 });
    await w;
    await rejectsWithCode(t, client.updateContainer({ container_id: 'up', resources_json: limits }), Code.FAILED_PRECONDITION, 'update after the container stopped');
    await client.removeContainer({ container_id: 'up' });
    t.equal(oomSettled, false, 'GetOOMEvent is still pending while every other call was answered');
    t.equal((await client.check()).status, 1, 'the agent still serves');
    t.teardown(() => void oom); // settles (PeerGone) when the agent exits
  });

  await t.test('unknown and invalid ids', async (t) => {
    await rejectsWithCode(t, client.startContainer({ container_id: 'nope' }), Code.NOT_FOUND, 'start unknown');
    await rejectsWithCode(t, client.waitProcess({ container_id: 'nope' }), Code.NOT_FOUND, 'wait unknown');
    await rejectsWithCode(t, client.signalProcess({ container_id: 'nope', signal: 9 }), Code.NOT_FOUND, 'signal unknown');
    await rejectsWithCode(t, client.removeContainer({ container_id: 'nope' }), Code.NOT_FOUND, 'remove unknown');
    await rejectsWithCode(t, client.statsContainer({ container_id: '../etc' }), Code.INVALID_ARGUMENT, 'path-like id');
    await rejectsWithCode(
      t,
      client.createContainer({ container_id: 'bad', oci_spec_json: Buffer.from('{"process": '), rootfs: '/x' }),
      Code.INVALID_ARGUMENT,
      'truncated OCI JSON',
    );
    await rejectsWithCode(
      t,
      client.createContainer({ container_id: 'bad', oci_spec_json: ociSpec(['true']), rootfs: '/x', storages: [{ driver: 'nfs', source: 'a', mount_point: '/y' }] }),
      Code.INVALID_ARGUMENT,
      'unknown storage driver',
    );
    try {
      await bind('nope', '', StreamKind.STDOUT);
      t.fail('bind to an unknown container accepted');
    } catch (e) {
      t.ok(e instanceof StdioBindRefused && e.code === Code.NOT_FOUND, `stdio bind refused: ${(e as Error).message}`);
    }
  });

  await t.test('malformed messages get error replies and the agent survives', async (t) => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let r = await rawCall(sock, encodeFrame(1, MessageType.Request, garbage));
    t.equal(r.streamId, 1);
    t.equal(r.resp.status?.code, Code.INVALID_ARGUMENT, `garbage Request: ${r.resp.status?.message}`);

    // a valid Request whose payload is a truncated CreateContainerRequest (field 2 announces 100 bytes)
    const bad = encodeRequest({ service: AGENT_SERVICE, method: 'CreateContainer', payload: Buffer.from([0x12, 100, 1, 2]), timeout_nano: 0, metadata: [] });
    r = await rawCall(sock, encodeFrame(3, MessageType.Request, bad));
    t.equal(r.resp.status?.code, Code.INVALID_ARGUMENT, `truncated payload: ${r.resp.status?.message}`);

    // field 1 (container_id) sent as a varint instead of a string
    const wrongType = encodeRequest({ service: AGENT_SERVICE, method: 'StartContainer', payload: Buffer.from([0x08, 1]), timeout_nano: 0, metadata: [] });
    r = await rawCall(sock, encodeFrame(5, MessageType.Request, wrongType));
    t.equal(r.resp.status?.code, Code.INVALID_ARGUMENT, `wrong wire type: ${r.resp.status?.message}`);

    const health = encodeRequest({ service: HEALTH_SERVICE, method: 'Check', payload: new Uint8Array(0), timeout_nano: 0, metadata: [] });
    r = await rawCall(sock, encodeFrame(2, MessageType.Request, health));
    t.equal(r.streamId, 2);
    t.equal(r.resp.status?.code, Code.INVALID_ARGUMENT, `even stream id: ${r.resp.status?.message}`);

    const unknown = encodeRequest({ service: AGENT_SERVICE, method: 'Frobnicate', payload: new Uint8Array(0), timeout_nano: 0, metadata: [] });
    r = await rawCall(sock, encodeFrame(7, MessageType.Request, unknown));
    t.equal(r.resp.status?.code, Code.UNIMPLEMENTED, `unknown method: ${r.resp.status?.message}`);

    const huge = Buffer.alloc(10);
    huge.writeUInt32BE(64 << 20, 0);
    huge.writeUInt32BE(9, 4);
    huge.writeUInt8(MessageType.Request, 8);
    r = await rawCall(sock, huge);
    t.equal(r.streamId, 9);
    t.equal(r.resp.status?.code, Code.RESOURCE_EXHAUSTED, `oversize frame: ${r.resp.status?.message}`);

    // a connection cut in the middle of a frame, then a stdio header with a bad length
    const cut = await connectUnix(sock);
    cut.end(encodeFrame(11, MessageType.Request, health).subarray(0, 14));
    const badStdio = await connectUnix(stdioSock);
    const ack = new Promise<Buffer>((resolve) => {
      const parts: Buffer[] = [];
      badStdio.on('data', (b: Buffer) => parts.push(b));
      badStdio.on('close', () => resolve(Buffer.concat(parts)));
    });
    badStdio.write(Buffer.from([0, 1, 0, 0]));
    const ackBytes = await ack;
    t.ok(ackBytes.length > 4, 'a StdioStreamAck came back before the close');

    t.equal((await client.check()).status, 1, 'still SERVING on the first connection');
    t.equal(agent.exitCode, null, 'agent process alive');
  });

  await t.test('DestroySandbox answers and the agent exits (host mode)', async (t) => {
    await client.createContainer({ container_id: 'c4', oci_spec_json: ociSpec(['sleep', '1000']), storages: [storage('c4')], rootfs: join(dir, 'mnt', 'c4') });
    await client.startContainer({ container_id: 'c4' });
    await client.destroySandbox();
    t.equal(await agentExit, 0, 'agent exited 0');
    const list = spawnSync('runc', ['--root', join(dir, 'state/runc'), 'list', '-q'], { encoding: 'utf8' });
    t.equal(list.stdout.trim(), '', 'runc has no containers left');
  });
});

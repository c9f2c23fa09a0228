// The Sandbox (src/runtime/sandbox.ts) in-process, against a fake hypervisor and a fake agent
// (tests/support/runtime/): no VM, no QEMU, no mkfs. Driven over its real control socket with the CLI's own
// client (control.ts). Covers: what the VM is given at boot; the agent calls and their order; state.json through
// created → running → stopped; the lifecycle checks (start twice, kill of a stopped container, delete of a
// running one without --force, no free slot); exit codes reaching `wait` and the stdio relay; exec and attach;
// shutdown after the last delete, when the VM exits, and with a guest that does not power off; a start that
// fails (hypervisor, agent, software KVM) leaving no state behind; malformed control requests. Issue 14: file,
// directory and socket modes under umask 000; the control socket's SO_PEERCRED check (own uid or root) and a
// relay registering only its own pid; a console flood staying within console_log_max_mib.
// The same paths with a real guest: tests/runtime/sandbox.test.ts and tests/e2e/ (QEMU TCG, minutes).

import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { call, execResult, exitResult, open, psResult, readLine, type ControlRequest } from '../../src/runtime/control.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import type { SandboxSettings } from '../../src/runtime/launch.js';
import type { RuntimeLogger } from '../../src/runtime/log.js';
import type { Check } from '../../src/runtime/validate.js';
import { Sandbox, type SandboxDeps } from '../../src/runtime/sandbox.js';
import { controlSocketPath, processStart, readContainer, readSandbox, sandboxPath, statePath, writeContainer, type ContainerRecord } from '../../src/runtime/state.js';
import { FakeAgent } from '../support/runtime/fake-agent.js';
import { FakeHypervisor, type FakeHypervisorOptions } from '../support/runtime/fake-hypervisor.js';

const SID = 'sb';

interface Rig {
  dir: string;
  root: string;
  settings: SandboxSettings;
  hv: FakeHypervisor;
  agent: FakeAgent;
  sandbox: Sandbox;
  logs: string[];
  images: { rootfs: string; image: string }[];
  sock: string;
  /** a bundle rootfs directory (the fake image builder only records it) */
  rootfs: string;
  state(id?: string): ContainerRecord | undefined;
  /** one control call; resolves with its result, rejects with its RuntimeError */
  ctl<T = unknown>(req: ControlRequest, result?: Check<T>): Promise<T>;
}

interface RigOptions {
  hv?: FakeHypervisorOptions;
  /** no FakeAgent: nothing answers on the agent's ports */
  noAgent?: boolean;
  ignoreDestroy?: boolean;
  deps?: Partial<SandboxDeps>;
  settings?: Partial<SandboxSettings>;
}

function rig(t: Test, o: RigOptions = {}): Rig {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-sbfake-'));
  const root = join(dir, 'root');
  const rootfs = join(dir, 'bundle', 'rootfs');
  mkdirSync(rootfs, { recursive: true });
  const settings: SandboxSettings = {
    root,
    sid: SID,
    hypervisor: 'qemu',
    kernel: '/guest/vmlinux',
    initrd: '/guest/initrd.cpio.gz',
    cmdline: 'console=ttyS0 panic=-1',
    vcpus: 2,
    memoryMiB: 256,
    sharedFs: 'none',
    slots: 2,
    slotSizeMiB: 16,
    consoleLogMaxMiB: 1,
    dialTimeoutMs: 2000,
    requestTimeoutMs: 5000,
    tmpDir: join(dir, 'kata-ts-sb-tmp'),
    ...o.settings,
  };
  const hv = new FakeHypervisor(o.hv);
  const agent = new FakeAgent(hv, { ignoreDestroy: o.ignoreDestroy === true });
  if (o.noAgent) hv.vsock.guestListen(1024, (s) => s.destroy());
  const logs: string[] = [];
  const logger: RuntimeLogger = {
    info: (m, e = {}) => logs.push(`info ${m} ${JSON.stringify(e)}`),
    error: (m, e = {}) => logs.push(`error ${m} ${JSON.stringify(e)}`),
  };
  const images: { rootfs: string; image: string }[] = [];
  const sandbox = new Sandbox(settings, {
    hypervisor: hv,
    logger,
    buildImage: (r, image) => void images.push({ rootfs: r, image }),
    powerOffWaitMs: 300,
    ...o.deps,
  });
  const sock = controlSocketPath(root, SID);
  t.teardown(async () => {
    await sandbox.shutdown('test teardown');
    if (!t.passing()) t.comment(logs.join('\n'));
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    root,
    settings,
    hv,
    agent,
    sandbox,
    logs,
    images,
    sock,
    rootfs,
    state: (id = SID) => readContainer(root, id),
    ctl: (req, result) => call(sock, req, 10_000, result),
  };
}

function createReq(r: Rig, id: string, extra: Partial<Extract<ControlRequest, { op: 'create' }>> = {}): ControlRequest {
  return {
    op: 'create',
    id,
    bundle: join(r.dir, 'bundle'),
    rootfs: r.rootfs,
    spec: { ociVersion: '1.0.2', process: { terminal: false, args: ['sh'] }, root: { path: 'rootfs', readonly: true } },
    annotations: id === SID ? {} : { 'io.kubernetes.cri.sandbox-id': SID },
    ...extra,
  };
}

async function rejectsWith(t: Test, p: Promise<unknown>, code: string, msg: RegExp): Promise<void> {
  try {
    await p;
    t.fail(`expected a ${code} RuntimeError matching ${msg}`);
  } catch (e) {
    t.ok(e instanceof RuntimeError, `a RuntimeError: ${(e as Error).message}`);
    t.equal((e as RuntimeError).code, code);
    t.match((e as Error).message, msg);
  }
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Everything a stream sends until it ends. */
function readAll(s: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    s.on('data', (b: Buffer) => (text += b.toString('utf8')));
    s.once('end', () => resolve(text));
    s.once('error', reject);
    s.resume();
  });
}

/** One raw line to the control socket; the parsed reply line. */
async function rawRequest(sock: string, line: string): Promise<{ ok: boolean; code?: string; message?: string }> {
  const s = connect(sock);
  await new Promise((r) => s.once('connect', r));
  s.write(line);
  try {
    return JSON.parse(await readLine(s, 5000)) as { ok: boolean; code?: string; message?: string };
  } finally {
    s.destroy();
  }
}

t.test('boot: the VM gets the configured kernel, the plain command line, vsock and one disk per slot', async (t) => {
  const r = rig(t);
  await r.sandbox.start();
  const cfg = r.hv.config!;
  t.match(cfg, { kernelPath: '/guest/vmlinux', initrdPath: '/guest/initrd.cpio.gz', vcpus: 2, memoryMiB: 256 });
  t.equal(cfg.cmdline, 'console=ttyS0 panic=-1', 'the command line is passed as configured: the hypervisor adds any host quirks');
  const disk = (i: number): string => join(r.root, SID, `disk-${i}.img`);
  t.same(r.hv.devices, [{ kind: 'vsock', cid: 3 }, { kind: 'blk', path: disk(0), readOnly: false }, { kind: 'blk', path: disk(1), readOnly: false }]);
  for (const i of [0, 1]) t.equal(statSync(disk(i)).size, 16 * 1024 * 1024, `disk ${i} is a sparse file of slotSizeMiB`);
  t.same(r.hv.calls, ['createVm', 'startVm']);
  t.same(r.hv.vsock.connects, [1024], 'the agent was dialled on its ttRPC port');
  t.same(r.agent.methods(), ['Check'], 'and health-checked before anything else');
  t.match(readSandbox(r.root, SID), { id: SID, pid: process.pid, pidStart: processStart(process.pid), hypervisor: 'qemu', tmpDir: r.settings.tmpDir });
  t.ok(existsSync(r.sock), 'the control socket listens');
  t.ok(existsSync(r.settings.tmpDir), 'the temp dir exists');
  const consoleLog = (): string => readFileSync(join(r.root, SID, 'console.log'), 'utf8');
  await until('console.log written', () => consoleLog() !== '');
  t.match(consoleLog(), /fake kernel/, 'the console goes to console.log');
  t.match(r.logs.join('\n'), /kernel started[\s\S]*VM started \{"hypervisor":"qemu","accel":"tcg"\}[\s\S]*agent ready/);
});

t.test('lifecycle: created → running → stopped with the exit code; delete of the last container shuts the sandbox down', async (t) => {
  const r = rig(t);
  await r.sandbox.start();
  await rejectsWith(t, r.ctl({ op: 'kill', id: SID, signal: 15, all: false }), 'NOT_FOUND', /container 'sb' is not in sandbox 'sb'/);
  await rejectsWith(t, r.ctl({ op: 'start', id: SID }), 'NOT_FOUND', /not in sandbox/);

  t.same(await r.ctl(createReq(r, SID)), {});
  t.match(r.state(), { id: SID, status: 'created', sandboxId: SID, slot: 0, pid: 0, bundle: join(r.dir, 'bundle') });
  t.same(r.images, [{ rootfs: r.rootfs, image: join(r.root, SID, 'disk-0.img') }], 'the rootfs went into slot 0');
  const created = r.agent.created.get(SID)!;
  t.same(created.storages, [{ driver: 'blk', source: '/dev/vda', mount_point: '/run/kata-ts/storage/sb', fstype: 'ext4', options: ['ro'], driver_options: [] }]);
  t.equal(created.rootfs, '/run/kata-ts/storage/sb');
  t.same(JSON.parse(Buffer.from(created.oci_spec_json).toString('utf8')), (createReq(r, SID) as { spec: unknown }).spec, 'the spec reaches the agent as it is');
  await rejectsWith(t, r.ctl(createReq(r, SID)), 'EXISTS', /exists in sandbox/);
  await rejectsWith(t, r.ctl({ op: 'exec', id: SID, process: { args: ['ls'] } }), 'STATE', /is created: exec needs a running container/);

  // the stdio relay of the init process announces itself: its pid becomes state.pid
  const relay = await open(r.sock, { op: 'relay', id: SID, exec: '', pid: process.pid });
  const relayExit = readLine(relay, 10_000);
  t.match(r.state(), { pid: process.pid, pidStart: processStart(process.pid) });

  t.same(await r.ctl({ op: 'start', id: SID }), {});
  t.match(r.state(), { status: 'running' });
  await rejectsWith(t, r.ctl({ op: 'start', id: SID }), 'STATE', /is running, not created: only a created container can be started/);
  await rejectsWith(t, r.ctl({ op: 'delete', id: SID, force: false }), 'STATE', /is running: stop it first \(kata-ts kill\) or use delete --force/);
  t.match(r.state(), { status: 'running' }, 'a refused delete changes nothing');
  t.match(await r.ctl({ op: 'ps', id: SID }, psResult), [{ pid: 1, cmd: `fake ${SID}/` }], 'ps lists the guest process the agent reports');

  const waited = r.ctl({ op: 'wait', id: SID, exec: '' }, exitResult);
  await until('WaitProcess', () => r.agent.methods().includes('WaitProcess'));
  r.agent.exit(SID, '', 3);
  t.same(await waited, { exitCode: 3 }, 'the exit code reaches the waiter');
  t.same(JSON.parse(await relayExit), { ok: true, result: { exitCode: 3 } }, 'and the stdio relay');
  t.match(r.state(), { status: 'stopped', exitCode: 3 });
  t.same(await r.ctl({ op: 'ps', id: SID }, psResult), [], 'no live process');
  t.ok(r.agent.methods(SID).includes('ListProcesses'), 'ps asks the agent');
  await rejectsWith(t, r.ctl({ op: 'kill', id: SID, signal: 9, all: false }), 'STATE', /is stopped: nothing to signal/);

  t.same(await r.ctl({ op: 'delete', id: SID, force: false }), {});
  t.notOk(existsSync(statePath(r.root, SID)), 'state.json removed');
  await r.sandbox.closed;
  t.same(r.agent.methods(), ['Check', 'CreateContainer', 'StartContainer', 'WaitProcess', 'ListProcesses', 'ListProcesses', 'RemoveContainer', 'DestroySandbox'], 'agent calls, in order');
  t.same(r.hv.exitReason, { kind: 'shutdown' }, 'the guest powered off after DestroySandbox');
  t.notOk(r.hv.calls.includes('stopVm'), 'so the VM did not need stopping');
  t.notOk(existsSync(join(r.root, SID)), 'the sandbox directory (socket, disks, sandbox.json) is gone');
  t.notOk(existsSync(r.settings.tmpDir), 'and its temp dir');
});

t.test('two containers: slots, kill reaching the agent, delete --force, the sandbox lives while one remains', async (t) => {
  const r = rig(t);
  await r.sandbox.start();
  await r.ctl(createReq(r, SID));
  await r.ctl({ op: 'start', id: SID });
  await r.ctl(createReq(r, 'c2'));
  t.match(r.state('c2'), { status: 'created', sandboxId: SID, slot: 1, annotations: { 'io.kubernetes.cri.sandbox-id': SID } });
  t.equal(r.agent.created.get('c2')!.storages![0]!.source, '/dev/vdb', 'the second slot is the second disk');
  await rejectsWith(t, r.ctl(createReq(r, 'c3')), 'STATE', /no free block slot for another container: raise \[runtime\] spare_block_devices/);
  t.equal(r.state('c3'), undefined, 'a refused create writes no state');

  t.same(await r.ctl({ op: 'delete', id: 'c2', force: false }), {}, 'a created container can be deleted');
  t.notOk(existsSync(join(r.root, 'c2')), "its state directory is removed");
  await r.ctl(createReq(r, 'c3'));
  t.equal(r.state('c3')?.slot, 1, 'the freed slot is reused');
  t.equal(r.images.at(-1)!.image, join(r.root, SID, 'disk-1.img'));
  await r.ctl({ op: 'start', id: 'c3' });
  t.same(await r.ctl({ op: 'delete', id: 'c3', force: true }), {}, 'delete --force of a running container');
  t.notOk(existsSync(join(r.root, 'c3')));
  t.same(r.agent.methods('c3'), ['CreateContainer', 'StartContainer', 'WaitProcess', 'RemoveContainer']);
  t.same(r.sandbox.containerIds, [SID], 'the first container remains');
  t.ok(existsSync(r.sock), 'and the sandbox still serves');

  await r.ctl({ op: 'kill', id: SID, signal: 15, all: true });
  t.match(r.agent.calls.at(-1), { method: 'SignalProcess', container_id: SID, exec_id: '', signal: 15 });
  await until('the container stopped', () => r.state()?.status === 'stopped');
  t.equal(r.state()?.exitCode, 143, 'killed by SIGTERM: 128 + 15');
});

t.test('exec and attach: the process reaches the agent, output and input flow, the exec exit code is waited for', async (t) => {
  const r = rig(t);
  await r.sandbox.start();
  await r.ctl(createReq(r, SID));
  await r.ctl({ op: 'start', id: SID });
  const proc = { terminal: false, args: ['sh', '-c', 'echo hi; read x'], env: ['PATH=/bin'], cwd: '/' };
  const { exec } = await r.ctl({ op: 'exec', id: SID, process: proc }, execResult);
  t.match(exec, /^e[0-9a-z]+$/);
  t.same(r.agent.execs.get(exec), proc, 'the process JSON reaches the agent');
  r.agent.output(SID, exec, 'stdout', 'hi\n');
  r.agent.output(SID, exec, 'stderr', 'oops\n');
  const out = readAll(await open(r.sock, { op: 'attach', id: SID, exec, stream: 'stdout' }));
  const err = readAll(await open(r.sock, { op: 'attach', id: SID, exec, stream: 'stderr' }));
  const inp = await open(r.sock, { op: 'attach', id: SID, exec, stream: 'stdin' });
  inp.write('typed\n');
  await until('stdin reached the agent', () => r.agent.stdin(SID, exec) === 'typed\n');
  inp.destroy();
  await rejectsWith(t, open(r.sock, { op: 'attach', id: SID, exec: 'nope', stream: 'stdout' }), 'NOT_FOUND', /no process 'nope' in container 'sb'/);
  const waited = r.ctl({ op: 'wait', id: SID, exec }, exitResult);
  r.agent.exit(SID, exec, 7);
  t.same(await waited, { exitCode: 7 });
  t.equal(await out, 'hi\n', 'stdout, until the process exited');
  t.equal(await err, 'oops\n', 'stderr');
  t.match(r.state(), { status: 'running' }, 'an exec exiting does not stop the container');
  t.same(await r.ctl({ op: 'wait', id: SID, exec }, exitResult), { exitCode: 7 }, 'wait after the exit answers at once');
  await rejectsWith(t, r.ctl({ op: 'wait', id: SID, exec: 'nope' }), 'NOT_FOUND', /no process 'nope'/);
});

t.test('the VM exits on its own: every process ends, containers read stopped, the sandbox cleans up', async (t) => {
  const r = rig(t);
  await r.sandbox.start();
  await r.ctl(createReq(r, SID));
  await r.ctl({ op: 'start', id: SID });
  const relay = await open(r.sock, { op: 'relay', id: SID, exec: '', pid: process.pid });
  const relayExit = readLine(relay, 10_000);
  r.hv.powerOff({ kind: 'error', message: 'guest crashed', vcpu: 0 });
  await r.sandbox.closed;
  t.same(JSON.parse(await relayExit), { ok: true, result: { exitCode: 255 } }, 'the relay learns the process is gone');
  t.match(r.state(), { status: 'stopped', exitCode: 255 }, "the container's record stays, stopped");
  t.same(readdirSync(join(r.root, SID)).filter((f) => f !== 'console.log'), ['state.json'], 'socket, disks and sandbox.json are gone');
  t.notOk(existsSync(r.settings.tmpDir));
  t.match(r.logs.join('\n'), /error the VM exited \{"reason":\{"kind":"error"/);
});

t.test('shutdown stops a VM whose guest does not power off', async (t) => {
  const r = rig(t, { ignoreDestroy: true });
  await r.sandbox.start();
  await r.sandbox.shutdown('asked');
  t.same(r.agent.methods(), ['Check', 'DestroySandbox']);
  t.same(r.hv.calls, ['createVm', 'startVm', 'stopVm'], 'stopVm after the power-off wait');
  t.same(r.hv.exitReason, { kind: 'stopped' });
  t.notOk(existsSync(join(r.root, SID)));
  await r.sandbox.shutdown('again');
  t.equal(r.hv.calls.filter((c) => c === 'stopVm').length, 1, 'shutdown is idempotent');
});

t.test('a start that fails leaves no state behind', async (t) => {
  const cases: [string, RigOptions, RegExp, string[]][] = [
    ['the hypervisor fails to start', { hv: { failStart: new Error('qemu-system-x86_64 exited with status 1') } }, /qemu-system-x86_64 exited with status 1/, ['createVm', 'startVm', 'stopVm']],
    ['software KVM: no guest user space', { hv: { guestUserspace: false } }, /cannot run guest user space on this host \(software KVM\)/, ['stopVm']],
    ['the agent connector fails', { deps: { connectAgent: () => Promise.reject(new Error('agent handshake failed')) } }, /agent handshake failed/, ['createVm', 'startVm', 'stopVm']],
    ['no agent answers', { noAgent: true, settings: { dialTimeoutMs: 300 } }, /the guest agent did not answer within 300 ms .*console: fake kernel: Run \/init/, ['createVm', 'startVm', 'stopVm']],
  ];
  for (const [what, o, msg, calls] of cases) {
    await t.test(what, async (t) => {
      const r = rig(t, o);
      await t.rejects(r.sandbox.start(), msg);
      t.same(r.hv.calls, calls, 'what was started is stopped');
      t.not(r.hv.state, 'running');
      t.notOk(existsSync(join(r.root, SID)), 'no sandbox directory');
      t.notOk(existsSync(r.settings.tmpDir), 'no temp dir');
    });
  }
  await t.test('with the CLI\'s "creating" record there, only that record is left', async (t) => {
    const r = rig(t, { hv: { failStart: new Error('boom') } });
    const rec: ContainerRecord = { ociVersion: '1.0.2', id: SID, status: 'creating', pid: 0, pidStart: 0, bundle: '/b', sandboxId: SID, created: 'now' };
    writeContainer(r.root, rec);
    await t.rejects(r.sandbox.start(), /boom/);
    t.same(r.state(), rec, 'the record is untouched (the CLI removes the directory)');
    t.notOk(existsSync(sandboxPath(r.root, SID)), 'no sandbox.json');
    t.notOk(existsSync(r.sock), 'no control socket');
    t.same(readdirSync(join(r.root, SID)).filter((f) => f.startsWith('disk-')), [], 'no disk images');
  });
});

t.test('malformed control requests are refused with the bad field named; the sandbox keeps serving', async (t) => {
  const r = rig(t);
  await r.sandbox.start();
  const cases: [string, RegExp][] = [
    ['not json\n', /^malformed control request: not valid JSON/],
    ['[1,2]\n', /^malformed control request: the value must be an object \(got an array\)/],
    ['{"op":"explode","id":"sb"}\n', /field op must be one of 'create', 'start'/],
    ['{"op":"kill","id":"sb","signal":"TERM","all":false}\n', /field signal must be an integer in 1\.\.64 \(got "TERM"\)/],
    ['{"op":"kill","id":"sb","signal":99,"all":false}\n', /field signal must be an integer in 1\.\.64 \(got number 99\)/],
    ['{"op":"delete","id":"sb"}\n', /field force is missing/],
    ['{"op":"start","id":"../../etc"}\n', /field id must be a container id/],
    ['{"op":"create","id":"x","bundle":"/b","rootfs":"/r","spec":{},"annotations":{"a":1}}\n', /field annotations\.a must be a string \(got number 1\)/],
  ];
  for (const [line, msg] of cases) {
    const reply = await rawRequest(r.sock, line);
    t.equal(reply.ok, false, line.trim());
    t.equal(reply.code, 'INVALID');
    t.match(reply.message, msg);
  }
  t.same(r.agent.methods(), ['Check'], 'nothing reached the agent');
  await r.ctl(createReq(r, SID));
  t.match(r.state(), { status: 'created' }, 'still serving');
});

t.test('a control socket path already taken fails the start cleanly', async (t) => {
  const r = rig(t);
  mkdirSync(join(r.root, SID), { recursive: true });
  writeFileSync(r.sock, 'not a socket');
  await t.rejects(r.sandbox.start(), /EADDRINUSE/);
  t.same(r.hv.calls, ['createVm', 'startVm', 'stopVm']);
  t.notOk(existsSync(join(r.root, SID)));
});

/** Every entry under `dir` (itself included) with its type and permission bits. */
function modes(dir: string): { path: string; kind: 'dir' | 'file' | 'socket' | 'other'; mode: number }[] {
  const st = lstatSync(dir);
  const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSocket() ? 'socket' : 'other';
  const here = { path: dir, kind, mode: st.mode & 0o777 } as const;
  return st.isDirectory() ? [here, ...readdirSync(dir).flatMap((n) => modes(join(dir, n)))] : [here];
}

t.test('under umask 000 every file is 0600, every directory 0700, the control socket 0600 (issue 14 items 1, 2)', async (t) => {
  const old = process.umask(0);
  t.teardown(() => process.umask(old));
  const r = rig(t);
  await r.sandbox.start();
  await r.ctl(createReq(r, SID));
  const entries = [...modes(r.root), ...modes(r.settings.tmpDir)];
  const names = entries.map((e) => e.path.slice(r.dir.length + 1)).sort();
  for (const want of ['root', 'root/sb', 'root/sb/state.json', 'root/sb/sandbox.json', 'root/sb/control.sock', 'root/sb/disk-0.img', 'root/sb/console.log', 'kata-ts-sb-tmp']) {
    t.ok(names.includes(want), `${want} is there`);
  }
  for (const e of entries) {
    const want = e.kind === 'dir' ? 0o700 : 0o600;
    t.equal(e.mode.toString(8), want.toString(8), `${e.kind} ${e.path.slice(r.dir.length + 1)}`);
  }
});

t.test('the control socket serves only its own uid or root (SO_PEERCRED) (issue 14 item 2)', async (t) => {
  let cred = { pid: process.pid, uid: 4242, gid: 4242 };
  const r = rig(t, { deps: { peerCred: () => cred } });
  await r.sandbox.start();
  await rejectsWith(t, r.ctl(createReq(r, SID)), 'INVALID', /^permission denied: uid 4242 may not use the control socket of sandbox 'sb': run kata-ts as uid \d+ or root$/);
  await rejectsWith(t, open(r.sock, { op: 'relay', id: SID, exec: '', pid: process.pid }), 'INVALID', /permission denied: uid 4242/);
  t.same(r.agent.methods(), ['Check'], 'nothing reached the agent');
  t.equal(r.state(), undefined, 'no record was written');
  t.match(r.logs.join('\n'), /error control connection refused/);
  cred = { pid: process.pid, uid: 0, gid: 0 };
  t.same(await r.ctl(createReq(r, SID)), {}, 'root is served');
  const own = process.getuid?.() ?? 0;
  cred = { pid: process.pid, uid: own, gid: own };
  t.match(await r.ctl({ op: 'ps', id: SID }, psResult), [{ pid: 1 }], 'the sandbox\'s own uid is served');
});

t.test('a relay registers only its own pid: a forged pid is refused and delete could never signal it (issue 14 item 2)', async (t) => {
  const r = rig(t); // the real SO_PEERCRED: the peer of every connection is this test process
  await r.sandbox.start();
  await r.ctl(createReq(r, SID));
  const victim = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.teardown(() => victim.kill('SIGKILL'));
  await rejectsWith(
    t,
    open(r.sock, { op: 'relay', id: SID, exec: '', pid: victim.pid! }),
    'INVALID',
    new RegExp(`^relay registration refused: pid ${victim.pid!} is not the connecting process \\(pid ${process.pid}\\)`),
  );
  t.match(r.state(), { pid: 0, pidStart: 0 }, 'state.pid was not set to the forged pid');
  const relay = await open(r.sock, { op: 'relay', id: SID, exec: '', pid: process.pid });
  t.teardown(() => relay.destroy());
  t.match(r.state(), { pid: process.pid, pidStart: processStart(process.pid) }, 'its own pid is taken, with its start time');
});

t.test('a guest flooding its console: console.log + console.log.1 stay within console_log_max_mib (issue 14 item 6)', async (t) => {
  const r = rig(t, { settings: { consoleLogMaxMiB: 1 } });
  await r.sandbox.start();
  const chunk = `${'f'.repeat(64 * 1024 - 1)}\n`;
  for (let i = 0; i < 80; i++) r.hv.writeConsole(chunk); // 5 MiB
  r.hv.writeConsole('the last line\n');
  const dir = join(r.root, SID);
  const logs = readdirSync(dir).filter((f) => f.startsWith('console.log')).sort();
  t.same(logs, ['console.log', 'console.log.1'], 'two files');
  for (const f of logs) t.ok(statSync(join(dir, f)).size <= 1024 * 1024, `${f}: ${statSync(join(dir, f)).size} bytes <= 1 MiB`);
  t.ok(statSync(join(dir, 'console.log.1')).size > 512 * 1024, 'the older half holds the output before');
  t.ok(readFileSync(join(dir, 'console.log'), 'utf8').endsWith('the last line\n'), 'the newest output is at the end of console.log');
});

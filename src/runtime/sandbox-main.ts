// The sandbox process: `node dist/src/runtime/sandbox-main.js '<SandboxLaunch JSON>'`, spawned detached (its
// own session and process group, so QEMU and its vhost-user backends, which it spawns, are in that group and
// `delete` can kill them all after a crash). It owns the VM (src/hypervisor) and the agent client, serves the
// control socket (control.ts), writes the containers' state.json on every transition, and exits after the
// last container is deleted (DestroySandbox powers the VM off).
// Readiness: it writes "ready\n" (or "error <message>\n") on fd 3, a pipe to the CLI that spawned it.
//
// Container rootfs: the VM gets `slots` virtio-blk disks at boot (no hotplug yet, interface.ts): sparse files of
// spare_block_size MiB. `create` fills a free slot with `mkfs.ext4 -q -F -d <bundle rootfs> <img>` and the
// agent mounts /dev/vd<slot>. The guest has read the disk once (partition scan) but Linux drops a block
// device's page cache on its last close (block/bdev.c blkdev_put_whole → blkdev_flush_mapping), so the
// mount reads the new file system.

import { execFileSync } from 'node:child_process';
import { closeSync, createWriteStream, mkdirSync, openSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { AgentClient, AGENT_STDIO_PORT, AGENT_TTRPC_PORT, StreamKind, bindStdioStream } from '../agent/index.js';
import { chooseHypervisor, createHypervisor, detectHost, type HypervisorChoice } from '../hypervisor/factory.js';
import type { Hypervisor } from '../hypervisor/interface.js';
import { applyQuirks, loadQuirksProfile } from '../host/quirks.js';
import { createLogger } from './log.js';
import { readLine, type ControlReply, type ControlRequest, type StreamName } from './control.js';
import { RuntimeError } from './errors.js';
import {
  controlSocketPath,
  OCI_VERSION,
  processStart,
  readContainer,
  removeDir,
  statePath,
  writeContainer,
  writeSandbox,
  type ContainerRecord,
} from './state.js';

export interface SandboxLaunch {
  root: string;
  sid: string;
  hypervisor: HypervisorChoice;
  qemuPath: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  vcpus: number;
  memoryMiB: number;
  slots: number;
  slotSizeMiB: number;
  dialTimeoutMs: number;
  requestTimeoutMs: number;
  logFormat: 'text' | 'json';
  tmpDir: string;
}

/** Guest mount point of a container's rootfs (the agent mounts the storage there). */
const GUEST_STORAGE = '/run/kata-ts/storage';

interface Proc {
  exit: number | undefined;
  waiters: ((code: number) => void)[];
  shimPid: number;
  tty: boolean;
}

interface Container {
  id: string;
  slot: number;
  procs: Map<string, Proc>;
  rec: ContainerRecord;
}

const launch = JSON.parse(process.argv[2] ?? '{}') as SandboxLaunch;
const { root, sid } = launch;
const dir = join(root, sid);

const logger = createLogger(launch.logFormat, sid);
function log(level: 'info' | 'error', msg: string, extra: Record<string, unknown> = {}): void {
  logger[level](msg, extra);
}

function signalReady(msg: string): void {
  try {
    writeSync(3, `${msg}\n`);
    closeSync(3);
  } catch {
    // the CLI went away; nothing to tell
  }
}

const containers = new Map<string, Container>();
const slotsUsed = new Set<number>();
let hv: Hypervisor;
let agent: AgentClient;
let server: Server | undefined;
let shuttingDown = false;

function disk(slot: number): string {
  return join(dir, `disk-${slot}.img`);
}

/** virtio-blk names in probe order: vda, vdb, ... (drivers/block/virtio_blk.c virtblk_name_format) */
function guestDisk(slot: number): string {
  return `/dev/vd${String.fromCharCode(97 + slot)}`;
}

function agentError(e: unknown, what: string): RuntimeError {
  if (e instanceof RuntimeError) return e;
  const m = (e as Error).message;
  // agent.proto error codes: NOT_FOUND 5, ALREADY_EXISTS 6, FAILED_PRECONDITION 9, INVALID_ARGUMENT 3
  const code = /NOT_FOUND/.test(m) ? 'NOT_FOUND' : /ALREADY_EXISTS/.test(m) ? 'EXISTS' : /FAILED_PRECONDITION/.test(m) ? 'STATE' : /INVALID_ARGUMENT/.test(m) ? 'INVALID' : 'INTERNAL';
  return new RuntimeError(code, `${what}: ${m}`);
}

function save(c: Container): void {
  if (readContainer(root, c.id) === undefined && c.rec.status === 'stopped' && !containers.has(c.id)) return;
  writeContainer(root, c.rec);
}

function finishProc(c: Container, exec: string, code: number): void {
  const p = c.procs.get(exec);
  if (!p || p.exit !== undefined) return;
  p.exit = code;
  for (const w of p.waiters.splice(0)) w(code);
  if (exec === '') {
    c.rec.status = 'stopped';
    c.rec.exitCode = code;
    if (containers.has(c.id)) save(c);
    log('info', 'container exited', { id: c.id, exitCode: code });
  }
}

function watch(c: Container, exec: string): void {
  agent
    .waitProcess({ container_id: c.id, exec_id: exec })
    .then((r) => finishProc(c, exec, r.signal ? 128 + r.signal : r.exit_code))
    .catch((e: Error) => {
      log('error', 'WaitProcess failed', { id: c.id, exec, error: e.message });
      finishProc(c, exec, 255);
    });
}

function get(id: string): Container {
  const c = containers.get(id);
  if (!c) throw new RuntimeError('NOT_FOUND', `container '${id}' is not in sandbox '${sid}'`);
  return c;
}

async function fillSlot(rootfs: string): Promise<number> {
  let slot = -1;
  for (let i = 0; i < launch.slots; i++) if (!slotsUsed.has(i)) { slot = i; break; }
  if (slot < 0) throw new RuntimeError('STATE', `sandbox '${sid}' has no free block slot for another container: raise [runtime] spare_block_devices`);
  slotsUsed.add(slot);
  try {
    // mkfs.ext4(8) -d: populate from a directory; -F: the image file already holds a file system
    execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', '-d', rootfs, disk(slot), `${launch.slotSizeMiB}M`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    slotsUsed.delete(slot);
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim().split('\n').pop() ?? (e as Error).message;
    throw new RuntimeError('INVALID', `cannot build the rootfs image from ${rootfs}: ${err} (a rootfs larger than [runtime] spare_block_size ${launch.slotSizeMiB} MiB does not fit)`);
  }
  return slot;
}

async function handleCall(req: ControlRequest): Promise<unknown> {
  switch (req.op) {
    case 'create': {
      if (containers.has(req.id)) throw new RuntimeError('EXISTS', `container '${req.id}' exists in sandbox '${sid}'`);
      const slot = await fillSlot(req.rootfs);
      const spec = req.spec;
      const terminal = (spec['process'] as { terminal?: boolean } | undefined)?.terminal === true;
      const readonly = (spec['root'] as { readonly?: boolean } | undefined)?.readonly === true;
      const mount = `${GUEST_STORAGE}/${req.id}`;
      try {
        await agent.createContainer({
          container_id: req.id,
          oci_spec_json: Buffer.from(JSON.stringify(spec)),
          storages: [{ driver: 'blk', source: guestDisk(slot), mount_point: mount, fstype: 'ext4', options: readonly ? ['ro'] : [] }],
          rootfs: mount,
        });
      } catch (e) {
        slotsUsed.delete(slot);
        throw agentError(e, `the guest agent could not create container '${req.id}'`);
      }
      const rec: ContainerRecord = {
        ociVersion: OCI_VERSION,
        id: req.id,
        status: 'created',
        pid: 0,
        pidStart: 0,
        bundle: req.bundle,
        annotations: req.annotations,
        sandboxId: sid,
        created: new Date().toISOString(),
        slot,
      };
      const c: Container = { id: req.id, slot, procs: new Map([['', { exit: undefined, waiters: [], shimPid: 0, tty: terminal }]]), rec };
      containers.set(req.id, c);
      save(c);
      log('info', 'container created', { id: req.id, slot });
      return {};
    }
    case 'start': {
      const c = get(req.id);
      if (c.rec.status !== 'created') throw new RuntimeError('STATE', `container '${req.id}' is ${c.rec.status}, not created: only a created container can be started`);
      try {
        await agent.startContainer({ container_id: req.id });
      } catch (e) {
        throw agentError(e, `the guest agent could not start container '${req.id}'`);
      }
      c.rec.status = 'running';
      save(c);
      log('info', 'container started', { id: req.id });
      watch(c, '');
      return {};
    }
    case 'kill': {
      const c = get(req.id);
      if (c.rec.status === 'stopped') throw new RuntimeError('STATE', `container '${req.id}' is stopped: nothing to signal`);
      try {
        await agent.signalProcess({ container_id: req.id, exec_id: '', signal: req.signal, all: req.all });
      } catch (e) {
        throw agentError(e, `signal ${req.signal} to container '${req.id}' failed`);
      }
      return {};
    }
    case 'delete': {
      const c = get(req.id);
      if (c.rec.status !== 'stopped' && c.rec.status !== 'created' && !req.force) {
        throw new RuntimeError('STATE', `container '${req.id}' is ${c.rec.status}: stop it first (kata-ts kill) or use delete --force`);
      }
      containers.delete(req.id);
      try {
        await agent.removeContainer({ container_id: req.id, timeout_seconds: 1 });
      } catch (e) {
        log('error', 'RemoveContainer failed', { id: req.id, error: (e as Error).message });
      }
      for (const [exec] of c.procs) finishProc(c, exec, 137);
      slotsUsed.delete(c.slot);
      // the sandbox's own directory also holds sandbox.json, the control socket and the disks: keep it while
      // the sandbox runs (shutdown removes it)
      if (req.id === sid) rmSync(statePath(root, sid), { force: true });
      else removeDir(root, req.id);
      if (containers.size === 0) setImmediate(() => void shutdown('the last container was deleted'));
      return {};
    }
    case 'exec': {
      const c = get(req.id);
      if (c.rec.status !== 'running') throw new RuntimeError('STATE', `container '${req.id}' is ${c.rec.status}: exec needs a running container`);
      const exec = `e${process.hrtime.bigint().toString(36)}`;
      try {
        await agent.execProcess({ container_id: req.id, exec_id: exec, process_json: Buffer.from(JSON.stringify(req.process)) });
      } catch (e) {
        throw agentError(e, `exec in container '${req.id}' failed`);
      }
      c.procs.set(exec, { exit: undefined, waiters: [], shimPid: 0, tty: req.process['terminal'] === true });
      watch(c, exec);
      return { exec };
    }
    case 'ps': {
      const c = get(req.id);
      return [...c.procs.values()].filter((p) => p.exit === undefined && p.shimPid > 0).map((p) => p.shimPid);
    }
    case 'wait': {
      const p = get(req.id).procs.get(req.exec);
      if (!p) throw new RuntimeError('NOT_FOUND', `no process '${req.exec}' in container '${req.id}'`);
      return { exitCode: p.exit ?? (await new Promise<number>((r) => p.waiters.push(r))) };
    }
    default:
      throw new RuntimeError('INVALID', `unknown control request '${(req as { op: string }).op}'`);
  }
}

const STREAM_KIND: Record<StreamName, (typeof StreamKind)['STDIN' | 'STDOUT' | 'STDERR']> = {
  stdin: StreamKind.STDIN,
  stdout: StreamKind.STDOUT,
  stderr: StreamKind.STDERR,
};

function reply(s: Socket, r: ControlReply): void {
  s.write(`${JSON.stringify(r)}\n`);
}

async function onConnection(s: Socket): Promise<void> {
  s.on('error', () => undefined);
  let req: ControlRequest;
  try {
    req = JSON.parse(await readLine(s, 30_000)) as ControlRequest;
  } catch {
    s.destroy();
    return;
  }
  try {
    if (req.op === 'attach') {
      const c = get(req.id);
      if (!c.procs.has(req.exec)) throw new RuntimeError('NOT_FOUND', `no process '${req.exec}' in container '${req.id}'`);
      const vsock = hv.vsock!;
      let g: Duplex;
      try {
        g = await bindStdioStream(await vsock.connect(AGENT_STDIO_PORT), { container_id: req.id, exec_id: req.exec, kind: STREAM_KIND[req.stream] }, { timeoutMs: launch.requestTimeoutMs });
      } catch (e) {
        throw agentError(e, `cannot attach ${req.stream} of ${req.id}/${req.exec}`);
      }
      reply(s, { ok: true });
      g.on('error', () => s.destroy());
      if (req.stream === 'stdin') {
        s.pipe(g);
        g.resume();
      } else {
        g.pipe(s);
        s.resume();
      }
      return;
    }
    if (req.op === 'shim') {
      const c = get(req.id);
      const p = c.procs.get(req.exec);
      if (!p) throw new RuntimeError('NOT_FOUND', `no process '${req.exec}' in container '${req.id}'`);
      p.shimPid = req.pid;
      if (req.exec === '') {
        c.rec.pid = req.pid;
        c.rec.pidStart = processStart(req.pid) ?? 0;
        save(c);
      }
      reply(s, { ok: true });
      const send = (code: number): void => {
        reply(s, { ok: true, result: { exitCode: code } });
        s.end();
      };
      if (p.exit !== undefined) send(p.exit);
      else p.waiters.push(send);
      s.resume();
      return;
    }
    const result = await handleCall(req);
    reply(s, { ok: true, result });
    s.end();
  } catch (e) {
    const err = e instanceof RuntimeError ? e : new RuntimeError('INTERNAL', (e as Error).message);
    reply(s, { ok: false, code: err.code, message: err.message });
    s.end();
  }
}

async function shutdown(why: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  log('info', 'sandbox shutting down', { why });
  server?.close();
  for (const c of containers.values()) for (const [exec] of c.procs) finishProc(c, exec, 255);
  try {
    await agent.destroySandbox({ timeoutMs: 10_000 });
  } catch {
    // the VM may be gone already
  }
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([hv.wait().then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 15_000)))]);
  clearTimeout(timer);
  if (!stopped) await hv.stopVm().catch(() => undefined);
  agent.close();
  // containers still recorded in this directory keep theirs (they read as stopped); others are removed by delete
  rmSync(controlSocketPath(root, sid), { force: true });
  for (let i = 0; i < launch.slots; i++) rmSync(disk(i), { force: true });
  rmSync(join(dir, 'sandbox.json'), { force: true });
  if (readContainer(root, sid) === undefined) rmSync(dir, { recursive: true, force: true });
  rmSync(launch.tmpDir, { recursive: true, force: true });
  process.exit(0);
}

async function dialAgent(): Promise<AgentClient> {
  const vsock = hv.vsock;
  if (!vsock) throw new Error(`the ${hv.kind} hypervisor offers no host vsock API: the agent cannot be reached`);
  const deadline = Date.now() + launch.dialTimeoutMs;
  let last = '';
  let exited = false;
  void hv.wait().then(() => (exited = true));
  while (Date.now() < deadline && !exited) {
    try {
      const c = new AgentClient(await vsock.connect(AGENT_TTRPC_PORT, { timeoutMs: 2000 }), { timeoutMs: launch.requestTimeoutMs });
      const h = await c.check({}, { timeoutMs: 5000 });
      if (h.status === 1) return c;
      c.close();
      last = `health status ${h.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const tail = hv.consoleText.trim().split('\n').slice(-3).join(' | ');
  throw new Error(`the guest agent did not answer within ${launch.dialTimeoutMs} ms (${exited ? 'the VM exited' : last}); console: ${tail}`);
}

async function main(): Promise<void> {
  process.env['TMPDIR'] = launch.tmpDir;
  mkdirSync(launch.tmpDir, { recursive: true });
  writeSandbox(root, { id: sid, pid: process.pid, pidStart: processStart(process.pid) ?? 0, hypervisor: launch.hypervisor, tmpDir: launch.tmpDir, created: new Date().toISOString() });
  for (let i = 0; i < launch.slots; i++) {
    closeSync(openSync(disk(i), 'a')); // sparse image; size set below
    truncateSync(disk(i), launch.slotSizeMiB * 1024 * 1024);
  }
  const plan = chooseHypervisor(launch.hypervisor, detectHost());
  if (plan.kind === 'qemu' && launch.qemuPath && launch.qemuPath !== 'qemu-system-x86_64') plan.qemuPath = launch.qemuPath;
  let cmdline = launch.cmdline;
  if (plan.softwareKvm) cmdline = applyQuirks(cmdline, loadQuirksProfile('pvm'));
  if (plan.notice) log('info', plan.notice);
  hv = createHypervisor(plan);
  if (!hv.capabilities().guestUserspace) {
    // DESIGN.md: the software KVM (kvm_pvm) boots the kernel but cannot run the agent (guest user space)
    throw new Error(`the ${plan.kind} hypervisor cannot run guest user space on this host (software KVM), so the agent cannot start: use --hypervisor=auto or qemu`);
  }
  const consoleLog = createWriteStream(join(dir, 'console.log'));
  let kernelStarted = false;
  hv.on('log', (l: string) => log('info', l));
  await hv.createVm({
    kernelPath: launch.kernel,
    initrdPath: launch.initrd,
    cmdline,
    vcpus: launch.vcpus,
    memoryMiB: launch.memoryMiB,
    devices: [{ kind: 'vsock', cid: 3 }, ...Array.from({ length: launch.slots }, (_, i) => ({ kind: 'blk' as const, path: disk(i), readOnly: false }))],
    console: (b) => {
      if (!kernelStarted) {
        kernelStarted = true;
        log('info', 'kernel started'); // the first console byte (bench:run reads this phase)
      }
      consoleLog.write(b);
    },
  });
  await hv.startVm();
  log('info', 'VM started', { hypervisor: plan.kind, accel: plan.accel });
  agent = await dialAgent();
  log('info', 'agent ready');
  void hv.wait().then((r) => {
    if (!shuttingDown) {
      log('error', 'the VM exited', { reason: r });
      void shutdown('the VM exited');
    }
  });
  server = createServer((s) => void onConnection(s));
  await new Promise<void>((res, rej) => {
    server!.once('error', rej);
    server!.listen(controlSocketPath(root, sid), () => res());
  });
  signalReady('ready');
}

process.on('SIGTERM', () => void shutdown('SIGTERM'));
// a long-lived daemon: a stray socket error must not take every container of the sandbox down with it
process.on('uncaughtException', (e: Error) => log('error', 'uncaught exception', { error: e.stack ?? e.message }));
main().catch((e: Error) => {
  log('error', 'sandbox start failed', { error: e.message });
  signalReady(`error ${e.message.replace(/\n/g, ' ')}`);
  void (async () => {
    try {
      if (hv) await hv.stopVm();
    } catch {
      // not started
    }
    process.exit(1);
  })();
});

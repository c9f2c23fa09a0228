// containerd's task service (containerd.task.v2.Task, runtime/v2/task/shim.proto) for one shim process, which
// is one sandbox: the first Create boots the VM (a Sandbox from src/runtime, on the hypervisor configuration.toml
// names) and later Creates of the same pod join it. Each call maps onto the Sandbox's operations (create, start,
// kill, delete, exec, wait) or, for what those lack (pause, resume, stats, resize, stdin close, signals to exec
// processes, resource updates, OOM events), onto the guest agent directly.
//
// Processes: the init process (exec id "") and each exec, with containerd's states created → running → stopped.
// An exec is only recorded by Exec and started in the guest by Start (the agent's ExecProcess runs it at once).
// Pids: the processes of the container's cgroup in the guest, as the agent's ListProcesses lists them (what runc ps
// lists for runc's shim); they are guest pids, not host pids. State and TaskCreate/TaskStart events report the
// shim's own pid (the VMM runs in or under it), as Kata does.
// Exit: a process's exit is recorded once the agent reports it and its stdout/stderr reached their FIFOs, then
// TaskExit is published and Wait answers.
// OOM: while the VM lives the shim long-polls the agent's GetOOMEvent (as Kata's shim does) and publishes TaskOOM
// for each container of this shim the guest reports; the agent answers it before the WaitProcess of the killed
// process, and TaskExit waits for the output as well, so TaskOOM comes first.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { AGENT_STDIO_PORT, bindStdioStream, Code, StreamKind, TtrpcStatusError, type AgentClient } from '../agent/index.js';
import { chooseHypervisor, createHypervisor, detectHost } from '../hypervisor/factory.js';
import type { Hypervisor } from '../hypervisor/interface.js';
import { vsockAgentConnector } from '../runtime/agent-dial.js';
import { isValidId } from '../runtime/container-id.js';
import type { RuntimeLogger } from '../runtime/log.js';
import { Sandbox } from '../runtime/sandbox.js';
import { ShimError } from './errors.js';
import { ProcessIo, type StdioPaths, type StreamKindName } from './process-io.js';
import { codec, TaskStatus, timestamp, type Any, type Timestamp } from './proto.js';
import type { EventName } from './publisher.js';
import { linuxResourcesJson } from './resources.js';
import { mountRootfs, unmountRootfs, type MountSpec } from './rootfs.js';
import { sandboxLaunch, shimConfig } from './settings.js';
import { bundleAnnotations, groupOf } from './address.js';

/** OCI runtime-spec Process JSON in an Any (containerd's typeurl name for specs.Process) */
const PROCESS_SPEC_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
const RUNTIME_OPTIONS_URL = 'runtimeoptions.v1.Options';
/** how long an exit waits for the process's output to reach its FIFOs */
const IO_DRAIN_MS = 5000;
/** pause before asking the agent for OOM events again after a failed GetOOMEvent */
const OOM_RETRY_MS = 1000;

type ProcStatus = 'created' | 'running' | 'stopped';

interface Proc {
  execId: string;
  /** the Sandbox's id of the process ('' = init; set when an exec starts) */
  sbExec: string | undefined;
  stdio: StdioPaths;
  /** exec processes: the OCI Process JSON */
  spec?: Record<string, unknown>;
  status: ProcStatus;
  exitStatus: number;
  exitedAt: Date | undefined;
  exited: Promise<void>;
  markExited: () => void;
  io?: ProcessIo;
}

interface Task {
  id: string;
  bundle: string;
  init: Proc;
  execs: Map<string, Proc>;
  paused: boolean;
  rootfsMounted: boolean;
}

export interface ServiceOptions {
  namespace: string;
  /** the sandboxes' state root (address.ts shimRoot) */
  root: string;
  log: RuntimeLogger;
  publish: (name: EventName, event: object) => void;
  /** called once Shutdown decided to exit (after the reply) */
  onShutdown: () => void;
  /** the hypervisor for a sandbox's VM; default from configuration.toml's choice (tests may inject) */
  makeHypervisor?: (choice: 'inproc' | 'qemu' | 'auto', qemuPath: string) => Hypervisor;
}

function newProc(execId: string, stdio: StdioPaths, spec?: Record<string, unknown>): Proc {
  let markExited!: () => void;
  const exited = new Promise<void>((r) => (markExited = r));
  return { execId, sbExec: execId === '' ? '' : undefined, stdio, ...(spec ? { spec } : {}), status: 'created', exitStatus: 0, exitedAt: undefined, exited, markExited };
}

const ZERO_TIME: Timestamp = { seconds: -62135596800, nanos: 0 }; // Go's time.Time{} (0001-01-01), as containerd sends an unset exited_at

function ts(d: Date | undefined): Timestamp {
  return d ? timestamp(d) : ZERO_TIME;
}

function check(id: string, what = 'id'): string {
  if (!isValidId(id)) throw new ShimError('INVALID_ARGUMENT', `${what} ${JSON.stringify(id.slice(0, 80))} is not a valid container id ([A-Za-z0-9_.-], 1..64 characters)`);
  return id;
}

export class TaskService {
  private readonly tasks = new Map<string, Task>();
  private sandbox: Sandbox | undefined;
  private booting: Promise<Sandbox> | undefined;
  private hv: Hypervisor | undefined;
  private agent: AgentClient | undefined;
  private requestTimeoutMs = 60_000;
  private shuttingDown = false;

  constructor(private readonly o: ServiceOptions) {}

  /** The pid containerd sees for every process (see the header). */
  private get pid(): number {
    return process.pid;
  }

  private task(id: string): Task {
    const t = this.tasks.get(id);
    if (!t) throw new ShimError('NOT_FOUND', `task ${id} not found in this kata-ts shim`);
    return t;
  }

  private proc(id: string, execId: string): Proc {
    const t = this.task(id);
    if (!execId) return t.init;
    const p = t.execs.get(execId);
    if (!p) throw new ShimError('NOT_FOUND', `process ${execId} of task ${id} not found`);
    return p;
  }

  private get agentClient(): AgentClient {
    if (!this.agent) throw new ShimError('FAILED_PRECONDITION', 'the sandbox VM is not running');
    return this.agent;
  }

  /** The sandbox: boots it on the first Create (`sid` its id), joins it later. */
  private async ensureSandbox(sid: string, configPath: string | undefined, annotations: Record<string, string>): Promise<Sandbox> {
    if (this.sandbox) return this.sandbox;
    if (this.booting) return this.booting;
    const boot = async (): Promise<Sandbox> => {
      const cfg = shimConfig(configPath);
      const launch = await sandboxLaunch(cfg, this.o.root, sid, annotations);
      this.requestTimeoutMs = launch.requestTimeoutMs;
      process.env['TMPDIR'] = launch.tmpDir; // QEMU's work directory (sandbox-main.ts does the same)
      let hv: Hypervisor;
      if (this.o.makeHypervisor) hv = this.o.makeHypervisor(launch.hypervisor, launch.qemuPath);
      else {
        const plan = chooseHypervisor(launch.hypervisor, detectHost());
        if (plan.kind === 'qemu' && launch.qemuPath && launch.qemuPath !== 'qemu-system-x86_64') plan.qemuPath = launch.qemuPath;
        if (plan.notice) this.o.log.info(plan.notice);
        hv = createHypervisor(plan);
      }
      const dial = vsockAgentConnector(launch);
      const sb = new Sandbox(launch, {
        hypervisor: hv,
        logger: this.o.log,
        connectAgent: async (h) => (this.agent = await dial(h)),
      });
      this.hv = hv;
      await sb.start();
      void sb.closed.then(() => this.sandboxGone());
      if (this.agent) void this.watchOom(this.agent);
      this.sandbox = sb;
      return sb;
    };
    this.booting = boot();
    try {
      return await this.booting;
    } finally {
      this.booting = undefined;
    }
  }

  /** The VM went away (all containers deleted, or it exited): every process still running has exited. */
  private sandboxGone(): void {
    this.agent = undefined;
    for (const t of this.tasks.values()) for (const p of [t.init, ...t.execs.values()]) if (p.status === 'running') this.setExited(t, p, 255);
  }

  /** Long-polls GetOOMEvent on `agent` until the sandbox is gone; each event of one of this shim's tasks is a TaskOOM. */
  private async watchOom(agent: AgentClient): Promise<void> {
    while (this.agent === agent && !agent.closed) {
      let id: string;
      try {
        id = (await agent.getOomEvent()).container_id; // the client checked the id's form (it comes from the guest)
      } catch (e) {
        if (this.agent !== agent || agent.closed) return;
        if (e instanceof TtrpcStatusError && e.code === Code.UNIMPLEMENTED) {
          this.o.log.error('the guest agent has no GetOOMEvent: OOM kills are not reported', { error: e.message });
          return;
        }
        this.o.log.error('GetOOMEvent failed; asking again', { error: (e as Error).message });
        await new Promise((r) => setTimeout(r, OOM_RETRY_MS).unref());
        continue;
      }
      if (!this.tasks.has(id)) {
        this.o.log.info('OOM event for a container this shim does not hold; ignored', { id });
        continue;
      }
      this.o.log.info('OOM kill in the guest', { id });
      this.o.publish('TaskOOM', { container_id: id });
    }
  }

  private bind(id: string, sbExec: string): (kind: StreamKindName) => Promise<Duplex> {
    return async (kind) => {
      const vsock = this.hv?.vsock;
      if (!vsock) throw new ShimError('INTERNAL', 'the hypervisor offers no host vsock: cannot connect stdio');
      const k = kind === 'stdin' ? StreamKind.STDIN : kind === 'stdout' ? StreamKind.STDOUT : StreamKind.STDERR;
      return bindStdioStream(await vsock.connect(AGENT_STDIO_PORT), { container_id: id, exec_id: sbExec, kind: k }, { timeoutMs: this.requestTimeoutMs });
    };
  }

  private setExited(t: Task, p: Proc, code: number): void {
    if (p.status === 'stopped' && p.exitedAt) return;
    p.status = 'stopped';
    p.exitStatus = code;
    p.exitedAt = new Date();
    this.o.publish('TaskExit', { container_id: t.id, id: p.execId || t.id, pid: this.pid, exit_status: code, exited_at: timestamp(p.exitedAt) });
    p.markExited();
  }

  /** Follows a started process to its exit (agent WaitProcess through the Sandbox), then its output to EOF. */
  private follow(t: Task, p: Proc): void {
    const sb = this.sandbox;
    if (!sb || p.sbExec === undefined) return;
    void sb
      .handle({ op: 'wait', id: t.id, exec: p.sbExec })
      .then((r) => (r as { exitCode: number }).exitCode)
      .catch(() => 255)
      .then(async (code) => {
        if (p.io) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([p.io.done, new Promise((r) => (timer = setTimeout(r, IO_DRAIN_MS)))]);
          clearTimeout(timer);
        }
        this.setExited(t, p, code);
      });
  }

  // ── the Task service ───────────────────────────────────────────────────────────────────────────────────

  async create(req: {
    id: string;
    bundle: string;
    rootfs: MountSpec[];
    terminal: boolean;
    stdin: string;
    stdout: string;
    stderr: string;
    checkpoint: string;
    options: Any | null;
  }): Promise<{ pid: number }> {
    check(req.id);
    if (this.shuttingDown) throw new ShimError('FAILED_PRECONDITION', 'this kata-ts shim is shutting down');
    if (this.tasks.has(req.id)) throw new ShimError('ALREADY_EXISTS', `task ${req.id} already exists`);
    if (!req.bundle.startsWith('/')) throw new ShimError('INVALID_ARGUMENT', `bundle ${JSON.stringify(req.bundle)} is not an absolute path`);
    if (req.checkpoint) throw new ShimError('UNIMPLEMENTED', 'restoring from a checkpoint is not supported by kata-ts (VM sandboxes have no CRIU checkpoints)');
    let configPath: string | undefined;
    if (req.options && req.options.value.length > 0) {
      if (!req.options.type_url.endsWith(RUNTIME_OPTIONS_URL)) throw new ShimError('INVALID_ARGUMENT', `runtime options of type ${req.options.type_url} are not supported by kata-ts: use ${RUNTIME_OPTIONS_URL} (ConfigPath)`);
      configPath = codec<{ config_path: string }>(RUNTIME_OPTIONS_URL).decode(req.options.value).config_path || undefined;
    }
    let spec: Record<string, unknown>;
    try {
      spec = JSON.parse(readFileSync(join(req.bundle, 'config.json'), 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new ShimError('INVALID_ARGUMENT', `cannot read ${req.bundle}/config.json: ${(e as Error).message}`);
    }
    const annotations = bundleAnnotations(req.bundle);
    const stdio: StdioPaths = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal };
    const t: Task = { id: req.id, bundle: req.bundle, init: newProc('', stdio), execs: new Map(), paused: false, rootfsMounted: false };
    this.tasks.set(req.id, t);
    let created = false;
    try {
      const rootfs = req.rootfs.length > 0 ? mountRootfs(req.bundle, req.rootfs) : join(req.bundle, (spec['root'] as { path?: string } | undefined)?.path ?? 'rootfs');
      t.rootfsMounted = req.rootfs.length > 0;
      const sb = await this.ensureSandbox(groupOf(req.id, annotations), configPath, annotations);
      if (req.terminal) spec['process'] = { ...(spec['process'] as object), terminal: true };
      await sb.handle({ op: 'create', id: req.id, bundle: req.bundle, rootfs, spec, annotations });
      created = true;
      t.init.io = await ProcessIo.open(stdio, this.bind(req.id, ''));
      writeFileSync(join(req.bundle, 'shim.pid'), String(process.pid));
    } catch (e) {
      this.tasks.delete(req.id);
      if (created) await this.sandbox?.handle({ op: 'delete', id: req.id, force: true }).catch(() => undefined);
      if (t.rootfsMounted) unmountRootfs(req.bundle);
      throw e;
    }
    this.o.publish('TaskCreate', {
      container_id: req.id,
      bundle: req.bundle,
      rootfs: req.rootfs,
      io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
      checkpoint: '',
      pid: this.pid,
    });
    return { pid: this.pid };
  }

  async start(id: string, execId: string): Promise<{ pid: number }> {
    const t = this.task(id);
    const p = this.proc(id, execId);
    if (p.status !== 'created') throw new ShimError('FAILED_PRECONDITION', `${execId ? `process ${execId}` : `task ${id}`} is ${p.status}, not created`);
    const sb = this.sandbox;
    if (!sb) throw new ShimError('FAILED_PRECONDITION', 'the sandbox VM is not running');
    if (!execId) {
      await sb.handle({ op: 'start', id });
      p.status = 'running';
      this.follow(t, p);
      this.o.publish('TaskStart', { container_id: id, pid: this.pid });
      return { pid: this.pid };
    }
    const r = (await sb.handle({ op: 'exec', id, process: p.spec ?? {} })) as { exec: string };
    p.sbExec = r.exec;
    p.status = 'running';
    try {
      p.io = await ProcessIo.open(p.stdio, this.bind(id, r.exec));
    } catch (e) {
      await this.agent?.signalProcess({ container_id: id, exec_id: r.exec, signal: 9 }).catch(() => undefined);
      this.follow(t, p);
      throw e;
    }
    this.follow(t, p);
    this.o.publish('TaskExecStarted', { container_id: id, exec_id: execId, pid: this.pid });
    return { pid: this.pid };
  }

  exec(req: { id: string; exec_id: string; terminal: boolean; stdin: string; stdout: string; stderr: string; spec: Any | null }): void {
    const t = this.task(req.id);
    check(req.exec_id, 'exec id');
    if (t.execs.has(req.exec_id)) throw new ShimError('ALREADY_EXISTS', `process ${req.exec_id} already exists in task ${req.id}`);
    if (t.init.status !== 'running') throw new ShimError('FAILED_PRECONDITION', `task ${req.id} is ${t.init.status}: exec needs a running task`);
    if (t.paused) throw new ShimError('FAILED_PRECONDITION', `task ${req.id} is paused: resume it first`);
    if (!req.spec || !req.spec.type_url.endsWith('runtime-spec/1/Process')) throw new ShimError('INVALID_ARGUMENT', `exec needs an OCI process spec (${PROCESS_SPEC_URL})`);
    let spec: Record<string, unknown>;
    try {
      spec = JSON.parse(Buffer.from(req.spec.value).toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new ShimError('INVALID_ARGUMENT', `exec process spec is not JSON: ${(e as Error).message}`);
    }
    spec['terminal'] = req.terminal;
    t.execs.set(req.exec_id, newProc(req.exec_id, { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal }, spec));
    this.o.publish('TaskExecAdded', { container_id: req.id, exec_id: req.exec_id });
  }

  async kill(id: string, execId: string, signal: number, all: boolean): Promise<void> {
    const p = this.proc(id, execId);
    if (signal < 1 || signal > 64) throw new ShimError('INVALID_ARGUMENT', `invalid signal ${signal}: 1..64`);
    if (p.status === 'stopped') throw new ShimError('NOT_FOUND', 'process already finished');
    if (!execId) {
      await this.sandbox?.handle({ op: 'kill', id, signal, all });
      return;
    }
    if (p.status === 'created') throw new ShimError('FAILED_PRECONDITION', `process ${execId} is not started`);
    await this.agentClient.signalProcess({ container_id: id, exec_id: p.sbExec ?? '', signal });
  }

  async delete(id: string, execId: string): Promise<{ pid: number; exit_status: number; exited_at: Timestamp }> {
    const t = this.task(id);
    const p = this.proc(id, execId);
    if (execId) {
      if (p.status === 'running') throw new ShimError('FAILED_PRECONDITION', `process ${execId} is running: kill it first`);
      t.execs.delete(execId);
      p.io?.close();
      return { pid: this.pid, exit_status: p.exitStatus, exited_at: ts(p.exitedAt) };
    }
    if (p.status === 'running') throw new ShimError('FAILED_PRECONDITION', `task ${id} is running: kill it first`);
    for (const e of t.execs.values()) if (e.status === 'running') throw new ShimError('FAILED_PRECONDITION', `process ${e.execId} of task ${id} is running: kill it first`);
    if (this.sandbox) await this.sandbox.handle({ op: 'delete', id, force: true }).catch((e: Error) => this.o.log.error('sandbox delete failed', { id, error: e.message }));
    for (const q of [t.init, ...t.execs.values()]) q.io?.close();
    if (t.rootfsMounted) {
      const left = unmountRootfs(t.bundle);
      if (left.length) this.o.log.error('rootfs still mounted', { id, left });
    }
    this.tasks.delete(id);
    if (p.status === 'created') {
      // never started: it "exits" now, as runc's shim reports a deleted created task
      p.status = 'stopped';
      p.exitStatus = 0;
      p.exitedAt = new Date();
      p.markExited();
    }
    this.o.publish('TaskDelete', { container_id: id, pid: this.pid, exit_status: p.exitStatus, exited_at: ts(p.exitedAt), id: '' });
    return { pid: this.pid, exit_status: p.exitStatus, exited_at: ts(p.exitedAt) };
  }

  state(id: string, execId: string): object {
    const t = this.task(id);
    const p = this.proc(id, execId);
    const status = p.status === 'created' ? TaskStatus.CREATED : p.status === 'stopped' ? TaskStatus.STOPPED : t.paused ? TaskStatus.PAUSED : TaskStatus.RUNNING;
    return {
      id,
      bundle: t.bundle,
      pid: this.pid,
      status,
      stdin: p.stdio.stdin,
      stdout: p.stdio.stdout,
      stderr: p.stdio.stderr,
      terminal: p.stdio.terminal,
      exit_status: p.exitStatus,
      exited_at: ts(p.exitedAt),
      exec_id: execId,
    };
  }

  async wait(id: string, execId: string): Promise<{ exit_status: number; exited_at: Timestamp }> {
    const p = this.proc(id, execId);
    await p.exited;
    return { exit_status: p.exitStatus, exited_at: ts(p.exitedAt) };
  }

  async pids(id: string): Promise<{ processes: { pid: number }[] }> {
    const t = this.task(id);
    if (t.init.status !== 'running') return { processes: [] };
    const procs = await this.agentClient.listProcesses({ container_id: id });
    return { processes: procs.map((p) => ({ pid: p.pid })) };
  }

  async pause(id: string): Promise<void> {
    const t = this.task(id);
    if (t.init.status !== 'running') throw new ShimError('FAILED_PRECONDITION', `task ${id} is ${t.init.status}: only a running task can be paused`);
    if (t.paused) throw new ShimError('FAILED_PRECONDITION', `task ${id} is already paused`);
    await this.agentClient.pauseContainer({ container_id: id });
    t.paused = true;
    this.o.publish('TaskPaused', { container_id: id });
  }

  async resume(id: string): Promise<void> {
    const t = this.task(id);
    if (!t.paused) throw new ShimError('FAILED_PRECONDITION', `task ${id} is not paused`);
    await this.agentClient.resumeContainer({ container_id: id });
    t.paused = false;
    this.o.publish('TaskResumed', { container_id: id });
  }

  async stats(id: string): Promise<{ stats: Any }> {
    const t = this.task(id);
    if (t.init.status === 'stopped') throw new ShimError('FAILED_PRECONDITION', `task ${id} is stopped: no metrics`);
    const r = await this.agentClient.statsContainer({ container_id: id });
    const c = r.cgroup;
    const metrics = {
      pids: { current: c?.pids_current ?? 0, limit: c?.pids_max ?? 0 },
      cpu: { usage_usec: c?.cpu_usage_usec ?? 0, user_usec: c?.cpu_user_usec ?? 0, system_usec: c?.cpu_system_usec ?? 0 },
      memory: { usage: c?.memory_current ?? 0, usage_limit: c?.memory_max ?? 0 },
    };
    return { stats: codec('io.containerd.cgroups.v2.Metrics').any(metrics) };
  }

  async resizePty(id: string, execId: string, width: number, height: number): Promise<void> {
    const p = this.proc(id, execId);
    if (!p.stdio.terminal) throw new ShimError('FAILED_PRECONDITION', `${execId ? `process ${execId}` : `task ${id}`} has no terminal`);
    if (p.status !== 'running' || p.sbExec === undefined) return; // ctr resizes before start: the agent sizes at start
    await this.agentClient.ttyWinResize({ container_id: id, exec_id: p.sbExec, rows: height, columns: width });
  }

  closeIo(id: string, execId: string, stdin: boolean): void {
    const p = this.proc(id, execId);
    if (stdin) p.io?.closeStdin();
  }

  /**
   * Update: new cgroup limits (OCI LinuxResources) for the container, applied in the guest by `runc update`. Unlike
   * Kata, the VM itself is not resized (no CPU/memory hotplug): a limit above the VM's size cannot be reached.
   */
  async update(req: { id: string; resources: Any | null; annotations?: Record<string, string> }): Promise<void> {
    const t = this.task(req.id);
    const resources = linuxResourcesJson(req.resources);
    if (t.init.status === 'stopped') throw new ShimError('FAILED_PRECONDITION', `task ${req.id} is stopped: no resources to update`);
    await this.agentClient.updateContainer({ container_id: req.id, resources_json: resources });
  }

  connect(id: string): { shim_pid: number; task_pid: number; version: string } {
    const t = this.tasks.get(id);
    return { shim_pid: process.pid, task_pid: t ? this.pid : 0, version: '2' };
  }

  /** Shutdown: exits once no task is left (after the VM is gone); a no-op while tasks remain. */
  async shutdown(): Promise<void> {
    if (this.tasks.size > 0) return;
    this.shuttingDown = true;
    await this.booting?.catch(() => undefined);
    if (this.sandbox) await this.sandbox.shutdown('containerd shut the shim down');
    this.o.onShutdown();
  }

  /** The task ids (tests, logs). */
  get ids(): string[] {
    return [...this.tasks.keys()];
  }
}

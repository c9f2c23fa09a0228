// A sandbox: one VM (through the Hypervisor interface only) with the guest agent in it, and the containers it
// runs. It boots the VM, reaches the agent (an AgentConnector), keeps the container table (container.ts),
// serves the control protocol (control.ts) on <root>/<sid>/control.sock, writes each container's state.json on
// every transition and sandbox.json at boot, and shuts down after its last container is deleted, when the VM
// exits, or when asked (DestroySandbox powers the VM off; stopVm if it does not).
// The control socket is 0600 in the 0700 sandbox directory, and each connection's peer (SO_PEERCRED) must be the
// sandbox's own uid or root; a stdio relay may register only its own pid (the pid `delete` later signals).
// The guest console goes to a bounded ring, console.log + console.log.1 (console-ring.ts).
// The sandbox process (sandbox-main.ts) runs one; tests run one in-process against a fake hypervisor and agent.
//
// Container rootfs, by settings.sharedFs (configuration.toml shared_fs):
// - 'virtio-fs' (default): one virtio-fs share per sandbox (shared-fs.ts) that the agent mounts at CreateSandbox;
//   `create` bind-mounts the bundle's rootfs and the host paths of its bind mounts into it, so the container
//   works on the bundle's files themselves and a sandbox holds any number of containers.
// - 'none': the VM gets `slots` virtio-blk disks at boot (no hotplug yet, interface.ts): sparse files of
//   slotSizeMiB. `create` fills a free slot with a copy of the bundle's rootfs (rootfs-image.ts) that the agent
//   mounts; host bind mounts cannot be shared this way.

import { closeSync, ftruncateSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { AGENT_STDIO_PORT, StreamKind, bindStdioStream, type AgentClient, type Storage } from '../agent/index.js';
import { joinCgroups, removeCgroups } from '../host/cgroup.js';
import { peerCredentials, type PeerCred } from '../host/peer-cred.js';
import type { DeviceSpec } from '../contract/device-spec.js';
import type { Hypervisor } from '../hypervisor/interface.js';
import { vsockAgentConnector, type AgentConnector } from './agent-dial.js';
import { ConsoleRing } from './console-ring.js';
import { Container, INIT } from './container.js';
import { parseRequest, readLine, type ControlReply, type ControlRequest, type StreamName } from './control.js';
import { RuntimeError } from './errors.js';
import type { SandboxSettings } from './launch.js';
import type { RuntimeLogger } from './log.js';
import { listenPrivate, makePrivateDirs, openPrivate } from './private-files.js';
import { connectTap, disconnectTap, kernelIpArg, POD_TAP } from './pod-network.js';
import { guestDisk, mkfsExt4, type ImageBuilder } from './rootfs-image.js';
import { GUEST_SHARED, SHARE_TAG, SharedFs, type MountOps } from './shared-fs.js';
import { containerDir, controlSocketPath, processStart, readContainer, removeDir, sandboxPath, statePath, writeContainer, writeSandbox } from './state.js';

/** Guest mount point of a container's rootfs (the agent mounts the storage there). */
const GUEST_STORAGE = '/run/kata-ts/storage';

/** How long shutdown waits for the guest to power off after DestroySandbox before it stops the VM. */
const POWER_OFF_WAIT_MS = 15_000;

const STREAM_KIND: Record<StreamName, (typeof StreamKind)['STDIN' | 'STDOUT' | 'STDERR']> = {
  stdin: StreamKind.STDIN,
  stdout: StreamKind.STDOUT,
  stderr: StreamKind.STDERR,
};

export interface SandboxDeps {
  /** the VM, not yet created (src/hypervisor/factory.ts createHypervisor, or a fake) */
  hypervisor: Hypervisor;
  logger: RuntimeLogger;
  /** reaches the agent once the VM runs; default: its ttRPC port over hv.vsock (agent-dial.ts) */
  connectAgent?: AgentConnector;
  /** fills a rootfs slot; default mkfs.ext4 */
  buildImage?: ImageBuilder;
  /** how long shutdown waits for the guest to power off before stopVm(); default POWER_OFF_WAIT_MS */
  powerOffWaitMs?: number;
  /** SO_PEERCRED of an accepted control connection's fd; default the addon's (src/host/peer-cred.ts) */
  peerCred?: (fd: number) => PeerCred;
  /** bind mounts of the virtio-fs share; default the host's, which need a private mount namespace (shared-fs.ts) */
  mountOps?: MountOps;
  /** host cgroups of linux.cgroupsPath; default host/cgroup.ts */
  cgroups?: CgroupOps;
}

/** Joining and leaving the host cgroup of linux.cgroupsPath. */
export interface CgroupOps {
  /** moves this process into the cgroup in every hierarchy; returns the directories */
  join(path: string): string[];
  /** moves this process out and removes them; returns those left */
  remove(dirs: string[]): string[];
}

/** An agent call failed: the RuntimeError code its gRPC status maps to, and what was being done. */
function agentError(e: unknown, what: string): RuntimeError {
  if (e instanceof RuntimeError) return e;
  const m = (e as Error).message;
  // agent.proto error codes: NOT_FOUND 5, ALREADY_EXISTS 6, FAILED_PRECONDITION 9, INVALID_ARGUMENT 3
  const code = /NOT_FOUND/.test(m) ? 'NOT_FOUND' : /ALREADY_EXISTS/.test(m) ? 'EXISTS' : /FAILED_PRECONDITION/.test(m) ? 'STATE' : /INVALID_ARGUMENT/.test(m) ? 'INVALID' : 'INTERNAL';
  return new RuntimeError(code, `${what}: ${m}`);
}

function reply(s: Socket, r: ControlReply): void {
  s.write(`${JSON.stringify(r)}\n`);
}

/** The fd of an accepted connection (net.Socket keeps it in its libuv handle; Node has no public accessor). */
function socketFd(s: Socket): number | undefined {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

export class Sandbox {
  readonly id: string;
  /** resolves once shutdown() has released the VM and removed the sandbox's files */
  readonly closed: Promise<void>;
  private readonly hv: Hypervisor;
  private readonly log: RuntimeLogger;
  private readonly connectAgent: AgentConnector;
  private readonly buildImage: ImageBuilder;
  private readonly powerOffWaitMs: number;
  private readonly peerCred: (fd: number) => PeerCred;
  private readonly mountOps: MountOps | undefined;
  private shared: SharedFs | undefined;
  private readonly cgroups: CgroupOps;
  private cgroupDirs: string[] = [];
  private tapConnected = false;
  private readonly containers = new Map<string, Container>();
  private readonly slotsUsed = new Set<number>();
  private agentClient: AgentClient | undefined;
  private server: Server | undefined;
  private consoleLog: ConsoleRing | undefined;
  private stopping: Promise<void> | undefined;
  private resolveClosed!: () => void;

  constructor(
    private readonly settings: SandboxSettings,
    deps: SandboxDeps,
  ) {
    this.id = settings.sid;
    this.hv = deps.hypervisor;
    this.log = deps.logger;
    this.connectAgent = deps.connectAgent ?? vsockAgentConnector(settings);
    this.buildImage = deps.buildImage ?? mkfsExt4;
    this.powerOffWaitMs = deps.powerOffWaitMs ?? POWER_OFF_WAIT_MS;
    this.peerCred = deps.peerCred ?? ((fd) => peerCredentials(fd));
    this.mountOps = deps.mountOps;
    this.cgroups = deps.cgroups ?? { join: (p) => joinCgroups(p), remove: (dirs) => removeCgroups(dirs, process.pid) };
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  private get dir(): string {
    return containerDir(this.settings.root, this.id);
  }

  private disk(slot: number): string {
    return join(this.dir, `disk-${slot}.img`);
  }

  private get agent(): AgentClient {
    if (!this.agentClient) throw new RuntimeError('STATE', `sandbox '${this.id}' has no agent connection (not started, or shut down)`);
    return this.agentClient;
  }

  /** Ids of the containers in the table. */
  get containerIds(): string[] {
    return [...this.containers.keys()];
  }

  /**
   * Boots the VM, reaches the agent and listens on the control socket. On failure it stops what it started,
   * removes what it wrote (sandbox.json, the share or the disks, the socket, the temp dir) and rethrows.
   */
  async start(): Promise<void> {
    try {
      await this.boot();
    } catch (e) {
      this.server?.close();
      this.agentClient?.close();
      await this.hv.stopVm().catch(() => undefined); // not created or not started: nothing to stop
      this.removeFiles();
      throw e;
    }
  }

  private async boot(): Promise<void> {
    const st = this.settings;
    makePrivateDirs(st.tmpDir);
    // first: the VMM and every helper spawned from here on inherit the cgroup
    if (st.cgroupsPath !== undefined) {
      try {
        this.cgroupDirs = this.cgroups.join(st.cgroupsPath);
      } catch (e) {
        throw new RuntimeError('INVALID', `cannot join linux.cgroupsPath ${st.cgroupsPath}: ${(e as Error).message}`);
      }
    }
    writeSandbox(st.root, {
      id: this.id,
      pid: process.pid,
      pidStart: processStart(process.pid) ?? 0,
      hypervisor: st.hypervisor,
      tmpDir: st.tmpDir,
      created: new Date().toISOString(),
      ...(this.cgroupDirs.length > 0 ? { cgroups: this.cgroupDirs } : {}),
    });
    for (let i = 0; i < st.slots; i++) {
      const fd = openPrivate(this.disk(i), 'a'); // a sparse image of slotSizeMiB
      try {
        ftruncateSync(fd, st.slotSizeMiB * 1024 * 1024);
      } finally {
        closeSync(fd);
      }
    }
    const hv = this.hv;
    const devices: DeviceSpec[] = [{ kind: 'vsock', cid: 3 }, ...Array.from({ length: st.slots }, (_, i) => ({ kind: 'blk' as const, path: this.disk(i), readOnly: false }))];
    let cmdline = st.cmdline;
    if (st.network) {
      // the pod's interface: its MAC for the NIC, its address for the guest kernel (pod-network.ts)
      devices.push({ kind: 'net', tap: POD_TAP, mac: st.network.mac });
      cmdline = `${cmdline} ${kernelIpArg(st.network)}`;
    }
    if (st.sharedFs === 'virtio-fs') {
      const shared = (this.shared = SharedFs.open(join(this.dir, 'shared'), st.launcherMountNs, this.mountOps));
      devices.push({ kind: 'fs', sharedDir: shared.hostDir, tag: SHARE_TAG });
    }
    if (!hv.capabilities().guestUserspace) {
      // DESIGN.md: the software KVM (kvm_pvm) boots the kernel but cannot run the agent (guest user space)
      throw new Error(`the ${hv.kind} hypervisor cannot run guest user space on this host (software KVM), so the agent cannot start: use --hypervisor=auto or qemu`);
    }
    const consoleLog = (this.consoleLog = new ConsoleRing(join(this.dir, 'console.log'), st.consoleLogMaxMiB * 1024 * 1024, (e) =>
      this.log.error('console.log write failed; the guest console is no longer logged', { error: e.message }),
    ));
    if (st.network) {
      this.tapConnected = true; // what connectTap made before it failed is undone too
      try {
        connectTap(st.network.ifname);
      } catch (e) {
        throw new RuntimeError('INTERNAL', `cannot connect the VM to the pod network ${st.network.netns}: ${(e as Error).message}`);
      }
    }
    let kernelStarted = false;
    hv.on('log', (l: string) => this.log.info(l));
    await hv.createVm({
      kernelPath: st.kernel,
      initrdPath: st.initrd,
      cmdline,
      vcpus: st.vcpus,
      memoryMiB: st.memoryMiB,
      devices,
      console: (b) => {
        if (!kernelStarted) {
          kernelStarted = true;
          this.log.info('kernel started'); // the first console byte (bench:run reads this phase)
        }
        consoleLog.write(b);
      },
    });
    await hv.startVm();
    const caps = hv.capabilities();
    this.log.info('VM started', { hypervisor: caps.kind, accel: caps.accel });
    this.agentClient = await this.connectAgent(hv);
    this.log.info('agent ready');
    if (this.shared) {
      await this.agentClient.createSandbox({
        sandbox_id: this.id,
        storages: [{ driver: 'virtio-fs', source: SHARE_TAG, mount_point: GUEST_SHARED, fstype: 'virtiofs', options: [] }],
      });
    }
    const server = (this.server = createServer((s) => void this.serve(s)));
    await listenPrivate(server, controlSocketPath(st.root, this.id));
    // from here on a VM that stops by itself ends the sandbox (before, start() fails and cleans up instead)
    void hv.wait().then((r) => {
      if (!this.stopping) {
        this.log.error('the VM exited', { reason: r });
        void this.shutdown('the VM exited');
      }
    });
  }

  private get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw new RuntimeError('NOT_FOUND', `container '${id}' is not in sandbox '${this.id}'`);
    return c;
  }

  /** Writes the container's state.json, unless it has left the table (deleted: its record must not return). */
  private persist(c: Container): void {
    if (this.containers.get(c.id) === c) writeContainer(this.settings.root, c.record);
  }

  private exited(c: Container, exec: string, code: number): void {
    if (!c.exited(exec, code) || exec !== INIT) return;
    this.persist(c);
    this.log.info('container exited', { id: c.id, exitCode: code });
  }

  /** Follows a process until the agent reports its exit (255 when the agent cannot say). */
  private watch(c: Container, exec: string): void {
    this.agent
      .waitProcess({ container_id: c.id, exec_id: exec })
      .then((r) => this.exited(c, exec, r.signal ? 128 + r.signal : r.exit_code))
      .catch((e: Error) => {
        this.log.error('WaitProcess failed', { id: c.id, exec, error: e.message });
        this.exited(c, exec, 255);
      });
  }

  private fillSlot(rootfs: string): number {
    let slot = -1;
    for (let i = 0; i < this.settings.slots; i++) if (!this.slotsUsed.has(i)) { slot = i; break; }
    if (slot < 0) throw new RuntimeError('STATE', `sandbox '${this.id}' has no free block slot for another container: raise [runtime] spare_block_devices`);
    this.slotsUsed.add(slot);
    try {
      this.buildImage(rootfs, this.disk(slot), this.settings.slotSizeMiB);
    } catch (e) {
      this.slotsUsed.delete(slot);
      throw e;
    }
    return slot;
  }

  /** One control call (every op but attach and relay, which keep their connection). */
  async handle(req: ControlRequest): Promise<unknown> {
    switch (req.op) {
      case 'create':
        return this.create(req);
      case 'start': {
        const c = this.get(req.id);
        c.checkStart();
        try {
          await this.agent.startContainer({ container_id: req.id });
        } catch (e) {
          throw agentError(e, `the guest agent could not start container '${req.id}'`);
        }
        c.started();
        this.persist(c);
        this.log.info('container started', { id: req.id });
        this.watch(c, INIT);
        return {};
      }
      case 'kill': {
        const c = this.get(req.id);
        c.checkKill();
        try {
          await this.agent.signalProcess({ container_id: req.id, exec_id: INIT, signal: req.signal, all: req.all });
        } catch (e) {
          throw agentError(e, `signal ${req.signal} to container '${req.id}' failed`);
        }
        return {};
      }
      case 'delete':
        return this.delete(req.id, req.force);
      case 'exec': {
        const c = this.get(req.id);
        c.checkExec();
        const exec = `e${process.hrtime.bigint().toString(36)}`;
        try {
          await this.agent.execProcess({ container_id: req.id, exec_id: exec, process_json: Buffer.from(JSON.stringify(req.process)) });
        } catch (e) {
          throw agentError(e, `exec in container '${req.id}' failed`);
        }
        c.addExec(exec, req.process['terminal'] === true);
        this.watch(c, exec);
        return { exec };
      }
      case 'ps': {
        // as runc ps: the processes of the container's cgroup, here the guest's (guest pids)
        this.get(req.id);
        try {
          return await this.agent.listProcesses({ container_id: req.id });
        } catch (e) {
          throw agentError(e, `ps of container '${req.id}' failed`);
        }
      }
      case 'pause':
      case 'resume': {
        const c = this.get(req.id);
        const pause = req.op === 'pause';
        if (pause) c.checkPause();
        else c.checkResume();
        try {
          if (pause) await this.agent.pauseContainer({ container_id: req.id });
          else await this.agent.resumeContainer({ container_id: req.id });
        } catch (e) {
          throw agentError(e, `${req.op} of container '${req.id}' failed`);
        }
        if (pause) c.paused();
        else c.resumed();
        this.persist(c);
        this.log.info(pause ? 'container paused' : 'container resumed', { id: req.id });
        return {};
      }
      case 'resize': {
        // the terminal of a process's stdio relay changed size: the guest pty takes it (SIGWINCH in the guest)
        this.get(req.id).process(req.exec);
        try {
          await this.agent.ttyWinResize({ container_id: req.id, exec_id: req.exec, rows: req.rows, columns: req.cols });
        } catch (e) {
          throw agentError(e, `resize of the terminal of ${req.id}/${req.exec || 'init'} failed`);
        }
        return {};
      }
      case 'wait':
        return { exitCode: await this.get(req.id).waitExit(req.exec) };
      case 'attach':
      case 'relay':
        throw new RuntimeError('INVALID', `control request '${req.op}' keeps its connection: send it on its own connection`);
    }
  }

  private async create(req: Extract<ControlRequest, { op: 'create' }>): Promise<unknown> {
    if (this.containers.has(req.id)) throw new RuntimeError('EXISTS', `container '${req.id}' exists in sandbox '${this.id}'`);
    const terminal = (req.spec['process'] as { terminal?: boolean } | undefined)?.terminal === true;
    const placed = this.placeRootfs(req);
    try {
      await this.agent.createContainer({ container_id: req.id, oci_spec_json: Buffer.from(JSON.stringify(placed.spec)), storages: placed.storages, rootfs: placed.rootfs });
    } catch (e) {
      this.releaseRootfs(req.id, placed.slot);
      throw agentError(e, `the guest agent could not create container '${req.id}'`);
    }
    const c = new Container({ id: req.id, sandboxId: this.id, bundle: req.bundle, annotations: req.annotations, slot: placed.slot, tty: terminal });
    this.containers.set(req.id, c);
    this.persist(c);
    this.log.info('container created', { id: req.id, ...(placed.slot !== undefined ? { slot: placed.slot } : { sharedFs: 'virtio-fs' }) });
    return {};
  }

  /** Puts a container's rootfs where the guest reaches it: the virtio-fs share, or a copy in a free disk slot. */
  private placeRootfs(req: Extract<ControlRequest, { op: 'create' }>): { rootfs: string; spec: Record<string, unknown>; storages: Storage[]; slot?: number } {
    if (this.shared) {
      const s = this.shared.shareContainer(req.id, req.rootfs, req.spec);
      return { rootfs: s.rootfs, spec: s.spec, storages: [] };
    }
    const slot = this.fillSlot(req.rootfs);
    const readonly = (req.spec['root'] as { readonly?: boolean } | undefined)?.readonly === true;
    const mount = `${GUEST_STORAGE}/${req.id}`;
    return { rootfs: mount, spec: req.spec, storages: [{ driver: 'blk', source: guestDisk(slot), mount_point: mount, fstype: 'ext4', options: readonly ? ['ro'] : [] }], slot };
  }

  /** Undoes placeRootfs (the container is gone or was never made). */
  private releaseRootfs(id: string, slot: number | undefined): void {
    if (slot !== undefined) this.slotsUsed.delete(slot);
    try {
      this.shared?.unshareContainer(id);
    } catch (e) {
      this.log.error('unsharing a container failed', { id, error: (e as Error).message });
    }
  }

  private async delete(id: string, force: boolean): Promise<unknown> {
    const c = this.get(id);
    c.checkDelete(force);
    this.containers.delete(id);
    try {
      await this.agent.removeContainer({ container_id: id, timeout_seconds: 1 });
    } catch (e) {
      this.log.error('RemoveContainer failed', { id, error: (e as Error).message });
    }
    for (const exec of c.execIds) this.exited(c, exec, 137);
    this.releaseRootfs(id, c.slot);
    // the sandbox's own directory also holds sandbox.json, the control socket and the disks: keep it while
    // the sandbox runs (shutdown removes it)
    if (id === this.id) rmSync(statePath(this.settings.root, id), { force: true });
    else removeDir(this.settings.root, id);
    if (this.containers.size === 0) setImmediate(() => void this.shutdown('the last container was deleted'));
    return {};
  }

  /**
   * The process at the other end of a control connection, when it may use this socket: the sandbox's own uid or
   * root (SO_PEERCRED, read as it connected). RuntimeError otherwise.
   */
  private peerOf(s: Socket): PeerCred {
    const fd = socketFd(s);
    if (fd === undefined) throw new RuntimeError('INTERNAL', 'cannot identify the peer of a control connection (no socket fd): refused');
    let peer: PeerCred;
    try {
      peer = this.peerCred(fd);
    } catch (e) {
      throw new RuntimeError('INTERNAL', `cannot identify the peer of a control connection (${(e as Error).message}): refused`);
    }
    const own = process.getuid?.() ?? 0;
    if (peer.uid !== own && peer.uid !== 0) {
      throw new RuntimeError('INVALID', `permission denied: uid ${peer.uid} may not use the control socket of sandbox '${this.id}': run kata-ts as uid ${own} or root`);
    }
    return peer;
  }

  /** Serves one control connection: checks its peer, reads its request line and answers it (control.ts). */
  async serve(s: Socket): Promise<void> {
    s.on('error', () => undefined);
    let peer: PeerCred;
    try {
      peer = this.peerOf(s);
    } catch (e) {
      const err = e as RuntimeError;
      this.log.error('control connection refused', { error: err.message });
      reply(s, { ok: false, code: err.code, message: err.message });
      s.end();
      return;
    }
    let line: string;
    try {
      line = await readLine(s, 30_000);
    } catch {
      s.destroy();
      return;
    }
    try {
      const req = parseRequest(line);
      if (req.op === 'attach') return await this.attach(s, req);
      if (req.op === 'relay') return this.relay(s, req, peer);
      const result = await this.handle(req);
      reply(s, { ok: true, result });
      s.end();
    } catch (e) {
      const err = e instanceof RuntimeError ? e : new RuntimeError('INTERNAL', (e as Error).message);
      reply(s, { ok: false, code: err.code, message: err.message });
      s.end();
    }
  }

  /** attach: after `{"ok":true}` the connection carries one stdio stream of one process. */
  private async attach(s: Socket, req: Extract<ControlRequest, { op: 'attach' }>): Promise<void> {
    this.get(req.id).process(req.exec);
    const vsock = this.hv.vsock;
    if (!vsock) throw new RuntimeError('INTERNAL', `the ${this.hv.kind} hypervisor offers no host vsock API: cannot attach ${req.stream}`);
    let g: Duplex;
    try {
      g = await bindStdioStream(await vsock.connect(AGENT_STDIO_PORT), { container_id: req.id, exec_id: req.exec, kind: STREAM_KIND[req.stream] }, { timeoutMs: this.settings.requestTimeoutMs });
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
  }

  /**
   * relay: a process's stdio relay announces its pid; the second line carries the exit code. The pid is the one
   * `delete` signals, so it must be the connecting process's own (SO_PEERCRED), and its start time is recorded
   * with it (process-identity.ts).
   */
  private relay(s: Socket, req: Extract<ControlRequest, { op: 'relay' }>, peer: PeerCred): void {
    const c = this.get(req.id);
    c.process(req.exec);
    if (req.pid !== peer.pid) {
      throw new RuntimeError('INVALID', `relay registration refused: pid ${req.pid} is not the connecting process (pid ${peer.pid}); a stdio relay registers its own pid`);
    }
    const start = processStart(req.pid);
    if (start === undefined) throw new RuntimeError('STATE', `relay registration refused: process ${req.pid} exited as it registered`);
    c.setRelay(req.exec, req.pid, start);
    if (req.exec === INIT) this.persist(c);
    reply(s, { ok: true });
    c.onExit(req.exec, (code) => {
      reply(s, { ok: true, result: { exitCode: code } });
      s.end();
    });
    s.resume();
  }

  /**
   * Stops every process, asks the agent to power the VM off (stops it after powerOffWaitMs), and removes the
   * sandbox's files. Containers still in the table keep their state.json, which now reads stopped. Idempotent.
   */
  shutdown(why: string): Promise<void> {
    this.stopping ??= this.stop(why);
    return this.stopping;
  }

  private async stop(why: string): Promise<void> {
    this.log.info('sandbox shutting down', { why });
    this.server?.close();
    for (const c of this.containers.values()) for (const exec of c.execIds) this.exited(c, exec, 255);
    try {
      await this.agentClient?.destroySandbox({ timeoutMs: 10_000 });
    } catch {
      // the VM may be gone already
    }
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([this.hv.wait().then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.powerOffWaitMs)))]);
    clearTimeout(timer);
    if (!stopped) await this.hv.stopVm().catch(() => undefined);
    this.agentClient?.close();
    this.removeFiles();
    this.resolveClosed();
  }

  /** The files this sandbox made; its directory too unless a container record (its first container's) is there. */
  private removeFiles(): void {
    const { root, slots, tmpDir } = this.settings;
    this.consoleLog?.close();
    if (this.tapConnected && this.settings.network) disconnectTap(this.settings.network.ifname);
    rmSync(controlSocketPath(root, this.id), { force: true });
    for (let i = 0; i < slots; i++) rmSync(this.disk(i), { force: true });
    rmSync(sandboxPath(root, this.id), { force: true });
    let unshared = true;
    try {
      this.shared?.close();
    } catch (e) {
      // a mount would not go: the directory stays (never rm -r through a mount); it goes with the namespace
      unshared = false;
      this.log.error('unsharing failed', { error: (e as Error).message });
    }
    if (unshared && readContainer(root, this.id) === undefined) rmSync(this.dir, { recursive: true, force: true });
    // the VMM is gone: leave the cgroup and remove it (a member left behind keeps it)
    const left = this.cgroupDirs.length > 0 ? this.cgroups.remove(this.cgroupDirs) : [];
    if (left.length > 0) this.log.error('host cgroups left (still in use)', { cgroups: left });
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

// The `qemu` backend: an external `qemu-system-x86_64 -M microvm` (argv: qemu-argv.ts) started paused (-S),
// driven over QMP (qmp.ts), with COM1 on its stdio, the boot timer on an isa-debugcon socket and our device
// models attached as vhost-user backends (src/vhost-user). Used where the in-process VMM cannot run guest
// user space (software KVM: QEMU with TCG) and as the comparison VMM in benchmarks.
// QEMU's life is tied to this process (parent-death.ts): it is spawned through `setpriv --pdeathsig KILL`, so
// a sandbox process killed outright (SIGKILL, OOM) takes its QEMU with it instead of leaving it to `delete`.
// Our vhost-user backends run in this process and die with it.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VsockPort } from '../contract/vsock-port.js';
import { HypervisorBase } from './base.js';
import {
  HypervisorStateError,
  type Accelerator,
  type Hypervisor,
  type HypervisorCapabilities,
  type VmConfig,
} from './interface.js';
import { BOOT_TIMER_MAGIC } from '../arch/x86_64/layout.js';
import { buildQemuArgv, type VhostUserAttachment } from './qemu-argv.js';
import type { QuirksProfile } from '../host/quirks.js';
import { QmpClient, type QmpMessage } from './qmp.js';
import { loadVhostUserServer, type StartVhostUserBackend, type VhostUserBackendHandle } from './vhost-user.js';
import { findExecutable, tieToParent } from './parent-death.js';
import type { VmExitReason } from '../contract/exit-reason.js';
import type { DeviceSpec } from '../contract/device-spec.js';

const DEVICE_KINDS: readonly DeviceSpec['kind'][] = ['blk', 'net', 'vsock', 'rng', 'fs'];
const STDERR_TAIL = 8192;
const QUIT_GRACE_MS = 5000;

export class QemuNotFound extends Error {
  constructor(binary: string) {
    super(`${binary} not found: install QEMU (apt-get install -y qemu-system-x86) or pass its path`);
    this.name = 'QemuNotFound';
  }
}

export class QemuStartFailed extends Error {
  constructor(detail: string) {
    super(`QEMU did not start: ${detail}`);
    this.name = 'QemuStartFailed';
  }
}

export interface QemuOptions {
  accel: Accelerator;
  /** KVM is hardware-backed (only meaningful with accel 'kvm') */
  hardwareVirtualization: boolean;
  /** host-quirks profile added to the command line (see factory.ts) */
  quirks?: QuirksProfile | undefined;
  /** default 'qemu-system-x86_64' (from PATH) */
  binary?: string;
  /** injected vhost-user server (tests); default: src/vhost-user's startVhostUserBackend */
  startBackend?: StartVhostUserBackend;
  /**
   * the parent-death wrapper (`setpriv` with --pdeathsig): default probed on PATH; null runs QEMU unwrapped
   * (it then outlives a killed owner until `delete` reaps it)
   */
  pdeathsigWrapper?: string | null;
}

/** The QMP SHUTDOWN event's reason (qapi/run-state.json ShutdownCause) as a VM exit. */
export function exitFromShutdown(reason: string): VmExitReason {
  switch (reason) {
    case 'guest-reset':
      return { kind: 'reset' };
    case 'guest-shutdown':
    case 'guest-panic':
    case 'subsystem-reset':
      return { kind: 'shutdown' };
    default: // host-qmp-quit, host-signal, host-ui, ...
      return { kind: 'stopped' };
  }
}

/** The VM exit for QEMU's process exit when no SHUTDOWN event said why. */
export function exitFromStatus(code: number | null, signal: string | null, debugExit: boolean, stderrTail: string, stopRequested: boolean): VmExitReason {
  if (stopRequested) return { kind: 'stopped' };
  // isa-debug-exit: QEMU exits with (value << 1) | 1 (hw/misc/debugexit.c)
  if (debugExit && code !== null && (code & 1) === 1 && stderrTail.trim() === '') return { kind: 'debug-exit', status: code >> 1 };
  if (code === 0) return { kind: 'reset' };
  const why = signal ? `killed by ${signal}` : `exit status ${String(code)}`;
  return { kind: 'error', message: `QEMU ended (${why})${stderrTail.trim() ? `: ${stderrTail.trim().split('\n').slice(-3).join(' | ')}` : ''}`, vcpu: -1 };
}

/** Listen on a unix socket and resolve with the first connection. */
function listenOnce(path: string): { server: Server; ready: Promise<void>; connection: Promise<Socket> } {
  const server = createServer();
  let onConn!: (s: Socket) => void;
  const connection = new Promise<Socket>((r) => (onConn = r));
  server.once('connection', (s) => {
    onConn(s);
    server.close(); // one client only
  });
  const ready = new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(path, () => res());
  });
  return { server, ready, connection };
}

export class QemuHypervisor extends HypervisorBase implements Hypervisor {
  readonly kind = 'qemu' as const;
  protected readonly deviceKinds = DEVICE_KINDS;
  /** the argv QEMU was started with (after startVm) */
  argv: string[] | undefined;
  private child: ChildProcessWithoutNullStreams | undefined;
  private qmp: QmpClient | undefined;
  private workDir: string | undefined;
  private servers: Server[] = [];
  private sockets: Socket[] = [];
  private backends: VhostUserBackendHandle[] = [];
  private stderrTail = '';
  private shutdownReason: VmExitReason | undefined;
  private stopRequested = false;
  private finishing = false;
  private vsockHost: VsockPort | undefined;

  constructor(private readonly opts: QemuOptions) {
    super(opts.quirks);
  }

  capabilities(): HypervisorCapabilities {
    const hw = this.opts.accel === 'kvm' && this.opts.hardwareVirtualization;
    return {
      kind: 'qemu',
      accel: this.opts.accel,
      hardwareVirtualization: hw,
      // TCG emulates everything (slowly) and correctly; kvm_pvm cannot run guest user space (DESIGN.md)
      guestUserspace: this.opts.accel === 'tcg' || hw,
      pause: true,
      hotplug: false,
      deviceKinds: DEVICE_KINDS,
      deviceTransport: 'vhost-user',
      vsockHost: true,
      bootTimer: 'isa-debugcon',
    };
  }

  /** The command line the guest was given (qemuCmdline() may add to the configured one). */
  get cmdline(): string | undefined {
    const a = this.argv;
    return a ? a[a.indexOf('-append') + 1] : undefined;
  }

  get vsock(): VsockPort | undefined {
    return this.vsockHost;
  }

  /** QMP, once the VM is created (for callers that need more than the interface offers) */
  get monitor(): QmpClient | undefined {
    return this.qmp;
  }

  /** QEMU's process id while it runs (setpriv execs QEMU in place: the same process) */
  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  async startVm(): Promise<void> {
    const c = this.beginStart();
    try {
      await this.launch(c);
    } catch (e) {
      this.stopRequested = true;
      this.child?.kill('SIGKILL');
      await this.finish({ kind: 'error', message: (e as Error).message, vcpu: -1 });
      throw e;
    }
  }

  private async launch(c: VmConfig): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'kata-ts-qemu-'));
    this.workDir = dir;

    // devices first: QEMU connects to each backend's socket while it builds the machine
    const attachments: VhostUserAttachment[] = [];
    if (this.devices.length > 0) {
      const start = this.opts.startBackend ?? (await loadVhostUserServer());
      for (const [i, spec] of this.devices.entries()) {
        const socketPath = join(dir, `vhost-user-${String(i)}.sock`);
        const b = await start({ spec, socketPath });
        this.backends.push(b);
        if (b.vsock) this.vsockHost ??= b.vsock;
        attachments.push({ spec, socketPath });
      }
    }

    // QMP and the boot timer: we listen, QEMU connects (no polling for a socket file to appear)
    const qmpL = listenOnce(join(dir, 'qmp.sock'));
    const btL = listenOnce(join(dir, 'boot-timer.sock'));
    this.servers.push(qmpL.server, btL.server);
    await Promise.all([qmpL.ready, btL.ready]);
    void btL.connection.then((s) => {
      this.sockets.push(s);
      s.on('data', (b: Buffer) => {
        const now = process.hrtime.bigint();
        if (this.phases.bootTimer === undefined && b.includes(BOOT_TIMER_MAGIC)) {
          this.phases.bootTimer = now;
          this.emit('boot-timer', this.phases);
        }
      });
      s.on('error', () => undefined);
    });

    this.argv = buildQemuArgv({
      kernelPath: c.kernelPath,
      ...(c.initrdPath !== undefined ? { initrdPath: c.initrdPath } : {}),
      cmdline: c.cmdline,
      vcpus: c.vcpus,
      memoryMiB: c.memoryMiB,
      accel: this.opts.accel,
      qmpSocket: join(dir, 'qmp.sock'),
      bootTimerSocket: join(dir, 'boot-timer.sock'),
      vhostUser: attachments,
      debugExit: c.debugPorts ?? false,
      startPaused: true,
    });
    const binary = this.opts.binary ?? 'qemu-system-x86_64';
    // resolved here: behind setpriv a missing binary would be setpriv's exit status 127, not ENOENT
    const file = findExecutable(binary);
    if (file === undefined) throw new QemuNotFound(binary);
    // SIGKILL when this thread dies; if we die before setpriv's prctl, QEMU's -qmp connect to our socket fails
    const cmd = this.opts.pdeathsigWrapper !== undefined ? tieToParent(file, this.argv, this.opts.pdeathsigWrapper) : tieToParent(file, this.argv);
    if (!cmd.tied) this.emit('log', 'setpriv with --pdeathsig not found (util-linux): QEMU will outlive this process if it is killed');
    this.phases.vmCreateBegan = process.hrtime.bigint();
    const child = spawn(cmd.file, cmd.args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.on('data', (b: Buffer) => {
      this.recorder!.push(b);
      c.console?.(b);
      this.emit('console', b);
    });
    child.stderr.on('data', (b: Buffer) => {
      const s = b.toString('utf8');
      this.stderrTail = (this.stderrTail + s).slice(-STDERR_TAIL);
      for (const line of s.split('\n')) if (line.trim()) this.emit('log', `qemu: ${line}`);
    });
    child.stdin.on('error', () => undefined);
    const spawnError = new Promise<never>((_, rej) =>
      child.once('error', (e: NodeJS.ErrnoException) => rej(e.code === 'ENOENT' ? new QemuNotFound(binary) : e)),
    );
    spawnError.catch(() => undefined);
    const ended = new Promise<never>((_, rej) =>
      child.once('close', (code, signal) => {
        rej(new QemuStartFailed(`exit status ${String(code)}${signal ? ` (${signal})` : ''}: ${this.stderrTail.trim().slice(-1000)}`));
      }),
    );
    ended.catch(() => undefined);
    child.once('close', (code, signal) => {
      const reason = this.shutdownReason ?? exitFromStatus(code, signal, c.debugPorts ?? false, this.stderrTail, this.stopRequested);
      void this.finish(reason);
    });

    const sock = await Promise.race([qmpL.connection, spawnError, ended]);
    this.sockets.push(sock);
    const qmp = new QmpClient(sock);
    this.qmp = qmp;
    qmp.on('error', (e: Error) => this.emit('log', e.message));
    qmp.on('event', (ev: Extract<QmpMessage, { type: 'event' }>) => {
      if (ev.event === 'SHUTDOWN' && !this.shutdownReason) {
        const r = typeof ev.data.reason === 'string' ? ev.data.reason : '';
        this.shutdownReason = this.stopRequested ? { kind: 'stopped' } : exitFromShutdown(r);
      }
    });
    await Promise.race([qmp.handshake(), ended]);
    this.phases.vmCreated = process.hrtime.bigint();
    if (this.stopRequested) return;
    await Promise.race([qmp.execute('cont'), ended]);
    this.phases.running = process.hrtime.bigint();
    if (this.state === 'starting') this.state = 'running';
  }

  private async finish(reason: VmExitReason): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    this.state = 'stopped';
    this.qmp?.close();
    for (const s of this.sockets) s.destroy();
    for (const s of this.servers) s.close();
    await Promise.all(this.backends.map((b) => b.close().catch(() => undefined)));
    if (this.workDir) rmSync(this.workDir, { recursive: true, force: true });
    this.phases.exited = process.hrtime.bigint();
    this.emit('exit', reason);
    this.resolveExited(reason);
  }

  async pauseVm(): Promise<void> {
    if (this.state !== 'running' || !this.qmp) throw new HypervisorStateError('pause', this.state);
    await this.qmp.execute('stop');
    this.state = 'paused';
  }

  async resumeVm(): Promise<void> {
    if (this.state !== 'paused' || !this.qmp) throw new HypervisorStateError('resume', this.state);
    await this.qmp.execute('cont');
    this.state = 'running';
  }

  /** QMP `quit`; SIGKILL if QEMU has not exited QUIT_GRACE_MS later. */
  stopVm(): Promise<VmExitReason> {
    if (!this.exited) return Promise.reject(new HypervisorStateError('stop', this.state));
    if (this.state === 'stopped') return this.exited;
    this.stopRequested = true;
    const child = this.child;
    if (!child) {
      if (this.state === 'created') void this.finish({ kind: 'stopped' });
      return this.exited;
    }
    const kill = setTimeout(() => child.kill('SIGKILL'), QUIT_GRACE_MS);
    void this.exited.then(() => clearTimeout(kill));
    if (this.qmp) this.qmp.execute('quit').catch(() => child.kill('SIGTERM'));
    else child.kill('SIGTERM');
    return this.exited;
  }

  wait(): Promise<VmExitReason> {
    if (!this.exited) return Promise.reject(new HypervisorStateError('wait for', this.state));
    return this.exited;
  }

  sendConsoleInput(bytes: Uint8Array): void {
    if (this.child && this.state !== 'stopped') this.child.stdin.write(bytes);
  }

  /** Counters of the vhost-user backend of device `index` (undefined once stopped or if there is none). */
  deviceMetrics(index: number): Record<string, number> | undefined {
    return this.state === 'stopped' ? undefined : this.backends[index]?.metrics();
  }
}

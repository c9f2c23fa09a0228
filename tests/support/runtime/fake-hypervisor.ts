// A Hypervisor (src/hypervisor/interface.ts) with no VM behind it, for in-process runtime tests: it records the
// VmConfig and the devices it was given and the calls made, writes a line to the console at start, and offers a
// host vsock whose connect() hands the other end of an in-memory stream to whatever "guest" listens on that
// port (a FakeAgent). The test decides when the guest powers off (powerOff) or the start fails (failStart).

import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { DeviceSpec } from '../../../src/contract/device-spec.js';
import type { VsockConnectOptions, VsockPort } from '../../../src/contract/vsock-port.js';
import type { BootPhases, Hypervisor, HypervisorCapabilities, VmConfig, VmExitReason } from '../../../src/hypervisor/interface.js';
import { duplexPair } from './duplex-pair.js';

/** The host vsock of a FakeHypervisor; the fake guest side listens with guestListen(). */
export class FakeVsock implements VsockPort {
  private readonly guest = new Map<number, (s: Duplex) => void>();
  private readonly open = new Set<Duplex>();
  /** ports the host connected to, in order */
  readonly connects: number[] = [];

  constructor(private readonly running: () => boolean) {}

  /** The guest accepts connections to `port` (the agent's ttRPC and stdio ports). */
  guestListen(port: number, onConnection: (guestEnd: Duplex) => void): void {
    this.guest.set(port, onConnection);
  }

  connect(port: number, _opts?: VsockConnectOptions): Promise<Duplex> {
    this.connects.push(port);
    const accept = this.guest.get(port);
    if (!this.running()) return Promise.reject(new Error(`vsock connect to port ${port}: the VM is not running`));
    if (!accept) return Promise.reject(new Error(`vsock connect to port ${port}: connection refused (RST)`));
    const [host, guest] = duplexPair();
    for (const s of [host, guest]) {
      this.open.add(s);
      s.once('close', () => this.open.delete(s));
    }
    accept(guest);
    return Promise.resolve(host);
  }

  listen(): () => void {
    return () => undefined;
  }

  /** Reset every connection (the VM went away). */
  close(): void {
    for (const s of [...this.open]) s.destroy();
  }
}

export interface FakeHypervisorOptions {
  /** startVm() rejects with this */
  failStart?: Error;
  /** capabilities().guestUserspace; default true */
  guestUserspace?: boolean;
}

export class FakeHypervisor extends EventEmitter implements Hypervisor {
  readonly kind = 'qemu' as const;
  readonly phases: BootPhases = { markers: {} };
  readonly quirks = undefined;
  readonly vsock: FakeVsock;
  /** the config createVm() got */
  config: VmConfig | undefined;
  devices: DeviceSpec[] = [];
  /** createVm, addDevice, startVm, stopVm, pauseVm, resumeVm in call order */
  readonly calls: string[] = [];
  state: 'new' | 'created' | 'running' | 'stopped' = 'new';
  /** why it stopped, once it has */
  exitReason: VmExitReason | undefined;
  private console = '';
  private readonly exited: Promise<VmExitReason>;
  private resolveExited!: (r: VmExitReason) => void;

  constructor(private readonly o: FakeHypervisorOptions = {}) {
    super();
    this.vsock = new FakeVsock(() => this.state === 'running');
    this.exited = new Promise((r) => (this.resolveExited = r));
  }

  capabilities(): HypervisorCapabilities {
    return {
      kind: this.kind,
      accel: 'tcg',
      hardwareVirtualization: false,
      guestUserspace: this.o.guestUserspace ?? true,
      pause: false,
      hotplug: false,
      deviceKinds: ['vsock', 'blk'],
      deviceTransport: 'in-process',
      vsockHost: true,
      bootTimer: 'isa-debugcon',
    };
  }

  get consoleText(): string {
    return this.console;
  }

  get cmdline(): string | undefined {
    return this.config?.cmdline;
  }

  createVm(config: VmConfig): Promise<void> {
    this.calls.push('createVm');
    if (this.state !== 'new') return Promise.reject(new Error(`cannot create a VM that is ${this.state}`));
    this.config = config;
    this.devices = [...(config.devices ?? [])];
    this.state = 'created';
    return Promise.resolve();
  }

  addDevice(spec: DeviceSpec): void {
    this.calls.push('addDevice');
    this.devices.push(spec);
  }

  startVm(): Promise<void> {
    this.calls.push('startVm');
    if (this.state !== 'created') return Promise.reject(new Error(`cannot start a VM that is ${this.state}`));
    if (this.o.failStart) return Promise.reject(this.o.failStart);
    this.state = 'running';
    this.writeConsole('fake kernel: Run /init as init process\n');
    return Promise.resolve();
  }

  pauseVm(): Promise<void> {
    this.calls.push('pauseVm');
    return Promise.reject(new Error('the fake hypervisor cannot pause'));
  }

  resumeVm(): Promise<void> {
    this.calls.push('resumeVm');
    return Promise.reject(new Error('the fake hypervisor cannot resume'));
  }

  stopVm(): Promise<VmExitReason> {
    this.calls.push('stopVm');
    if (this.state === 'new' || this.state === 'created') return Promise.reject(new Error(`cannot stop a VM that is ${this.state}`));
    this.finish({ kind: 'stopped' });
    return this.exited;
  }

  wait(): Promise<VmExitReason> {
    return this.exited;
  }

  sendConsoleInput(): void {}

  /** The guest powers off (as the agent does after DestroySandbox) or crashes. */
  powerOff(reason: VmExitReason = { kind: 'shutdown' }): void {
    this.finish(reason);
  }

  writeConsole(text: string): void {
    this.console += text;
    this.config?.console?.(Buffer.from(text));
    this.emit('console', Buffer.from(text));
  }

  private finish(reason: VmExitReason): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.exitReason = reason;
    this.vsock.close();
    this.resolveExited(reason);
    this.emit('exit', reason);
  }
}

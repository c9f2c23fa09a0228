// The `inproc` backend: the in-process VMM (src/vmm/vm.ts) behind the Hypervisor interface.

import { readFile } from 'node:fs/promises';
import type { VsockPort } from '../contract/vsock-port.js';
import type { DeviceLogLine } from '../vmm/device-manager.js';
import { defaultVcpuPool } from '../vmm/vcpu-pool.js';
import { createVm, type BootTimerRecord, type Vm } from '../vmm/vm.js';
import type { QuirksProfile } from '../host/quirks.js';
import { HypervisorBase } from './base.js';
import {
  HypervisorStateError,
  type Hypervisor,
  type HypervisorCapabilities,
  type VmConfig,
} from './interface.js';
import type { VmExitReason } from '../contract/exit-reason.js';
import type { DeviceSpec } from '../contract/device-spec.js';

const DEVICE_KINDS: readonly DeviceSpec['kind'][] = ['blk', 'net', 'vsock', 'rng', 'fs', 'module'];

export interface InprocOptions {
  /** KVM is hardware-backed (false on kvm_pvm): decides guestUserspace in capabilities() */
  hardwareVirtualization: boolean;
  /** host-quirks profile added to the command line (see factory.ts) */
  quirks?: QuirksProfile | undefined;
}

export class InprocHypervisor extends HypervisorBase implements Hypervisor {
  readonly kind = 'inproc' as const;
  protected readonly deviceKinds = DEVICE_KINDS;
  private vm: Vm | undefined;
  private stopRequested = false;

  constructor(private readonly opts: InprocOptions) {
    super(opts.quirks);
  }

  capabilities(): HypervisorCapabilities {
    return {
      kind: 'inproc',
      accel: 'kvm',
      hardwareVirtualization: this.opts.hardwareVirtualization,
      guestUserspace: this.opts.hardwareVirtualization,
      pause: true,
      hotplug: false,
      deviceKinds: DEVICE_KINDS,
      deviceTransport: 'in-process',
      vsockHost: true,
      bootTimer: 'pio-exit',
    };
  }

  get cmdline(): string | undefined {
    return this.vm ? this.effectiveCmdline : undefined;
  }

  private effectiveCmdline: string | undefined;

  get vsock(): VsockPort | undefined {
    return this.vm?.vsock;
  }

  protected override onCreated(config: VmConfig): void {
    // the vCPU threads take the longest to start: start them now (DESIGN: vCPU worker pool)
    defaultVcpuPool.prewarm(config.vcpus).catch(() => undefined);
  }

  async startVm(): Promise<void> {
    const c = this.beginStart();
    try {
      const [kernel, initrd] = await Promise.all([readFile(c.kernelPath), c.initrdPath ? readFile(c.initrdPath) : undefined]);
      this.phases.vmCreateBegan = process.hrtime.bigint();
      const vm = await createVm({
        kernel,
        ...(initrd ? { initrd } : {}),
        cmdline: c.cmdline,
        vcpus: c.vcpus,
        memoryMiB: c.memoryMiB,
        debugPorts: c.debugPorts ?? false,
        devices: this.devices,
        console: (bytes) => {
          this.recorder!.push(bytes);
          c.console?.(bytes);
          this.emit('console', bytes);
        },
      });
      this.phases.vmCreated = process.hrtime.bigint();
      this.phases.createStepsMs = Object.fromEntries(vm.createPhases.map((p) => [p.name, p.ms]));
      this.vm = vm;
      this.effectiveCmdline = c.cmdline;
      vm.on('device-log', (l: DeviceLogLine) => this.emit('log', `${l.device}: ${l.level}: ${l.message}`));
      vm.on('boot-timer', (b: BootTimerRecord) => {
        if (this.phases.bootTimer === undefined) {
          this.phases.bootTimer = b.monotonicNs;
          this.phases.bootTimerProcessCpuUs = b.processCpuUs;
        }
        this.emit('boot-timer', this.phases);
      });
      void vm.wait().then((r) => {
        this.state = 'stopped';
        this.phases.exited = process.hrtime.bigint();
        this.emit('exit', r);
        this.resolveExited(r);
      });
      if (this.stopRequested) {
        void vm.stop();
        return;
      }
      vm.start();
      this.phases.running = process.hrtime.bigint();
      this.state = 'running';
    } catch (e) {
      this.state = 'stopped';
      this.phases.exited = process.hrtime.bigint();
      const message = (e as Error).message;
      this.resolveExited({ kind: 'error', message, vcpu: -1 });
      throw e;
    }
  }

  async pauseVm(): Promise<void> {
    if (this.state !== 'running' || !this.vm) throw new HypervisorStateError('pause', this.state);
    await this.vm.pause();
    this.state = 'paused';
  }

  resumeVm(): Promise<void> {
    if (this.state !== 'paused' || !this.vm) return Promise.reject(new HypervisorStateError('resume', this.state));
    this.vm.resume();
    this.state = 'running';
    return Promise.resolve();
  }

  stopVm(): Promise<VmExitReason> {
    if (!this.exited) return Promise.reject(new HypervisorStateError('stop', this.state));
    if (this.vm) return this.vm.stop().then(() => this.exited!);
    if (this.state === 'created') {
      this.state = 'stopped';
      this.resolveExited({ kind: 'stopped' });
    } else if (this.state === 'starting') {
      this.stopRequested = true; // startVm() stops the VM as soon as it exists
    }
    return this.exited;
  }

  wait(): Promise<VmExitReason> {
    if (!this.exited) return Promise.reject(new HypervisorStateError('wait for', this.state));
    return this.exited;
  }

  sendConsoleInput(bytes: Uint8Array): void {
    this.vm?.sendConsoleInput(bytes);
  }
}

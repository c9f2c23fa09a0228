// What the backends share: the create → add devices → start life cycle, its state checks, the boot-phase
// record and the console recorder. Each backend adds how it launches, stops and pauses its VM.

import { EventEmitter } from 'node:events';
import { applyQuirks, type QuirksProfile } from '../host/quirks.js';
import { ConsoleRecorder } from './console-recorder.js';
import { checkVmConfig } from './vm-config.js';
import {
  DeviceKindNotSupported,
  HotplugNotSupported,
  HypervisorStateError,
  type BootPhases,
  type VmConfig,
} from './interface.js';
import type { VmExitReason } from '../contract/exit-reason.js';
import type { DeviceSpec } from '../contract/device-spec.js';

export type HypervisorState = 'new' | 'created' | 'starting' | 'running' | 'paused' | 'stopped';

export abstract class HypervisorBase extends EventEmitter {
  abstract readonly kind: 'inproc' | 'qemu';
  readonly phases: BootPhases = { markers: {} };
  protected state: HypervisorState = 'new';
  protected config: VmConfig | undefined;
  protected devices: DeviceSpec[] = [];
  protected recorder: ConsoleRecorder | undefined;
  protected exited: Promise<VmExitReason> | undefined;
  protected resolveExited!: (r: VmExitReason) => void;

  /** @param quirks the host-quirks profile added to every command line (createHypervisor() decides it) */
  constructor(readonly quirks: QuirksProfile | undefined) {
    super();
  }

  /** the device kinds this backend can attach */
  protected abstract readonly deviceKinds: readonly DeviceSpec['kind'][];

  get consoleText(): string {
    return this.recorder?.text ?? '';
  }

  createVm(config: VmConfig): Promise<void> {
    if (this.state !== 'new') return Promise.reject(new HypervisorStateError('create', this.state));
    try {
      checkVmConfig(config);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    this.config = this.quirks ? { ...config, cmdline: applyQuirks(config.cmdline, this.quirks) } : config;
    this.devices = [];
    for (const d of config.devices ?? []) this.addDevice(d, true);
    this.recorder = new ConsoleRecorder(this.phases, config.markers, (m) => this.emit('marker', m));
    this.exited = new Promise((r) => (this.resolveExited = r));
    this.state = 'created';
    this.onCreated(config);
    return Promise.resolve();
  }

  /** Work a backend does once the VM is described (e.g. start vCPU threads early). */
  protected onCreated(_config: VmConfig): void {}

  addDevice(spec: DeviceSpec, fromConfig = false): void {
    if (this.state === 'new' && !fromConfig) throw new HypervisorStateError('add a device to', 'not created yet');
    if (this.state !== 'new' && this.state !== 'created') throw new HotplugNotSupported(this.kind);
    if (!this.deviceKinds.includes(spec.kind)) throw new DeviceKindNotSupported(this.kind, spec.kind, this.deviceKinds);
    this.devices.push(spec);
  }

  /** created → starting, stamping the start of the boot; the config to launch. */
  protected beginStart(): VmConfig {
    if (this.state !== 'created' || !this.config) throw new HypervisorStateError('start', this.state);
    this.state = 'starting';
    this.phases.startRequested = process.hrtime.bigint();
    return this.config;
  }
}

// The Kata-style hypervisor interface: what the runtime needs from a VMM, whichever one runs the guest.
// Modelled on Kata's `virtcontainers/hypervisor.go` (CreateVM / StartVM / StopVM / PauseVM / ResumeVM /
// AddDevice / GetVMConsole / Capabilities): createVm() validates and prepares, addDevice() cold-plugs before
// start, startVm() makes the VM exist and run. Two backends: `inproc` (src/vmm, this process) and `qemu`
// (an external qemu-system-x86_64 -M microvm with our devices over vhost-user).

import type { EventEmitter } from 'node:events';
import type { VsockPort } from '../contract/vsock-port.js';
import type { QuirksProfile } from '../host/quirks.js';
import type { VmExitReason } from '../contract/exit-reason.js';
import type { DeviceSpec } from '../contract/device-spec.js';

export type { VmExitReason } from '../contract/exit-reason.js';

export type HypervisorKind = 'inproc' | 'qemu';

/** How guest code executes: KVM (hardware or the kvm_pvm software virtualizer) or QEMU's TCG emulator. */
export type Accelerator = 'kvm' | 'tcg';

export interface HypervisorCapabilities {
  kind: HypervisorKind;
  accel: Accelerator;
  /** KVM backed by VT-x/AMD-V (false on kvm_pvm and under TCG) */
  hardwareVirtualization: boolean;
  /** whether guest user space can run (false: the kernel boots only to "Run /init"; DESIGN.md, KVM measured) */
  guestUserspace: boolean;
  pause: boolean;
  /** devices can be added after startVm() (neither backend does this yet) */
  hotplug: boolean;
  /** DeviceSpec kinds this backend can attach */
  deviceKinds: readonly DeviceSpec['kind'][];
  /** where the device models run: worker threads of this process, or vhost-user backends */
  deviceTransport: 'in-process' | 'vhost-user';
  /** a host-side vsock API (Hypervisor.vsock) when a vsock device is attached */
  vsockHost: boolean;
  /** how the guest's boot-timer write (byte 123 to port 0x440) reaches us */
  bootTimer: 'pio-exit' | 'isa-debugcon';
}

/**
 * Boot-phase timestamps, CLOCK_MONOTONIC in ns (process.hrtime.bigint(): the same clock in every process).
 * `startRequested` is t0; the others are set when the phase is reached.
 */
export interface BootPhases {
  /** startVm() was called (inproc: before createVm(); qemu: before the spawn) */
  startRequested?: bigint;
  /** the backend began making the VM: inproc createVm() called (the kernel read); qemu spawned */
  vmCreateBegan?: bigint;
  /** where making the VM spent its time, ms per step in order (inproc: createVm()'s phases; qemu: none) */
  createStepsMs?: Record<string, number>;
  /** the VM exists: inproc createVm() resolved; qemu answered QMP with the machine built (-S, not yet running) */
  vmCreated?: bigint;
  /** the vCPUs were released (inproc Vm.start(); qemu QMP `cont` answered) */
  running?: bigint;
  /** the first console byte: the kernel's console is up (earlier boot messages are replayed then) */
  kernelStarted?: bigint;
  /** the guest wrote the boot timer (inproc: at the vCPU exit; qemu: when the isa-debugcon byte arrived) */
  bootTimer?: bigint;
  /** this process's CPU time (user+system, µs) at the boot-timer write (inproc only: the VMM is this process) */
  bootTimerProcessCpuUs?: number;
  /** each configured console marker (VmConfig.markers), at the first byte after it completed */
  markers: Record<string, bigint>;
  /** the VM stopped and its resources were released */
  exited?: bigint;
}

/** Milliseconds from `from` (default startRequested) to a phase, or undefined when either is missing. */
export function phaseMs(p: BootPhases, at: bigint | undefined, from = p.startRequested): number | undefined {
  if (from === undefined || at === undefined) return undefined;
  return Number(at - from) / 1e6;
}

export interface VmConfig {
  /** ELF vmlinux with a PVH note (both backends boot it directly) */
  kernelPath: string;
  initrdPath?: string;
  /** the kernel command line (the hypervisor adds its host-quirks profile; virtio-mmio device entries are added by the backend) */
  cmdline: string;
  vcpus: number;
  memoryMiB: number;
  devices?: DeviceSpec[];
  /** COM1 output sink */
  console?: (bytes: Uint8Array) => void;
  /** console strings whose first appearance is timestamped into BootPhases.markers */
  markers?: string[];
  /** test/debug ports (0xe9 debug console, 0xea test values, 0xf4 debug exit); default false */
  debugPorts?: boolean;
}

/**
 * A VMM the runtime can drive. Events: 'console' (Uint8Array), 'boot-timer' (BootPhases),
 * 'marker' (name: string), 'exit' (VmExitReason), 'log' (line: string) for backend diagnostics.
 */
export interface Hypervisor extends EventEmitter {
  readonly kind: HypervisorKind;
  capabilities(): HypervisorCapabilities;
  /** validate and prepare (reads nothing large, starts nothing) */
  createVm(config: VmConfig): Promise<void>;
  /** cold-plug a device: after createVm(), before startVm() */
  addDevice(spec: DeviceSpec): void;
  /** make the VM and let it run; resolves once the vCPUs run */
  startVm(): Promise<void>;
  pauseVm(): Promise<void>;
  resumeVm(): Promise<void>;
  /** stop from the host side; resolves with the exit reason once everything is released */
  stopVm(): Promise<VmExitReason>;
  /** resolves with the exit reason once the VM stopped on its own or was stopped */
  wait(): Promise<VmExitReason>;
  /** COM1 input */
  sendConsoleInput(bytes: Uint8Array): void;
  readonly consoleText: string;
  readonly phases: BootPhases;
  /** the effective command line, once started (with device entries) */
  readonly cmdline: string | undefined;
  /** the host-quirks profile this hypervisor adds to every command line, if any (factory.ts decides) */
  readonly quirks: QuirksProfile | undefined;
  /** host side of the vsock device, when there is one and the backend offers it */
  readonly vsock: VsockPort | undefined;
}

export class HypervisorStateError extends Error {
  constructor(op: string, state: string) {
    super(`cannot ${op} a VM that is ${state}`);
    this.name = 'HypervisorStateError';
  }
}

export class HotplugNotSupported extends Error {
  constructor(kind: HypervisorKind) {
    super(`the ${kind} hypervisor cannot add devices to a running VM: add them before startVm()`);
    this.name = 'HotplugNotSupported';
  }
}

export class DeviceKindNotSupported extends Error {
  constructor(kind: HypervisorKind, device: string, supported: readonly string[]) {
    super(`the ${kind} hypervisor cannot attach a '${device}' device (it supports: ${supported.join(', ')})`);
    this.name = 'DeviceKindNotSupported';
  }
}

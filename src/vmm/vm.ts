// The in-process microVM: createVm() builds a KVM VM in this process (memory, in-kernel irqchip and PIT,
// PVH boot state, vCPUs with CPUID/MSRs/LAPIC) and hands each vCPU to a pooled worker thread. The Vm owns
// every resource it made and frees all of them (workers back to the pool, fds, mappings) when it stops.

import { EventEmitter } from 'node:events';
import { MessageChannel, type MessagePort as WorkerMessagePort, type Worker } from 'node:worker_threads';
import { filterCpuid } from '../arch/x86_64/cpuid.js';
import { setLint } from '../arch/x86_64/lapic.js';
import { COM1_IRQ, IDENTITY_MAP_ADDR, KVM_TSS_ADDR, ramRegions } from '../arch/x86_64/layout.js';
import { bootMsrs } from '../arch/x86_64/msrs.js';
import { pvhBootRegs, pvhBootSregs } from '../arch/x86_64/regs.js';
import { setupPvhBoot } from '../boot/setup.js';
import { EventFd } from '../kvm/eventfd.js';
import { checkVmShape } from '../contract/vm-shape.js';
import { REQUIRED_CAPS } from '../kvm/caps.js';
import { Kvm } from '../kvm/kvm.js';
import { loadNative, type NativeAddon, type NativeMapping } from '../kvm/native.js';
import { setImmediateExit } from '../kvm/run.js';
import type { CpuidEntry } from '../kvm/types.js';
import type { VcpuFd } from '../kvm/vcpu-fd.js';
import type { VmFd } from '../kvm/vm-fd.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { HybridVsockServer } from '../virtio/vsock-host/hybrid.js';
import type { VsockHost } from '../virtio/vsock-host/host.js';
import type { DeviceLogLine, DeviceManager, ManagedDevice } from './device-manager.js';
import { createSerialState, SerialState, serialPushInput } from './devices/serial.js';
import { Control, CONTROL_STATE, CONTROL_THREAD_SLOT, CONTROL_WORDS, type VcpuEvent } from './events.js';
import type { VmShellPool } from './shell-pool.js';
import { defaultVcpuPool, type VcpuPool } from './vcpu-pool.js';
import type { VcpuRunRequest } from './vcpu-protocol.js';
import type { VmExitReason } from '../contract/exit-reason.js';
import type { DeviceSpec } from '../contract/device-spec.js';

export type { VmExitReason } from '../contract/exit-reason.js';

export interface VmOptions {
  /** ELF64 vmlinux (or test payload) with a Xen PVH entry note */
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline?: string;
  vcpus?: number;
  memoryMiB?: number;
  /** COM1 output sink */
  console?: (bytes: Uint8Array) => void;
  /** register the test/debug ports (0xe9, 0xea, 0xf4); default true */
  debugPorts?: boolean;
  pool?: VcpuPool;
  /** virtio-mmio devices, in slot order (slot i: 0xd0000000 + i*4K, IRQ 5+i); each runs on its own worker */
  devices?: DeviceSpec[];
  /** warm shells (shell-pool.ts): one of this VM's shape is used when ready */
  shells?: VmShellPool;
}

/** How long each step of createVm() took (ms), in order: 'vm+memory', 'devices', 'pvh-load', 'vcpus', 'workers'. */
export interface CreatePhase {
  name: string;
  ms: number;
}

export interface BootTimerRecord {
  /** CLOCK_MONOTONIC at the guest's write, ns (same clock as process.hrtime.bigint() in any process) */
  monotonicNs: bigint;
  /** since createVm() was called */
  sinceCreateNs: bigint;
  /** this process's user+system CPU time at the write */
  processCpuUs: number;
}

/** The vCPU life cycle as the owner sees it. */
export type VcpuState = 'created' | 'running' | 'paused' | 'stopped';

const PIT_SPEAKER_DUMMY = 1; // KVM_PIT_SPEAKER_DUMMY: port 0x61 handled in the kernel
const MAX_CONSOLE_TEXT = 4 << 20;

// ---- process-wide KVM state: /dev/kvm opened once, the supported CPUID read once
let kvmSingleton: Kvm | undefined;
let supportedCpuid: CpuidEntry[] | undefined;
let kickSignal = 0;

function processKvm(native: NativeAddon): Kvm {
  if (!kvmSingleton) {
    const kvm = Kvm.open(native);
    kvm.requireCapabilities(REQUIRED_CAPS);
    supportedCpuid = kvm.supportedCpuid();
    kickSignal = native.sigrtmin() + 2;
    native.installKickHandler(kickSignal);
    kvmSingleton = kvm;
  }
  return kvmSingleton;
}

interface VcpuSlot {
  id: number;
  fd: VcpuFd;
  run: NativeMapping;
  runView: DataView;
  control: Int32Array;
  worker?: Worker;
  thread?: bigint;
  state: VcpuState;
}

/** Undo stack for partial construction: whatever was made is released in reverse order on failure. */
class Cleanup {
  private readonly steps: Array<() => void> = [];
  push(step: () => void): void {
    this.steps.push(step);
  }
  run(): void {
    while (this.steps.length) {
      try {
        this.steps.pop()!();
      } catch {
        // keep releasing the rest
      }
    }
  }
}

/** What createVm() has made by the time the Vm object exists; the Vm owns all of it from then on. */
interface VmParts {
  native: NativeAddon;
  memory: GuestMemory;
  /** guest RAM mappings, one per region, in region order */
  mappings: NativeMapping[];
  vcpus: VcpuSlot[];
  serial: SerialState;
  /** COM1's irqfd (IRQ 4) */
  serialIrq: EventFd;
  /** CLOCK_MONOTONIC when createVm() was called */
  createdNs: bigint;
  opts: VmOptions;
  /** the VM's ends of the per-vCPU message channels */
  ports: WorkerMessagePort[];
  /** releases everything above in reverse order */
  cleanup: Cleanup;
  pool: VcpuPool;
  virtio: DeviceManager | undefined;
  vsock: VsockHost | undefined;
  hybridVsock: HybridVsockServer | undefined;
}

export class Vm extends EventEmitter {
  consoleText = '';
  debugOutput = '';
  readonly testValues: number[] = [];
  bootTimer: BootTimerRecord | undefined;
  /** where createVm() spent its time */
  createPhases: CreatePhase[] = [];

  private exitReason: VmExitReason | undefined;
  private stopping = false;
  private finished = false;
  private readonly done: Promise<VmExitReason>;
  private resolveDone!: (r: VmExitReason) => void;
  private stoppedCount = 0;
  private pausedCount = 0;
  private pauseWaiters: Array<() => void> = [];

  private readonly native: NativeAddon;
  readonly memory: GuestMemory;
  private readonly mappings: NativeMapping[];
  private readonly vcpus: VcpuSlot[];
  private readonly serial: SerialState;
  private readonly serialIrq: EventFd;
  private readonly createdNs: bigint;
  private readonly opts: VmOptions;
  private readonly ports: WorkerMessagePort[];
  private readonly cleanup: Cleanup;
  private readonly pool: VcpuPool;
  private readonly virtio: DeviceManager | undefined;
  /** host side of the vsock device (connect/listen streams), when the VM has one */
  readonly vsock: VsockHost | undefined;
  private readonly hybridVsock: HybridVsockServer | undefined;

  /** @internal use createVm() */
  constructor(parts: VmParts) {
    super();
    this.native = parts.native;
    this.memory = parts.memory;
    this.mappings = parts.mappings;
    this.vcpus = parts.vcpus;
    this.serial = parts.serial;
    this.serialIrq = parts.serialIrq;
    this.createdNs = parts.createdNs;
    this.opts = parts.opts;
    this.ports = parts.ports;
    this.cleanup = parts.cleanup;
    this.pool = parts.pool;
    this.virtio = parts.virtio;
    this.vsock = parts.vsock;
    this.hybridVsock = parts.hybridVsock;
    this.done = new Promise((r) => (this.resolveDone = r));
    for (const p of this.ports) p.on('message', (ev: VcpuEvent) => this.onEvent(ev));
  }

  get vcpuCount(): number {
    return this.vcpus.length;
  }

  vcpuStates(): VcpuState[] {
    return this.vcpus.map((v) => v.state);
  }

  /** Let every vCPU run. */
  start(): void {
    this.release('created', 'start');
  }

  /** Resolves with the reason once every vCPU stopped and every resource was released. */
  wait(): Promise<VmExitReason> {
    return this.done;
  }

  /** Stop the VM from the host side. */
  stop(): Promise<VmExitReason> {
    this.beginStop({ kind: 'stopped' });
    return this.done;
  }

  /** Pause every vCPU (kicked out of KVM_RUN; they wait on their control word). */
  async pause(): Promise<void> {
    if (this.stopping) throw new Error('VM is stopping');
    const bad = this.vcpus.find((v) => v.state !== 'running');
    if (bad) throw new Error(`vCPU ${bad.id} cannot pause from state ${bad.state}`);
    this.pausedCount = 0;
    const wait = new Promise<void>((r) => this.pauseWaiters.push(r));
    for (const v of this.vcpus) {
      v.state = 'paused';
      this.kick(v, Control.Pause);
    }
    await wait;
  }

  resume(): void {
    this.release('paused', 'resume');
  }

  /** created|paused -> running: the workers wait on their control word, so a store + notify is enough. */
  private release(from: VcpuState, verb: string): void {
    const bad = this.vcpus.find((v) => v.state !== from);
    if (bad) throw new Error(`vCPU ${bad.id} cannot ${verb} from state ${bad.state}`);
    for (const v of this.vcpus) {
      v.state = 'running';
      Atomics.store(v.control, CONTROL_STATE, Control.Run);
      Atomics.notify(v.control, CONTROL_STATE);
    }
  }

  /** Console input (COM1 receive FIFO); returns how many bytes fit. */
  sendConsoleInput(bytes: Uint8Array): number {
    const { accepted, raiseIrq } = serialPushInput(this.serial, bytes);
    if (raiseIrq && !this.finished) this.serialIrq.write(1n);
    return accepted;
  }

  /** The virtio devices (slot, IRQ, host channel), in slot order. */
  get devices(): readonly ManagedDevice[] {
    return this.virtio?.devices ?? [];
  }

  /** Device and transport counters of virtio device `index` (undefined once the VM stopped). */
  deviceMetrics(index: number): Promise<{ device: Record<string, number>; transport: Record<string, number> } | undefined> {
    return this.virtio ? this.virtio.metrics(index) : Promise.resolve(undefined);
  }

  /** Bytes of guest RAM the host has actually backed (mincore). */
  residentGuestBytes(): number {
    if (this.finished) return 0;
    return this.mappings.reduce((n, m) => n + this.native.residentBytes(m.addr, m.size), 0);
  }

  private kick(v: VcpuSlot, to: Control): void {
    // order matters: the control word first, then immediate_exit, then the signal (DESIGN decision 4)
    Atomics.store(v.control, CONTROL_STATE, to);
    Atomics.notify(v.control, CONTROL_STATE);
    setImmediateExit(v.runView, true);
    const published = Atomics.load(new BigInt64Array(v.control.buffer), CONTROL_THREAD_SLOT);
    if (published !== 0n) {
      try {
        this.native.threadKill(BigInt.asUintN(64, published), kickSignal);
      } catch {
        // the thread already left KVM_RUN for good
      }
    }
  }

  private beginStop(reason: VmExitReason): void {
    if (this.stopping) return;
    this.stopping = true;
    this.exitReason = reason;
    for (const v of this.vcpus) {
      v.state = 'stopped';
      this.kick(v, Control.Stop);
    }
  }

  private onEvent(ev: VcpuEvent): void {
    switch (ev.type) {
      case 'ready': {
        const v = this.vcpus[ev.vcpuId];
        if (v) v.thread = ev.thread;
        break;
      }
      case 'console': {
        this.opts.console?.(ev.bytes);
        if (this.consoleText.length < MAX_CONSOLE_TEXT) this.consoleText += Buffer.from(ev.bytes).toString('latin1');
        this.emit('console', ev.bytes);
        break;
      }
      case 'debugcon':
        this.debugOutput += Buffer.from(ev.bytes).toString('latin1');
        break;
      case 'test-value':
        this.testValues.push(ev.value);
        break;
      case 'boot-timer':
        if (!this.bootTimer) {
          this.bootTimer = {
            monotonicNs: ev.monotonicNs,
            sinceCreateNs: ev.monotonicNs - this.createdNs,
            processCpuUs: ev.processCpuUs,
          };
          this.emit('boot-timer', this.bootTimer);
        }
        break;
      case 'stop-request':
        this.beginStop(ev.reason);
        break;
      case 'paused':
        if (++this.pausedCount === this.vcpus.length) {
          for (const w of this.pauseWaiters.splice(0)) w();
        }
        break;
      case 'stopped': {
        const w = this.vcpus[ev.vcpuId]?.worker;
        if (w) this.pool.giveBack(w);
        if (++this.stoppedCount === this.vcpus.length) this.finish();
        break;
      }
    }
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const p of this.ports) p.close();
    this.vsock?.close();
    const hybridClosed = this.hybridVsock ? this.hybridVsock.close().catch(() => undefined) : Promise.resolve();
    const release = (): void => {
      // every vCPU and device worker is gone: nothing wraps the mappings any more
      this.cleanup.run();
      const reason = this.exitReason ?? { kind: 'stopped' };
      this.emit('exit', reason);
      this.resolveDone(reason);
    };
    const devicesStopped = this.virtio ? this.virtio.stop() : Promise.resolve();
    Promise.all([devicesStopped, hybridClosed]).then(release, release);
  }
}

/**
 * Build a microVM: KVM VM, guest RAM, PVH boot state, vCPUs on pooled workers (not yet running: call start()).
 * On any failure everything made so far is released before the error propagates.
 */
/**
 * What createVm() makes before it knows the guest: the KVM VM with its TSS, identity map, irqchip and PIT, fresh
 * guest RAM mapped and registered as memory slots, the COM1 irqfd, and the vCPUs with CPUID, MSRs and LAPIC set
 * (the BSP's registers wait for the kernel's entry point). A VmShellPool makes these ahead of need; a shell is
 * used by one VM only (its RAM is the guest's).
 */
export interface VmShell {
  readonly vcpus: number;
  readonly memoryMiB: number;
  readonly vmFd: VmFd;
  readonly regions: ReturnType<typeof ramRegions>;
  readonly mappings: NativeMapping[];
  readonly serialIrq: EventFd;
  readonly vcpuFds: { fd: VcpuFd; run: NativeMapping }[];
  /** frees everything above, last made first */
  readonly cleanup: Cleanup;
}

/** Builds a VmShell of `nVcpus` vCPUs and `memoryMiB` of RAM; on failure frees what it made and throws. */
export function createShell(nVcpus: number, memoryMiB: number, native: NativeAddon = loadNative()): VmShell {
  checkVmShape(nVcpus, memoryMiB);
  const kvm = processKvm(native);
  const cleanup = new Cleanup();
  try {
    const vmFd = kvm.createVm();
    cleanup.push(() => vmFd.close());
    vmFd.setTssAddr(KVM_TSS_ADDR);
    vmFd.setIdentityMapAddr(IDENTITY_MAP_ADDR);
    vmFd.createIrqchip();
    vmFd.createPit2(PIT_SPEAKER_DUMMY);

    // guest RAM: one anonymous mapping per region (below the MMIO gap, then above 4 GiB)
    const mappings: NativeMapping[] = [];
    const regions = ramRegions(memoryMiB * 1024 * 1024);
    regions.forEach((r, slot) => {
      const m = native.mmapAnonymous(r.size, false);
      mappings.push(m);
      cleanup.push(() => native.munmap(m.addr));
      vmFd.setUserMemoryRegion({ slot, flags: 0, guestPhysAddr: r.base, size: r.size, userspaceAddr: m.addr });
    });

    // COM1 interrupt line: an irqfd on IRQ 4 that the vCPU workers signal
    const serialIrq = EventFd.create(native);
    cleanup.push(() => serialIrq.close());
    vmFd.irqfd(serialIrq, COM1_IRQ);

    const vcpuFds: { fd: VcpuFd; run: NativeMapping }[] = [];
    for (let id = 0; id < nVcpus; id++) {
      const fd = vmFd.createVcpu(id);
      cleanup.push(() => fd.close());
      fd.setCpuid2(filterCpuid(supportedCpuid!, { vcpuId: id, nVcpus }));
      fd.setMsrs(bootMsrs());
      fd.setLapic(setLint(fd.getLapic()));
      vcpuFds.push({ fd, run: fd.mapRun() }); // the run page is unmapped by fd.close()
    }
    return { vcpus: nVcpus, memoryMiB, vmFd, regions, mappings, serialIrq, vcpuFds, cleanup };
  } catch (e) {
    cleanup.run();
    throw e;
  }
}

export async function createVm(opts: VmOptions, native: NativeAddon = loadNative()): Promise<Vm> {
  const createdNs = process.hrtime.bigint();
  const nVcpus = opts.vcpus ?? 1;
  const memoryMiB = opts.memoryMiB ?? 128;
  const pool = opts.pool ?? defaultVcpuPool;
  const workers: Worker[] = [];
  let vmRef: Vm | undefined;
  let virtio: DeviceManager | undefined;
  let vsock: VsockHost | undefined;
  let hybrid: HybridVsockServer | undefined;
  const phases: CreatePhase[] = [];
  let last = createdNs;
  const mark = (name: string): void => {
    const now = process.hrtime.bigint();
    phases.push({ name, ms: Number(now - last) / 1e6 });
    last = now;
  };
  // a warm shell of this shape from the caller's pool, else one made now (the 'vm+memory' phase either way)
  const shell = opts.shells?.take(nVcpus, memoryMiB) ?? createShell(nVcpus, memoryMiB, native);
  const { vmFd, regions, mappings, serialIrq, cleanup } = shell;
  try {
    const memory = new GuestMemory(regions.map((r, i) => ({ base: r.base, size: r.size, buffer: mappings[i]!.buffer })));
    mark('vm+memory');

    // virtio devices: their workers wrap guest RAM, so they are stopped before it is unmapped (finish())
    let cmdline = opts.cmdline ?? '';
    if (opts.devices && opts.devices.length > 0) {
      const onLog = (l: DeviceLogLine): void => {
        vmRef?.emit('device-log', l);
      };
      // the virtio stack is loaded only by VMs that have devices (a bare VM starts without it)
      const [{ DeviceManager }, { VsockHost }, { serveHybridVsock }] = await Promise.all([
        import('./device-manager.js'),
        import('../virtio/vsock-host/host.js'),
        import('../virtio/vsock-host/hybrid.js'),
      ]);
      virtio = await DeviceManager.create(
        native, vmFd, regions.map((r, i) => ({ base: r.base, size: r.size, mapping: mappings[i]! })), opts.devices, onLog,
      );
      cmdline = [cmdline, virtio.cmdline()].filter((x) => x !== '').join(' ');
      // vsock: the host end of the device worker's channel becomes vm.vsock (+ the hybrid unix socket)
      const vdev = virtio.devices.find((d) => d.spec.kind === 'vsock');
      if (vdev) {
        vsock = new VsockHost(vdev.hostPort);
        if (vdev.spec.kind === 'vsock' && vdev.spec.udsPath !== undefined) hybrid = await serveHybridVsock(vsock, vdev.spec.udsPath);
      }
    }

    mark('devices');
    const boot = setupPvhBoot(memory, {
      kernel: opts.kernel,
      ...(opts.initrd ? { initrd: opts.initrd } : {}),
      cmdline,
      nVcpus,
    });

    mark('pvh-load');
    const serialSab = createSerialState();

    const vcpus: VcpuSlot[] = [];
    for (const [id, { fd, run }] of shell.vcpuFds.entries()) {
      if (id === 0) {
        // the BSP enters the kernel; APs wait for INIT/SIPI in the in-kernel LAPIC
        fd.setSregs(pvhBootSregs(fd.getSregs()));
        fd.setRegs(pvhBootRegs(boot.entry, boot.startInfo));
      }
      vcpus.push({
        id,
        fd,
        run,
        runView: new DataView(run.buffer),
        control: new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4)),
        state: 'created',
      });
    }

    mark('vcpus');
    // one port per vCPU: each worker posts its events there, the VM listens on the other ends
    const channels = vcpus.map(() => new MessageChannel());
    const vm = new Vm({
      native,
      memory,
      mappings,
      vcpus,
      serial: new SerialState(serialSab),
      serialIrq,
      createdNs,
      opts,
      ports: channels.map((c) => c.port1),
      cleanup,
      pool,
      virtio,
      vsock,
      hybridVsock: hybrid,
    });
    vmRef = vm;
    for (let i = 0; i < vcpus.length; i++) workers.push(await pool.acquire());
    vcpus.forEach((v, i) => {
      v.worker = workers[i]!;
      const req: VcpuRunRequest = {
        type: 'run',
        vcpuId: v.id,
        vcpuFd: v.fd.fd,
        runAddr: v.run.addr,
        runSize: v.run.size,
        control: v.control.buffer as SharedArrayBuffer,
        serial: serialSab,
        serialIrqFd: serialIrq.fd,
        debugPorts: opts.debugPorts ?? true,
        virtio: virtio ? virtio.vcpuSlots() : [],
        port: channels[i]!.port2,
      };
      v.worker.postMessage(req, [req.port]);
    });
    mark('workers');
    vm.createPhases = phases;
    return vm;
  } catch (e) {
    // workers that were handed nothing go straight back
    for (const w of workers) pool.giveBack(w);
    vsock?.close();
    if (hybrid) await hybrid.close().catch(() => undefined);
    if (virtio) await virtio.stop();
    cleanup.run();
    throw e;
  }
}

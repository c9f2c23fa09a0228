// The virtio-mmio device manager: gives device i the slot VIRTIO_MMIO_START + i*4K and IRQ/GSI 5+i, wires its
// eventfds into KVM (an irqfd, one ioeventfd per queue on QueueNotify with datamatch = queue index), starts
// its device worker, and produces what the rest of the VM needs: the kernel command line entries
// (`virtio_mmio.device=4K@0x<base>:<irq>`) and the transport slots every vCPU worker maps on its MMIO bus.
// stop() ends the workers and closes every fd it made; only then may guest memory be unmapped.

import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { VIRTIO_MMIO_SLOT_SIZE, VIRTIO_MMIO_START } from '../arch/x86_64/layout.js';
import { EventFd } from '../kvm/eventfd.js';
import type { NativeAddon, NativeMapping } from '../kvm/native.js';
import type { VmFd } from '../kvm/vm-fd.js';
import { VIRTIO_INT_CONFIG } from '../virtio/device.js';
import { REG_QUEUE_NOTIFY } from '../virtio/mmio/regs.js';
import { TransportState } from '../virtio/mmio/state.js';
import type { DeviceWorkerCommand, DeviceWorkerEvent, DeviceWorkerInit } from '../virtio/worker/protocol.js';
import { type DeviceSpec, deviceName } from '../contract/device-spec.js';
import { entryUrl } from '../contract/entry-point.js';

/** First GSI handed to virtio devices (0-4 are the PIT, keyboard, cascade, COM2, COM1). */
export const VIRTIO_FIRST_IRQ = 5;
/** IRQs 5..23 on the in-kernel IOAPIC (24 pins), skipping none: at most 19 devices. */
export const MAX_VIRTIO_DEVICES = 19;
const STOP_GRACE_MS = 2000;

/** What a vCPU worker needs to map one device on its MMIO bus (structured-cloneable). */
export interface VirtioMmioSlot {
  name: string;
  base: number;
  state: SharedArrayBuffer;
  controlFd: number;
  queueFds: number[];
}

export interface ManagedDevice {
  index: number;
  name: string;
  spec: DeviceSpec;
  base: number;
  irq: number;
  /** the owner's end of the device worker's host channel (vsock streams and the like) */
  hostPort: MessagePort;
  state: TransportState;
}

export interface DeviceLogLine {
  device: string;
  level: 'warn' | 'error';
  message: string;
}

export class DeviceStartFailed extends Error {
  constructor(name: string, why: string) {
    super(`${name} could not start: ${why}`);
    this.name = 'DeviceStartFailed';
  }
}

interface Slot extends ManagedDevice {
  worker: Worker;
  irqFd: EventFd;
  controlFd: EventFd;
  queueFds: EventFd[];
  exited: Promise<void>;
}

export class DeviceManager {
  private stopped = false;

  private constructor(
    private readonly slots: Slot[],
    private readonly vmFd: VmFd,
  ) {}

  /**
   * Start one worker per spec and wire it into the VM. Resolves once every device published its identity;
   * on any failure everything made so far is released and the error propagates.
   */
  static async create(
    native: NativeAddon,
    vmFd: VmFd,
    ram: Array<{ base: number; size: number; mapping: NativeMapping }>,
    specs: readonly DeviceSpec[],
    onLog: (line: DeviceLogLine) => void = () => undefined,
    workerScript: URL = entryUrl('device-worker', new URL('../virtio/worker/device-worker.js', import.meta.url)),
  ): Promise<DeviceManager> {
    if (specs.length > MAX_VIRTIO_DEVICES) {
      throw new DeviceStartFailed('virtio', `${specs.length} devices asked for, at most ${MAX_VIRTIO_DEVICES} fit the IOAPIC`);
    }
    const mgr = new DeviceManager([], vmFd);
    try {
      await Promise.all(specs.map((spec, index) => mgr.startOne(native, vmFd, ram, spec, index, onLog, workerScript)));
      mgr.slots.sort((a, b) => a.index - b.index);
      return mgr;
    } catch (e) {
      await mgr.stop();
      throw e;
    }
  }

  private async startOne(
    native: NativeAddon,
    vmFd: VmFd,
    ram: Array<{ base: number; size: number; mapping: NativeMapping }>,
    spec: DeviceSpec,
    index: number,
    onLog: (line: DeviceLogLine) => void,
    workerScript: URL,
  ): Promise<void> {
    const name = `${deviceName(spec)}@${index}`;
    const base = VIRTIO_MMIO_START + index * VIRTIO_MMIO_SLOT_SIZE;
    const irq = VIRTIO_FIRST_IRQ + index;
    const state = TransportState.create();
    const irqFd = EventFd.create(native);
    const controlFd = EventFd.create(native);
    const channel = new MessageChannel();
    const init: DeviceWorkerInit = {
      spec,
      regions: ram.map((r) => ({ base: r.base, size: r.size, addr: r.mapping.addr })),
      state: state.sab,
      controlFd: controlFd.fd,
      irqFd: irqFd.fd,
      hostPort: channel.port2,
    };
    const worker = new Worker(workerScript, { workerData: init, transferList: [channel.port2] });
    const exited = new Promise<void>((r) => worker.once('exit', () => r()));
    const slot: Slot = { index, name, spec, base, irq, hostPort: channel.port1, state, worker, irqFd, controlFd, queueFds: [], exited };
    this.slots.push(slot);
    vmFd.irqfd(irqFd, irq);

    const ready = await new Promise<{ queues: number }>((resolve, reject) => {
      worker.on('message', (ev: DeviceWorkerEvent) => {
        if (ev.type === 'ready') resolve(ev);
        else if (ev.type === 'failed') reject(new DeviceStartFailed(name, ev.message));
        else if (ev.type === 'log') onLog({ device: name, level: ev.level, message: ev.message });
      });
      worker.on('error', (err) => {
        // an exception escaped the worker: the device is gone; the guest sees DEVICE_NEEDS_RESET and a
        // configuration interrupt (virtio 1.2 §2.1.2), the VM and the other devices go on
        state.setNeedsReset();
        if (!this.stopped) {
          state.raiseIsr(VIRTIO_INT_CONFIG);
          try {
            irqFd.write(1n);
          } catch {
            // closed meanwhile
          }
        }
        onLog({ device: name, level: 'error', message: `device worker died: ${err.message}` });
        reject(new DeviceStartFailed(name, err.message));
      });
      worker.once('exit', () => reject(new DeviceStartFailed(name, 'the device worker exited')));
    });
    for (let q = 0; q < ready.queues; q++) {
      const ev = EventFd.create(native);
      slot.queueFds.push(ev);
      // virtio 1.2 §4.2.2 QueueNotify: the driver writes the queue index (32 bits) at base + 0x50
      vmFd.ioeventfd(ev, { addr: base + REG_QUEUE_NOTIFY, len: 4, datamatch: BigInt(q) });
    }
    worker.postMessage({ type: 'start', queueFds: slot.queueFds.map((e) => e.fd) } satisfies DeviceWorkerCommand);
  }

  get devices(): readonly ManagedDevice[] {
    return this.slots;
  }

  /** Kernel command line entries, one per device (Documentation/admin-guide/kernel-parameters.txt virtio_mmio.device). */
  cmdline(): string {
    return this.slots.map((s) => `virtio_mmio.device=4K@0x${s.base.toString(16)}:${s.irq}`).join(' ');
  }

  /** What each vCPU worker maps on its MMIO bus. */
  vcpuSlots(): VirtioMmioSlot[] {
    return this.slots.map((s) => ({
      name: s.name,
      base: s.base,
      state: s.state.sab,
      controlFd: s.controlFd.fd,
      queueFds: s.queueFds.map((e) => e.fd),
    }));
  }

  /** Device and transport counters of device `index` (asks its worker). */
  metrics(index: number): Promise<{ device: Record<string, number>; transport: Record<string, number> } | undefined> {
    const s = this.slots[index];
    if (!s || this.stopped) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const onMsg = (ev: DeviceWorkerEvent): void => {
        if (ev.type !== 'metrics') return;
        s.worker.off('message', onMsg);
        resolve({ device: ev.device, transport: ev.transport });
      };
      s.worker.on('message', onMsg);
      s.exited.then(() => resolve(undefined), () => resolve(undefined));
      s.worker.postMessage({ type: 'metrics' } satisfies DeviceWorkerCommand);
    });
  }

  /** End every device worker (graceful 'stop', then terminate), then close every fd. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(
      this.slots.map(async (s) => {
        const said = new Promise<void>((r) => {
          s.worker.on('message', (ev: DeviceWorkerEvent) => {
            if (ev.type === 'stopped') r();
          });
        });
        try {
          s.worker.postMessage({ type: 'stop' } satisfies DeviceWorkerCommand);
        } catch {
          // already gone
        }
        await Promise.race([said, s.exited, new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref())]);
        await s.worker.terminate();
        await s.exited;
      }),
    );
    // no thread watches or wraps anything now
    for (const s of this.slots) {
      s.hostPort.close();
      for (const ev of s.queueFds) {
        try {
          this.vmFd.ioeventfd(ev, { addr: s.base + REG_QUEUE_NOTIFY, len: 4, datamatch: BigInt(s.queueFds.indexOf(ev)), deassign: true });
        } catch {
          // the VM fd may already be closed: its ioeventfds went with it
        }
        ev.close();
      }
      try {
        this.vmFd.irqfd(s.irqFd, s.irq, { deassign: true });
      } catch {
        // as above
      }
      s.irqFd.close();
      s.controlFd.close();
    }
  }
}

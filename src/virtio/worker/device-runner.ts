// The device worker's logic, free of any thread or fd: it reconciles the device with the shared transport
// state when the control eventfd fires (reset epoch, DRIVER_OK -> validate queues and activate, driver
// config writes) and runs a queue when its ioeventfd fires. Any DeviceBroken (a malformed queue or chain)
// marks the device DEVICE_NEEDS_RESET and raises a configuration interrupt (virtio 1.2 §2.1.2); any other
// exception is a bug in the device, handled the same way and logged. The process and other devices go on.

import type { GuestMemory } from '../../memory/guest-memory.js';
import { DeviceBroken, VIRTIO_INT_CONFIG, VIRTIO_INT_USED_RING, type Interrupt, type VirtioDevice } from '../device.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_STATUS_DEVICE_NEEDS_RESET, VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_FAILED } from '../ids.js';
import { SplitQueue } from '../queue.js';
import type { TransportState } from '../mmio/state.js';

/** Where a device worker's interrupts go (irqfd write in the VMM, a counter in tests). */
export type IrqLine = () => void;
export type LogLine = (level: 'warn' | 'error', msg: string) => void;

export interface RunnerCounters {
  activations: number;
  resets: number;
  notifications: number;
  interrupts: number;
  broken: number;
  bugs: number;
  configWrites: number;
}

export class DeviceRunner {
  private active = false;
  private broken = false;
  private epoch: number;
  private queueCount = 0;
  readonly counters: RunnerCounters = { activations: 0, resets: 0, notifications: 0, interrupts: 0, broken: 0, bugs: 0, configWrites: 0 };
  /** why the device last went broken (for tests and logs) */
  lastError: Error | undefined;
  private readonly interrupt: Interrupt;

  constructor(
    readonly device: VirtioDevice,
    readonly state: TransportState,
    private readonly mem: GuestMemory,
    private readonly irq: IrqLine,
    private readonly log: LogLine = () => undefined,
  ) {
    this.epoch = state.resetEpoch;
    this.interrupt = {
      signalUsed: () => this.raise(VIRTIO_INT_USED_RING),
      signalConfig: () => {
        this.republishConfig();
        this.raise(VIRTIO_INT_CONFIG);
      },
    };
  }

  /** Publish the device's identity (id, features + VERSION_1, queue sizes, config) into the shared state. */
  publishIdentity(): void {
    this.state.publishIdentity({
      deviceType: this.device.deviceType,
      features: this.device.availableFeatures | VIRTIO_F_VERSION_1,
      queueMaxSizes: this.device.queueMaxSizes,
      config: this.device.configSpace(),
    });
  }

  get isActive(): boolean {
    return this.active;
  }

  get isBroken(): boolean {
    return this.broken;
  }

  /** The control eventfd fired: catch up with whatever the driver did since (level-triggered, coalescing). */
  onControl(): void {
    for (const w of this.state.takeConfigWrites()) {
      this.counters.configWrites++;
      this.guard('config write', () => {
        this.device.writeConfig(w.offset, w.data);
        this.republishConfig();
      });
    }
    // one consistent snapshot of epoch, status and queue registers
    const snap = this.state.locked(() => ({
      epoch: this.state.resetEpoch,
      status: this.state.status,
      features: this.state.driverFeatures(),
      queues: this.state.queueRegsLocked(),
    }));
    if (snap.epoch !== this.epoch) {
      this.epoch = snap.epoch;
      this.doReset();
    }
    const wantsActive = (snap.status & VIRTIO_STATUS_DRIVER_OK) !== 0 &&
      (snap.status & (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED)) === 0;
    if (wantsActive && !this.active && !this.broken) this.activate(snap.features, snap.queues);
  }

  /** Queue `index`'s ioeventfd fired (already read and cleared by the caller). */
  onQueue(index: number): void {
    this.counters.notifications++;
    if (!this.active || this.broken || index >= this.queueCount) return; // before DRIVER_OK / after a failure: ignored
    this.guard(`queue ${index}`, () => this.device.processQueue(index));
  }

  /** The VM is going away: leave the device inactive. */
  shutdown(): void {
    if (this.active) this.guard('reset', () => this.device.reset());
    this.active = false;
  }

  private activate(features: bigint, regs: ReturnType<TransportState['queueRegsLocked']>): void {
    this.guard('activation', () => {
      // the queues the driver made ready, which must be the first k (ActivateContext: in queue index order)
      const ready = regs.filter((q) => q.ready).length;
      if (ready === 0) throw new DeviceBroken('DRIVER_OK with no queue ready');
      for (let i = 0; i < ready; i++) {
        if (!regs[i]!.ready) throw new DeviceBroken(`queue ${i} is not ready but queue ${ready} is: queues must be set up in order`);
      }
      const eventIdx = (features & VIRTIO_RING_F_EVENT_IDX) !== 0n;
      const indirect = (features & VIRTIO_RING_F_INDIRECT_DESC) !== 0n;
      const queues = regs.slice(0, ready).map((q, i) =>
        SplitQueue.create(this.mem, { size: q.size, descTable: q.descTable, availRing: q.availRing, usedRing: q.usedRing }, {
          maxSize: this.device.queueMaxSizes[i]!,
          eventIdx,
          indirect,
        }),
      );
      this.device.activate({
        mem: this.mem,
        queues,
        interrupt: this.interrupt,
        ackedFeatures: features,
        fail: (e) => this.markBroken(e),
      });
      this.active = true;
      this.queueCount = ready;
      this.counters.activations++;
      // notifications that arrived before DRIVER_OK were dropped: look at every queue once
      for (let i = 0; i < ready && this.active && !this.broken; i++) this.device.processQueue(i);
    });
  }

  private doReset(): void {
    this.counters.resets++;
    if (this.active) this.guard('reset', () => this.device.reset());
    this.active = false;
    this.broken = false;
    this.queueCount = 0;
    this.lastError = undefined;
    this.republishConfig();
  }

  private republishConfig(): void {
    this.state.publishConfig(this.device.configSpace());
  }

  private raise(bits: number): void {
    this.counters.interrupts++;
    this.state.raiseIsr(bits);
    this.irq();
  }

  /** Run `f`; a failure makes the device broken (NEEDS_RESET + config interrupt) instead of escaping. */
  private guard(what: string, f: () => void): void {
    try {
      f();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      // InvalidQueue (queue.ts) is the guest's fault like any DeviceBroken
      if (!(err instanceof DeviceBroken) && err.name !== 'InvalidQueue') {
        this.counters.bugs++;
        this.log('error', `virtio device ${this.device.deviceType}: ${what} threw ${err.name}: ${err.message} (a device bug)`);
      } else {
        this.log('warn', `virtio device ${this.device.deviceType}: ${what}: ${err.message}: device needs reset`);
      }
      this.markBroken(err);
    }
  }

  private markBroken(err: Error): void {
    this.lastError = err;
    if (this.broken) return;
    this.broken = true;
    this.counters.broken++;
    this.state.setNeedsReset();
    // §2.1.2: with DRIVER_OK set, the device MUST send a configuration change notification
    if (this.state.status & VIRTIO_STATUS_DRIVER_OK) this.raise(VIRTIO_INT_CONFIG);
  }
}

// The device worker's logic, free of any thread or fd: it reconciles the device with the shared transport
// state when the control eventfd fires (reset epoch, DRIVER_OK -> validate queues and activate, driver
// config writes) and runs a queue when its ioeventfd fires. The device itself, its activation and the guard
// around it are the transport-agnostic DeviceHost (../device-host.ts); what is MMIO's is here: a device that
// goes broken gets DEVICE_NEEDS_RESET and a configuration interrupt (virtio 1.2 §2.1.2), and the process
// and other devices go on.

import type { GuestMemory } from '../../memory/guest-memory.js';
import { DeviceHost, type DeviceLog } from '../device-host.js';
import { DeviceBroken, VIRTIO_INT_CONFIG, VIRTIO_INT_USED_RING, type VirtioDevice } from '../device.js';
import { VIRTIO_F_VERSION_1, VIRTIO_STATUS_DEVICE_NEEDS_RESET, VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_FAILED } from '../ids.js';
import type { TransportState } from '../mmio/state.js';

/** Where a device worker's interrupts go (irqfd write in the VMM, a counter in tests). */
export type IrqLine = () => void;
export type LogLine = DeviceLog;

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
  private epoch: number;
  private readonly host: DeviceHost;
  /** the MMIO side's own counts; activations, broken and bugs are the DeviceHost's */
  private readonly tally = { resets: 0, notifications: 0, interrupts: 0, configWrites: 0 };

  constructor(
    readonly device: VirtioDevice,
    readonly state: TransportState,
    private readonly mem: GuestMemory,
    private readonly irq: IrqLine,
    log: LogLine = () => undefined,
  ) {
    this.epoch = state.resetEpoch;
    this.host = new DeviceHost(device, {
      interrupt: {
        signalUsed: () => this.raise(VIRTIO_INT_USED_RING),
        signalConfig: () => {
          this.republishConfig();
          this.raise(VIRTIO_INT_CONFIG);
        },
      },
      onBroken: () => {
        this.state.setNeedsReset();
        // §2.1.2: with DRIVER_OK set, the device MUST send a configuration change notification
        if (this.state.status & VIRTIO_STATUS_DRIVER_OK) this.raise(VIRTIO_INT_CONFIG);
      },
      log,
      logPrefix: 'virtio device',
      brokenMeans: 'device needs reset',
    });
  }

  /** Transport and device-host counters, in one flat record (the worker's 'metrics' answer). */
  get counters(): RunnerCounters {
    const h = this.host.counters;
    const t = this.tally;
    return {
      activations: h.activations,
      resets: t.resets,
      notifications: t.notifications,
      interrupts: t.interrupts,
      broken: h.broken,
      bugs: h.bugs,
      configWrites: t.configWrites,
    };
  }

  /** why the device last went broken (for tests and logs) */
  get lastError(): Error | undefined {
    return this.host.lastError;
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
    return this.host.isActive;
  }

  get isBroken(): boolean {
    return this.host.isBroken;
  }

  /** The control eventfd fired: catch up with whatever the driver did since (level-triggered, coalescing). */
  onControl(): void {
    for (const w of this.state.takeConfigWrites()) {
      this.tally.configWrites++;
      this.host.guard('config write', () => {
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
    if (wantsActive && !this.host.isActive && !this.host.isBroken) this.activate(snap.features, snap.queues);
  }

  /** Queue `index`'s ioeventfd fired (already read and cleared by the caller). */
  onQueue(index: number): void {
    this.tally.notifications++;
    this.host.process(index); // before DRIVER_OK / after a failure / an unknown queue: ignored
  }

  /** The VM is going away: leave the device inactive. */
  shutdown(): void {
    this.host.deactivate();
  }

  private activate(features: bigint, regs: ReturnType<TransportState['queueRegsLocked']>): void {
    this.host.activate(() => {
      // the queues the driver made ready, which must be the first k (ActivateContext: in queue index order)
      const ready = regs.filter((q) => q.ready).length;
      if (ready === 0) throw new DeviceBroken('DRIVER_OK with no queue ready');
      for (let i = 0; i < ready; i++) {
        if (!regs[i]!.ready) throw new DeviceBroken(`queue ${i} is not ready but queue ${ready} is: queues must be set up in order`);
      }
      return {
        mem: this.mem,
        ackedFeatures: features,
        rings: regs.slice(0, ready).map((q, i) => ({
          layout: { size: q.size, descTable: q.descTable, availRing: q.availRing, usedRing: q.usedRing },
          maxSize: this.device.queueMaxSizes[i]!,
        })),
      };
    });
  }

  private doReset(): void {
    this.tally.resets++;
    this.host.deactivate();
    this.host.recover();
    this.republishConfig();
  }

  private republishConfig(): void {
    this.state.publishConfig(this.device.configSpace());
  }

  private raise(bits: number): void {
    this.tally.interrupts++;
    this.state.raiseIsr(bits);
    this.irq();
  }
}

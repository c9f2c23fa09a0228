// One virtio device as its transport hosts it, whatever the transport is (the virtio-mmio device worker,
// src/virtio/worker/device-runner.ts, or a vhost-user session, src/vhost-user/session.ts): the device, its
// activation with guest memory, validated queues and the transport's interrupt line, and the guard around
// every call into it. A DeviceBroken (a malformed queue or chain: the guest's fault) makes the device broken;
// any other exception is a bug in the device, counted, logged and handled the same way. Either way the
// transport is told once (onBroken: DEVICE_NEEDS_RESET + a configuration interrupt on MMIO, virtio 1.2
// §2.1.2; the rings' err eventfds on vhost-user), the device runs nothing more until the transport clears
// the failure (driver reset, rings restarted), and the process and other devices go on.
//
// What stays with each transport: where the ring addresses come from and when the driver wants the device
// running (the MMIO TransportState and reset epochs; the vhost-user messages, memory table and fds).

import type { GuestMemory } from '../memory/guest-memory.js';
import { DeviceBroken, type Interrupt, type VirtioDevice } from './device.js';
import { VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from './ids.js';
import { SplitQueue, type QueueLayout, type SplitQueueOptions } from './queue.js';

export type DeviceLog = (level: 'warn' | 'error', msg: string) => void;

/** One ring the driver set up, as the transport found it; SplitQueue.create validates it at activation. */
export interface RingSetup {
  layout: QueueLayout;
  /** the QueueNumMax the driver was told for this ring */
  maxSize: number;
  /** positions of a ring that already ran (vhost-user SET_VRING_BASE); default: a fresh ring */
  start?: SplitQueueOptions['start'];
}

/** What the device is activated with. */
export interface Activation {
  mem: GuestMemory;
  /** features the driver accepted; EVENT_IDX and INDIRECT_DESC decide how the queues run */
  ackedFeatures: bigint;
  /** the rings to run, in queue index order (the device gets the first rings.length queues) */
  rings: RingSetup[];
}

export interface DeviceHostOptions {
  /** the transport's interrupt line, handed to the device at activation */
  interrupt: Interrupt;
  /** the device just went broken (called once per failure): tell the driver */
  onBroken(err: Error): void;
  log?: DeviceLog;
  /** names the device in log lines: `${logPrefix} ${deviceType}: ...` ('virtio device', 'vhost-user device') */
  logPrefix: string;
  /** what a broken device means for the driver, ending the warning line ('device needs reset') */
  brokenMeans: string;
}

export interface DeviceHostCounters {
  activations: number;
  /** times the device went broken (a guest error or a device bug) */
  broken: number;
  /** exceptions other than DeviceBroken / InvalidQueue: bugs in the device */
  bugs: number;
}

export class DeviceHost {
  private queues: SplitQueue[] | undefined;
  private broken = false;
  /** why the device last failed (tests, logs); cleared by recover() */
  lastError: Error | undefined;
  readonly counters: DeviceHostCounters = { activations: 0, broken: 0, bugs: 0 };
  private readonly log: DeviceLog;

  constructor(
    readonly device: VirtioDevice,
    private readonly opts: DeviceHostOptions,
  ) {
    this.log = opts.log ?? (() => undefined);
  }

  get isActive(): boolean {
    return this.queues !== undefined;
  }

  get isBroken(): boolean {
    return this.broken;
  }

  /** How many queues the active device runs (0 when inactive). */
  get queueCount(): number {
    return this.queues?.length ?? 0;
  }

  /**
   * Activate the device with the rings `plan` describes (it may throw DeviceBroken: rings set up wrong), then
   * run every queue once, since notifications that came before activation were dropped. A failure leaves the
   * device broken and inactive. Only for an inactive, unbroken device.
   */
  activate(plan: () => Activation): void {
    if (this.queues !== undefined || this.broken) return;
    this.guard('activation', () => {
      const p = plan();
      const eventIdx = (p.ackedFeatures & VIRTIO_RING_F_EVENT_IDX) !== 0n;
      const indirect = (p.ackedFeatures & VIRTIO_RING_F_INDIRECT_DESC) !== 0n;
      // InvalidQueue: virtio 1.2 §2.7 (size, alignment, ranges in guest memory), checked once here
      const queues = p.rings.map((r) =>
        SplitQueue.create(p.mem, r.layout, { maxSize: r.maxSize, eventIdx, indirect, start: r.start }),
      );
      this.device.activate({
        mem: p.mem,
        queues,
        interrupt: this.opts.interrupt,
        ackedFeatures: p.ackedFeatures,
        fail: (e) => this.markBroken(e),
      });
      this.queues = queues;
      this.counters.activations++;
      for (let i = 0; i < queues.length && this.queues !== undefined && !this.broken; i++) this.device.processQueue(i);
    });
  }

  /** Queue `index` was notified: run it, unless the device is inactive or broken or has no such queue. */
  process(index: number, what = `queue ${index}`): void {
    if (this.queues === undefined || this.broken || index >= this.queues.length) return;
    this.guard(what, () => this.device.processQueue(index));
  }

  /**
   * Stop the device (device.reset()) if it runs; returns the queues it ran, so the transport can read their
   * positions. A reset that throws is a device bug: counted and logged, the device is inactive anyway.
   */
  deactivate(): SplitQueue[] | undefined {
    const queues = this.queues;
    if (queues === undefined) return undefined;
    this.queues = undefined;
    try {
      this.device.reset();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.counters.bugs++;
      this.log('error', `${this.opts.logPrefix} ${this.device.deviceType}: reset threw ${err.name}: ${err.message} (a device bug)`);
    }
    return queues;
  }

  /** The driver reset or restarted the rings: a broken device may be activated again. */
  recover(): void {
    this.broken = false;
    this.lastError = undefined;
  }

  /** Run `f` (a call into the device); a failure makes the device broken instead of escaping. */
  guard(what: string, f: () => void): void {
    try {
      f();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      const prefix = `${this.opts.logPrefix} ${this.device.deviceType}`;
      // InvalidQueue (queue.ts) is the guest's fault like any DeviceBroken
      if (!(err instanceof DeviceBroken) && err.name !== 'InvalidQueue') {
        this.counters.bugs++;
        this.log('error', `${prefix}: ${what} threw ${err.name}: ${err.message} (a device bug)`);
      } else {
        this.log('warn', `${prefix}: ${what}: ${err.message}: ${this.opts.brokenMeans}`);
      }
      this.markBroken(err);
    }
  }

  private markBroken(err: Error): void {
    this.lastError = err;
    if (this.broken) return;
    this.broken = true;
    this.counters.broken++;
    this.opts.onBroken(err);
  }
}

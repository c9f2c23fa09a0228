// The virtio-mmio register model (virtio 1.2 §4.2.2), one instance per device per vCPU worker, all over
// the device's shared TransportState. It runs on vCPU threads, so it only moves register values: a status
// change or a configuration write signals the device worker through the device's control eventfd, and a
// QueueNotify that the ioeventfd did not catch is forwarded to the queue's eventfd. No device code runs
// here (DESIGN decision 3).

import { VIRTIO_F_VERSION_1, VIRTIO_STATUS_ACKNOWLEDGE, VIRTIO_STATUS_DEVICE_NEEDS_RESET, VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_FEATURES_OK } from '../ids.js';
import * as R from './regs.js';
import {
  CONFIG_MAX, Q_DESC_HI, Q_DESC_LO, Q_DEVICE_HI, Q_DEVICE_LO, Q_DRIVER_HI, Q_DRIVER_LO, Q_NUM, Q_NUM_MAX, Q_READY,
  TransportState, W_CONFIG_GENERATION, W_CONFIG_LEN, W_DEVICE_FEATURES_HI, W_DEVICE_FEATURES_LO, W_DEVICE_FEATURES_SEL,
  W_DEVICE_ID, W_DRIVER_FEATURES_HI, W_DRIVER_FEATURES_LO, W_DRIVER_FEATURES_SEL, W_ISR, W_QUEUE_SEL, W_RESET_EPOCH,
  W_NOTIFY_EXITS, W_STATUS, W_VENDOR_ID,
} from './state.js';
import type { VmExitReason } from '../../contract/exit-reason.js';
import type { IoDevice } from '../../contract/io-device.js';

/** How the register model reaches the device worker (eventfd writes in the VMM, plain counters in tests). */
export interface TransportSignals {
  /** status or configuration changed: the device worker reconciles with the shared state */
  control(): void;
  /** QueueNotify arrived as an MMIO exit (the ioeventfd did not match): kick queue `index` */
  queue(index: number): void;
}

function u32(data: Uint8Array): number {
  return (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0;
}

function putU32(data: Uint8Array, v: number): void {
  data[0] = v & 0xff;
  data[1] = (v >>> 8) & 0xff;
  data[2] = (v >>> 16) & 0xff;
  data[3] = (v >>> 24) & 0xff;
}

export class MmioTransport implements IoDevice {
  readonly state: TransportState;

  constructor(
    state: TransportState | SharedArrayBuffer,
    private readonly signals: TransportSignals,
  ) {
    this.state = state instanceof TransportState ? state : new TransportState(state);
  }

  read(offset: number, data: Uint8Array): void {
    if (offset >= R.REG_CONFIG) {
      this.readConfig(offset - R.REG_CONFIG, data);
      return;
    }
    // virtio 1.2 §4.2.2.2: the driver MUST use 32-bit wide and aligned accesses to the control registers
    if (data.length !== 4 || (offset & 3) !== 0) {
      data.fill(0);
      return;
    }
    putU32(data, this.readRegister(offset));
  }

  write(offset: number, data: Uint8Array): VmExitReason | undefined {
    if (offset >= R.REG_CONFIG) {
      this.writeConfig(offset - R.REG_CONFIG, data);
      return undefined;
    }
    if (data.length !== 4 || (offset & 3) !== 0) return undefined; // §4.2.2.2, see read()
    this.writeRegister(offset, u32(data));
    return undefined;
  }

  /** The value of a 32-bit control register. */
  readRegister(offset: number): number {
    const s = this.state;
    return s.locked(() => {
      const q = s.get(W_QUEUE_SEL) >>> 0;
      const queueOk = q < s.numQueues;
      switch (offset) {
        case R.REG_MAGIC_VALUE:
          return R.VIRTIO_MMIO_MAGIC;
        case R.REG_VERSION:
          return R.VIRTIO_MMIO_VERSION;
        case R.REG_DEVICE_ID:
          return s.get(W_DEVICE_ID) >>> 0;
        case R.REG_VENDOR_ID:
          return s.get(W_VENDOR_ID) >>> 0;
        case R.REG_DEVICE_FEATURES: {
          // §4.2.2: bits [32*sel, 32*sel+31]; there are 64 feature bits, higher selectors read 0
          const sel = s.get(W_DEVICE_FEATURES_SEL) >>> 0;
          if (sel === 0) return s.get(W_DEVICE_FEATURES_LO) >>> 0;
          if (sel === 1) return s.get(W_DEVICE_FEATURES_HI) >>> 0;
          return 0;
        }
        case R.REG_QUEUE_NUM_MAX:
          return queueOk ? s.getQ(q, Q_NUM_MAX) : 0; // §4.2.2: 0 = queue not available
        case R.REG_QUEUE_READY:
          return queueOk ? s.getQ(q, Q_READY) : 0;
        case R.REG_INTERRUPT_STATUS:
          return s.isr;
        case R.REG_STATUS:
          return s.status;
        case R.REG_QUEUE_NUM:
          return queueOk ? s.getQ(q, Q_NUM) : 0;
        case R.REG_QUEUE_DESC_LOW:
          return queueOk ? s.getQ(q, Q_DESC_LO) : 0;
        case R.REG_QUEUE_DESC_HIGH:
          return queueOk ? s.getQ(q, Q_DESC_HI) : 0;
        case R.REG_QUEUE_DRIVER_LOW:
          return queueOk ? s.getQ(q, Q_DRIVER_LO) : 0;
        case R.REG_QUEUE_DRIVER_HIGH:
          return queueOk ? s.getQ(q, Q_DRIVER_HI) : 0;
        case R.REG_QUEUE_DEVICE_LOW:
          return queueOk ? s.getQ(q, Q_DEVICE_LO) : 0;
        case R.REG_QUEUE_DEVICE_HIGH:
          return queueOk ? s.getQ(q, Q_DEVICE_HI) : 0;
        case R.REG_SHM_LEN_LOW:
        case R.REG_SHM_LEN_HIGH:
        case R.REG_SHM_BASE_LOW:
        case R.REG_SHM_BASE_HIGH:
          return 0xffffffff; // §4.2.2: length and base all ones = no shared memory region with this id
        case R.REG_CONFIG_GENERATION:
          return s.get(W_CONFIG_GENERATION) >>> 0;
        default:
          return 0; // write-only or reserved registers read as 0
      }
    });
  }

  writeRegister(offset: number, v: number): void {
    const s = this.state;
    let signalControl = false;
    let notifyQueue = -1;
    s.lock();
    try {
      const status = s.status;
      const q = s.get(W_QUEUE_SEL) >>> 0;
      // §4.2.3.2 / §3.1.1 step 7: queues are set up after FEATURES_OK and before DRIVER_OK, and a ready queue's
      // layout is not changed; other writes are ignored (Firecracker and Cloud Hypervisor do the same)
      const queueWritable =
        q < s.numQueues &&
        (status & (VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)) === VIRTIO_STATUS_FEATURES_OK &&
        (status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) === 0;
      const layoutWritable = queueWritable && s.getQ(q, Q_READY) === 0;
      switch (offset) {
        case R.REG_DEVICE_FEATURES_SEL:
          s.set(W_DEVICE_FEATURES_SEL, v);
          break;
        case R.REG_DRIVER_FEATURES_SEL:
          s.set(W_DRIVER_FEATURES_SEL, v);
          break;
        case R.REG_DRIVER_FEATURES: {
          // §3.1.1 steps 4-5: features are written after DRIVER and before FEATURES_OK
          if ((status & (VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK)) !== VIRTIO_STATUS_DRIVER) break;
          const sel = s.get(W_DRIVER_FEATURES_SEL) >>> 0;
          if (sel === 0) s.set(W_DRIVER_FEATURES_LO, v);
          else if (sel === 1) s.set(W_DRIVER_FEATURES_HI, v);
          break;
        }
        case R.REG_QUEUE_SEL:
          s.set(W_QUEUE_SEL, v);
          break;
        case R.REG_QUEUE_NUM:
          if (layoutWritable) s.setQ(q, Q_NUM, v); // validated at DRIVER_OK (power of two <= QueueNumMax)
          break;
        case R.REG_QUEUE_READY:
          if (queueWritable) s.setQ(q, Q_READY, v & 1);
          break;
        case R.REG_QUEUE_DESC_LOW:
          if (layoutWritable) s.setQ(q, Q_DESC_LO, v);
          break;
        case R.REG_QUEUE_DESC_HIGH:
          if (layoutWritable) s.setQ(q, Q_DESC_HI, v);
          break;
        case R.REG_QUEUE_DRIVER_LOW:
          if (layoutWritable) s.setQ(q, Q_DRIVER_LO, v);
          break;
        case R.REG_QUEUE_DRIVER_HIGH:
          if (layoutWritable) s.setQ(q, Q_DRIVER_HI, v);
          break;
        case R.REG_QUEUE_DEVICE_LOW:
          if (layoutWritable) s.setQ(q, Q_DEVICE_LO, v);
          break;
        case R.REG_QUEUE_DEVICE_HIGH:
          if (layoutWritable) s.setQ(q, Q_DEVICE_HI, v);
          break;
        case R.REG_QUEUE_NOTIFY:
          // normally caught by the queue's ioeventfd (datamatch = index); without VIRTIO_F_NOTIFICATION_DATA the
          // value is the queue index (§4.2.2), anything else is ignored
          Atomics.add(s.words, W_NOTIFY_EXITS, 1);
          if (v < s.numQueues && (status & VIRTIO_STATUS_DRIVER_OK) !== 0) notifyQueue = v;
          break;
        case R.REG_INTERRUPT_ACK:
          Atomics.and(s.words, W_ISR, ~v); // §4.2.2: clears the acknowledged InterruptStatus bits
          break;
        case R.REG_STATUS:
          signalControl = this.writeStatus(v & 0xff);
          break;
        default:
          break; // read-only or reserved: ignored
      }
    } finally {
      s.unlock();
    }
    if (signalControl) this.signals.control();
    if (notifyQueue >= 0) this.signals.queue(notifyQueue);
  }

  /** The device status state machine (virtio 1.2 §2.1, §3.1.1). Caller holds the lock. Returns "changed". */
  private writeStatus(v: number): boolean {
    const s = this.state;
    if (v === 0) {
      this.resetLocked();
      return true;
    }
    const old = s.status;
    const needsReset = old & VIRTIO_STATUS_DEVICE_NEEDS_RESET; // set by the device only (§2.1.1)
    const driverBits = old & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    let next = v & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    // §2.1.1: only a reset (0) clears status bits; a write that drops a bit the driver set is ignored
    if ((next & driverBits) !== driverBits) return false;
    const added = next & ~driverBits;
    // §3.1.1: ACKNOWLEDGE, then DRIVER, then FEATURES_OK, then DRIVER_OK, each on top of the previous
    if (added & VIRTIO_STATUS_DRIVER && !(next & VIRTIO_STATUS_ACKNOWLEDGE)) next &= ~VIRTIO_STATUS_DRIVER;
    if (added & VIRTIO_STATUS_FEATURES_OK) {
      const accepted = s.driverFeatures();
      const offered = s.deviceFeatures();
      // §2.2.2: the device refuses FEATURES_OK (leaves it clear) when it cannot support the accepted subset:
      // a feature it did not offer, or a modern transport without VIRTIO_F_VERSION_1 (§6.1)
      const ok = (next & VIRTIO_STATUS_DRIVER) !== 0 && (accepted & ~offered) === 0n && (accepted & VIRTIO_F_VERSION_1) !== 0n;
      if (!ok) next &= ~VIRTIO_STATUS_FEATURES_OK;
    }
    if (added & VIRTIO_STATUS_DRIVER_OK && !(next & VIRTIO_STATUS_FEATURES_OK)) next &= ~VIRTIO_STATUS_DRIVER_OK;
    const result = next | needsReset;
    if (result === old) return false;
    s.set(W_STATUS, result);
    return true;
  }

  /** §4.2.2.1 / §2.4: a write of 0 to Status resets the device. Caller holds the lock. */
  private resetLocked(): void {
    const s = this.state;
    s.set(W_STATUS, 0);
    s.set(W_ISR, 0); // §4.2.2.1: upon reset the device MUST clear all bits in InterruptStatus ...
    s.set(W_DEVICE_FEATURES_SEL, 0);
    s.set(W_DRIVER_FEATURES_SEL, 0);
    s.set(W_DRIVER_FEATURES_LO, 0);
    s.set(W_DRIVER_FEATURES_HI, 0);
    s.set(W_QUEUE_SEL, 0);
    for (let q = 0; q < s.numQueues; q++) {
      s.setQ(q, Q_NUM, s.getQ(q, Q_NUM_MAX));
      s.setQ(q, Q_READY, 0); // ... and ready bits in QueueReady
      for (const f of [Q_DESC_LO, Q_DESC_HI, Q_DRIVER_LO, Q_DRIVER_HI, Q_DEVICE_LO, Q_DEVICE_HI]) s.setQ(q, f, 0);
    }
    // the device worker drops its queues when it sees a new epoch
    s.set(W_RESET_EPOCH, (s.get(W_RESET_EPOCH) + 1) | 0);
  }

  private readConfig(off: number, data: Uint8Array): void {
    const s = this.state;
    s.locked(() => {
      const len = Math.min(s.get(W_CONFIG_LEN), CONFIG_MAX);
      const area = s.configArea();
      // bytes past the device's configuration space read as 0
      for (let i = 0; i < data.length; i++) data[i] = off + i < len ? area[off + i]! : 0;
    });
  }

  private writeConfig(off: number, data: Uint8Array): void {
    const s = this.state;
    const queued = s.locked(() => {
      const len = Math.min(s.get(W_CONFIG_LEN), CONFIG_MAX);
      if (off + data.length > len) return false; // outside the device's configuration space: ignored
      s.configArea().set(data, off); // read-back sees the write; the device republishes what it really holds
      return s.pushConfigWriteLocked(off, data);
    });
    if (queued) this.signals.control();
  }
}

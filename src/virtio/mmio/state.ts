// The shared state of one virtio-mmio device: a SharedArrayBuffer that the vCPU workers (register model,
// transport.ts) and the device's worker (device-worker.ts) both see (DESIGN decision 3). Multi-word
// updates happen under a small spin lock held for a few loads/stores only; the interrupt status word is
// also updated lock-free with Atomics.or/and so the device worker never waits for a vCPU to raise an
// interrupt.
//
// Layout (Int32 words unless said otherwise):
//   0 lock | 1 device id | 2 vendor id | 3,4 device features lo/hi | 5 device features sel
//   6,7 driver features lo/hi | 8 driver features sel | 9 queue sel | 10 number of queues | 11 status
//   12 interrupt status | 13 config generation | 14 config length | 15 reset epoch
//   16 config-write ring head (vCPU side) | 17 tail (worker side) | 18 dropped config writes
//   19 QueueNotify writes that exited to the register model (the ioeventfd did not take them)
//   32 + 16*q: per queue q (< MAX_QUEUES): num max, num, ready, desc lo/hi, driver lo/hi, device lo/hi
//   bytes CONFIG_OFFSET..+CONFIG_MAX: the device configuration space as the device worker last published it
//   bytes CFGW_OFFSET..: ring of CFGW_ENTRIES driver config writes {offset u16, len u8, pad, data[8]}

import { VIRTIO_MMIO_VENDOR_ID } from './regs.js';

export const MAX_QUEUES = 8;
/** Bytes of configuration space a device may publish (0x100..0x200 of the register block). */
export const CONFIG_MAX = 256;

export const W_LOCK = 0;
export const W_DEVICE_ID = 1;
export const W_VENDOR_ID = 2;
export const W_DEVICE_FEATURES_LO = 3;
export const W_DEVICE_FEATURES_HI = 4;
export const W_DEVICE_FEATURES_SEL = 5;
export const W_DRIVER_FEATURES_LO = 6;
export const W_DRIVER_FEATURES_HI = 7;
export const W_DRIVER_FEATURES_SEL = 8;
export const W_QUEUE_SEL = 9;
export const W_NUM_QUEUES = 10;
export const W_STATUS = 11;
export const W_ISR = 12;
export const W_CONFIG_GENERATION = 13;
export const W_CONFIG_LEN = 14;
export const W_RESET_EPOCH = 15;
export const W_CFGW_HEAD = 16;
export const W_CFGW_TAIL = 17;
export const W_CFGW_DROPPED = 18;
/** QueueNotify writes that reached the register model instead of an ioeventfd (a metric) */
export const W_NOTIFY_EXITS = 19;

const QUEUE_BASE = 32;
const QUEUE_STRIDE = 16;
export const Q_NUM_MAX = 0;
export const Q_NUM = 1;
export const Q_READY = 2;
export const Q_DESC_LO = 3;
export const Q_DESC_HI = 4;
export const Q_DRIVER_LO = 5;
export const Q_DRIVER_HI = 6;
export const Q_DEVICE_LO = 7;
export const Q_DEVICE_HI = 8;

const CONFIG_OFFSET = 1024;
const CFGW_OFFSET = CONFIG_OFFSET + CONFIG_MAX;
export const CFGW_ENTRIES = 32;
const CFGW_ENTRY = 16;
const STATE_BYTES = CFGW_OFFSET + CFGW_ENTRIES * CFGW_ENTRY;

/** What the device worker publishes once it has built its device. */
export interface DeviceIdentity {
  deviceType: number;
  /** every feature offered, VIRTIO_F_VERSION_1 included */
  features: bigint;
  queueMaxSizes: readonly number[];
  config: Uint8Array;
}

/** A queue's layout as the driver programmed it (guest physical addresses, not yet validated). */
export interface QueueRegs {
  size: number;
  ready: boolean;
  descTable: number;
  availRing: number;
  usedRing: number;
}

/** A driver write to the configuration space, queued for the device worker. */
export interface ConfigWrite {
  offset: number;
  data: Uint8Array;
}

export class TransportStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransportStateError';
  }
}

/** Typed access to one device's SharedArrayBuffer (either side constructs its own view). */
export class TransportState {
  readonly words: Int32Array;
  readonly bytes: Uint8Array;

  constructor(readonly sab: SharedArrayBuffer) {
    if (sab.byteLength !== STATE_BYTES) {
      throw new TransportStateError(`transport state must be ${STATE_BYTES} bytes, got ${sab.byteLength}`);
    }
    this.words = new Int32Array(sab);
    this.bytes = new Uint8Array(sab);
  }

  /** A zeroed state; the device worker fills in the identity with publishIdentity(). */
  static create(): TransportState {
    const s = new TransportState(new SharedArrayBuffer(STATE_BYTES));
    Atomics.store(s.words, W_VENDOR_ID, VIRTIO_MMIO_VENDOR_ID);
    return s;
  }

  // ---- lock: a test-and-set spin lock; holders do a handful of loads and stores, never a call out
  lock(): void {
    while (Atomics.compareExchange(this.words, W_LOCK, 0, 1) !== 0) {
      // spin: the other holder is another thread in a short critical section
    }
  }

  unlock(): void {
    Atomics.store(this.words, W_LOCK, 0);
  }

  locked<T>(f: () => T): T {
    this.lock();
    try {
      return f();
    } finally {
      this.unlock();
    }
  }

  get(word: number): number {
    return Atomics.load(this.words, word);
  }

  set(word: number, v: number): void {
    Atomics.store(this.words, word, v | 0);
  }

  qword(q: number, field: number): number {
    return QUEUE_BASE + q * QUEUE_STRIDE + field;
  }

  getQ(q: number, field: number): number {
    return Atomics.load(this.words, this.qword(q, field)) >>> 0;
  }

  setQ(q: number, field: number, v: number): void {
    Atomics.store(this.words, this.qword(q, field), v | 0);
  }

  get numQueues(): number {
    return this.get(W_NUM_QUEUES);
  }

  get status(): number {
    return this.get(W_STATUS) & 0xff;
  }

  get isr(): number {
    return this.get(W_ISR) >>> 0;
  }

  get resetEpoch(): number {
    return this.get(W_RESET_EPOCH);
  }

  get configGeneration(): number {
    return this.get(W_CONFIG_GENERATION) >>> 0;
  }

  deviceFeatures(): bigint {
    return (BigInt(this.get(W_DEVICE_FEATURES_HI) >>> 0) << 32n) | BigInt(this.get(W_DEVICE_FEATURES_LO) >>> 0);
  }

  driverFeatures(): bigint {
    return (BigInt(this.get(W_DRIVER_FEATURES_HI) >>> 0) << 32n) | BigInt(this.get(W_DRIVER_FEATURES_LO) >>> 0);
  }

  // ---- device-worker side

  /** Fill in what the device is: id, features, queue sizes and the first configuration space. */
  publishIdentity(id: DeviceIdentity): void {
    if (id.queueMaxSizes.length === 0 || id.queueMaxSizes.length > MAX_QUEUES) {
      throw new TransportStateError(`a device needs 1..${MAX_QUEUES} queues, this one has ${id.queueMaxSizes.length}`);
    }
    for (const m of id.queueMaxSizes) {
      // virtio 1.2 §2.7: Queue Size is a power of 2, at most 32768
      if (!Number.isInteger(m) || m < 1 || m > 32768 || (m & (m - 1)) !== 0) {
        throw new TransportStateError(`queue max size ${m} is not a power of two in 1..32768`);
      }
    }
    this.locked(() => {
      this.set(W_DEVICE_ID, id.deviceType);
      this.set(W_DEVICE_FEATURES_LO, Number(id.features & 0xffffffffn));
      this.set(W_DEVICE_FEATURES_HI, Number((id.features >> 32n) & 0xffffffffn));
      this.set(W_NUM_QUEUES, id.queueMaxSizes.length);
      id.queueMaxSizes.forEach((m, q) => {
        this.setQ(q, Q_NUM_MAX, m);
        this.setQ(q, Q_NUM, m); // §4.2.2: QueueNum defaults to QueueNumMax after reset
      });
    });
    this.publishConfig(id.config);
  }

  /** Publish the configuration space; bumps ConfigGeneration when a byte changed (virtio 1.2 §2.5.1). */
  publishConfig(config: Uint8Array): boolean {
    if (config.length > CONFIG_MAX) {
      throw new TransportStateError(`configuration space of ${config.length} bytes exceeds ${CONFIG_MAX}`);
    }
    return this.locked(() => {
      const area = this.bytes.subarray(CONFIG_OFFSET, CONFIG_OFFSET + CONFIG_MAX);
      let changed = config.length !== this.get(W_CONFIG_LEN);
      for (let i = 0; !changed && i < config.length; i++) changed = area[i] !== config[i];
      if (!changed) return false;
      area.fill(0);
      area.set(config);
      this.set(W_CONFIG_LEN, config.length);
      this.set(W_CONFIG_GENERATION, (this.get(W_CONFIG_GENERATION) + 1) | 0);
      return true;
    });
  }

  /** The layouts of the first numQueues queues as the driver left them. Caller holds the lock. */
  queueRegsLocked(): QueueRegs[] {
    const out: QueueRegs[] = [];
    for (let q = 0; q < this.numQueues; q++) {
      const addr = (lo: number, hi: number): number => this.getQ(q, hi) * 2 ** 32 + this.getQ(q, lo);
      out.push({
        size: this.getQ(q, Q_NUM),
        ready: this.getQ(q, Q_READY) === 1,
        descTable: addr(Q_DESC_LO, Q_DESC_HI),
        availRing: addr(Q_DRIVER_LO, Q_DRIVER_HI),
        usedRing: addr(Q_DEVICE_LO, Q_DEVICE_HI),
      });
    }
    return out;
  }

  /** Set InterruptStatus bits (lock-free); the caller then signals the irqfd. */
  raiseIsr(bits: number): void {
    Atomics.or(this.words, W_ISR, bits);
  }

  /** The device can go no further until reset (virtio 1.2 §2.1.2). */
  setNeedsReset(): void {
    Atomics.or(this.words, W_STATUS, 0x40);
  }

  /** Take the driver's configuration writes queued since the last call, oldest first. */
  takeConfigWrites(): ConfigWrite[] {
    const out: ConfigWrite[] = [];
    const head = this.get(W_CFGW_HEAD);
    let tail = this.get(W_CFGW_TAIL);
    while (tail !== head) {
      const at = CFGW_OFFSET + (tail & (CFGW_ENTRIES - 1)) * CFGW_ENTRY;
      const offset = this.bytes[at]! | (this.bytes[at + 1]! << 8);
      const len = Math.min(this.bytes[at + 2]!, 8);
      out.push({ offset, data: this.bytes.slice(at + 8, at + 8 + len) });
      tail = (tail + 1) | 0;
    }
    this.set(W_CFGW_TAIL, tail);
    return out;
  }

  // ---- vCPU side

  /** Queue a driver config write for the device worker; false (and counted) when the ring is full. */
  pushConfigWriteLocked(offset: number, data: Uint8Array): boolean {
    const head = this.get(W_CFGW_HEAD);
    if (((head - this.get(W_CFGW_TAIL)) | 0) >= CFGW_ENTRIES) {
      Atomics.add(this.words, W_CFGW_DROPPED, 1);
      return false;
    }
    const at = CFGW_OFFSET + (head & (CFGW_ENTRIES - 1)) * CFGW_ENTRY;
    this.bytes[at] = offset & 0xff;
    this.bytes[at + 1] = (offset >> 8) & 0xff;
    this.bytes[at + 2] = data.length;
    this.bytes.set(data.subarray(0, 8), at + 8);
    this.set(W_CFGW_HEAD, (head + 1) | 0);
    return true;
  }

  /** The configuration area (CONFIG_MAX bytes; the first get(W_CONFIG_LEN) are the device's). */
  configArea(): Uint8Array {
    return this.bytes.subarray(CONFIG_OFFSET, CONFIG_OFFSET + CONFIG_MAX);
  }
}

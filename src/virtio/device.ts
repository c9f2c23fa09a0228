// The contract between a virtio device model and whatever carries it (the virtio-mmio transport of the
// in-process VMM, or later a vhost-user server). A device knows no VM, no transport and no container:
// it is Inactive until activated with the guest memory, its validated queues and an interrupt line, and
// it parses each descriptor chain into a typed request before doing any I/O (DESIGN decision 5).
//
// Threading: a device object lives on its device worker thread, which owns its queues, memory view,
// eventfds and backend (DESIGN decision 3). Nothing here is called from a vCPU thread.

import type { GuestMemory } from '../memory/guest-memory.js';
import type { SplitQueue } from './queue.js';

/** Interrupt reasons (virtio 1.2 §4.2.2: InterruptStatus bits). */
export const VIRTIO_INT_USED_RING = 1;
export const VIRTIO_INT_CONFIG = 2;

/** How a device raises its interrupt (the transport sets the ISR bit and signals the irqfd). */
export interface Interrupt {
  /** used-buffer notification (already filtered by the queue's needsNotification()) */
  signalUsed(queueIndex: number): void;
  /** configuration change notification */
  signalConfig(): void;
}

export interface ActivateContext {
  mem: GuestMemory;
  /** one validated queue per virtqueue the driver set up, in queue index order */
  queues: SplitQueue[];
  interrupt: Interrupt;
  /** features the driver accepted (virtio 1.2 §3.1.1 step 5) */
  ackedFeatures: bigint;
  /**
   * Report a DeviceBroken found outside processQueue (a host-side callback filling rx buffers, a timer), so
   * the transport sets DEVICE_NEEDS_RESET at once instead of at the next notification. Optional: a device
   * also throws the same error from its next processQueue.
   */
  fail?: (e: DeviceBroken) => void;
}

/** Why a device refused to go on; the transport then sets DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2). */
export class DeviceBroken extends Error {
  constructor(message: string) {
    // guest-caused, and a guest can cause it as fast as it fills a ring: the message says what the guest did,
    // and capturing a JS stack was most of the cost of a rejected chain under fuzzing
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = 'DeviceBroken';
  }
}

export interface VirtioDevice {
  /** VIRTIO_ID_* (include/uapi/linux/virtio_ids.h) */
  readonly deviceType: number;
  /** maximum size of each virtqueue (power of two); length = number of queues */
  readonly queueMaxSizes: readonly number[];
  /** device feature bits offered; the transport adds VIRTIO_F_VERSION_1 */
  readonly availableFeatures: bigint;
  /** the device configuration space as it is now (little-endian fields, virtio 1.2 §5.x) */
  configSpace(): Uint8Array;
  /** a driver write to the configuration space (most devices ignore these) */
  writeConfig(offset: number, data: Uint8Array): void;
  /** DRIVER_OK with valid queues: the device becomes Active */
  activate(ctx: ActivateContext): void;
  /** the driver notified queue `index` (ioeventfd fired). Must do bounded work and never throw for guest errors
   * other than DeviceBroken. */
  processQueue(index: number): void;
  /** driver reset (status 0): drop queues and in-flight requests, become Inactive */
  reset(): void;
  /** counters for tests and metrics (requests handled, errors by name, bytes) */
  metrics(): Record<string, number>;
}

// virtio-rng (virtio 1.2 §5.4): one request queue; every chain of device-writable buffers comes back
// filled with bytes from the host CSPRNG, written straight into guest memory through ChainWriter views.
// No configuration space, no device-specific feature bits.

import type { GuestMemory } from '../../memory/guest-memory.js';
import type { ActivateContext, Interrupt, VirtioDevice } from '../device.js';
import { VIRTIO_ID_RNG, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../ids.js';
import { ChainWriter, type Descriptor, type SplitQueue } from '../queue.js';
import { CryptoEntropySource, type EntropySource } from './backend.js';
import { RngRequestError, parseRngRequest } from './request.js';

/** Queue size offered to the driver (virtio 1.2 §2.7: a power of two up to 32768). */
export const RNG_QUEUE_SIZE = 256;

interface Active {
  mem: GuestMemory;
  queue: SplitQueue;
  interrupt: Interrupt;
}

export class RngDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_RNG;
  readonly queueMaxSizes: readonly number[] = [RNG_QUEUE_SIZE];
  readonly availableFeatures = VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC;

  private active: Active | undefined;
  private readonly counters = {
    requests: 0,
    bytes: 0,
    notifications: 0,
    interrupts: 0,
    malformed: 0,
  };
  private readonly errors = new Map<string, number>();

  constructor(private readonly source: EntropySource = new CryptoEntropySource()) {}

  configSpace(): Uint8Array {
    return new Uint8Array(0); // virtio 1.2 §5.4.4: no configuration space
  }

  writeConfig(): void {
    // nothing to write
  }

  activate(ctx: ActivateContext): void {
    const queue = ctx.queues[0];
    if (queue === undefined) throw new RangeError('virtio-rng needs its request queue (queue 0) at activation');
    this.active = { mem: ctx.mem, queue, interrupt: ctx.interrupt };
  }

  reset(): void {
    this.active = undefined;
  }

  /** Drain the request queue. Throws only DeviceBroken (from the queue: a malformed ring or chain). */
  processQueue(index: number): void {
    const a = this.active;
    if (a === undefined || index !== 0) return; // not active, or a queue this device does not have
    this.counters.notifications++;
    const q = a.queue;
    let used = 0;
    for (;;) {
      q.disableNotification();
      for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
        used++;
        q.addUsed(chain.head, this.serve(a.mem, chain.descriptors()));
      }
      if (!q.enableNotification()) break; // virtio 1.2 §2.7.10: re-check after re-enabling
    }
    if (used > 0 && q.needsNotification()) {
      this.counters.interrupts++;
      a.interrupt.signalUsed(0);
    }
  }

  /** Fill one request; returns the used length (bytes written). */
  private serve(mem: GuestMemory, descs: readonly Descriptor[]): number {
    this.counters.requests++;
    let req;
    try {
      req = parseRngRequest(descs);
    } catch (e) {
      if (!(e instanceof RngRequestError)) throw e;
      this.counters.malformed++;
      this.errors.set(e.name, (this.errors.get(e.name) ?? 0) + 1);
      return 0; // nothing written
    }
    const w = new ChainWriter(mem, req.writable);
    // BOUNDS: every descriptor range was checked against guest RAM by the chain iterator.
    for (const v of w.views(req.bytes)) this.source.fill(v);
    this.counters.bytes += req.bytes;
    return req.bytes;
  }

  metrics(): Record<string, number> {
    const m: Record<string, number> = { ...this.counters };
    for (const [k, v] of this.errors) m[`errors.${k}`] = v;
    return m;
  }
}

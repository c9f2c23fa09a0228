// A tiny virtio device for transport tests (unit and KVM): every chain it pops gets, in its writable part,
// the u32 TEST_DEVICE_REPLY and the u32 number of readable bytes the chain carried; the used length is the
// bytes written. Config space: u32 TEST_DEVICE_CONFIG_MAGIC, then a u32 the driver may write. Loaded in a
// device worker through the registry's { kind: 'module' } spec.

import { ChainReader, ChainWriter, type SplitQueue } from '../../src/virtio/queue.js';
import { DeviceBroken, type ActivateContext, type VirtioDevice } from '../../src/virtio/device.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';

export const TEST_DEVICE_ID = 0x3f; // not a registered virtio device id in Linux 6.1's virtio_ids.h
export const TEST_DEVICE_REPLY = 0x600dcafe;
export const TEST_DEVICE_CONFIG_MAGIC = 0x12345678;
/** a device-specific feature bit the test device offers */
export const TEST_DEVICE_F_FOO = 1n << 0n;

export interface TestDeviceOptions {
  queueMaxSizes?: number[];
  features?: bigint;
  /** throw from processQueue: a DeviceBroken, or a plain Error (a "bug") */
  failProcess?: 'broken' | 'bug';
}

export class TestDevice implements VirtioDevice {
  readonly deviceType = TEST_DEVICE_ID;
  readonly queueMaxSizes: readonly number[];
  readonly availableFeatures: bigint;
  private active: { mem: GuestMemory; queues: SplitQueue[]; ctx: ActivateContext } | undefined;
  private readonly config = new Uint8Array(8);
  readonly counts = { activations: 0, resets: 0, chains: 0, processCalls: 0, configWrites: 0 };

  constructor(private readonly opts: TestDeviceOptions = {}) {
    this.queueMaxSizes = opts?.queueMaxSizes ?? [16];
    this.availableFeatures = opts?.features ?? TEST_DEVICE_F_FOO;
    new DataView(this.config.buffer).setUint32(0, TEST_DEVICE_CONFIG_MAGIC, true);
  }

  configSpace(): Uint8Array {
    return this.config.slice();
  }

  writeConfig(offset: number, data: Uint8Array): void {
    this.counts.configWrites++;
    // only the second u32 is writable
    for (let i = 0; i < data.length; i++) if (offset + i >= 4 && offset + i < 8) this.config[offset + i] = data[i]!;
  }

  activate(ctx: ActivateContext): void {
    this.counts.activations++;
    this.active = { mem: ctx.mem, queues: ctx.queues, ctx };
  }

  processQueue(index: number): void {
    this.counts.processCalls++;
    if (this.opts.failProcess === 'broken') throw new DeviceBroken('test device told to break');
    if (this.opts.failProcess === 'bug') throw new TypeError('test device bug');
    const a = this.active;
    const q = a?.queues[index];
    if (!a || !q) return;
    let any = false;
    for (let c = q.pop(); c; c = q.pop()) {
      const descs = c.descriptors();
      const reader = new ChainReader(a.mem, descs);
      const writer = new ChainWriter(a.mem, descs);
      const readable = reader.remaining;
      if (writer.remaining >= 8) {
        writer.writeU32(TEST_DEVICE_REPLY);
        writer.writeU32(readable);
      }
      q.addUsed(c.head, writer.written);
      this.counts.chains++;
      any = true;
    }
    if (any && q.needsNotification()) a.ctx.interrupt.signalUsed(index);
  }

  reset(): void {
    this.counts.resets++;
    this.active = undefined;
  }

  metrics(): Record<string, number> {
    return { ...this.counts };
  }
}

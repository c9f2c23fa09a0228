// virtio-fs (virtio 1.2 §5.11; include/uapi/linux/virtio_fs.h): a host directory shared with the guest,
// served by the in-process FUSE server (server.ts) over a passthrough backend that cannot be escaped
// (passthrough.ts, DESIGN decision 8). Queue 0 is hiprio (FORGET/BATCH_FORGET from Linux), queues 1..N are
// request queues; every queue is served the same way. Each chain is parsed into a typed FuseRequest
// (request.ts) before the server makes any host call; a structurally malformed chain throws a DeviceBroken
// (the transport sets DEVICE_NEEDS_RESET), never anything that reaches the process.
//
// No DAX window (VIRTIO_FS_SHMCAP_ID_CACHE) and no notification queue are offered; no device features.

import type { GuestMemory } from '../../memory/guest-memory.js';
import { DeviceBroken, type ActivateContext, type Interrupt, type VirtioDevice } from '../device.js';
import { VIRTIO_ID_FS, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../ids.js';
import type { SplitQueue } from '../queue.js';
import { FsConfig } from './abi.js';
import type { FsBackend } from './backend.js';
import { PassthroughFs } from './passthrough.js';
import { parseFuseRequest } from './request.js';
import { FuseServer, type FsCache } from './server.js';

/** Queue size offered for every queue (virtio 1.2 §2.7: power of two). */
export const FS_QUEUE_SIZE = 1024;

export interface FsDeviceOptions {
  /** host directory to share */
  sharedDir: string;
  /** the mount tag the guest names (mount -t virtiofs TAG /mnt): 1..36 bytes of UTF-8 */
  tag: string;
  readOnly?: boolean;
  cache?: FsCache;
  xattr?: boolean;
  /** request queues (default 1) */
  numRequestQueues?: number;
}

/** The tag does not fit virtio_fs_config.tag (1..36 UTF-8 bytes, no NUL). */
export class InvalidFsTag extends Error {
  constructor(tag: string) {
    super(`virtio-fs tag ${JSON.stringify(tag)} must be 1 to ${String(FsConfig.tagBytes)} bytes of UTF-8 without NUL`);
    this.name = 'InvalidFsTag';
  }
}

interface Active {
  mem: GuestMemory;
  queues: SplitQueue[];
  interrupt: Interrupt;
}

export class FsDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_FS;
  readonly queueMaxSizes: readonly number[];
  readonly availableFeatures = VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC;
  readonly server: FuseServer;

  private readonly backend: FsBackend;
  private readonly config: Uint8Array;
  private active: Active | undefined;
  private readonly counters = { notifications: 0, interrupts: 0, chains: 0, broken: 0 };

  constructor(opts: FsDeviceOptions, backend?: FsBackend) {
    const tag = new TextEncoder().encode(opts.tag);
    if (tag.length === 0 || tag.length > FsConfig.tagBytes || tag.includes(0)) throw new InvalidFsTag(opts.tag);
    const nq = opts.numRequestQueues ?? 1;
    if (!Number.isInteger(nq) || nq < 1 || nq > 64) throw new RangeError(`virtio-fs request queues ${String(nq)} must be in [1, 64]`);
    this.queueMaxSizes = Array.from({ length: 1 + nq }, () => FS_QUEUE_SIZE);
    // virtio 1.2 §5.11.4: struct virtio_fs_config { u8 tag[36] (NUL-padded); le32 num_request_queues; }
    this.config = new Uint8Array(FsConfig.size);
    this.config.set(tag, FsConfig.tag);
    new DataView(this.config.buffer).setUint32(FsConfig.numRequestQueues, nq, true);
    this.backend = backend ?? PassthroughFs.open(opts.sharedDir);
    this.server = new FuseServer(this.backend, { readOnly: opts.readOnly ?? false, cache: opts.cache ?? 'auto', xattr: opts.xattr ?? true });
  }

  configSpace(): Uint8Array {
    return this.config.slice();
  }

  writeConfig(): void {
    // virtio 1.2 §5.11.4: the configuration space is read-only
  }

  activate(ctx: ActivateContext): void {
    if (ctx.queues.length < 2) throw new RangeError('virtio-fs needs its hiprio queue and at least one request queue at activation');
    this.active = { mem: ctx.mem, queues: ctx.queues, interrupt: ctx.interrupt };
  }

  reset(): void {
    this.active = undefined;
    this.server.reset(); // virtio reset = a new FUSE session: drop inodes and handles
  }

  /** Release the shared directory (after the VM is gone). */
  close(): void {
    this.reset();
    this.backend.shutdown();
  }

  /** Drain queue `index`; throws only DeviceBroken (a malformed ring, chain or FUSE request). */
  processQueue(index: number): void {
    const a = this.active;
    const q = a?.queues[index];
    if (a === undefined || q === undefined) return;
    this.counters.notifications++;
    let used = 0;
    try {
      for (;;) {
        q.disableNotification();
        // at most q.size chains per pass: a guest refilling the ring cannot keep us here
        for (let n = 0, chain = q.pop(); chain !== undefined; chain = ++n < q.size ? q.pop() : undefined) {
          this.counters.chains++;
          const req = parseFuseRequest(a.mem, chain.descriptors()); // throws ChainError / FuseRequestError
          q.addUsed(chain.head, this.server.handle(req));
          used++;
        }
        if (!q.enableNotification()) break; // virtio 1.2 §2.7.10: re-check after re-enabling
      }
    } catch (e) {
      if (e instanceof DeviceBroken) this.counters.broken++;
      this.notify(a, q, index, used);
      throw e;
    }
    this.notify(a, q, index, used);
  }

  private notify(a: Active, q: SplitQueue, index: number, used: number): void {
    if (used > 0 && q.needsNotification()) {
      this.counters.interrupts++;
      a.interrupt.signalUsed(index);
    }
  }

  metrics(): Record<string, number> {
    return { ...this.counters, ...this.server.metrics() };
  }
}

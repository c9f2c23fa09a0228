// virtio-blk (virtio 1.2 §5.2): one request queue over a raw disk image. Each chain is parsed into a typed
// request (request.ts) before any I/O; data moves between the image and guest memory through live views
// (backend.ts), with no copy in between. A malformed request gets IOERR/UNSUPP in its status byte (or used
// length 0 when it has none); only a structurally broken queue (ChainError, a DeviceBroken) stops the device.
//
// Features: SEG_MAX, BLK_SIZE, FLUSH, RO (read-only disks), WRITE_ZEROES (writable disks whose backend can
// zero), plus EVENT_IDX and INDIRECT_DESC from the split queue. DISCARD is not offered: Node has no
// fallocate(2), so a discard could only be emulated by writing zeroes, which frees nothing.

import type { GuestMemory, GuestSpan } from '../../memory/guest-memory.js';
import { DeviceBroken, type ActivateContext, type Interrupt, type VirtioDevice } from '../device.js';
import { VIRTIO_ID_BLOCK, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../ids.js';
import { CheckedChain, type SplitQueue } from '../queue.js';
import {
  BlkConfig,
  SECTOR_SIZE,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
} from './abi.js';
import { FileBackend, type BlockBackend } from './backend.js';
import { BlockRequestError, PLAIN_READ, parseBlockChain, type BlockLimits, type BlockRequest, type PlainRead } from './request.js';

/** Queue size offered to the driver (virtio 1.2 §2.7: power of two <= 32768). */
export const BLK_QUEUE_SIZE = 256;
/** seg_max: data segments per request; the queue size less the header and status descriptors (as Firecracker). */
export const BLK_SEG_MAX = BLK_QUEUE_SIZE - 2;
/** max_write_zeroes_sectors: 8 MiB per request bounds the work one WRITE_ZEROES can ask for. */
export const BLK_MAX_WRITE_ZEROES_SECTORS = 16384;

export interface BlockDeviceOptions {
  /** disk image path (opened with FileBackend unless a backend is passed) */
  path: string;
  readOnly: boolean;
  /** GET_ID serial: up to 20 ASCII bytes (VIRTIO_BLK_ID_BYTES); default empty */
  id?: string;
}

/** The id string does not fit VIRTIO_BLK_ID_BYTES or is not printable ASCII. */
export class InvalidBlockId extends Error {
  constructor(id: string) {
    super(`disk id ${JSON.stringify(id)} must be at most ${String(VIRTIO_BLK_ID_BYTES)} printable ASCII characters`);
    this.name = 'InvalidBlockId';
  }
}

function encodeId(id: string): Uint8Array {
  if (id.length > VIRTIO_BLK_ID_BYTES || !/^[\x20-\x7e]*$/.test(id)) throw new InvalidBlockId(id);
  const out = new Uint8Array(VIRTIO_BLK_ID_BYTES); // NUL-padded; no terminator when all 20 bytes are used
  for (let i = 0; i < id.length; i++) out[i] = id.charCodeAt(i);
  return out;
}

interface Active {
  mem: GuestMemory;
  queue: SplitQueue;
  interrupt: Interrupt;
  limits: BlockLimits;
  /** per batch entry (a batch is at most the queue size): a PLAIN_READ's numbers, its status, the used length */
  plainStatusAddr: Float64Array;
  plainOffset: Float64Array;
  plainLength: Float64Array;
  plainData: Float64Array;
  /** the plain read's data as (buffer, offset) for backend.readAt(), found while parsing; undefined: readInto() */
  plainBuf: Array<Uint8Array | undefined>;
  plainBufOffset: Float64Array;
  status: Uint8Array;
  usedLen: Float64Array;
}

/** What a batch entry holds: a parsed request, the used length of a refused one, or a plain read (Active arrays). */
type Work = BlockRequest | number | typeof PLAIN_READ;

export class BlockDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_BLOCK;
  readonly queueMaxSizes: readonly number[] = [BLK_QUEUE_SIZE];
  readonly availableFeatures: bigint;
  readonly readOnly: boolean;
  /** capacity in 512-byte sectors */
  readonly capacity: number;

  private readonly backend: BlockBackend;
  private readonly idBytes: Uint8Array;
  private readonly config: Uint8Array;
  private active: Active | undefined;
  /** the pass being processed: chain heads and their work; reused across passes (entries past the pass's count
   * are stale) */
  private readonly batchHeads: number[] = [];
  private readonly batchWork: Work[] = [];
  /** the chain being parsed, reused for every request (the parsed request keeps no reference to it) */
  private readonly chain = new CheckedChain();
  /** where the parser leaves a plain read, and where a plain read's guest buffer is found (no allocation) */
  private readonly plain: PlainRead = { statusAddr: 0, offset: 0, length: 0, dataAddr: 0 };
  private readonly span: GuestSpan = { bytes: new Uint8Array(0), offset: 0 };
  private readonly counters = {
    notifications: 0,
    interrupts: 0,
    requests: 0,
    reads: 0,
    writes: 0,
    flushes: 0,
    getIds: 0,
    writeZeroes: 0,
    bytesRead: 0,
    bytesWritten: 0,
    /** requests refused by the parser (IOERR/UNSUPP or no status byte) */
    malformed: 0,
    /** host I/O errors reported to the guest as IOERR */
    ioErrors: 0,
  };
  private readonly errors = new Map<string, number>();

  constructor(opts: BlockDeviceOptions, backend?: BlockBackend) {
    this.idBytes = encodeId(opts.id ?? '');
    this.backend = backend ?? FileBackend.open(opts.path, opts.readOnly);
    this.readOnly = opts.readOnly || this.backend.readOnly;
    this.capacity = Math.floor(this.backend.sizeBytes / SECTOR_SIZE);
    const canZero = !this.readOnly && this.backend.writeZeroes !== undefined;
    let f = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH;
    if (this.readOnly) f |= VIRTIO_BLK_F_RO;
    if (canZero) f |= VIRTIO_BLK_F_WRITE_ZEROES;
    this.availableFeatures = f | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC;
    this.config = this.buildConfig(canZero);
  }

  /** struct virtio_blk_config (include/uapi/linux/virtio_blk.h), little-endian. */
  private buildConfig(canZero: boolean): Uint8Array {
    const c = new Uint8Array(BlkConfig.size);
    const v = new DataView(c.buffer);
    v.setBigUint64(BlkConfig.capacity, BigInt(this.capacity), true);
    v.setUint32(BlkConfig.segMax, BLK_SEG_MAX, true);
    v.setUint32(BlkConfig.blkSize, SECTOR_SIZE, true);
    if (canZero) {
      v.setUint32(BlkConfig.maxWriteZeroesSectors, BLK_MAX_WRITE_ZEROES_SECTORS, true);
      v.setUint32(BlkConfig.maxWriteZeroesSeg, 1, true);
      v.setUint8(BlkConfig.writeZeroesMayUnmap, 0); // zeroes are written, never unmapped
    }
    return c;
  }

  configSpace(): Uint8Array {
    return this.config.slice();
  }

  writeConfig(): void {
    // virtio 1.2 §5.2.4: only `wce` is driver-writable, and only with VIRTIO_BLK_F_CONFIG_WCE (not offered).
  }

  activate(ctx: ActivateContext): void {
    const queue = ctx.queues[0];
    if (queue === undefined) throw new RangeError('virtio-blk needs its request queue (queue 0) at activation');
    const n = queue.size;
    this.active = {
      mem: ctx.mem,
      queue,
      interrupt: ctx.interrupt,
      plainStatusAddr: new Float64Array(n),
      plainOffset: new Float64Array(n),
      plainLength: new Float64Array(n),
      plainData: new Float64Array(n),
      plainBuf: new Array<Uint8Array | undefined>(n).fill(undefined),
      plainBufOffset: new Float64Array(n),
      status: new Uint8Array(n),
      usedLen: new Float64Array(n),
      limits: {
        capacity: this.capacity,
        readOnly: this.readOnly,
        writeZeroes: (ctx.ackedFeatures & VIRTIO_BLK_F_WRITE_ZEROES) !== 0n && (this.availableFeatures & VIRTIO_BLK_F_WRITE_ZEROES) !== 0n,
        maxWriteZeroesSectors: BLK_MAX_WRITE_ZEROES_SECTORS,
      },
    };
  }

  reset(): void {
    this.active = undefined; // requests complete within processQueue: nothing is in flight
    this.batchWork.fill(0); // drop parsed requests (and their guest views)
  }

  /** Release the image (after the VM is gone). */
  close(): void {
    this.active = undefined;
    this.backend.close?.();
  }

  /**
   * Drain the request queue. Throws only DeviceBroken (from the queue: a malformed ring or chain).
   *
   * Phases per pass: pop and parse every available chain first, then do the I/O for the batch back to back,
   * then write the status bytes and return the chains in order. The host syscalls then run one after another
   * (as a plain pread loop does) instead of interleaved with ring walking, parsing and ring writes; a plain
   * read (Linux's page-sized reads) goes from pread(2) straight into guest memory with no object made for it.
   * A batch is at most the queue size. When the queue breaks mid-batch, the requests parsed before the bad
   * chain are still completed.
   */
  processQueue(index: number): void {
    const a = this.active;
    if (a === undefined || index !== 0) return;
    this.counters.notifications++;
    const q = a.queue;
    const heads = this.batchHeads;
    const work = this.batchWork;
    let used = 0;
    for (;;) {
      q.disableNotification();
      let failure: Error | undefined;
      let n = 0;
      try {
        // At most q.size chains per pass (a guest adding chains while we pop cannot grow the batch).
        for (let head = q.popHead(); head >= 0; head = n < q.size ? q.popHead() : -1) {
          const w = this.prepare(a, q.walk(head, this.chain)); // may throw a ChainError: record nothing then
          if (w === PLAIN_READ) {
            const p = this.plain;
            a.plainStatusAddr[n] = p.statusAddr;
            a.plainOffset[n] = p.offset;
            a.plainLength[n] = p.length;
            a.plainData[n] = p.dataAddr;
            // BOUNDS: [dataAddr, +length) lies in a descriptor the chain walk checked; span() checks it again
            const viaReadAt = this.backend.readAt !== undefined && a.mem.span(p.dataAddr, p.length, this.span);
            a.plainBuf[n] = viaReadAt ? this.span.bytes : undefined;
            a.plainBufOffset[n] = this.span.offset;
          }
          heads[n] = head;
          work[n] = w;
          n++;
        }
      } catch (e) {
        failure = e instanceof Error ? e : new Error(String(e));
      }
      used += n;
      this.complete(a, n);
      if (failure !== undefined) {
        this.notify(a, used);
        throw failure;
      }
      if (!q.enableNotification()) break; // virtio 1.2 §2.7.10: re-check after re-enabling
    }
    this.notify(a, used);
  }

  private notify(a: Active, used: number): void {
    if (used > 0 && a.queue.needsNotification()) {
      this.counters.interrupts++;
      a.interrupt.signalUsed(0);
    }
  }

  private countError(name: string): void {
    this.errors.set(name, (this.errors.get(name) ?? 0) + 1);
  }

  /**
   * Parse one chain. A valid request comes back for complete(); a refused one has its status written here
   * and comes back as its used length (1 with a status byte, 0 without).
   */
  private prepare(a: Active, chain: CheckedChain): Work {
    this.counters.requests++;
    try {
      return parseBlockChain(a.mem, chain, a.limits, this.plain);
    } catch (e) {
      if (!(e instanceof BlockRequestError)) throw e;
      this.counters.malformed++;
      this.countError(e.name);
      if (e.statusAddr === undefined) return 0; // no status byte: nothing written
      a.mem.writeU8(e.statusAddr, e.status);
      return 1;
    }
  }

  /** Do the I/O of the batch's first n entries in order, write their status bytes, return the chains. */
  private complete(a: Active, n: number): void {
    const heads = this.batchHeads;
    const work = this.batchWork;
    const usedLen = a.usedLen;
    let done = 0;
    try {
      for (; done < n; done++) {
        const w = work[done]!;
        if (w === PLAIN_READ) usedLen[done] = this.plainRead(a, done);
        else if (typeof w === 'number') usedLen[done] = w;
        else {
          work[done] = 0; // drop the request (and its guest views)
          usedLen[done] = this.run(a, w);
        }
      }
    } finally {
      // the status of each plain read, then every chain back in order (those done, if the I/O loop threw)
      for (let i = 0; i < done; i++) {
        if (work[i] === PLAIN_READ) {
          work[i] = 0;
          a.mem.writeU8(a.plainStatusAddr[i]!, a.status[i]!);
        }
        a.queue.addUsed(heads[i]!, usedLen[i]!);
      }
    }
  }

  /** The I/O of plain read `i` of the batch; its status goes to a.status[i]. Returns the used length. */
  private plainRead(a: Active, i: number): number {
    const len = a.plainLength[i]!;
    const offset = a.plainOffset[i]!;
    const buf = a.plainBuf[i];
    const b = this.backend;
    try {
      // BOUNDS: the buffer range was found by span() at parse time; slice() checks the range itself
      if (buf !== undefined && b.readAt !== undefined) b.readAt(buf, a.plainBufOffset[i]!, len, offset);
      else b.readInto([a.mem.slice(a.plainData[i]!, len)], offset);
    } catch (e) {
      if (e instanceof DeviceBroken) throw e;
      this.counters.ioErrors++;
      this.countError(e instanceof Error ? e.name : 'HostIoError');
      a.status[i] = VIRTIO_BLK_S_IOERR;
      return 1;
    }
    this.counters.reads++;
    this.counters.bytesRead += len;
    a.status[i] = VIRTIO_BLK_S_OK;
    return len + 1;
  }

  /** Execute one parsed request and write its status; returns the used length (data written + status). */
  private run(a: Active, req: BlockRequest): number {
    let written: number;
    try {
      written = this.execute(req);
    } catch (e) {
      if (e instanceof DeviceBroken) throw e;
      this.counters.ioErrors++;
      this.countError(e instanceof Error ? e.name : 'HostIoError');
      a.mem.writeU8(req.statusAddr, VIRTIO_BLK_S_IOERR);
      return 1;
    }
    a.mem.writeU8(req.statusAddr, VIRTIO_BLK_S_OK);
    return written + 1;
  }

  /** Do the I/O; returns data bytes written into the chain (before the status byte). */
  private execute(req: BlockRequest): number {
    switch (req.kind) {
      case 'read':
        if (req.length > 0) this.backend.readInto(req.data, req.offset);
        this.counters.reads++;
        this.counters.bytesRead += req.length;
        return req.length;
      case 'write':
        if (req.length > 0) this.backend.writeFrom(req.data, req.offset);
        this.counters.writes++;
        this.counters.bytesWritten += req.length;
        return 0;
      case 'flush':
        this.backend.flush();
        this.counters.flushes++;
        return 0;
      case 'get-id': {
        let pos = 0;
        for (const v of req.data) {
          v.set(this.idBytes.subarray(pos, pos + v.length));
          pos += v.length;
        }
        this.counters.getIds++;
        return VIRTIO_BLK_ID_BYTES;
      }
      case 'write-zeroes': {
        if (this.backend.writeZeroes === undefined) throw new Error('backend lost its writeZeroes'); // parse checked limits.writeZeroes
        if (req.length > 0) this.backend.writeZeroes(req.offset, req.length);
        this.counters.writeZeroes++;
        this.counters.bytesWritten += req.length;
        return 0;
      }
    }
  }

  metrics(): Record<string, number> {
    const m: Record<string, number> = { ...this.counters };
    for (const [k, v] of this.errors) m[`errors.${k}`] = v;
    return m;
  }
}

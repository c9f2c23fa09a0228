// A small FUSE client for virtio-fs tests: writes fuse_in_header + in-args into mock-driver queues the way
// Linux's virtiofs driver does (fs/fuse/virtio_fs.c: readable header + args, writable out header + room),
// runs the device, and decodes fuse_out_header and the common reply structs (include/uapi/linux/fuse.h).

import { GuestMemory } from '../../../src/memory/guest-memory.js';
import { FuseOp, OUT_HEADER_SIZE } from '../../../src/virtio/fs/abi.js';
import type { FsDevice } from '../../../src/virtio/fs/device.js';
import { SplitQueue } from '../../../src/virtio/queue.js';
import { MockSplitQueue, type ChainPart } from './mock-driver.js';

const enc = new TextEncoder();

/** A NUL-terminated name (string or raw bytes). */
export function cstr(s: string | Uint8Array): Uint8Array {
  const b = typeof s === 'string' ? enc.encode(s) : s;
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Little-endian struct builder: fields as [bytes, value]. */
export function le(...fields: Array<[4 | 8 | 2, number | bigint]>): Uint8Array {
  const out = new Uint8Array(fields.reduce((n, [w]) => n + w, 0));
  const v = new DataView(out.buffer);
  let o = 0;
  for (const [w, x] of fields) {
    if (w === 8) v.setBigUint64(o, BigInt.asUintN(64, BigInt(x)), true);
    else if (w === 4) v.setUint32(o, Number(BigInt.asUintN(32, BigInt(x))), true);
    else v.setUint16(o, Number(x), true);
    o += w;
  }
  return out;
}

/** struct fuse_in_header (40 bytes). */
export function inHeader(len: number, opcode: number, unique: bigint, nodeid: number | bigint, uid = 0, gid = 0, pid = 1): Uint8Array {
  return le([4, len], [4, opcode], [8, unique], [8, BigInt(nodeid)], [4, uid], [4, gid], [4, pid], [2, 0], [2, 0]);
}

export interface FuseReply {
  /** used length the device reported */
  used: number;
  len: number;
  /** negative errno or 0 */
  error: number;
  unique: bigint;
  payload: Uint8Array;
  dv: DataView;
}

/** struct fuse_attr decoded (the fields tests look at). */
export interface Attr {
  ino: bigint;
  size: number;
  mode: number;
  nlink: number;
  atime: number;
  mtime: number;
  mtimensec: number;
}

export function decodeAttr(v: DataView, off: number): Attr {
  return {
    ino: v.getBigUint64(off, true),
    size: Number(v.getBigUint64(off + 8, true)),
    atime: Number(v.getBigInt64(off + 24, true)),
    mtime: Number(v.getBigInt64(off + 32, true)),
    mtimensec: v.getUint32(off + 52, true),
    mode: v.getUint32(off + 60, true),
    nlink: v.getUint32(off + 64, true),
  };
}

export interface Entry {
  nodeid: number;
  entryValid: number;
  attrValid: number;
  attr: Attr;
}

export function decodeEntry(v: DataView, off: number): Entry {
  return {
    nodeid: Number(v.getBigUint64(off, true)),
    entryValid: Number(v.getBigUint64(off + 16, true)),
    attrValid: Number(v.getBigUint64(off + 24, true)),
    attr: decodeAttr(v, off + 40),
  };
}

export interface DirEntry {
  ino: bigint;
  off: bigint;
  type: number;
  name: string;
  entry?: Entry;
}

/** Decode a READDIR / READDIRPLUS payload (fuse.h struct fuse_dirent / fuse_direntplus, 8-byte aligned). */
export function decodeDirents(p: Uint8Array, plus: boolean): DirEntry[] {
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const out: DirEntry[] = [];
  let pos = 0;
  const dec = new TextDecoder();
  while (pos < p.length) {
    const entry = plus ? decodeEntry(v, pos) : undefined;
    const d = pos + (plus ? 128 : 0);
    const namelen = v.getUint32(d + 16, true);
    const e: DirEntry = { ino: v.getBigUint64(d, true), off: v.getBigUint64(d + 8, true), type: v.getUint32(d + 20, true), name: dec.decode(p.subarray(d + 24, d + 24 + namelen)) };
    if (entry !== undefined) e.entry = entry;
    out.push(e);
    pos = (d + 24 + namelen + 7) & ~7;
  }
  return out;
}

export interface FuseClientOptions {
  queueSize?: number;
}

/** The driver side: a hiprio queue (0) and one request queue (1) in 16 MiB of test guest memory. */
export class FuseClient {
  readonly mem: GuestMemory;
  readonly hiprio: MockSplitQueue;
  readonly req: MockSplitQueue;
  private unique = 1n;
  interrupts = 0;

  constructor(
    readonly dev: FsDevice,
    opts: FuseClientOptions = {},
  ) {
    const size = opts.queueSize ?? 64;
    this.mem = GuestMemory.anonymous([{ base: 0, size: 16 << 20 }]);
    this.hiprio = new MockSplitQueue(this.mem, 0, size, { dataStart: 0x1_0000, dataEnd: 0x10_0000 });
    this.req = new MockSplitQueue(this.mem, 0x10_0000, size, { dataStart: 0x11_0000, dataEnd: 16 << 20 });
    this.activate();
  }

  /** (Re)activate the device on fresh queues. */
  activate(): void {
    this.hiprio.reset();
    this.req.reset();
    const maxSize = this.dev.queueMaxSizes[0]!;
    this.dev.activate({
      mem: this.mem,
      queues: [SplitQueue.create(this.mem, this.hiprio.layout(), { maxSize, eventIdx: false }), SplitQueue.create(this.mem, this.req.layout(), { maxSize, eventIdx: false })],
      interrupt: { signalUsed: () => void this.interrupts++, signalConfig: () => undefined },
      ackedFeatures: this.dev.availableFeatures,
    });
  }

  /** Submit raw chain parts on queue `q` and run the device; returns the used entry and the written bytes. */
  raw(parts: ChainPart[], q: 0 | 1 = 1): { used: number; written: Uint8Array } {
    const mq = q === 0 ? this.hiprio : this.req;
    const head = mq.addChain(parts);
    mq.publish();
    this.dev.processQueue(q);
    const used = mq.used().find((u) => u.id === head);
    if (used === undefined) throw new Error('fuse client: the device did not return the chain');
    return { used: used.len, written: mq.readWrittenBytes(head) };
  }

  /**
   * Send one request: header + args (readable; `args` parts become separate descriptors) and `replyRoom`
   * bytes of writable space after the 16-byte out header (split in `splitReply` descriptors when given).
   */
  call(opcode: number, nodeid: number | bigint, args: Uint8Array[] = [], replyRoom = 0, opts: { uid?: number; gid?: number; splitReply?: number[]; q?: 0 | 1 } = {}): FuseReply {
    const unique = this.unique++;
    const len = 40 + args.reduce((n, a) => n + a.length, 0);
    const parts: ChainPart[] = [{ data: inHeader(len, opcode, unique, nodeid, opts.uid ?? 0, opts.gid ?? 0) }, ...args.filter((a) => a.length > 0).map((a) => ({ data: a }))];
    const noReply = opcode === FuseOp.FORGET || opcode === FuseOp.BATCH_FORGET || opcode === FuseOp.INTERRUPT;
    if (!noReply) {
      const split = opts.splitReply ?? [OUT_HEADER_SIZE + replyRoom];
      for (const n of split) parts.push({ len: n, writable: true });
    }
    const { used, written } = this.raw(parts, opts.q ?? (noReply ? 0 : 1));
    if (noReply) return { used, len: 0, error: 0, unique, payload: new Uint8Array(0), dv: new DataView(new ArrayBuffer(0)) };
    const dv = new DataView(written.buffer, written.byteOffset, written.byteLength);
    const rlen = dv.getUint32(0, true);
    const payload = written.subarray(OUT_HEADER_SIZE, Math.min(rlen, written.length));
    return { used, len: rlen, error: dv.getInt32(4, true), unique: dv.getBigUint64(8, true), payload, dv: new DataView(payload.buffer, payload.byteOffset, payload.byteLength) };
  }

  // ---- typed helpers (the reply's error is returned as a negative errno; 0 = success)

  init(minor = 38, flags = 0xffff_ffff): FuseReply {
    return this.call(FuseOp.INIT, 0, [le([4, 7], [4, minor], [4, 128 * 1024], [4, flags], [4, 0], ...Array.from({ length: 11 }, (): [4, number] => [4, 0]))], 64);
  }

  lookup(parent: number, name: string | Uint8Array): { error: number; entry?: Entry } {
    const r = this.call(FuseOp.LOOKUP, parent, [cstr(name)], 128);
    return r.error !== 0 ? { error: r.error } : { error: 0, entry: decodeEntry(r.dv, 0) };
  }

  getattr(nodeid: number): { error: number; attr?: Attr } {
    const r = this.call(FuseOp.GETATTR, nodeid, [le([4, 0], [4, 0], [8, 0])], 104);
    return r.error !== 0 ? { error: r.error } : { error: 0, attr: decodeAttr(r.dv, 16) };
  }

  mkdir(parent: number, name: string, mode = 0o755): { error: number; entry?: Entry } {
    const r = this.call(FuseOp.MKDIR, parent, [le([4, mode], [4, 0]), cstr(name)], 128);
    return r.error !== 0 ? { error: r.error } : { error: 0, entry: decodeEntry(r.dv, 0) };
  }

  create(parent: number, name: string, flags = 0o102 /* O_CREAT|O_RDWR */, mode = 0o644): { error: number; entry?: Entry; fh?: number } {
    const r = this.call(FuseOp.CREATE, parent, [le([4, flags], [4, mode], [4, 0], [4, 0]), cstr(name)], 144);
    return r.error !== 0 ? { error: r.error } : { error: 0, entry: decodeEntry(r.dv, 0), fh: Number(r.dv.getBigUint64(128, true)) };
  }

  open(nodeid: number, flags = 2): { error: number; fh?: number; openFlags?: number } {
    const r = this.call(FuseOp.OPEN, nodeid, [le([4, flags], [4, 0])], 16);
    return r.error !== 0 ? { error: r.error } : { error: 0, fh: Number(r.dv.getBigUint64(0, true)), openFlags: r.dv.getUint32(8, true) };
  }

  opendir(nodeid: number): { error: number; fh?: number } {
    const r = this.call(FuseOp.OPENDIR, nodeid, [le([4, 0], [4, 0])], 16);
    return r.error !== 0 ? { error: r.error } : { error: 0, fh: Number(r.dv.getBigUint64(0, true)) };
  }

  write(nodeid: number, fh: number, offset: number, data: Uint8Array): { error: number; size?: number } {
    const r = this.call(FuseOp.WRITE, nodeid, [le([8, fh], [8, offset], [4, data.length], [4, 0], [8, 0], [4, 0], [4, 0]), data], 8);
    return r.error !== 0 ? { error: r.error } : { error: 0, size: r.dv.getUint32(0, true) };
  }

  read(nodeid: number, fh: number, offset: number | bigint, size: number, splitReply?: number[]): { error: number; data?: Uint8Array } {
    const r = this.call(FuseOp.READ, nodeid, [le([8, fh], [8, offset], [4, size], [4, 0], [8, 0], [4, 0], [4, 0])], size, splitReply !== undefined ? { splitReply } : {});
    return r.error !== 0 ? { error: r.error } : { error: 0, data: r.payload.slice() };
  }

  readdir(nodeid: number, fh: number, offset: bigint, size: number, plus: boolean): { error: number; entries?: DirEntry[] } {
    const r = this.call(plus ? FuseOp.READDIRPLUS : FuseOp.READDIR, nodeid, [le([8, fh], [8, offset], [4, size], [4, 0], [8, 0], [4, 0], [4, 0])], size);
    return r.error !== 0 ? { error: r.error } : { error: 0, entries: decodeDirents(r.payload, plus) };
  }

  release(nodeid: number, fh: number, dir = false): number {
    return this.call(dir ? FuseOp.RELEASEDIR : FuseOp.RELEASE, nodeid, [le([8, fh], [4, 0], [4, 0], [8, 0])]).error;
  }

  forget(nodeid: number, n: number): void {
    this.call(FuseOp.FORGET, nodeid, [le([8, n])]);
  }
}

// The in-process half of bench:fs: the virtio-fs device (src/virtio/fs/device.ts: queue pop, chain checks,
// FUSE parsing, the server, the passthrough backend's host calls, the used ring) driven without a guest by
// bench/devices.ts's BenchRing, against the same host syscalls made directly from Node. Chains are laid once
// the way Linux's virtiofs driver lays them (fs/fuse/virtio_fs.c: fuse_in_header and each in-arg in their own
// descriptor, fuse_out_header then the out-args; READ data as one 4 KiB page per descriptor) and re-offered
// every round; one request per notification, as a guest thread waiting on each syscall sends them.
//
//   GETATTR of a file            vs  fs.fstatSync of its O_PATH fd
//   LOOKUP of a name in the root vs  openat2(RESOLVE_BENEATH...) + fs.fstatSync + fs.closeSync (what LOOKUP does)
//   READ 4 KiB, random offsets   vs  fs.readvSync (preadv) into the same guest page
//   READ 128 KiB, sequential     vs  fs.readvSync (preadv) into the same 32 guest pages
// and, to show where a request's time goes, the passthrough backend's host calls alone (the calls the server
// makes for that request, src/virtio/fs/passthrough.ts) against the same direct calls: ids `fs-backend-*`.

import { closeSync, fstatSync, mkdtempSync, openSync, readSync, readvSync, rmSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mulberry32 } from '../tests/support/prng.js';
import { loadNative } from '../src/kvm/native.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import type { Interrupt } from '../src/virtio/device.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../src/virtio/ids.js';
import { SplitQueue } from '../src/virtio/queue.js';
import { FuseOp, IN_HEADER_SIZE, OUT_HEADER_SIZE, O_DIRECTORY, O_NOFOLLOW, O_PATH, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS } from '../src/virtio/fs/abi.js';
import { FS_QUEUE_SIZE, FsDevice } from '../src/virtio/fs/device.js';
import { PassthroughFs } from '../src/virtio/fs/passthrough.js';
import { BenchRing, type DeviceBenchSeries } from './devices.js';

const FILE_BYTES = 64 * 1024 * 1024;
const PAGE = 4096;
const BIG_READ = 128 * 1024;
/** requests per round (each its own notification) */
const PER_ROUND = 64;
const FILE_NAME = 'data.bin';
const RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;

const noInterrupt: Interrupt = { signalUsed: () => undefined, signalConfig: () => undefined };
const enc = new TextEncoder();

/** A bump allocator over the bench's guest memory (above the rings). */
class Arena {
  constructor(private next: number) {}
  alloc(len: number, align = 16): number {
    const at = Math.ceil(this.next / align) * align;
    this.next = at + len;
    return at;
  }
}

interface Request {
  head: number;
  /** where fuse_in_header's body (the in-args) starts, for rewriting offsets */
  argsAddr: number;
  /** fuse_out_header */
  replyAddr: number;
  /** the data pages of a READ */
  pages: number[];
}

/** One FsDevice with its hiprio and request queues in bench memory, and a driver that lays chains. */
class FsRig {
  readonly mem = GuestMemory.anonymous([{ base: 0, size: 32 * 1024 * 1024 }]);
  readonly dev: FsDevice;
  private readonly hiprio: BenchRing;
  private readonly ring: BenchRing;
  private readonly arena = new Arena(0x20000);
  private unique = 1n;

  constructor(sharedDir: string) {
    this.dev = new FsDevice({ sharedDir, tag: 'bench', cache: 'auto', xattr: false });
    this.hiprio = new BenchRing(this.mem, 0, 16);
    this.ring = new BenchRing(this.mem, 0x1000, FS_QUEUE_SIZE);
    const queues = [this.hiprio, this.ring].map((r) => SplitQueue.create(this.mem, r.layout(), { maxSize: FS_QUEUE_SIZE, eventIdx: true }));
    this.dev.activate({
      mem: this.mem,
      queues,
      interrupt: noInterrupt,
      ackedFeatures: this.dev.availableFeatures | VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC,
    });
  }

  /** Lay a request chain: [in header][args] readable, [out header][reply room...] writable. */
  request(opcode: number, nodeid: number, args: Uint8Array, reply: number[]): Request {
    const hdr = this.arena.alloc(IN_HEADER_SIZE);
    const argsAddr = this.arena.alloc(Math.max(args.length, 1));
    const replyAddr = this.arena.alloc(OUT_HEADER_SIZE);
    const m = this.mem;
    // fuse.h struct fuse_in_header: len, opcode, unique, nodeid, uid, gid, pid, total_extlen, padding
    m.writeU32(hdr, IN_HEADER_SIZE + args.length);
    m.writeU32(hdr + 4, opcode);
    m.writeU64(hdr + 8, this.unique++);
    m.writeU64(hdr + 16, nodeid);
    m.writeU32(hdr + 32, 1);
    m.write(argsAddr, args);
    const pages = reply.map((len) => this.arena.alloc(len, len >= PAGE ? PAGE : 16));
    const parts = [
      { addr: hdr, len: IN_HEADER_SIZE, writable: false },
      ...(args.length > 0 ? [{ addr: argsAddr, len: args.length, writable: false }] : []),
      { addr: replyAddr, len: OUT_HEADER_SIZE, writable: true },
      ...reply.map((len, i) => ({ addr: pages[i]!, len, writable: true })),
    ];
    return { head: this.ring.chain(parts), argsAddr, replyAddr, pages };
  }

  /** Offer one chain, notify, reap it; the reply's error must be 0. */
  submit(r: Request, what: string): void {
    this.ring.offer(r.head);
    this.ring.publish();
    this.dev.processQueue(1);
    if (this.ring.reap() !== 1) throw new Error(`${what}: the device did not complete the request`);
    const error = this.mem.readU32(r.replyAddr + 4) | 0;
    if (error !== 0) throw new Error(`${what}: the device answered errno ${String(-error)}`);
  }

  u64At(addr: number): number {
    return Number(this.mem.readU64(addr));
  }
}

/** Little-endian struct bytes from [width, value] fields. */
function le(...fields: Array<[4 | 8, number]>): Uint8Array {
  const out = new Uint8Array(fields.reduce((n, [w]) => n + w, 0));
  const v = new DataView(out.buffer);
  let o = 0;
  for (const [w, x] of fields) {
    if (w === 8) v.setBigUint64(o, BigInt(x), true);
    else v.setUint32(o, x, true);
    o += w;
  }
  return out;
}

/** fuse.h struct fuse_read_in { fh, offset, size, read_flags, lock_owner, flags, padding } */
function readIn(fh: number, offset: number, size: number): Uint8Array {
  return le([8, fh], [8, offset], [4, size], [4, 0], [8, 0], [4, 0], [4, 0]);
}

/** The informational series (the backend's host calls alone) carry this id prefix. */
export const BACKEND_PREFIX = 'fs-backend-';

/** The series, and a teardown for after all of them ran (closes the fds, removes the temp directory). */
export function fsDeviceSeries(): { series: DeviceBenchSeries[]; teardown: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-bench-fs-'));
  const path = join(dir, FILE_NAME);
  const chunk = new Uint8Array(1 << 20);
  const wfd = openSync(path, 'w');
  for (let off = 0; off < FILE_BYTES; off += chunk.length) {
    randomFillSync(chunk);
    writeSync(wfd, chunk, 0, chunk.length, off);
  }
  closeSync(wfd);
  const rfd = openSync(path, 'r');
  while (readSync(rfd, chunk, 0, chunk.length, null) > 0); // warm the page cache

  const rig = new FsRig(dir);
  // FUSE session: INIT (7.38, fuse_init_in with flags2), then LOOKUP + OPEN of the file, as the kernel does
  const init = rig.request(FuseOp.INIT, 0, le([4, 7], [4, 38], [4, 128 * 1024], [4, 0], [4, 0], ...Array.from({ length: 11 }, (): [4, number] => [4, 0])), [64]);
  rig.submit(init, 'INIT');
  const nameArg = enc.encode(`${FILE_NAME}\0`);
  const lookup = rig.request(FuseOp.LOOKUP, 1, nameArg, [128]);
  rig.submit(lookup, 'LOOKUP');
  const nodeid = rig.u64At(lookup.pages[0]!);
  const open = rig.request(FuseOp.OPEN, nodeid, le([4, 0], [4, 0]), [16]);
  rig.submit(open, 'OPEN');
  const fh = rig.u64At(open.pages[0]!);

  const getattr = rig.request(FuseOp.GETATTR, nodeid, le([4, 0], [4, 0], [8, 0]), [104]);
  const read4k = rig.request(FuseOp.READ, nodeid, readIn(fh, 0, PAGE), [PAGE]);
  const read128k = rig.request(FuseOp.READ, nodeid, readIn(fh, 0, BIG_READ), Array.from({ length: BIG_READ / PAGE }, () => PAGE));

  // the baselines' fds: the same kinds the server holds (an O_PATH fd of the file; an open file)
  const native = loadNative();
  const rootFd = native.fsOpenat(0, dir, O_PATH | O_DIRECTORY, 0);
  const pathFd = native.fsOpenat2(rootFd, nameArg.subarray(0, -1), O_PATH | O_NOFOLLOW, 0, RESOLVE);
  const name = nameArg.subarray(0, -1);
  const page4k = [rig.mem.slice(read4k.pages[0]!, PAGE)];
  const pages128k = read128k.pages.map((a) => rig.mem.slice(a, PAGE));

  const rand = mulberry32(7);
  const pages = FILE_BYTES / PAGE;
  const offsets = Float64Array.from({ length: 1 << 16 }, () => Math.floor(rand() * pages) * PAGE);
  const baseOffsets = Float64Array.from({ length: 1 << 16 }, () => Math.floor(rand() * pages) * PAGE);
  let pos = 0;
  let basePos = 0;
  let seq = 0;
  let baseSeq = FILE_BYTES / 2; // the other half: never the pages the device just read

  const readOffset = (r: Request, off: number): void => rig.mem.writeU64(r.argsAddr + 8, off);

  // the same host calls as the server makes, through its backend, without the device around them
  const backend = PassthroughFs.open(dir);
  const bePathFd = backend.lookup(backend.rootFd, name);
  const beFd = backend.reopen(bePathFd, 0);
  let bePos = 0;
  let beSeq = FILE_BYTES / 4;
  const direct = {
    getattr: (): void => {
      for (let i = 0; i < PER_ROUND; i++) fstatSync(pathFd);
    },
    lookup: (): void => {
      for (let i = 0; i < PER_ROUND; i++) {
        const fd = native.fsOpenat2(rootFd, name, O_PATH | O_NOFOLLOW, 0, RESOLVE);
        fstatSync(fd);
        closeSync(fd);
      }
    },
    read4k: (): void => {
      for (let i = 0; i < PER_ROUND; i++) {
        readvSync(rfd, page4k, baseOffsets[basePos]);
        basePos = (basePos + 1) & 0xffff;
      }
    },
    read128k: (): void => {
      for (let i = 0; i < PER_ROUND; i++) {
        readvSync(rfd, pages128k, baseSeq);
        baseSeq = (baseSeq + BIG_READ) % FILE_BYTES;
      }
    },
  };
  const backendSeries = (id: string, label: string, round: () => void, baseline: () => void, baseLabel: string, roundsPerSample = 200): DeviceBenchSeries => ({
    id: `${BACKEND_PREFIX}${id}`,
    label,
    unit: 'kops/s',
    kind: 'throughput',
    unitsPerRound: PER_ROUND,
    scale: 1e-3,
    roundsPerSample,
    round,
    baseline: { label: baseLabel, round: baseline },
  });

  const series: DeviceBenchSeries[] = [
    {
      id: 'fs-getattr',
      label: 'fs GETATTR',
      unit: 'kops/s',
      kind: 'throughput',
      unitsPerRound: PER_ROUND,
      scale: 1e-3,
      roundsPerSample: 200,
      round: () => {
        for (let i = 0; i < PER_ROUND; i++) rig.submit(getattr, 'GETATTR');
      },
      baseline: { label: 'fs.fstatSync of the O_PATH fd', round: direct.getattr },
    },
    {
      id: 'fs-lookup',
      label: 'fs LOOKUP (known inode)',
      unit: 'kops/s',
      kind: 'throughput',
      unitsPerRound: PER_ROUND,
      scale: 1e-3,
      roundsPerSample: 200,
      round: () => {
        for (let i = 0; i < PER_ROUND; i++) rig.submit(lookup, 'LOOKUP');
      },
      baseline: { label: 'openat2 (addon) + fs.fstatSync + fs.closeSync', round: direct.lookup },
    },
    {
      id: 'fs-read-4k',
      label: 'fs READ 4 KiB, random offsets',
      unit: 'kops/s',
      kind: 'throughput',
      unitsPerRound: PER_ROUND,
      scale: 1e-3,
      roundsPerSample: 200,
      round: () => {
        for (let i = 0; i < PER_ROUND; i++) {
          readOffset(read4k, offsets[pos]!);
          pos = (pos + 1) & 0xffff;
          rig.submit(read4k, 'READ 4K');
        }
      },
      baseline: { label: 'fs.readvSync (preadv) into the same page', round: direct.read4k },
    },
    {
      id: 'fs-read-128k',
      label: 'fs READ 128 KiB (32 pages), sequential',
      unit: 'kops/s',
      kind: 'throughput',
      unitsPerRound: PER_ROUND,
      scale: 1e-3,
      roundsPerSample: 50,
      round: () => {
        for (let i = 0; i < PER_ROUND; i++) {
          readOffset(read128k, seq);
          seq = (seq + BIG_READ) % FILE_BYTES;
          rig.submit(read128k, 'READ 128K');
        }
      },
      baseline: { label: 'fs.readvSync (preadv) into the same 32 pages', round: direct.read128k },
    },
    backendSeries(
      'getattr',
      'backend: GETATTR host call',
      () => {
        for (let i = 0; i < PER_ROUND; i++) backend.stat(bePathFd);
      },
      direct.getattr,
      'fs.fstatSync of the O_PATH fd',
    ),
    backendSeries(
      'lookup',
      'backend: LOOKUP host calls',
      () => {
        for (let i = 0; i < PER_ROUND; i++) {
          const fd = backend.lookup(backend.rootFd, name);
          backend.stat(fd);
          backend.close(fd);
        }
      },
      direct.lookup,
      'openat2 (addon) + fs.fstatSync + fs.closeSync',
    ),
    backendSeries(
      'read-4k',
      'backend: READ 4 KiB host call',
      () => {
        for (let i = 0; i < PER_ROUND; i++) {
          backend.preadv(beFd, page4k, offsets[bePos]!);
          bePos = (bePos + 1) & 0xffff;
        }
      },
      direct.read4k,
      'fs.readvSync (preadv) into the same page',
    ),
    backendSeries(
      'read-128k',
      'backend: READ 128 KiB host call',
      () => {
        for (let i = 0; i < PER_ROUND; i++) {
          backend.preadv(beFd, pages128k, beSeq);
          beSeq = (beSeq + BIG_READ) % FILE_BYTES;
        }
      },
      direct.read128k,
      'fs.readvSync (preadv) into the same 32 pages',
      50,
    ),
  ];
  const teardown = (): void => {
    backend.close(beFd);
    backend.close(bePathFd);
    backend.shutdown();
    rig.dev.close();
    closeSync(rfd);
    native.close(pathFd);
    native.close(rootFd);
    rmSync(dir, { recursive: true, force: true });
  };
  return { series, teardown };
}

// virtio-fs request parsing (fuse.h layouts, virtio 1.2 §5.11.6): every opcode's in-args decoded into a typed
// FuseRequest, structurally bad chains refused with named DeviceBroken errors before any host call, and a
// fuzz pass of a few hundred thousand hostile chains against a device on a real temp directory: the process
// stays alive, the device answers or breaks, and nothing outside the share changes.

import t from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { DeviceBroken } from '../../src/virtio/device.js';
import { FuseOp } from '../../src/virtio/fs/abi.js';
import { FsDevice } from '../../src/virtio/fs/device.js';
import {
  FuseBodyLengthMismatch,
  FuseBodyTooLong,
  FuseHeaderTooShort,
  FuseLengthMismatch,
  FuseNameNotTerminated,
  FuseReplyBufferTooSmall,
  FuseRequestError,
  FuseSizeMismatch,
  UnknownOpcodeLength,
  parseFuseRequest,
  type FuseBody,
  type FuseRequest,
} from '../../src/virtio/fs/request.js';
import { SplitQueue } from '../../src/virtio/queue.js';
import { FuseClient, concat, cstr, inHeader, le } from '../support/virtio/fuse-client.js';
import { MockSplitQueue, fuzzDevice, randInt, type ChainPart, type Rng } from '../support/virtio/mock-driver.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Lay a chain out in a mock queue, pop it through a real SplitQueue, parse its checked descriptors. */
function parse(parts: ChainPart[]): FuseRequest {
  const mem = GuestMemory.anonymous([{ base: 0, size: 1 << 22 }]);
  const mq = new MockSplitQueue(mem, 0, 16);
  const q = SplitQueue.create(mem, mq.layout(), { maxSize: 1024, eventIdx: false });
  mq.addChain(parts);
  mq.publish();
  const chain = q.pop()!;
  return parseFuseRequest(mem, chain.descriptors());
}

/** A request as the driver sends it: header + args readable, `room` writable bytes. */
function req(opcode: number, args: Uint8Array[], room = 256, nodeid: number | bigint = 5): ChainPart[] {
  const len = 40 + args.reduce((n, a) => n + a.length, 0);
  const parts: ChainPart[] = [{ data: inHeader(len, opcode, 77n, nodeid, 1000, 100, 42) }, ...args.filter((a) => a.length > 0).map((a) => ({ data: a }))];
  if (room > 0) parts.push({ len: room, writable: true });
  return parts;
}

function body<K extends FuseBody['op']>(r: FuseRequest, op: K): Extract<FuseBody, { op: K }> {
  if (r.body.op !== op) throw new Error(`expected ${op}, got ${r.body.op}`);
  return r.body as Extract<FuseBody, { op: K }>;
}

const s = (b: Uint8Array): string => dec.decode(b);

t.test('fuse_in_header and every opcode layout', async (t) => {
  const r0 = parse(req(FuseOp.GETATTR, [le([4, 1], [4, 0], [8, 9])]));
  t.equal(r0.len, 56);
  t.equal(r0.opcode, FuseOp.GETATTR);
  t.equal(r0.unique, 77n);
  t.equal(r0.nodeid, 5);
  t.equal(r0.uid, 1000);
  t.equal(r0.gid, 100);
  t.equal(r0.pid, 42);
  t.equal(r0.reply!.capacity, 256);
  t.same(body(r0, 'getattr'), { op: 'getattr', getattrFlags: 1, fh: 9 });
  t.equal(parse(req(FuseOp.GETATTR, [le([4, 0], [4, 0], [8, 0])], 256, 2n ** 60n)).nodeid, -1, 'a nodeid >= 2^53 is -1 (names nothing)');

  const init = body(parse(req(FuseOp.INIT, [le([4, 7], [4, 38], [4, 65536], [4, 0x4000_0001], [4, 3], ...Array.from({ length: 11 }, (): [4, number] => [4, 0]))])), 'init');
  t.same(init, { op: 'init', major: 7, minor: 38, maxReadahead: 65536, flags: 0x4000_0001n | (3n << 32n) }, 'INIT with flags2');
  t.equal(body(parse(req(FuseOp.INIT, [le([4, 7], [4, 31], [4, 0], [4, 5])])), 'init').flags, 5n, 'INIT without the 7.36 extension');
  t.equal(parse(req(FuseOp.DESTROY, [])).body.op, 'destroy');
  t.equal(s(body(parse(req(FuseOp.LOOKUP, [cstr('name')])), 'lookup').name), 'name');
  t.equal(body(parse(req(FuseOp.FORGET, [le([8, 3])], 0)), 'forget').nlookup, 3n);
  t.same(body(parse(req(FuseOp.BATCH_FORGET, [le([4, 2], [4, 0], [8, 7], [8, 1], [8, 2n ** 64n - 1n], [8, 2])], 0)), 'batch-forget').items, [
    { nodeid: 7, nlookup: 1n },
    { nodeid: -1, nlookup: 2n },
  ]);
  const sa = body(parse(req(FuseOp.SETATTR, [le([4, 0x39], [4, 0], [8, 4], [8, 100], [8, 0], [8, 11], [8, 12], [8, 13], [4, 21], [4, 22], [4, 23], [4, 0o644], [4, 0], [4, 5], [4, 6], [4, 0])])), 'setattr');
  t.same(sa, { op: 'setattr', valid: 0x39, fh: 4, size: 100, atimeSec: 11, mtimeSec: 12, atimeNsec: 21, mtimeNsec: 22, mode: 0o644, uid: 5, gid: 6 });
  t.equal(body(parse(req(FuseOp.SETATTR, [le([4, 0], [4, 0], [8, 0], [8, 0], [8, 0], [8, 2n ** 64n - 1n], [8, 0], [8, 0], [4, 0], [4, 0], [4, 0], [4, 0], [4, 0], [4, 0], [4, 0], [4, 0])])), 'setattr').atimeSec, -1, 'times are signed');
  t.equal(parse(req(FuseOp.READLINK, [])).body.op, 'readlink');
  const sym = body(parse(req(FuseOp.SYMLINK, [cstr('link'), cstr('/target')])), 'symlink');
  t.same([s(sym.name), s(sym.target)], ['link', '/target']);
  const mk = body(parse(req(FuseOp.MKNOD, [le([4, 0o10644], [4, 0x103], [4, 0o22], [4, 0]), cstr('n')])), 'mknod');
  t.same([mk.mode, mk.rdev, mk.umask, s(mk.name)], [0o10644, 0x103, 0o22, 'n']);
  const md = body(parse(req(FuseOp.MKDIR, [le([4, 0o755], [4, 0o22]), cstr('d')])), 'mkdir');
  t.same([md.mode, md.umask, s(md.name)], [0o755, 0o22, 'd']);
  t.equal(s(body(parse(req(FuseOp.UNLINK, [cstr('u')])), 'unlink').name), 'u');
  t.equal(s(body(parse(req(FuseOp.RMDIR, [cstr('r')])), 'rmdir').name), 'r');
  const rn = body(parse(req(FuseOp.RENAME, [le([8, 9]), cstr('a'), cstr('b')])), 'rename');
  t.same([rn.newdir, rn.flags, s(rn.name), s(rn.newname)], [9, 0, 'a', 'b']);
  const rn2 = body(parse(req(FuseOp.RENAME2, [le([8, 9], [4, 2], [4, 0]), cstr('a'), cstr('b')])), 'rename');
  t.same([rn2.newdir, rn2.flags, s(rn2.name), s(rn2.newname)], [9, 2, 'a', 'b']);
  const ln = body(parse(req(FuseOp.LINK, [le([8, 4]), cstr('l')])), 'link');
  t.same([ln.oldnodeid, s(ln.name)], [4, 'l']);
  t.same(body(parse(req(FuseOp.OPEN, [le([4, 0o2], [4, 1])])), 'open'), { op: 'open', flags: 2, openFlags: 1 });
  t.same(body(parse(req(FuseOp.OPENDIR, [le([4, 0], [4, 0])])), 'opendir'), { op: 'opendir', flags: 0, openFlags: 0 });
  const readIn = le([8, 3], [8, 2n ** 62n], [4, 4096], [4, 0], [8, 0], [4, 0o2], [4, 0]);
  t.same(body(parse(req(FuseOp.READ, [readIn])), 'read'), { op: 'read', fh: 3, offset: 2n ** 62n, size: 4096, flags: 2 });
  t.equal(parse(req(FuseOp.READDIR, [readIn])).body.op, 'readdir');
  t.equal(parse(req(FuseOp.READDIRPLUS, [readIn])).body.op, 'readdirplus');
  const wr = body(parse([...req(FuseOp.WRITE, [le([8, 3], [8, 10], [4, 5], [4, 1], [8, 0], [4, 0], [4, 0]), enc.encode('hel'), enc.encode('lo')], 24)]), 'write');
  t.same([wr.fh, wr.offset, wr.size, wr.writeFlags], [3, 10n, 5, 1]);
  t.equal(s(concat(...wr.data)), 'hello', 'WRITE data as guest views across descriptors');
  t.equal(parse(req(FuseOp.STATFS, [])).body.op, 'statfs');
  t.same(body(parse(req(FuseOp.RELEASE, [le([8, 6], [4, 2], [4, 1], [8, 0])])), 'release'), { op: 'release', fh: 6, flags: 2, releaseFlags: 1 });
  t.equal(parse(req(FuseOp.RELEASEDIR, [le([8, 6], [4, 0], [4, 0], [8, 0])])).body.op, 'releasedir');
  t.same(body(parse(req(FuseOp.FSYNC, [le([8, 6], [4, 1], [4, 0])])), 'fsync'), { op: 'fsync', fh: 6, fsyncFlags: 1 });
  t.equal(parse(req(FuseOp.FSYNCDIR, [le([8, 6], [4, 0], [4, 0])])).body.op, 'fsyncdir');
  t.same(body(parse(req(FuseOp.FLUSH, [le([8, 6], [4, 0], [4, 0], [8, 0])])), 'flush'), { op: 'flush', fh: 6 });
  const sx = body(parse(req(FuseOp.SETXATTR, [le([4, 3], [4, 1]), cstr('user.a'), enc.encode('v\0v')])), 'setxattr');
  t.same([s(sx.name), [...sx.value], sx.flags], ['user.a', [0x76, 0, 0x76], 1], 'SETXATTR value may hold NULs');
  const gx = body(parse(req(FuseOp.GETXATTR, [le([4, 64], [4, 0]), cstr('user.a')])), 'getxattr');
  t.same([gx.size, s(gx.name)], [64, 'user.a']);
  t.same(body(parse(req(FuseOp.LISTXATTR, [le([4, 128], [4, 0])])), 'listxattr'), { op: 'listxattr', size: 128 });
  t.equal(s(body(parse(req(FuseOp.REMOVEXATTR, [cstr('user.a')])), 'removexattr').name), 'user.a');
  t.same(body(parse(req(FuseOp.ACCESS, [le([4, 4], [4, 0])])), 'access'), { op: 'access', mask: 4 });
  const cr = body(parse(req(FuseOp.CREATE, [le([4, 0o102], [4, 0o644], [4, 0o22], [4, 0]), cstr('c')])), 'create');
  t.same([cr.flags, cr.mode, cr.umask, cr.openFlags, s(cr.name)], [0o102, 0o644, 0o22, 0, 'c']);
  t.same(body(parse(req(FuseOp.INTERRUPT, [le([8, 99])], 0)), 'interrupt'), { op: 'interrupt', unique: 99n });
  t.same(body(parse(req(FuseOp.FALLOCATE, [le([8, 2], [8, 4096], [8, 8192], [4, 1], [4, 0])])), 'fallocate'), { op: 'fallocate', fh: 2, offset: 4096n, length: 8192n, mode: 1 });
  t.same(body(parse(req(FuseOp.LSEEK, [le([8, 2], [8, 10], [4, 3], [4, 0])])), 'lseek'), { op: 'lseek', fh: 2, offset: 10n, whence: 3 });
  t.same(body(parse(req(FuseOp.COPY_FILE_RANGE, [le([8, 1], [8, 2], [8, 3], [8, 4], [8, 5], [8, 6], [8, 0])])), 'copy-file-range'), {
    op: 'copy-file-range',
    fhIn: 1,
    offIn: 2n,
    nodeidOut: 3,
    fhOut: 4,
    offOut: 5n,
    len: 6n,
    flags: 0n,
  });
  for (const op of [FuseOp.GETLK, FuseOp.SETLK, FuseOp.SETLKW, FuseOp.BMAP, FuseOp.IOCTL, FuseOp.POLL, FuseOp.NOTIFY_REPLY, FuseOp.SETUPMAPPING, FuseOp.REMOVEMAPPING, FuseOp.SYNCFS, FuseOp.TMPFILE, 0, 7, 19, 52, 4096, 0xffff_ffff]) {
    t.equal(parse(req(op, [new Uint8Array(24)])).body.op, 'unsupported', `opcode ${op}: unsupported (ENOSYS)`);
  }
  // a header split across descriptors parses the same
  const h = inHeader(56, FuseOp.GETATTR, 5n, 1);
  const split = parse([{ data: h.subarray(0, 7) }, { data: h.subarray(7, 33) }, { data: concat(h.subarray(33), le([4, 0], [4, 0], [8, 0])) }, { len: 200, writable: true }]);
  t.equal(split.body.op, 'getattr', 'header split across three descriptors');
});

t.test('short and odd chains are refused with named errors', async (t) => {
  const refuse = (parts: ChainPart[], cls: new (...a: never[]) => FuseRequestError, what: string): void => {
    t.throws(() => parse(parts), cls, what);
  };
  refuse([{ data: new Uint8Array(39) }, { len: 64, writable: true }], FuseHeaderTooShort, '39 readable bytes');
  refuse([{ len: 64, writable: true }], FuseHeaderTooShort, 'no readable bytes');
  const hdr = (len: number, op: number) => inHeader(len, op, 1n, 1);
  refuse([{ data: hdr(57, FuseOp.GETATTR) }, { data: new Uint8Array(16) }, { len: 200, writable: true }], FuseLengthMismatch, 'in_header.len one more than the chain');
  refuse([{ data: hdr(40, FuseOp.GETATTR) }, { data: new Uint8Array(16) }, { len: 200, writable: true }], FuseLengthMismatch, 'in_header.len short of the chain');
  refuse([{ data: hdr(0xffff_ffff, FuseOp.GETATTR) }, { len: 200, writable: true }], FuseLengthMismatch, 'in_header.len 2^32-1');
  refuse(req(FuseOp.GETATTR, [new Uint8Array(15)]), FuseBodyLengthMismatch, 'GETATTR body 15 bytes');
  refuse(req(FuseOp.GETATTR, [new Uint8Array(17)]), FuseBodyLengthMismatch, 'GETATTR body 17 bytes');
  refuse(req(FuseOp.INIT, [new Uint8Array(20)]), FuseBodyLengthMismatch, 'INIT body 20 bytes');
  refuse(req(FuseOp.READ, [new Uint8Array(39)]), FuseBodyLengthMismatch, 'READ body short');
  refuse(req(FuseOp.MKDIR, [new Uint8Array(4)]), FuseBodyLengthMismatch, 'MKDIR without its struct');
  refuse(req(FuseOp.LOOKUP, [enc.encode('noterminator')]), FuseNameNotTerminated, 'name without NUL');
  refuse(req(FuseOp.LOOKUP, []), FuseNameNotTerminated, 'LOOKUP without a name');
  refuse(req(FuseOp.LOOKUP, [cstr('a'), enc.encode('junk')]), FuseBodyLengthMismatch, 'bytes after the name');
  refuse(req(FuseOp.RENAME, [le([8, 1]), cstr('a')]), FuseNameNotTerminated, 'RENAME with one name');
  refuse(req(FuseOp.SYMLINK, [cstr('a'), enc.encode('b')]), FuseNameNotTerminated, 'SYMLINK target without NUL');
  refuse(req(FuseOp.WRITE, [le([8, 1], [8, 0], [4, 10], [4, 0], [8, 0], [4, 0], [4, 0]), new Uint8Array(9)], 24), FuseSizeMismatch, 'WRITE size 10, 9 bytes');
  refuse(req(FuseOp.WRITE, [le([8, 1], [8, 0], [4, 0xffff_ffff], [4, 0], [8, 0], [4, 0], [4, 0])], 24), FuseSizeMismatch, 'WRITE size 2^32-1');
  refuse(req(FuseOp.WRITE, [new Uint8Array(20)], 24), FuseBodyLengthMismatch, 'WRITE without fuse_write_in');
  refuse(req(FuseOp.WRITE, [le([8, 1], [8, 0], [4, 2 << 20], [4, 0], [8, 0], [4, 0], [4, 0]), new Uint8Array(2 << 20)], 24), FuseBodyTooLong, 'WRITE above max_write');
  refuse(req(FuseOp.SETXATTR, [le([4, 5], [4, 0]), cstr('user.a'), enc.encode('abc')]), FuseSizeMismatch, 'SETXATTR size 5, 3 bytes');
  refuse(req(FuseOp.BATCH_FORGET, [le([4, 3], [4, 0], [8, 1], [8, 1])], 0), FuseSizeMismatch, 'BATCH_FORGET count 3, one entry');
  refuse(req(FuseOp.BATCH_FORGET, [le([4, 0xffff_ffff], [4, 0])], 0), FuseSizeMismatch, 'BATCH_FORGET count 2^32-1');
  refuse(req(FuseOp.LOOKUP, [cstr('a')], 0), FuseReplyBufferTooSmall, 'LOOKUP without a writable buffer');
  refuse(req(FuseOp.LOOKUP, [cstr('a')], 15 + 128), FuseReplyBufferTooSmall, 'LOOKUP with room for 143 bytes, needs 144');
  refuse(req(FuseOp.GETATTR, [new Uint8Array(16)], 100), FuseReplyBufferTooSmall, 'GETATTR reply needs 120');
  refuse(req(FuseOp.STATFS, [], 16), FuseReplyBufferTooSmall, 'STATFS reply needs 96');
  refuse(req(999, [], 8), FuseReplyBufferTooSmall, 'an unknown opcode still needs room for the error header');
  refuse(req(FuseOp.FORGET, [le([8, 1])], 16), UnknownOpcodeLength, 'FORGET with a writable buffer');
  refuse(req(FuseOp.FORGET, [new Uint8Array(4)], 0), FuseBodyLengthMismatch, 'FORGET body 4 bytes');
  refuse(req(FuseOp.SYMLINK, [new Uint8Array(1_100_000).fill(0x61)], 200), FuseBodyTooLong, 'a non-WRITE body larger than any request');
  t.ok(new FuseHeaderTooShort('x') instanceof DeviceBroken, 'parse errors are DeviceBroken');
  t.equal(new FuseLengthMismatch('x').name, 'FuseLengthMismatch', 'named for what went wrong');
});

t.test('a malformed chain breaks the device, not the process; the device works after reset', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'kata-fsreq-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const dev = new FsDevice({ sharedDir: base, tag: 't' });
  t.teardown(() => dev.close());
  const c = new FuseClient(dev);
  t.equal(c.init().error, 0);
  t.throws(() => c.raw([{ data: new Uint8Array(10) }, { len: 64, writable: true }]), FuseHeaderTooShort, 'processQueue throws the DeviceBroken');
  t.equal(dev.metrics().broken, 1);
  dev.reset();
  c.activate();
  t.equal(c.init().error, 0, 'answers again after reset + activate');
  t.equal(c.getattr(1).error, 0);
});

// ---- fuzz

const NAMES = ['a', 'b', 'dir', 'f.txt', '..', '.', '', 'a/b', '../outside', '/etc', 'to-outside', 'x'.repeat(255), 'x'.repeat(256), 'sub'];
const OPS = Object.values(FuseOp);

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[randInt(rng, xs.length)]!;
}

/** A u64 that is usually small (a plausible id or offset), sometimes at an edge. */
function u64(rng: Rng): bigint {
  const r = rng();
  if (r < 0.7) return BigInt(randInt(rng, 24));
  if (r < 0.85) return BigInt(randInt(rng, 1 << 20));
  return pick(rng, [2n ** 32n - 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n]);
}

function u32(rng: Rng): number {
  const r = rng();
  if (r < 0.6) return randInt(rng, 4096 + 64);
  if (r < 0.8) return randInt(rng, 16);
  return pick(rng, [0xffff_ffff, 0x8000_0000, 1 << 20, (1 << 20) + 1, 65536, 65537]);
}

function name(rng: Rng): Uint8Array {
  return rng() < 0.9 ? cstr(pick(rng, NAMES)) : Uint8Array.from({ length: randInt(rng, 12) }, () => randInt(rng, 256));
}

/** The body of an opcode, mostly well-formed with hostile numbers and names, sometimes cut or random. */
function fuzzBody(rng: Rng, op: number): Uint8Array {
  const x8 = (): [8, bigint] => [8, u64(rng)];
  const x4 = (): [4, number] => [4, u32(rng)];
  switch (op) {
    case FuseOp.INIT:
      return le([4, rng() < 0.9 ? 7 : randInt(rng, 10)], [4, rng() < 0.8 ? 38 : randInt(rng, 40)], x4(), x4(), ...(rng() < 0.7 ? Array.from({ length: 12 }, x4) : []));
    case FuseOp.LOOKUP:
    case FuseOp.UNLINK:
    case FuseOp.RMDIR:
    case FuseOp.REMOVEXATTR:
      return name(rng);
    case FuseOp.FORGET:
      return le(x8());
    case FuseOp.BATCH_FORGET: {
      const n = randInt(rng, 4);
      return concat(le([4, rng() < 0.9 ? n : u32(rng)], [4, 0]), ...Array.from({ length: n }, () => le(x8(), x8())));
    }
    case FuseOp.GETATTR:
      return le(x4(), x4(), x8());
    case FuseOp.SETATTR:
      // sizes kept small: a fuzz run must not fill the host disk with real blocks
      return le(x4(), x4(), x8(), [8, randInt(rng, 1 << 16)], x8(), x8(), x8(), x8(), x4(), x4(), x4(), x4(), x4(), [4, 0], [4, 0], x4());
    case FuseOp.SYMLINK:
      return concat(name(rng), name(rng));
    case FuseOp.MKNOD:
      return concat(le([4, pick(rng, [0o100644, 0o10644, 0o20644, 0o60644, 0o140644, u32(rng)])], x4(), x4(), x4()), name(rng));
    case FuseOp.MKDIR:
      return concat(le(x4(), x4()), name(rng));
    case FuseOp.RENAME:
      return concat(le(x8()), name(rng), name(rng));
    case FuseOp.RENAME2:
      return concat(le(x8(), [4, randInt(rng, 8)], [4, 0]), name(rng), name(rng));
    case FuseOp.LINK:
      return concat(le(x8()), name(rng));
    case FuseOp.OPEN:
    case FuseOp.OPENDIR:
      return le([4, rng() < 0.8 ? randInt(rng, 4) | (rng() < 0.3 ? 0o1000 : 0) : u32(rng)], x4());
    case FuseOp.READ:
    case FuseOp.READDIR:
    case FuseOp.READDIRPLUS:
      return le(x8(), x8(), [4, rng() < 0.8 ? randInt(rng, 8192) : u32(rng)], x4(), x8(), x4(), x4());
    case FuseOp.WRITE: {
      const n = randInt(rng, 600);
      return concat(le(x8(), [8, rng() < 0.9 ? BigInt(randInt(rng, 1 << 16)) : u64(rng)], [4, rng() < 0.95 ? n : u32(rng)], x4(), x8(), x4(), x4()), new Uint8Array(n).fill(0x5a));
    }
    case FuseOp.RELEASE:
    case FuseOp.RELEASEDIR:
    case FuseOp.FLUSH:
      return le(x8(), x4(), x4(), x8());
    case FuseOp.FSYNC:
    case FuseOp.FSYNCDIR:
      return le(x8(), x4(), x4());
    case FuseOp.SETXATTR: {
      const v = new Uint8Array(randInt(rng, 40));
      return concat(le([4, rng() < 0.9 ? v.length : u32(rng)], [4, randInt(rng, 4)]), cstr(pick(rng, ['user.a', 'user.b', 'trusted.x', ''])), v);
    }
    case FuseOp.GETXATTR:
      return concat(le(x4(), x4()), cstr(pick(rng, ['user.a', 'user.b', ''])));
    case FuseOp.LISTXATTR:
    case FuseOp.ACCESS:
      return le(x4(), x4());
    case FuseOp.CREATE:
      return concat(le([4, randInt(rng, 4) | 0o100 | (rng() < 0.3 ? 0o200 : 0)], x4(), x4(), x4()), name(rng));
    case FuseOp.INTERRUPT:
      return le(x8());
    case FuseOp.FALLOCATE:
      // lengths kept small: fallocate really allocates blocks
      return le(x8(), x8(), [8, randInt(rng, 1 << 16)], [4, pick(rng, [0, 1, 3, 0x10, 0x11, u32(rng)])], [4, 0]);
    case FuseOp.LSEEK:
      return le(x8(), x8(), [4, randInt(rng, 6)], [4, 0]);
    case FuseOp.COPY_FILE_RANGE:
      return le(x8(), x8(), x8(), x8(), x8(), [8, randInt(rng, 1 << 16)], [8, rng() < 0.9 ? 0 : u64(rng)]);
    default:
      return Uint8Array.from({ length: randInt(rng, 64) }, () => randInt(rng, 256));
  }
}

/** A FUSE-shaped chain: header (len right 95%), body cut or padded sometimes, reply room plausible or not. */
function fuseChain(rng: Rng): ChainPart[] {
  const op = rng() < 0.08 ? FuseOp.INIT : rng() < 0.95 ? pick(rng, OPS) : (rng() * 4294967296) >>> 0;
  let b = fuzzBody(rng, op);
  const cut = rng();
  if (cut < 0.02) b = b.subarray(0, randInt(rng, b.length + 1));
  else if (cut < 0.03) b = concat(b, new Uint8Array(1 + randInt(rng, 8)));
  const nodeid = rng() < 0.9 ? BigInt(randInt(rng, 12)) : u64(rng);
  const len = rng() < 0.98 ? 40 + b.length : u32(rng);
  const hdr = inHeader(len, op, BigInt(randInt(rng, 1000)), nodeid, rng() < 0.8 ? 0 : 1000, 0);
  const parts: ChainPart[] = [];
  if (rng() < 0.9) parts.push({ data: concat(hdr, b) });
  else {
    const at = randInt(rng, 40 + b.length + 1);
    const all = concat(hdr, b);
    parts.push({ data: all.subarray(0, at) }, { data: all.subarray(at) });
  }
  const noReply = op === FuseOp.FORGET || op === FuseOp.BATCH_FORGET || op === FuseOp.INTERRUPT;
  const r = rng();
  if (!noReply || r < 0.05) {
    const room = r < 0.9 ? 16 + 4096 + randInt(rng, 8192) : r < 0.95 ? randInt(rng, 160) : 16 + 144;
    if (rng() < 0.8) parts.push({ len: room, writable: true });
    else {
      const a = randInt(rng, room + 1);
      parts.push({ len: a, writable: true }, { len: room - a, writable: true });
    }
  }
  return parts;
}

/**
 * Start a FUSE session on a freshly activated device, as the guest driver would right after DRIVER_OK: INIT,
 * then a created file (fh 1) and the root opened as a directory (fh 2), so fuzzed small ids reach real
 * inodes and handles. Built as chains in scratch memory and handed to the server directly.
 */
function startSession(dev: FsDevice): void {
  const init = req(FuseOp.INIT, [le([4, 7], [4, 38], [4, 0], [4, 0xffff_ffff], [4, 0], ...Array.from({ length: 11 }, (): [4, number] => [4, 0]))], 128, 0);
  const create = req(FuseOp.CREATE, [le([4, 0o102], [4, 0o644], [4, 0], [4, 0]), cstr('f.txt')], 256, 1);
  const opendir = req(FuseOp.OPENDIR, [le([4, 0], [4, 0])], 64, 1);
  for (const parts of [init, create, opendir]) {
    const mem = GuestMemory.anonymous([{ base: 0, size: 1 << 16 }]);
    const mq = new MockSplitQueue(mem, 0, 4);
    const q = SplitQueue.create(mem, mq.layout(), { maxSize: 1024, eventIdx: false });
    mq.addChain(parts);
    mq.publish();
    dev.server.handle(parseFuseRequest(mem, q.pop()!.descriptors()));
  }
}

t.test('1,000,000 hostile chains: the process lives, the device answers or breaks, the outside is untouched', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'kata-fsfuzz-'));
  const share = join(base, 'share');
  const outside = join(base, 'outside');
  mkdirSync(share);
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.txt'), 'secret');
  writeFileSync(join(share, 'f.txt'), 'data');
  mkdirSync(join(share, 'sub'));
  symlinkSync('../outside', join(share, 'to-outside'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  let dev: FsDevice | undefined;
  const res = fuzzDevice(() => (dev = new FsDevice({ sharedDir: share, tag: 'fuzz', xattr: true })), {
    chains: 1_000_000,
    seed: 0xf5,
    request: (rng) => fuseChain(rng),
    requestShare: 0.85,
    onActivate: (d) => startSession(d as FsDevice),
    batch: 8,
    queueSize: 64,
  });
  const m = dev!.metrics();
  dev!.close();
  t.comment(`fs fuzz: ${res.chains} chains, ${res.used} used, ${res.broken} DeviceBroken, ${Math.round(res.ms)} ms`);
  t.comment(`broken by name: ${JSON.stringify(res.brokenByName)}`);
  t.comment(`device metrics: ${JSON.stringify(m)}`);
  t.ok(res.chains >= 1_000_000, 'all chains went by (only DeviceBroken escaped: fuzzDevice rethrows anything else)');
  t.ok(res.used > 100_000, 'the device answered many requests');
  t.ok(res.broken > 0, 'malformed chains broke the device (and it was reset)');
  t.ok(Object.keys(res.brokenByName).some((k) => k.startsWith('Fuse')), 'FUSE parse errors among the breaks');
  t.ok((m['op.lookup'] ?? 0) > 1000 && (m['op.write'] ?? 0) > 100 && (m['op.readdirplus'] ?? 0) > 100, 'requests reached the server');
  t.equal(Object.keys(m).filter((k) => k.startsWith('internal.')).length, 0, `no internal errors: ${JSON.stringify(m)}`);
  t.same(readdirSync(outside), ['secret.txt'], 'outside/ holds only secret.txt');
  t.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'secret', 'and it is unchanged');
  t.same(readdirSync(base).sort(), ['outside', 'share'], 'nothing appeared beside the share');
});

// virtio-fs FUSE server against a real temp directory through the real addon backend (PassthroughFs), driven
// by the FUSE client in tests/support/virtio/fuse-client.ts over mock-driver queues: INIT, lookups, file and
// directory operations, xattrs, readonly shares, FORGET, guest numbers out of range, and escape attempts that
// must fail without touching anything outside the share (asserted on the host file system).

import t, { type Test } from 'tap';
import { existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Errno,
  FATTR_ATIME,
  FATTR_MODE,
  FATTR_MTIME,
  FATTR_SIZE,
  FOPEN_DIRECT_IO,
  FOPEN_KEEP_CACHE,
  FUSE_MAX_WRITE,
  FuseOp,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  SEEK_DATA,
  SEEK_HOLE,
} from '../../src/virtio/fs/abi.js';
import { FsDevice, InvalidFsTag } from '../../src/virtio/fs/device.js';
import { SharedDirError } from '../../src/virtio/fs/passthrough.js';
import { loadNative } from '../../src/kvm/native.js';
import { VIRTIO_ID_FS } from '../../src/virtio/ids.js';
import { FuseClient, cstr, decodeEntry, le } from '../support/virtio/fuse-client.js';

const ROOT = 1;
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Rig {
  base: string;
  share: string;
  outside: string;
  dev: FsDevice;
  c: FuseClient;
}

/** share/ (the export) beside outside/ (must never change), with files, links and traps in share/. */
function rig(t: Test, opts: { readOnly?: boolean; cache?: 'none' | 'auto' | 'always'; xattr?: boolean } = {}): Rig {
  const base = mkdtempSync(join(tmpdir(), 'kata-fs-'));
  const share = join(base, 'share');
  const outside = join(base, 'outside');
  mkdirSync(share);
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.txt'), 'secret');
  writeFileSync(join(share, 'hello.txt'), 'hello world');
  mkdirSync(join(share, 'sub'));
  writeFileSync(join(share, 'sub', 'inner.txt'), 'inner');
  symlinkSync('/etc', join(share, 'to-etc'));
  symlinkSync('/etc/passwd', join(share, 'to-passwd'));
  symlinkSync('../outside', join(share, 'to-outside'));
  symlinkSync('/proc/self/root', join(share, 'to-proc-root'));
  symlinkSync(join(outside, 'secret.txt'), join(share, 'to-secret'));
  const dev = new FsDevice({ sharedDir: share, tag: 'kata', ...opts });
  const c = new FuseClient(dev);
  t.teardown(() => {
    dev.close();
    rmSync(base, { recursive: true, force: true });
  });
  return { base, share, outside, dev, c };
}

/** outside/ exactly as rig() made it. */
function outsideIntact(t: Test, r: Rig): void {
  t.same(readdirSync(r.outside).sort(), ['secret.txt'], 'outside/ holds only secret.txt');
  t.equal(readFileSync(join(r.outside, 'secret.txt'), 'utf8'), 'secret', 'outside/secret.txt unchanged');
  t.same(readdirSync(r.base).sort(), ['outside', 'share'], 'nothing new beside the share');
}

function ok(t: Test, r: { error: number }, what: string): void {
  t.equal(r.error, 0, what);
}

t.test('device identity and config space (virtio 1.2 §5.11.4)', async (t) => {
  const r = rig(t);
  t.equal(r.dev.deviceType, VIRTIO_ID_FS);
  t.equal(VIRTIO_ID_FS, 26);
  t.same(r.dev.queueMaxSizes.length, 2, 'hiprio + 1 request queue');
  const c = r.dev.configSpace();
  t.equal(c.length, 40);
  t.equal(dec.decode(c.subarray(0, 4)), 'kata');
  t.same([...c.subarray(4, 36)], new Array(32).fill(0), 'tag NUL-padded');
  t.equal(new DataView(c.buffer).getUint32(36, true), 1, 'num_request_queues');
  t.throws(() => new FsDevice({ sharedDir: r.share, tag: '' }), InvalidFsTag);
  t.throws(() => new FsDevice({ sharedDir: r.share, tag: 'x'.repeat(37) }), InvalidFsTag);
  t.throws(() => new FsDevice({ sharedDir: join(r.base, 'nope'), tag: 'a' }), SharedDirError);
});

t.test('INIT negotiation', async (t) => {
  const r = rig(t);
  const before = r.c.getattr(ROOT);
  t.equal(before.error, -Errno.EIO, 'requests before INIT get EIO');
  const old = r.c.init(30);
  t.equal(old.error, -Errno.EPROTO, 'FUSE 7.30 is refused');
  const newer = r.c.call(FuseOp.INIT, 0, [le([4, 8], [4, 0], [4, 0], [4, 0])], 64);
  t.equal(newer.error, 0);
  t.equal(newer.len, 24, 'a newer major gets only major/minor back');
  t.equal(newer.dv.getUint32(0, true), 7);
  const init = r.c.init();
  t.equal(init.error, 0);
  t.equal(init.len, 16 + 64, 'struct fuse_init_out');
  t.equal(init.used, 80, 'used length = header + init_out');
  t.equal(init.dv.getUint32(0, true), 7, 'major');
  t.equal(init.dv.getUint32(4, true), 38, 'minor');
  t.equal(init.dv.getUint32(20, true), FUSE_MAX_WRITE, 'max_write');
  t.equal(init.dv.getUint16(28, true), 256, 'max_pages');
  const flags = init.dv.getUint32(12, true);
  t.ok((flags & (1 << 13)) !== 0, 'FUSE_DO_READDIRPLUS offered');
  t.equal(flags & (1 << 16), 0, 'no WRITEBACK_CACHE');
  t.equal(flags & (1 << 1), 0, 'no POSIX locks');
  t.equal(init.unique, 4n, 'unique echoed');
  ok(t, r.c.getattr(ROOT), 'getattr works after INIT');
});

t.test('lookup, getattr, readdir and readdirplus', async (t) => {
  const r = rig(t, { cache: 'always' });
  r.c.init();
  const a = r.c.lookup(ROOT, 'hello.txt');
  ok(t, a, 'lookup hello.txt');
  t.equal(a.entry!.attr.size, 11);
  t.equal(a.entry!.attr.mode & S_IFMT, S_IFREG);
  t.equal(a.entry!.attr.ino, BigInt(statSync(join(r.share, 'hello.txt')).ino), 'attr.ino is the host inode number');
  t.equal(a.entry!.entryValid, 86400, 'cache=always: a day');
  const b = r.c.lookup(ROOT, 'hello.txt');
  t.equal(b.entry!.nodeid, a.entry!.nodeid, 'the same (dev, ino) keeps its nodeid');
  t.equal(r.c.lookup(ROOT, 'missing').error, -Errno.ENOENT);
  const sub = r.c.lookup(ROOT, 'sub');
  t.equal(sub.entry!.attr.mode & S_IFMT, S_IFDIR);
  t.equal(r.c.lookup(sub.entry!.nodeid, 'inner.txt').entry!.attr.size, 5, 'lookup in a subdirectory');
  t.equal(r.c.lookup(a.entry!.nodeid, 'x').error, -Errno.ENOTDIR, 'lookup under a file');
  const g = r.c.getattr(ROOT);
  t.equal(g.attr!.mode & S_IFMT, S_IFDIR);

  const d = r.c.opendir(ROOT);
  ok(t, d, 'opendir');
  const all = r.c.readdir(ROOT, d.fh!, 0n, 4096, false);
  const names = all.entries!.map((e) => e.name).sort();
  t.same(names, ['.', '..', 'hello.txt', 'sub', 'to-etc', 'to-outside', 'to-passwd', 'to-proc-root', 'to-secret']);
  t.equal(all.entries!.find((e) => e.name === 'sub')!.type, 4, 'DT_DIR');
  t.equal(all.entries!.find((e) => e.name === 'to-etc')!.type, 10, 'DT_LNK');
  // a small buffer: resume from each reply's last offset until empty; every name exactly once
  const seen: string[] = [];
  let off = 0n;
  for (let i = 0; i < 50; i++) {
    const part = r.c.readdir(ROOT, d.fh!, off, 80, false);
    ok(t, part, `readdir page ${i}`);
    if (part.entries!.length === 0) break;
    for (const e of part.entries!) seen.push(e.name);
    off = part.entries![part.entries!.length - 1]!.off;
  }
  t.same(seen.sort(), names, 'paged readdir yields every entry once');
  const before = r.dev.server.inodeCount;
  const plus = r.c.readdir(ROOT, d.fh!, 0n, 8192, true);
  ok(t, plus, 'readdirplus');
  const hello = plus.entries!.find((e) => e.name === 'hello.txt')!;
  t.equal(hello.entry!.nodeid, a.entry!.nodeid, 'readdirplus looks entries up (same nodeid)');
  t.equal(hello.entry!.attr.size, 11);
  t.equal(plus.entries!.find((e) => e.name === '.')!.entry!.nodeid, 0, "'.' carries nodeid 0 (the kernel skips it)");
  const link = plus.entries!.find((e) => e.name === 'to-etc')!;
  t.equal(link.entry!.attr.mode & S_IFMT, S_IFLNK, 'readdirplus of a symlink gives the link');
  t.ok(r.dev.server.inodeCount > before, 'readdirplus counted lookups');
  t.equal(r.c.release(ROOT, d.fh!, true), 0, 'releasedir');
  t.equal(r.c.release(ROOT, d.fh!, true), -Errno.EBADF, 'releasedir twice');
  t.equal(r.c.readdir(ROOT, d.fh!, 0n, 4096, false).error, -Errno.EBADF, 'readdir on a released handle');
});

t.test('create, write, read, fsync, flush, release', async (t) => {
  const r = rig(t, { cache: 'none' });
  r.c.init();
  const cr = r.c.create(ROOT, 'new.txt', 0o102, 0o640);
  ok(t, cr, 'create');
  t.equal(statSync(join(r.share, 'new.txt')).mode & 0o777, 0o640, 'host file created with the requested mode');
  const id = cr.entry!.nodeid;
  const fh = cr.fh!;
  t.equal(r.c.write(id, fh, 0, enc.encode('abcdefghij')).size, 10, 'write 10 bytes');
  t.equal(r.c.write(id, fh, 100, enc.encode('XYZ')).size, 3, 'write at 100');
  const host = readFileSync(join(r.share, 'new.txt'));
  t.equal(host.length, 103);
  t.equal(host.subarray(0, 10).toString(), 'abcdefghij');
  t.equal(host.subarray(100).toString(), 'XYZ');
  const rd = r.c.read(id, fh, 2, 5);
  t.equal(dec.decode(rd.data), 'cdefg', 'read back');
  const split = r.c.read(id, fh, 0, 103, [7, 20, 50, 42]);
  t.equal(split.data!.length, 103, 'read into a header split across descriptors');
  t.equal(dec.decode(split.data!.subarray(0, 10)), 'abcdefghij');
  t.equal(dec.decode(split.data!.subarray(100)), 'XYZ');
  const eof = r.c.read(id, fh, 1000, 64);
  t.equal(eof.data!.length, 0, 'read past EOF: 0 bytes');
  for (const flags of [0, 1]) {
    t.equal(r.c.call(FuseOp.FSYNC, id, [le([8, fh], [4, flags], [4, 0])]).error, 0, `fsync flags ${flags}`);
  }
  t.equal(r.c.call(FuseOp.FLUSH, id, [le([8, fh], [4, 0], [4, 0], [8, 0])]).error, 0, 'flush');
  const op = r.c.open(id, 0);
  t.equal(op.openFlags! & FOPEN_DIRECT_IO, FOPEN_DIRECT_IO, 'cache=none: FOPEN_DIRECT_IO');
  t.equal(r.c.release(id, op.fh!), 0);
  t.equal(r.c.release(id, fh), 0, 'release');
  t.equal(r.c.release(id, fh), -Errno.EBADF, 'release twice');
  t.equal(r.c.read(id, fh, 0, 4).error, -Errno.EBADF, 'read on a released handle');
  t.equal(r.dev.server.handleCount, 0);
  const excl = r.c.create(ROOT, 'new.txt', 0o302, 0o644);
  t.equal(excl.error, -Errno.EEXIST, 'O_EXCL create of an existing name');
  const ro = r.c.open(id, 0);
  t.equal(r.c.write(id, ro.fh!, 0, enc.encode('no')).error, -Errno.EBADF, 'write on a read-only open: the host says EBADF');
});

t.test('mkdir, rename, rename2, link, symlink, readlink, unlink, rmdir', async (t) => {
  const r = rig(t);
  r.c.init();
  const md = r.c.mkdir(ROOT, 'dir1', 0o750);
  ok(t, md, 'mkdir');
  t.ok(statSync(join(r.share, 'dir1')).isDirectory());
  t.equal(statSync(join(r.share, 'dir1')).mode & 0o777, 0o750);
  const d1 = md.entry!.nodeid;
  const rename = (from: number, name: string, to: number, newname: string, flags?: number): number =>
    flags === undefined
      ? r.c.call(FuseOp.RENAME, from, [le([8, to]), cstr(name), cstr(newname)]).error
      : r.c.call(FuseOp.RENAME2, from, [le([8, to], [4, flags], [4, 0]), cstr(name), cstr(newname)]).error;
  t.equal(rename(ROOT, 'hello.txt', d1, 'moved.txt'), 0, 'rename into dir1');
  t.notOk(existsSync(join(r.share, 'hello.txt')));
  t.equal(readFileSync(join(r.share, 'dir1', 'moved.txt'), 'utf8'), 'hello world');
  writeFileSync(join(r.share, 'other.txt'), 'other');
  t.equal(rename(d1, 'moved.txt', ROOT, 'other.txt', RENAME_NOREPLACE), -Errno.EEXIST, 'RENAME_NOREPLACE onto an existing name');
  t.equal(readFileSync(join(r.share, 'other.txt'), 'utf8'), 'other', 'target untouched');
  t.equal(rename(d1, 'moved.txt', ROOT, 'other.txt', RENAME_EXCHANGE), 0, 'RENAME_EXCHANGE');
  t.equal(readFileSync(join(r.share, 'other.txt'), 'utf8'), 'hello world');
  t.equal(readFileSync(join(r.share, 'dir1', 'moved.txt'), 'utf8'), 'other');
  t.equal(rename(ROOT, 'other.txt', ROOT, 'x', RENAME_NOREPLACE | RENAME_EXCHANGE), -Errno.EINVAL, 'both flags');
  t.equal(rename(ROOT, 'other.txt', ROOT, 'x', 8), -Errno.EINVAL, 'unknown flag');

  const other = r.c.lookup(ROOT, 'other.txt').entry!;
  const ln = r.c.call(FuseOp.LINK, d1, [le([8, other.nodeid]), cstr('hard.txt')], 128);
  t.equal(ln.error, 0, 'link');
  t.equal(decodeEntry(ln.dv, 0).nodeid, other.nodeid, 'a hard link is the same inode (same nodeid)');
  t.equal(statSync(join(r.share, 'dir1', 'hard.txt')).ino, statSync(join(r.share, 'other.txt')).ino);
  t.equal(decodeEntry(ln.dv, 0).attr.nlink, 2);
  t.equal(r.c.call(FuseOp.LINK, ROOT, [le([8, d1]), cstr('dirlink')], 128).error, -Errno.EPERM, 'no hard link to a directory');

  const sl = r.c.call(FuseOp.SYMLINK, ROOT, [cstr('sl'), cstr('dir1/hard.txt')], 128);
  t.equal(sl.error, 0, 'symlink');
  t.equal(lstatSync(join(r.share, 'sl')).isSymbolicLink(), true);
  const rl = r.c.call(FuseOp.READLINK, decodeEntry(sl.dv, 0).nodeid, [], 4096);
  t.equal(dec.decode(rl.payload), 'dir1/hard.txt', 'readlink');
  t.equal(r.c.call(FuseOp.READLINK, d1, [], 4096).error, -Errno.EINVAL, 'readlink of a directory');

  t.equal(r.c.call(FuseOp.UNLINK, d1, [cstr('hard.txt')]).error, 0, 'unlink');
  t.notOk(existsSync(join(r.share, 'dir1', 'hard.txt')));
  t.equal(r.c.call(FuseOp.RMDIR, ROOT, [cstr('dir1')]).error, -Errno.ENOTEMPTY, 'rmdir of a non-empty directory');
  t.equal(r.c.call(FuseOp.UNLINK, d1, [cstr('moved.txt')]).error, 0);
  t.equal(r.c.call(FuseOp.RMDIR, ROOT, [cstr('dir1')]).error, 0, 'rmdir');
  t.notOk(existsSync(join(r.share, 'dir1')));
  const mk = r.c.call(FuseOp.MKNOD, ROOT, [le([4, 0o10644], [4, 0], [4, 0], [4, 0]), cstr('fifo')], 128);
  t.equal(mk.error, 0, 'mknod of a FIFO');
  t.ok(lstatSync(join(r.share, 'fifo')).isFIFO());
  const chr = r.c.call(FuseOp.MKNOD, ROOT, [le([4, 0o20644], [4, 0x0103], [4, 0], [4, 0]), cstr('null')], 128);
  t.equal(chr.error, -Errno.EPERM, 'no device nodes in the share');
  t.notOk(existsSync(join(r.share, 'null')));
  t.equal(r.c.open(decodeEntry(mk.dv, 0).nodeid, 0).error, -Errno.EPERM, 'OPEN of a FIFO is refused (never blocks the worker)');
  outsideIntact(t, r);
});

t.test('setattr: size, mode, times', async (t) => {
  const r = rig(t);
  r.c.init();
  const id = r.c.lookup(ROOT, 'hello.txt').entry!.nodeid;
  const setattr = (valid: number, f: { size?: number; mode?: number; atime?: number; mtime?: number; atimens?: number; mtimens?: number; fh?: number }) =>
    r.c.call(
      FuseOp.SETATTR,
      id,
      [le([4, valid], [4, 0], [8, f.fh ?? 0], [8, f.size ?? 0], [8, 0], [8, f.atime ?? 0], [8, f.mtime ?? 0], [8, 0], [4, f.atimens ?? 0], [4, f.mtimens ?? 0], [4, 0], [4, f.mode ?? 0], [4, 0], [4, 0], [4, 0], [4, 0])],
      104,
    );
  const s = setattr(FATTR_SIZE, { size: 5 });
  t.equal(s.error, 0, 'truncate');
  t.equal(readFileSync(join(r.share, 'hello.txt'), 'utf8'), 'hello');
  t.equal(Number(s.dv.getBigUint64(16 + 8, true)), 5, 'reply attr has the new size');
  t.equal(setattr(FATTR_MODE, { mode: 0o600 }).error, 0, 'chmod');
  t.equal(statSync(join(r.share, 'hello.txt')).mode & 0o777, 0o600);
  t.equal(setattr(FATTR_ATIME | FATTR_MTIME, { atime: 1_000_000, mtime: 2_000_000, mtimens: 123_000_000 }).error, 0, 'utimens');
  const st = statSync(join(r.share, 'hello.txt'));
  t.equal(Math.floor(st.atimeMs / 1000), 1_000_000);
  t.equal(st.mtimeMs, 2_000_000_123);
  t.equal(setattr(FATTR_MTIME, { mtime: 5, mtimens: 1_000_000_000 }).error, -Errno.EINVAL, 'nsec >= 10^9');
  t.equal(setattr(FATTR_SIZE, { size: 2 ** 60 }).error, -Errno.EFBIG, 'size beyond 2^53');
  t.equal(setattr(FATTR_SIZE | (1 << 6), { size: 1, fh: 77 }).error, -Errno.EBADF, 'FATTR_FH with an unknown handle');
  t.equal(readFileSync(join(r.share, 'hello.txt'), 'utf8'), 'hello', 'nothing changed by the refused calls');
  const dirId = r.c.lookup(ROOT, 'sub').entry!.nodeid;
  t.equal(r.c.call(FuseOp.SETATTR, dirId, [le([4, FATTR_SIZE], [4, 0], ...Array.from({ length: 10 }, (): [8, number] => [8, 0]))], 104).error, -Errno.EISDIR, 'truncate of a directory');
});

t.test('xattrs on, and off (ENOSYS)', async (t) => {
  const r = rig(t);
  r.c.init();
  const id = r.c.lookup(ROOT, 'hello.txt').entry!.nodeid;
  const set = r.c.call(FuseOp.SETXATTR, id, [le([4, 3], [4, 0]), cstr('user.kata'), enc.encode('abc')]);
  t.equal(set.error, 0, 'setxattr');
  const size = r.c.call(FuseOp.GETXATTR, id, [le([4, 0], [4, 0]), cstr('user.kata')], 8);
  t.equal(size.dv.getUint32(0, true), 3, 'getxattr size query');
  const get = r.c.call(FuseOp.GETXATTR, id, [le([4, 64], [4, 0]), cstr('user.kata')], 64);
  t.equal(dec.decode(get.payload), 'abc', 'getxattr value');
  t.equal(r.c.call(FuseOp.GETXATTR, id, [le([4, 2], [4, 0]), cstr('user.kata')], 2).error, -Errno.ERANGE, 'value larger than size');
  const list = r.c.call(FuseOp.LISTXATTR, id, [le([4, 256], [4, 0])], 256);
  t.ok(dec.decode(list.payload).split('\0').includes('user.kata'), 'listxattr');
  t.equal(r.c.call(FuseOp.SETXATTR, id, [le([4, 1], [4, 1]), cstr('user.kata'), enc.encode('x')]).error, -Errno.EEXIST, 'XATTR_CREATE on an existing name');
  t.equal(r.c.call(FuseOp.SETXATTR, id, [le([4, 1], [4, 8]), cstr('user.k2'), enc.encode('x')]).error, -Errno.EINVAL, 'unknown setxattr flag');
  t.equal(r.c.call(FuseOp.GETXATTR, id, [le([4, 70000], [4, 0]), cstr('user.kata')], 70000).error, -Errno.E2BIG, 'size above XATTR_SIZE_MAX');
  t.equal(r.c.call(FuseOp.GETXATTR, id, [le([4, 4096], [4, 0]), cstr('user.kata')], 16).error, -Errno.EINVAL, 'size larger than the reply buffer');
  t.equal(r.c.call(FuseOp.REMOVEXATTR, id, [cstr('user.kata')]).error, 0, 'removexattr');
  t.equal(r.c.call(FuseOp.GETXATTR, id, [le([4, 64], [4, 0]), cstr('user.kata')], 64).error, -Errno.ENODATA);

  const off = rig(t, { xattr: false });
  off.c.init();
  const oid = off.c.lookup(ROOT, 'hello.txt').entry!.nodeid;
  for (const [op, args] of [
    [FuseOp.SETXATTR, [le([4, 1], [4, 0]), cstr('user.a'), enc.encode('x')]],
    [FuseOp.GETXATTR, [le([4, 0], [4, 0]), cstr('user.a')]],
    [FuseOp.LISTXATTR, [le([4, 0], [4, 0])]],
    [FuseOp.REMOVEXATTR, [cstr('user.a')]],
  ] as const) {
    t.equal(off.c.call(op, oid, [...args], 64).error, -Errno.ENOSYS, `xattr off: opcode ${op} is ENOSYS`);
  }
});

t.test('statfs, lseek, fallocate, copy_file_range, access', async (t) => {
  const r = rig(t);
  r.c.init();
  const sf = r.c.call(FuseOp.STATFS, ROOT, [], 80);
  t.equal(sf.error, 0, 'statfs');
  t.ok(sf.dv.getBigUint64(0, true) > 0n, 'blocks');
  t.equal(sf.dv.getUint32(44, true), 255, 'namelen');

  const cr = r.c.create(ROOT, 'sparse', 0o102, 0o644);
  const id = cr.entry!.nodeid;
  const fh = cr.fh!;
  const fal = (mode: number, off: number | bigint, len: number | bigint) => r.c.call(FuseOp.FALLOCATE, id, [le([8, fh], [8, off], [8, len], [4, mode], [4, 0])]).error;
  t.equal(fal(0, 0, 1 << 20), 0, 'fallocate 1 MiB');
  t.equal(statSync(join(r.share, 'sparse')).size, 1 << 20);
  t.equal(fal(0x03, 0, 1 << 20), 0, 'punch the whole range');
  t.equal(fal(0x40, 0, 4096), -Errno.EOPNOTSUPP, 'unsupported mode');
  t.equal(fal(0, 0, 0), -Errno.EINVAL, 'length 0');
  t.equal(fal(0, 2n ** 62n, 4096), -Errno.EINVAL, 'offset beyond 2^53');
  t.equal(r.c.write(id, fh, 512 * 1024, new Uint8Array(4096).fill(7)).size, 4096);
  const seek = (off: number | bigint, whence: number) => r.c.call(FuseOp.LSEEK, id, [le([8, fh], [8, off], [4, whence], [4, 0])], 8);
  const data = seek(0, SEEK_DATA);
  t.equal(data.error, 0, 'SEEK_DATA');
  t.equal(Number(data.dv.getBigUint64(0, true)), 512 * 1024, 'first data after the hole');
  const hole = seek(512 * 1024, SEEK_HOLE);
  t.equal(Number(hole.dv.getBigUint64(0, true)), 512 * 1024 + 4096, 'hole after the data');
  t.equal(seek(0, 1).error, -Errno.EINVAL, 'SEEK_CUR refused (no shared position)');
  t.equal(seek(0, 9).error, -Errno.EINVAL, 'unknown whence');
  t.equal(seek(2n ** 63n, SEEK_DATA).error, -Errno.EINVAL, 'offset >= 2^63');

  const dst = r.c.create(ROOT, 'copy', 0o102, 0o644);
  const cfr = (len: number | bigint, flags = 0, nodeidOut: number = dst.entry!.nodeid) =>
    r.c.call(FuseOp.COPY_FILE_RANGE, id, [le([8, fh], [8, 512 * 1024], [8, nodeidOut], [8, dst.fh!], [8, 0], [8, len], [8, flags])], 8);
  const cp = cfr(4096);
  t.equal(cp.error, 0, 'copy_file_range');
  t.equal(cp.dv.getUint32(0, true), 4096);
  t.same(readFileSync(join(r.share, 'copy')), Buffer.alloc(4096, 7), 'copied bytes on the host');
  t.equal(cfr(10, 1).error, -Errno.EINVAL, 'flags must be 0');
  t.equal(cfr(10, 0, 9999).error, -Errno.EBADF, 'unknown nodeid_out');
  t.equal(cfr(2n ** 64n - 1n).error, 0, 'a huge len is clamped, not trusted');

  const access = (mask: number, uid: number) => r.c.call(FuseOp.ACCESS, id, [le([4, mask], [4, 0])], 0, { uid, gid: uid }).error;
  t.equal(access(0, 1000), 0, 'F_OK');
  t.equal(access(4, 0), 0, 'root R_OK');
  t.equal(access(2, 1000), -Errno.EACCES, 'W_OK for another user on a 0644 file');
  t.equal(access(4, 1000), 0, 'R_OK for another user');
  t.equal(access(8, 0), -Errno.EINVAL, 'unknown mask bit');
});

t.test('FORGET and BATCH_FORGET drop inodes', async (t) => {
  const r = rig(t);
  r.c.init();
  const base = r.dev.server.inodeCount;
  t.equal(base, 1, 'only the root');
  const a = r.c.lookup(ROOT, 'hello.txt').entry!.nodeid;
  r.c.lookup(ROOT, 'hello.txt');
  const b = r.c.lookup(ROOT, 'sub').entry!.nodeid;
  const c = r.c.lookup(ROOT, 'to-etc').entry!.nodeid;
  t.equal(r.dev.server.inodeCount, 4);
  r.c.forget(a, 1);
  t.equal(r.dev.server.inodeCount, 4, 'one of two lookups forgotten: still there');
  r.c.forget(a, 1);
  t.equal(r.dev.server.inodeCount, 3, 'both forgotten: gone');
  t.equal(r.c.getattr(a).error, -Errno.EBADF, 'a forgotten nodeid is unknown');
  r.c.forget(ROOT, 100);
  t.equal(r.c.getattr(ROOT).error, 0, 'the root is never forgotten');
  r.c.forget(12345, 1); // unknown: ignored
  const batch = r.c.call(FuseOp.BATCH_FORGET, 0, [le([4, 3], [4, 0], [8, b], [8, 1], [8, c], [8, 2n ** 64n - 1n], [8, 999], [8, 1])]);
  t.equal(batch.used, 0, 'no reply to BATCH_FORGET');
  t.equal(r.dev.server.inodeCount, 1, 'BATCH_FORGET dropped the rest');
});

t.test('a readonly share answers EROFS to every mutating op and changes nothing', async (t) => {
  const r = rig(t, { readOnly: true });
  r.c.init();
  const id = r.c.lookup(ROOT, 'hello.txt').entry!.nodeid;
  const snapshot = () => JSON.stringify(readdirSync(r.share).sort()) + readFileSync(join(r.share, 'hello.txt'), 'utf8') + String(statSync(join(r.share, 'hello.txt')).mode);
  const before = snapshot();
  const rofs: Array<[string, number]> = [
    ['create', r.c.create(ROOT, 'x', 0o102).error],
    ['mkdir', r.c.mkdir(ROOT, 'd').error],
    ['mknod', r.c.call(FuseOp.MKNOD, ROOT, [le([4, 0o100644], [4, 0], [4, 0], [4, 0]), cstr('n')], 128).error],
    ['symlink', r.c.call(FuseOp.SYMLINK, ROOT, [cstr('s'), cstr('t')], 128).error],
    ['link', r.c.call(FuseOp.LINK, ROOT, [le([8, id]), cstr('l')], 128).error],
    ['unlink', r.c.call(FuseOp.UNLINK, ROOT, [cstr('hello.txt')]).error],
    ['rmdir', r.c.call(FuseOp.RMDIR, ROOT, [cstr('sub')]).error],
    ['rename', r.c.call(FuseOp.RENAME, ROOT, [le([8, ROOT]), cstr('hello.txt'), cstr('h2')]).error],
    ['setattr', r.c.call(FuseOp.SETATTR, id, [le([4, FATTR_MODE], [4, 0], ...Array.from({ length: 10 }, (): [8, number] => [8, 0]))], 104).error],
    ['open O_RDWR', r.c.open(id, 2).error],
    ['open O_TRUNC', r.c.open(id, 0o1000).error],
    ['setxattr', r.c.call(FuseOp.SETXATTR, id, [le([4, 1], [4, 0]), cstr('user.a'), enc.encode('x')]).error],
    ['removexattr', r.c.call(FuseOp.REMOVEXATTR, id, [cstr('user.a')]).error],
  ];
  const fh = r.c.open(id, 0).fh!;
  rofs.push(['write', r.c.write(id, fh, 0, enc.encode('x')).error]);
  rofs.push(['fallocate', r.c.call(FuseOp.FALLOCATE, id, [le([8, fh], [8, 0], [8, 10], [4, 0], [4, 0])]).error]);
  rofs.push(['copy_file_range', r.c.call(FuseOp.COPY_FILE_RANGE, id, [le([8, fh], [8, 0], [8, id], [8, fh], [8, 0], [8, 1], [8, 0])], 8).error]);
  for (const [what, err] of rofs) t.equal(err, -Errno.EROFS, `${what}: EROFS`);
  t.equal(dec.decode(r.c.read(id, fh, 0, 64).data), 'hello world', 'reads still work');
  t.equal(snapshot(), before, 'the share is unchanged');
});

t.test('escape attempts fail and touch nothing outside the share', async (t) => {
  const r = rig(t);
  r.c.init();
  // '..' and '.' and names with '/'
  t.equal(r.c.lookup(ROOT, '..').error, -Errno.EINVAL, "lookup '..' at the root");
  t.equal(r.c.lookup(ROOT, '.').error, -Errno.EINVAL, "lookup '.'");
  const sub = r.c.lookup(ROOT, 'sub').entry!.nodeid;
  t.equal(r.c.lookup(sub, '..').error, -Errno.EINVAL, "lookup '..' anywhere");
  t.equal(r.c.lookup(ROOT, '../outside/secret.txt').error, -Errno.EINVAL, "a name with '/'");
  t.equal(r.c.lookup(ROOT, '/etc/passwd').error, -Errno.EINVAL, 'an absolute name');
  t.equal(r.c.lookup(ROOT, 'sub/inner.txt').error, -Errno.EINVAL, "'/' even inside the share");
  t.equal(r.c.create(ROOT, '../outside/evil', 0o102).error, -Errno.EINVAL, "create with '..'");
  t.equal(r.c.mkdir(ROOT, '..').error, -Errno.EINVAL, "mkdir '..'");
  t.equal(r.c.call(FuseOp.SYMLINK, ROOT, [cstr('../x'), cstr('/etc')], 128).error, -Errno.EINVAL, "symlink named '../x'");
  t.equal(r.c.call(FuseOp.RENAME, ROOT, [le([8, ROOT]), cstr('hello.txt'), cstr('../outside/stolen')]).error, -Errno.EINVAL, "rename to '../'");
  t.equal(r.c.call(FuseOp.UNLINK, ROOT, [cstr('../outside/secret.txt')]).error, -Errno.EINVAL, "unlink '../'");
  t.equal(r.c.lookup(ROOT, 'x'.repeat(256)).error, -Errno.ENAMETOOLONG, 'a name longer than NAME_MAX');

  // a symlink to /etc: lookup gives the link itself, never its target; nothing through it resolves
  const etc = r.c.lookup(ROOT, 'to-etc').entry!;
  t.equal(etc.attr.mode & S_IFMT, S_IFLNK, 'lookup of to-etc is the symlink');
  t.not(etc.attr.ino, BigInt(statSync('/etc').ino), 'not /etc');
  t.equal(r.c.lookup(etc.nodeid, 'passwd').error, -Errno.ENOTDIR, 'the link is no directory: /etc/passwd is not reached');
  t.equal(r.c.opendir(etc.nodeid).error, -Errno.ENOTDIR, 'opendir through the link');
  t.equal(r.c.create(etc.nodeid, 'evil', 0o102).error, -Errno.ENOTDIR, 'create through the link');
  const passwd = r.c.lookup(ROOT, 'to-passwd').entry!;
  t.equal(passwd.attr.mode & S_IFMT, S_IFLNK);
  t.equal(r.c.open(passwd.nodeid, 0).error, -Errno.ELOOP, 'open of a symlink to /etc/passwd is refused');
  t.equal(r.c.open(passwd.nodeid, 2).error, -Errno.ELOOP);
  t.equal(dec.decode(r.c.call(FuseOp.READLINK, passwd.nodeid, [], 4096).payload), '/etc/passwd', 'readlink shows the target text only');

  // a symlink to a directory outside, used as a path component
  const out = r.c.lookup(ROOT, 'to-outside').entry!;
  t.equal(out.attr.mode & S_IFMT, S_IFLNK);
  t.equal(r.c.lookup(out.nodeid, 'secret.txt').error, -Errno.ENOTDIR, 'lookup through to-outside');
  t.equal(r.c.mkdir(out.nodeid, 'planted').error, -Errno.ENOTDIR, 'mkdir through to-outside');
  t.equal(r.c.call(FuseOp.RENAME, ROOT, [le([8, out.nodeid]), cstr('hello.txt'), cstr('stolen')]).error, -Errno.ENOTDIR, 'rename into to-outside');
  const secret = r.c.lookup(ROOT, 'to-secret').entry!;
  t.equal(r.c.open(secret.nodeid, 0).error, -Errno.ELOOP, 'open of a symlink to a file outside');
  t.equal(r.c.call(FuseOp.SETATTR, secret.nodeid, [le([4, FATTR_SIZE], [4, 0], [8, 0], [8, 0], ...Array.from({ length: 8 }, (): [8, number] => [8, 0]))], 104).error, -Errno.EINVAL, 'truncate through a symlink');

  // metadata calls on a link to a file outside act on the link (or are refused), never on the target
  const secretMtime = statSync(join(r.outside, 'secret.txt')).mtimeMs;
  t.not(r.c.call(FuseOp.SETXATTR, secret.nodeid, [le([4, 1], [4, 0]), cstr('user.x'), enc.encode('1')]).error, 0, 'setxattr through to-secret refused');
  t.throws(() => loadNative().fsGetxattr(loadNative().fsOpenat(0, join(r.outside, 'secret.txt'), 0o10000000, 0), 'user.x', new Uint8Array(0)), { code: 'ENODATA' }, 'the outside file got no xattr');
  const times = le([4, FATTR_MTIME], [4, 0], [8, 0], [8, 0], [8, 0], [8, 0], [8, 5], [8, 0], [4, 0], [4, 0], [4, 0], [4, 0], [4, 0], [4, 0], [4, 0], [4, 0]);
  t.equal(r.c.call(FuseOp.SETATTR, secret.nodeid, [times], 104).error, -Errno.EOPNOTSUPP, 'utimens of a symlink refused');
  const chmod = le([4, FATTR_MODE], [4, 0], [8, 0], [8, 0], [8, 0], [8, 0], [8, 0], [8, 0], [4, 0], [4, 0], [4, 0], [4, 0o777], [4, 0], [4, 0], [4, 0], [4, 0]);
  t.equal(r.c.call(FuseOp.SETATTR, secret.nodeid, [chmod], 104).error, -Errno.EOPNOTSUPP, 'chmod of a symlink refused');
  t.equal(statSync(join(r.outside, 'secret.txt')).mtimeMs, secretMtime, 'outside mtime unchanged');
  t.not(statSync(join(r.outside, 'secret.txt')).mode & 0o777, 0o777, 'outside mode unchanged');

  // /proc magic links
  const proc = r.c.lookup(ROOT, 'to-proc-root').entry!;
  t.equal(proc.attr.mode & S_IFMT, S_IFLNK, 'a link to /proc/self/root is a plain link here');
  t.equal(r.c.lookup(proc.nodeid, 'etc').error, -Errno.ENOTDIR, 'nothing resolves through it');
  t.equal(r.c.opendir(proc.nodeid).error, -Errno.ENOTDIR);

  // a rename/link to outside via a crafted parent nodeid: unknown ids name nothing
  for (const crafted of [0, 999, 2 ** 40, 2 ** 53, 2n ** 63n, 2n ** 64n - 1n]) {
    t.equal(r.c.call(FuseOp.RENAME, ROOT, [le([8, crafted]), cstr('hello.txt'), cstr('stolen')]).error, -Errno.EBADF, `rename to newdir ${crafted}`);
    t.equal(r.c.call(FuseOp.LINK, crafted, [le([8, etc.nodeid]), cstr('l')], 128).error, -Errno.EBADF, `link into parent ${crafted}`);
    t.equal(r.c.call(FuseOp.LINK, ROOT, [le([8, crafted]), cstr('l')], 128).error, -Errno.EBADF, `link of oldnodeid ${crafted}`);
    t.equal(r.c.call(FuseOp.LOOKUP, crafted, [cstr('x')], 128).error, -Errno.EBADF, `lookup under ${crafted}`);
  }
  t.equal(r.c.call(FuseOp.GETATTR, 2n ** 64n - 1n, [le([4, 0], [4, 0], [8, 0])], 104).error, -Errno.EBADF, 'nodeid 2^64-1');
  t.ok(existsSync(join(r.share, 'hello.txt')), 'hello.txt was not moved');

  // hard links: the guest can only link inodes it was given (all inside); linking a symlink links the link
  const passwdLinks = statSync('/etc/passwd').nlink;
  const hl = r.c.call(FuseOp.LINK, ROOT, [le([8, passwd.nodeid]), cstr('passwd-link')], 128);
  if (hl.error === 0) {
    t.ok(lstatSync(join(r.share, 'passwd-link')).isSymbolicLink(), 'LINK of a symlink inode makes another symlink, not a hard link to /etc/passwd');
    t.equal(decodeEntry(hl.dv, 0).attr.mode & S_IFMT, S_IFLNK);
  } else {
    t.notOk(existsSync(join(r.share, 'passwd-link')), `LINK of a symlink inode refused (${hl.error})`);
  }
  t.equal(statSync('/etc/passwd').nlink, passwdLinks, '/etc/passwd link count unchanged');
  // a file hard-linked from outside by the host operator is the same inode: served, but only by its name in the share
  linkSync(join(r.outside, 'secret.txt'), join(r.share, 'hostlink.txt'));
  const hlk = r.c.lookup(ROOT, 'hostlink.txt').entry!;
  t.equal(hlk.attr.nlink, 2, 'the host hard link is visible as nlink 2');
  t.equal(r.c.call(FuseOp.UNLINK, ROOT, [cstr('hostlink.txt')]).error, 0, 'unlinking the share name');
  t.ok(existsSync(join(r.outside, 'secret.txt')), 'leaves the outside name');
  outsideIntact(t, r);
  t.notOk(existsSync(join(r.base, 'stolen')) || existsSync(join(r.outside, 'stolen')) || existsSync(join(r.outside, 'planted')));
});

t.test('guest numbers are checked before use', async (t) => {
  const r = rig(t);
  r.c.init();
  const cr = r.c.create(ROOT, 'f', 0o102, 0o644);
  const id = cr.entry!.nodeid;
  const fh = cr.fh!;
  r.c.write(id, fh, 0, enc.encode('0123456789'));
  const readRaw = (size: number, room: number, off: number | bigint = 0, h = fh) =>
    r.c.call(FuseOp.READ, id, [le([8, h], [8, off], [4, size], [4, 0], [8, 0], [4, 0], [4, 0])], room).error;
  t.equal(readRaw(64, 16), -Errno.EINVAL, 'READ size larger than the writable buffer');
  t.equal(readRaw(2 * 1024 * 1024, 2 * 1024 * 1024), -Errno.EINVAL, 'READ size above max_read');
  t.equal(readRaw(4, 4, 2n ** 60n), -Errno.EINVAL, 'READ offset beyond 2^53');
  t.equal(readRaw(4, 4, 0, 4242), -Errno.EBADF, 'READ with an unknown fh');
  t.equal(readRaw(4, 4, 0, 2 ** 53 + 8), -Errno.EBADF, 'READ with an fh beyond 2^53');
  const d = r.c.opendir(ROOT).fh!;
  t.equal(readRaw(4, 4, 0, d), -Errno.EBADF, 'a directory handle is not a file handle');
  t.equal(r.c.readdir(ROOT, fh, 0n, 4096, false).error, -Errno.EBADF, 'a file handle is not a directory handle');
  t.equal(r.c.call(FuseOp.READDIR, ROOT, [le([8, d], [8, 0], [4, 8192], [4, 0], [8, 0], [4, 0], [4, 0])], 100).error, -Errno.EINVAL, 'READDIR size above the buffer');
  t.equal(r.c.readdir(ROOT, d, 2n ** 63n, 4096, false).error, -Errno.EINVAL, 'READDIR offset >= 2^63');
  t.equal(r.c.readdir(ROOT, d, 0n, 0, false).entries!.length, 0, 'READDIR of size 0: empty');
  t.equal(r.c.readdir(ROOT, d, 0n, 16, false).entries!.length, 0, 'READDIR buffer too small for one entry: empty, not overrun');
  t.equal(r.c.write(id, fh, 2 ** 53, enc.encode('x')).error, -Errno.EFBIG, 'WRITE past 2^53');
  t.equal(r.c.write(id, 9999, 0, enc.encode('x')).error, -Errno.EBADF, 'WRITE with an unknown fh');
  t.equal(r.c.getattr(9999).error, -Errno.EBADF, 'unknown nodeid');
  t.equal(r.c.open(ROOT, 0).error, -Errno.EISDIR, 'OPEN of a directory');
  t.equal(r.c.open(id, 3).error, -Errno.EINVAL, 'access mode 3');
  t.equal(r.c.opendir(id).error, -Errno.ENOTDIR, 'OPENDIR of a file');
  t.equal(r.c.lookup(ROOT, '').error, -Errno.EINVAL, 'empty name');
  for (const op of [FuseOp.GETLK, FuseOp.SETLK, FuseOp.SETLKW, FuseOp.BMAP, FuseOp.IOCTL, FuseOp.POLL, FuseOp.SYNCFS, FuseOp.TMPFILE, FuseOp.SETUPMAPPING, 4096, 999_999]) {
    t.equal(r.c.call(op, ROOT, [new Uint8Array(8)], 64).error, -Errno.ENOSYS, `opcode ${op}: ENOSYS`);
  }
  t.equal(readFileSync(join(r.share, 'f'), 'utf8'), '0123456789', 'file intact');
  t.ok((r.dev.metrics().errors ?? 0) > 0, 'errors counted');
});

t.test('cache options set timeouts and open flags', async (t) => {
  for (const [cache, valid, flags] of [
    ['none', 0, FOPEN_DIRECT_IO],
    ['auto', 1, 0],
    ['always', 86400, FOPEN_KEEP_CACHE],
  ] as const) {
    const r = rig(t, { cache });
    r.c.init();
    const e = r.c.lookup(ROOT, 'hello.txt').entry!;
    t.equal(e.entryValid, valid, `cache=${cache}: entry_valid`);
    t.equal(e.attrValid, valid, `cache=${cache}: attr_valid`);
    t.equal(r.c.open(e.nodeid, 0).openFlags, flags, `cache=${cache}: open flags`);
  }
});

t.test('reset drops the session; DESTROY too', async (t) => {
  const r = rig(t);
  r.c.init();
  const id = r.c.lookup(ROOT, 'hello.txt').entry!.nodeid;
  r.c.open(id, 0);
  t.equal(r.dev.server.handleCount, 1);
  t.equal(r.c.call(FuseOp.DESTROY, 0, []).error, 0, 'destroy');
  t.equal(r.dev.server.inodeCount, 1);
  t.equal(r.dev.server.handleCount, 0);
  t.equal(r.c.getattr(ROOT).error, -Errno.EIO, 'after DESTROY: INIT again');
  r.c.init();
  r.c.lookup(ROOT, 'hello.txt');
  r.dev.reset();
  t.equal(r.dev.server.inodeCount, 1, 'device reset drops inodes');
  r.c.activate();
  t.equal(r.c.init().error, 0, 'a new session after reset');
});

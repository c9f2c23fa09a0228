// PassthroughFs: the FsBackend over a host directory, through the addon's *at() calls (native/fs_at.cc) and,
// for calls on an fd alone, Node's own (fstat, preadv/pwritev, ftruncate, fsync).
//
// Containment (DESIGN decision 8): the server holds an O_PATH fd per inode and asks for one component at a
// time; lookup() opens it with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS) and
// O_PATH | O_NOFOLLOW, so a symlink is returned as itself and never followed, a '..' cannot climb out, and a
// /proc magic link cannot be jumped through. Where the kernel lacks openat2 (before 5.6) it falls back to
// openat(O_PATH | O_NOFOLLOW), which is equally contained for a single component without '/' (the server
// refuses those). Operations on an inode go through its fd (or /proc/self/fd/N for the calls the kernel only
// offers by path), never through a path string built here.

import { fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, readvSync, writevSync, type BigIntStats } from 'node:fs';
import { resolve } from 'node:path';
import { loadNative, type NativeAddon } from '../../kvm/native.js';
import {
  AT_REMOVEDIR,
  Errno,
  O_CREAT,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  RESOLVE_BENEATH,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
} from './abi.js';
import { FsError, type FsBackend, type FsStat, type FsStatfs } from './backend.js';

/** The shared directory cannot be used; the message says why. */
export class SharedDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SharedDirError';
  }
}

const EMPTY = new Uint8Array(0);
const RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
const NS_PER_S = 1_000_000_000n;

/** A BigIntStats time in ns as struct timespec {sec, nsec}, nsec in [0, 1e9) (also before 1970). */
function secOf(ns: bigint): number {
  // Number(ns) rounds ns to a few hundred ns (53-bit mantissa): near a second boundary the floor may be one
  // off, which the exact BigInt remainder below corrects
  const sec = Math.floor(Number(ns) / 1e9);
  const rest = ns - BigInt(sec) * NS_PER_S;
  return rest < 0n ? sec - 1 : rest >= NS_PER_S ? sec + 1 : sec;
}
function nsecOf(ns: bigint, sec: number): number {
  return Number(ns - BigInt(sec) * NS_PER_S);
}

/** struct stat as FsStat (the addon's NativeStat shape) from Node's BigIntStats: dev/ino exact, times to the ns. */
function statOf(s: BigIntStats): FsStat {
  const as = secOf(s.atimeNs);
  const ms = secOf(s.mtimeNs);
  const cs = secOf(s.ctimeNs);
  return {
    dev: s.dev,
    ino: s.ino,
    mode: Number(s.mode),
    nlink: Number(s.nlink),
    uid: Number(s.uid),
    gid: Number(s.gid),
    rdev: Number(s.rdev),
    size: Number(s.size),
    blksize: Number(s.blksize),
    blocks: Number(s.blocks),
    atimeSec: as,
    atimeNsec: nsecOf(s.atimeNs, as),
    mtimeSec: ms,
    mtimeNsec: nsecOf(s.mtimeNs, ms),
    ctimeSec: cs,
    ctimeNsec: nsecOf(s.ctimeNs, cs),
  };
}

/** An addon error (NativeError: errno + code) or an argument error turned into an FsError. */
function toFsError(e: unknown): FsError {
  if (e instanceof FsError) return e;
  if (e instanceof Error) {
    const errno = (e as { errno?: unknown }).errno;
    // the addon reports a positive errno, Node's fs a negative one
    if (typeof errno === 'number' && Number.isInteger(errno) && errno !== 0) return new FsError(Math.abs(errno), e.message);
    // TypeError / RangeError from the addon's argument checks: the server should have refused first
    return new FsError(Errno.EINVAL, e.message);
  }
  return new FsError(Errno.EIO, String(e));
}

export class PassthroughFs implements FsBackend {
  private rootFdOrClosed: number;
  private openat2 = true; // cleared after the first ENOSYS

  private constructor(
    private readonly native: NativeAddon,
    rootFd: number,
    readonly sharedDir: string,
  ) {
    this.rootFdOrClosed = rootFd;
  }

  /** Open `sharedDir` (a host directory chosen by the operator: symlinks in it are followed here, once). */
  static open(sharedDir: string, native: NativeAddon = loadNative()): PassthroughFs {
    let fd: number;
    try {
      fd = native.fsOpenat(0, resolve(sharedDir), O_PATH | O_DIRECTORY, 0); // absolute: dirFd is ignored
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      throw new SharedDirError(`cannot open shared directory ${sharedDir}: ${typeof code === 'string' ? code : String(e)} (it must be an existing directory)`);
    }
    return new PassthroughFs(native, fd, sharedDir);
  }

  get rootFd(): number {
    if (this.rootFdOrClosed < 0) throw new FsError(Errno.EBADF, `shared directory ${this.sharedDir} is closed`);
    return this.rootFdOrClosed;
  }

  /**
   * Run a host call; its error becomes an FsError. Failures are frequent and guest-caused (every CREATE
   * starts with a LOOKUP of a missing name) and only their errno is kept, so the error the addon or Node
   * makes gets no stack trace (capturing it costs more than the syscall).
   */
  private call<T>(f: () => T): T {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return f();
    } catch (e) {
      throw toFsError(e);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  /** openat2 beneath dirFd (RESOLVE), or openat where the kernel lacks openat2 (ENOSYS: remembered). */
  private openBeneath(dirFd: number, name: Uint8Array, flags: number, mode: number): number {
    if (this.openat2) {
      try {
        return this.call(() => this.native.fsOpenat2(dirFd, name, flags, mode, RESOLVE));
      } catch (e) {
        if (!(e instanceof FsError) || e.errno !== Errno.ENOSYS) throw e;
        this.openat2 = false;
      }
    }
    return this.call(() => this.native.fsOpenat(dirFd, name, flags, mode));
  }

  lookup(dirFd: number, name: Uint8Array): number {
    return this.openBeneath(dirFd, name, O_PATH | O_NOFOLLOW, 0);
  }

  stat(fd: number): FsStat {
    // fstat(2) of the fd itself (libuv: statx(fd, "", AT_EMPTY_PATH)): an O_PATH fd of a symlink gives the
    // link, as fstatat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) does. Node's fstat is the cheaper call
    // here: the addon's fsFstatat builds its result object property by property (about twice the cost).
    return statOf(this.call(() => fstatSync(fd, { bigint: true })));
  }

  reopen(fd: number, flags: number): number {
    if ((flags & O_CREAT) !== 0) throw new FsError(Errno.EINVAL, 'reopen with O_CREAT');
    return this.call(() => this.native.fsReopen(fd, flags));
  }

  create(dirFd: number, name: Uint8Array, flags: number, mode: number): number {
    return this.openBeneath(dirFd, name, flags | O_CREAT | O_NOFOLLOW, mode);
  }

  close(fd: number): void {
    this.call(() => this.native.close(fd));
  }

  mkdir(dirFd: number, name: Uint8Array, mode: number): void {
    this.call(() => this.native.fsMkdirat(dirFd, name, mode));
  }

  mknod(dirFd: number, name: Uint8Array, mode: number, rdev: number): void {
    this.call(() => this.native.fsMknodat(dirFd, name, mode, rdev));
  }

  symlink(target: Uint8Array, dirFd: number, name: Uint8Array): void {
    this.call(() => this.native.fsSymlinkat(target, dirFd, name));
  }

  link(fd: number, dirFd: number, name: Uint8Array): void {
    this.call(() => this.native.fsLinkFd(fd, dirFd, name));
  }

  unlink(dirFd: number, name: Uint8Array, dir: boolean): void {
    this.call(() => this.native.fsUnlinkat(dirFd, name, dir ? AT_REMOVEDIR : 0));
  }

  rename(oldDirFd: number, oldName: Uint8Array, newDirFd: number, newName: Uint8Array, flags: number): void {
    this.call(() => this.native.fsRenameat2(oldDirFd, oldName, newDirFd, newName, flags));
  }

  readlink(fd: number): Uint8Array {
    return this.call(() => this.native.fsReadlinkat(fd, EMPTY));
  }

  chmod(fd: number, mode: number): void {
    this.call(() => this.native.fsChmodFd(fd, mode));
  }

  chown(fd: number, uid: number, gid: number): void {
    this.call(() => this.native.fsChownFd(fd, uid, gid));
  }

  utimens(fd: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void {
    this.call(() => this.native.fsUtimensFd(fd, atimeSec, atimeNsec, mtimeSec, mtimeNsec));
  }

  truncate(fd: number, size: number): void {
    this.call(() => ftruncateSync(fd, size));
  }

  fallocate(fd: number, mode: number, offset: number, len: number): void {
    this.call(() => this.native.fsFallocate(fd, mode, offset, len));
  }

  lseek(fd: number, offset: bigint, whence: number): bigint {
    return this.call(() => this.native.fsLseek(fd, offset, whence));
  }

  copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number): number {
    return this.call(() => this.native.fsCopyFileRange(fdIn, offIn, fdOut, offOut, len, 0));
  }

  fsync(fd: number, datasync: boolean): void {
    this.call(() => (datasync ? fdatasyncSync(fd) : fsyncSync(fd)));
  }

  statfs(fd: number): FsStatfs {
    return this.call(() => this.native.fsFstatfs(fd));
  }

  getdents(fd: number, buf: Uint8Array): number {
    return this.call(() => this.native.fsGetdents64(fd, buf));
  }

  getxattr(fd: number, name: Uint8Array, buf: Uint8Array): number {
    return this.call(() => this.native.fsGetxattr(fd, name, buf));
  }

  listxattr(fd: number, buf: Uint8Array): number {
    return this.call(() => this.native.fsListxattr(fd, buf));
  }

  setxattr(fd: number, name: Uint8Array, value: Uint8Array, flags: number): void {
    this.call(() => this.native.fsSetxattr(fd, name, value, flags));
  }

  removexattr(fd: number, name: Uint8Array): void {
    this.call(() => this.native.fsRemovexattr(fd, name));
  }

  preadv(fd: number, bufs: Uint8Array[], offset: number): number {
    // Node's positioned readvSync is preadv(2): file data lands in the guest-memory views without a copy
    return this.call(() => readvSync(fd, bufs, offset));
  }

  pwritev(fd: number, bufs: Uint8Array[], offset: number): number {
    return this.call(() => writevSync(fd, bufs, offset)); // pwritev(2)
  }

  shutdown(): void {
    if (this.rootFdOrClosed >= 0) {
      const fd = this.rootFdOrClosed;
      this.rootFdOrClosed = -1;
      this.call(() => this.native.close(fd));
    }
  }
}

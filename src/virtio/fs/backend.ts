// The host side of virtio-fs as the FUSE server sees it: a handful of fd-relative file-system calls. The
// server never builds a path: it names an inode by its O_PATH fd and a child by one checked component, and
// the backend resolves that component beneath the fd (passthrough.ts: openat2 RESOLVE_BENEATH, O_NOFOLLOW).
// Every failure is an FsError carrying the errno the server replies with. Tests can put a fake behind this.

import type { NativeStat, NativeStatfs } from '../../kvm/native.js';

/** struct stat and struct statfs, as the addon returns them (kvm/native.ts) and the server needs them. */
export type FsStat = NativeStat;
export type FsStatfs = NativeStatfs;

/** A host call failed; `errno` (positive) is what the guest gets back, negated. */
export class FsError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    // most are guest-caused (a lookup of a missing name, a refused request) and frequent: no JS stack
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = 'FsError';
  }
}

export interface FsBackend {
  /** O_PATH fd of the shared directory (the FUSE root, nodeid 1); owned by the backend */
  readonly rootFd: number;
  /** O_PATH | O_NOFOLLOW fd of `name` (one component) beneath directory fd `dirFd`; a symlink gives the link */
  lookup(dirFd: number, name: Uint8Array): number;
  /** fstat of an fd (O_PATH fds included), not following a symlink */
  stat(fd: number): FsStat;
  /** A new open file of fd's inode with open(2) `flags` (O_CREAT is refused) */
  reopen(fd: number, flags: number): number;
  /** openat(dirFd, name, flags | O_CREAT | O_NOFOLLOW, mode) beneath dirFd: an open file */
  create(dirFd: number, name: Uint8Array, flags: number, mode: number): number;
  close(fd: number): void;
  mkdir(dirFd: number, name: Uint8Array, mode: number): void;
  mknod(dirFd: number, name: Uint8Array, mode: number, rdev: number): void;
  symlink(target: Uint8Array, dirFd: number, name: Uint8Array): void;
  /** A new name `name` in `dirFd` for the inode behind O_PATH fd `fd` (never follows a symlink inode) */
  link(fd: number, dirFd: number, name: Uint8Array): void;
  unlink(dirFd: number, name: Uint8Array, dir: boolean): void;
  rename(oldDirFd: number, oldName: Uint8Array, newDirFd: number, newName: Uint8Array, flags: number): void;
  /** The target of the symlink behind O_PATH fd `fd` */
  readlink(fd: number): Uint8Array;
  chmod(fd: number, mode: number): void;
  /** -1 keeps that id */
  chown(fd: number, uid: number, gid: number): void;
  /** nsec may be UTIME_NOW / UTIME_OMIT */
  utimens(fd: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  truncate(fd: number, size: number): void;
  fallocate(fd: number, mode: number, offset: number, len: number): void;
  lseek(fd: number, offset: bigint, whence: number): bigint;
  copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number): number;
  fsync(fd: number, datasync: boolean): void;
  statfs(fd: number): FsStatfs;
  /** getdents64 into `buf`: bytes of struct linux_dirent64 records (0 at the end) */
  getdents(fd: number, buf: Uint8Array): number;
  getxattr(fd: number, name: Uint8Array, buf: Uint8Array): number;
  listxattr(fd: number, buf: Uint8Array): number;
  setxattr(fd: number, name: Uint8Array, value: Uint8Array, flags: number): void;
  removexattr(fd: number, name: Uint8Array): void;
  /** preadv straight into `bufs` (guest-memory views): bytes read, 0 at EOF */
  preadv(fd: number, bufs: Uint8Array[], offset: number): number;
  /** pwritev straight from `bufs`: bytes written */
  pwritev(fd: number, bufs: Uint8Array[], offset: number): number;
  /** Release the root fd (after the device is gone). */
  shutdown(): void;
}

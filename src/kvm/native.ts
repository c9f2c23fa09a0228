// The hand-written type of the C++ addon (native/addon.cc). The addon mirrors the kernel: file
// descriptors are numbers, kernel structs cross the boundary as byte buffers of their exact size
// (encoded/decoded in src/kvm/structs.ts), 64-bit quantities are bigint. No policy lives in C++.
//
// Every entry point checks its arguments and throws TypeError on a missing argument, a wrong type or a
// wrong buffer size, and RangeError on an integer outside its field (e.g. a negative fd, a bigint >= 2^64).
// A failing syscall throws a NativeError-shaped Error:
//   { message: 'KVM_SET_SREGS failed: Invalid argument (EINVAL)', code: 'EINVAL', errno: 22, syscall: 'KVM_SET_SREGS' }
// (src/kvm/errors.ts wrapNative() turns these into KvmError). Sources: native/*.cc.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An Error thrown by the addon when a syscall fails. */
export interface NativeError extends Error {
  /** errno name, e.g. 'EINVAL' */
  code: string;
  /** positive errno */
  errno: number;
  /** the ioctl or syscall name, e.g. 'KVM_CREATE_VM' */
  syscall: string;
}

/** A mapping the addon created; `buffer` is an external ArrayBuffer over [addr, addr+size). */
export interface NativeMapping {
  addr: bigint;
  size: number;
  buffer: ArrayBuffer;
}

export interface NativeAddon {
  // --- plain fds
  /** open(path, O_RDWR|O_CLOEXEC); returns the fd. */
  openDevice(path: string): number;
  close(fd: number): void;

  // --- /dev/kvm (system ioctls)
  getApiVersion(kvmFd: number): number;
  checkExtension(fd: number, cap: number): number;
  createVm(kvmFd: number, type: number): number;
  getVcpuMmapSize(kvmFd: number): number;
  /** KVM_GET_SUPPORTED_CPUID; returns nent * 40 bytes of struct kvm_cpuid_entry2. */
  getSupportedCpuid(kvmFd: number, maxEntries: number): Uint8Array;

  // --- VM ioctls
  createVcpu(vmFd: number, id: number): number;
  setUserMemoryRegion(vmFd: number, slot: number, flags: number, guestPhysAddr: bigint, memorySize: bigint, userspaceAddr: bigint): void;
  createIrqchip(vmFd: number): void;
  /** KVM_CREATE_PIT2 with struct kvm_pit_config { flags } */
  createPit2(vmFd: number, flags: number): void;
  setTssAddr(vmFd: number, addr: number): void;
  setIdentityMapAddr(vmFd: number, addr: bigint): void;
  /** KVM_IRQFD: flags 0 assigns, KVM_IRQFD_FLAG_DEASSIGN (1) removes. */
  irqfd(vmFd: number, eventFd: number, gsi: number, flags: number): void;
  /** KVM_IOEVENTFD; datamatch null means "any value" (no DATAMATCH flag). flags: KVM_IOEVENTFD_FLAG_* except DATAMATCH. */
  ioeventfd(vmFd: number, eventFd: number, addr: bigint, len: number, datamatch: bigint | null, flags: number): void;
  /** KVM_IRQ_LINE */
  irqLine(vmFd: number, irq: number, level: number): void;

  // --- vCPU ioctls
  /** struct kvm_regs, 144 bytes */
  getRegs(vcpuFd: number): Uint8Array;
  setRegs(vcpuFd: number, regs: Uint8Array): void;
  /** struct kvm_sregs, 312 bytes */
  getSregs(vcpuFd: number): Uint8Array;
  setSregs(vcpuFd: number, sregs: Uint8Array): void;
  /**
   * KVM_GET_MSRS for the given indices; returns the values in order. If the kernel reads fewer, throws a
   * NativeError { code: 'EINVAL', syscall: 'KVM_GET_MSRS', msrIndex: <first unreadable MSR> }.
   */
  getMsrs(vcpuFd: number, indices: number[]): bigint[];
  /** KVM_SET_MSRS; returns how many were set (the kernel's return value). */
  setMsrs(vcpuFd: number, indices: number[], values: bigint[]): number;
  /** KVM_SET_CPUID2 with entries = n * 40 bytes of struct kvm_cpuid_entry2. */
  setCpuid2(vcpuFd: number, entries: Uint8Array): void;
  /** struct kvm_lapic_state, 1024 bytes */
  getLapic(vcpuFd: number): Uint8Array;
  setLapic(vcpuFd: number, lapic: Uint8Array): void;
  /**
   * KVM_RUN. Returns 0 on a normal exit (read the reason from the kvm_run page) or the positive errno
   * EINTR / EAGAIN when interrupted (kick signal, immediate_exit). Other failures throw.
   */
  run(vcpuFd: number): number;

  // --- memory
  /** mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE (+MAP_SHARED if shared)). */
  mmapAnonymous(size: number, shared: boolean): NativeMapping;
  /** mmap(NULL, size, prot, flags, fd, offset): used for kvm_run pages and file-backed memory. MAP_FIXED is refused. */
  mmapFd(fd: number, size: number, prot: number, flags: number, offset: number): NativeMapping;
  /**
   * Wrap [addr, addr+size) of a live mapping this process's addon created as a new external ArrayBuffer
   * (for worker threads). Throws RangeError unless the range lies inside one registered mapping.
   */
  wrapMapping(addr: bigint, size: number): ArrayBuffer;
  /**
   * munmap a whole registered mapping (addr = its start; RangeError otherwise). Callers must first stop
   * every thread that wraps it: the external ArrayBuffers have no finalizer and would dangle.
   */
  munmap(addr: bigint): void;
  /**
   * Resident bytes of [addr, addr+size) via mincore() (whole pages). RangeError unless the range lies
   * inside one registered mapping. (madvise(MADV_DONTNEED) is not needed yet.)
   */
  residentBytes(addr: bigint, size: number): number;

  // --- eventfd
  eventfd(initval: number, flags: number): number;
  /** write(fd, u64) */
  eventfdWrite(fd: number, value: bigint): void;
  /** read(fd) -> u64, or null on EAGAIN (non-blocking fd with count 0). */
  eventfdRead(fd: number): bigint | null;

  // --- vCPU kicks (DESIGN decision 4)
  /**
   * Install a no-op SA_SIGINFO handler (without SA_RESTART) for `signo` (process-wide, idempotent), and
   * unblock `signo` in the calling thread. Call it on every vCPU thread. Only SIGRTMIN..SIGRTMAX (RangeError).
   */
  installKickHandler(signo: number): void;
  /** SIGRTMIN of this libc (kick signal = SIGRTMIN + n). */
  sigrtmin(): number;
  /** pthread_self() of the calling thread, as a bigint handle. */
  threadSelf(): bigint;
  /** pthread_kill(thread, signo); signo in SIGRTMIN..SIGRTMAX. The thread must still be alive. */
  threadKill(thread: bigint, signo: number): void;

  // --- fd watchers and scatter/gather I/O (native/poll_io.cc; device workers, DESIGN decision 3)
  /**
   * Watch `fd` for readability on the event loop of the CALLING thread (main or worker); `cb` runs on
   * that thread each time the fd is readable (level-triggered: read it to clear it, or cb runs again).
   * Returns a watcher id for unwatch(). One watcher per fd per thread; unwatch before closing the fd.
   * Watchers still open when a worker thread ends are closed with it.
   */
  watchReadable(fd: number, cb: () => void): number;
  /** Stop and close a watcher (on the thread that made it); unknown ids are ignored. */
  unwatch(id: number): void;
  /** readv(2) into the buffers (at most IOV_MAX); bytes read (0 = EOF), or -EAGAIN (-11) for EAGAIN. */
  readv(fd: number, bufs: Uint8Array[]): number;
  /** writev(2) from the buffers (at most IOV_MAX); bytes written, or -EAGAIN (-11) for EAGAIN. */
  writev(fd: number, bufs: Uint8Array[]): number;

  // --- tap (native/tap.cc, include/uapi/linux/if_tun.h)
  /**
   * open("/dev/net/tun", O_RDWR|O_NONBLOCK|O_CLOEXEC) + TUNSETIFF IFF_TAP|IFF_NO_PI (|IFF_VNET_HDR).
   * `name` '' lets the kernel choose; the returned name is the interface's.
   */
  tapOpen(name: string, vnetHdr: boolean): { fd: number; name: string };
  /** TUNSETOFFLOAD with TUN_F_* flags. */
  tapSetOffload(fd: number, flags: number): void;
  /** TUNSETVNETHDRSZ (10 or 12 bytes for virtio-net). */
  tapSetVnetHdrSize(fd: number, size: number): void;

  // --- unix sockets with fd passing (native/unix_fd.cc; the vhost-user server, src/vhost-user/)
  /** socket(AF_UNIX, SOCK_STREAM|NONBLOCK|CLOEXEC) + bind(path) + listen(backlog); returns the listening fd. */
  unixListen(path: string, backlog: number): number;
  /** accept4(NONBLOCK|CLOEXEC): the connection's fd, or null on EAGAIN. */
  unixAccept(listenFd: number): number | null;
  /** connect to a listening unix socket (blocking connect), then O_NONBLOCK; returns the fd. */
  unixConnect(path: string): number;
  /** socketpair(AF_UNIX, SOCK_STREAM|NONBLOCK|CLOEXEC). */
  socketpair(): [number, number];
  /**
   * recvmsg(2) into `buf` accepting up to `maxFds` SCM_RIGHTS fds (close-on-exec); null on EAGAIN. bytes 0 =
   * the peer closed. `truncated` (MSG_CTRUNC): the peer sent more fds than maxFds; the kernel dropped the rest.
   * The caller owns (and must close) every fd in `fds`.
   */
  recvmsgFds(fd: number, buf: Uint8Array, maxFds: number): { bytes: number; fds: number[]; truncated: boolean } | null;
  /** sendmsg(2) of `buf` with `fds` as SCM_RIGHTS (MSG_NOSIGNAL); bytes sent, or null on EAGAIN. */
  sendmsgFds(fd: number, buf: Uint8Array, fds: number[]): number | null;
  /** memfd_create(name, flags | MFD_CLOEXEC), e.g. MFD_ALLOW_SEALING (2): shared memory to size with ftruncate and pass as an fd. */
  memfdCreate(name: string, flags?: number): number;
  /** getsockopt(SO_PEERCRED) of a connected unix socket: the peer's pid, uid and gid as of its connect(2). */
  peerCred(fd: number): { pid: number; uid: number; gid: number };

  // --- fds a peer handed us (native/fd_guard.cc; the vhost-user back-end trusts no front end)
  /** fcntl(F_SETFL) with O_NONBLOCK set (`on`) or cleared; it belongs to the open file description, which a peer that sent us the fd shares. */
  fdSetNonblock(fd: number, on: boolean): void;
  /** fcntl(F_GET_SEALS): F_SEAL_* bits. Throws EINVAL for a file that does not support sealing. */
  fdGetSeals(fd: number): number;
  /** fcntl(F_ADD_SEALS, seals). Throws EPERM when F_SEAL_SEAL is set (or the fd is not writable). */
  fdAddSeals(fd: number, seals: number): void;
  /**
   * A non-blocking connect(2) to the unix stream socket at `path`, closed at once: null when something
   * listens there, else the errno name ('ECONNREFUSED': a socket file nobody listens on, or no socket;
   * 'EAGAIN': a listener with a full backlog; 'ENOENT': nothing there). Never blocks.
   */
  unixConnectProbe(path: string): string | null;
  /**
   * write(fd, u64) bounded by a deadline: true when added to the counter, false on EAGAIN (the counter is
   * full). A write still asleep after `ms` (the peer cleared O_NONBLOCK on the description it shares with
   * us) is interrupted and throws a NativeError with code 'ETIMEDOUT': the addon's watchdog thread sends
   * `signo` to this thread (within about a millisecond of the deadline), whose handler
   * installKickHandler(signo) must have installed on this thread (else this throws). A call that does not
   * sleep costs two atomic stores more than a plain write. Other failures throw.
   */
  eventfdWriteDeadline(fd: number, value: bigint, signo: number, ms: number): boolean;
  /**
   * preadv2(fd, RWF_NOWAIT) -> u64 (read(2) where the file has no RWF_NOWAIT), bounded the same way; null on
   * EAGAIN (an eventfd never sleeps: an empty counter is null whatever O_NONBLOCK says); ETIMEDOUT after
   * `ms` asleep.
   */
  eventfdReadDeadline(fd: number, signo: number, ms: number): bigint | null;

  // --- bind mounts (native/mount.cc; the runtime's virtio-fs share, src/host/mounts.ts)
  /**
   * mount("/proc/self/fd/sourceFd", "/proc/self/fd/targetFd", MS_BIND [| MS_REC]); readOnly adds a read-only
   * remount of the new mount (undone if that fails). Both fds are usually O_PATH.
   */
  bindMount(sourceFd: number, targetFd: number, recursive: boolean, readOnly: boolean): void;
  /** umount2(path, UMOUNT_NOFOLLOW [| MNT_DETACH]) */
  unmount(path: string, detach: boolean): void;

  // --- pseudo-terminals (native/pty.cc; create --console-socket)
  /** posix_openpt + grantpt + unlockpt, then the slave opened: both O_RDWR | O_NOCTTY | O_CLOEXEC */
  openPty(): { master: number; slave: number; name: string };
  /** ioctl(fd, TIOCSCTTY, 0): fd's terminal becomes the calling session leader's controlling terminal */
  setControllingTty(fd: number): void;
  /** ioctl(fd, TIOCSWINSZ, {rows, cols}) */
  setWindowSize(fd: number, rows: number, cols: number): void;
  /** cfmakeraw on the terminal at fd (output post-processing off too); returns the termios it replaced */
  ttyMakeRaw(fd: number): Uint8Array;
  /** tcsetattr(TCSADRAIN) of a termios ttyMakeRaw returned */
  ttyRestore(fd: number, saved: Uint8Array): void;

  // --- *at() file-system calls (native/fs_at.cc; the virtio-fs passthrough backend, src/virtio/fs/)
  // A name is a string or raw bytes (guest names need not be UTF-8); a NUL byte in it is a TypeError. Every
  // fd returned is O_CLOEXEC. "ByFd" calls reach an O_PATH fd's inode through /proc/self/fd/N.
  /** openat(dirFd, name, flags | O_CLOEXEC, mode) */
  fsOpenat(dirFd: number, name: FsName, flags: number, mode: number): number;
  /** openat2(dirFd, name, {flags | O_CLOEXEC, mode, resolve}) (RESOLVE_* bits); ENOSYS on kernels before 5.6 */
  fsOpenat2(dirFd: number, name: FsName, flags: number, mode: number, resolve: number): number;
  /** open("/proc/self/fd/N", flags | O_CLOEXEC): a new open file of fd's inode (O_CREAT/O_TMPFILE: TypeError) */
  fsReopen(fd: number, flags: number): number;
  /** fstatat(dirFd, name, flags) (AT_EMPTY_PATH with name '' stats the fd itself) */
  fsFstatat(dirFd: number, name: FsName, flags: number): NativeStat;
  /** readlinkat(dirFd, name): the target bytes (name '' reads an O_PATH fd of the link itself) */
  fsReadlinkat(dirFd: number, name: FsName): Uint8Array;
  fsMkdirat(dirFd: number, name: FsName, mode: number): void;
  /** mknodat(dirFd, name, mode (type | permissions), rdev) */
  fsMknodat(dirFd: number, name: FsName, mode: number, rdev: number): void;
  fsSymlinkat(target: FsName, dirFd: number, name: FsName): void;
  /** linkat(oldDirFd, oldName, newDirFd, newName, flags) */
  fsLinkat(oldDirFd: number, oldName: FsName, newDirFd: number, newName: FsName, flags: number): void;
  /** linkat(AT_FDCWD, "/proc/self/fd/N", newDirFd, newName, AT_SYMLINK_FOLLOW): a new name for fd's inode */
  fsLinkFd(fd: number, newDirFd: number, newName: FsName): void;
  /** unlinkat(dirFd, name, flags) (AT_REMOVEDIR for directories) */
  fsUnlinkat(dirFd: number, name: FsName, flags: number): void;
  /** renameat2(2) with RENAME_NOREPLACE / RENAME_EXCHANGE / RENAME_WHITEOUT flags */
  fsRenameat2(oldDirFd: number, oldName: FsName, newDirFd: number, newName: FsName, flags: number): void;
  /** fchmodat(AT_FDCWD, "/proc/self/fd/N", mode, 0) */
  fsChmodFd(fd: number, mode: number): void;
  /** fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW); -1 keeps that id */
  fsChownFd(fd: number, uid: number, gid: number): void;
  /** utimensat(AT_FDCWD, "/proc/self/fd/N", [atime, mtime], 0); a nsec of UTIME_NOW / UTIME_OMIT is passed on */
  fsUtimensFd(fd: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  /** fallocate(fd, mode (FALLOC_FL_*), offset, len) */
  fsFallocate(fd: number, mode: number, offset: number, len: number): void;
  /** lseek(fd, offset, whence) (SEEK_SET/CUR/END/DATA/HOLE); the new offset. bigint: directory offsets are
   * 63-bit cookies on some file systems (offset >= 2^63: RangeError) */
  fsLseek(fd: number, offset: bigint, whence: number): bigint;
  /** copy_file_range(fdIn, &offIn, fdOut, &offOut, len, flags): bytes copied */
  fsCopyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number, flags: number): number;
  fsFstatfs(fd: number): NativeStatfs;
  /** getdents64(fd, buf): bytes of struct linux_dirent64 records written (0 at the end); buf at most 16 MiB */
  fsGetdents64(fd: number, buf: Uint8Array): number;
  /** getxattr("/proc/self/fd/N", name, buf): the value's size (an empty buf asks for the size) */
  fsGetxattr(fd: number, name: FsName, buf: Uint8Array): number;
  /** listxattr("/proc/self/fd/N", buf): the list's size (an empty buf asks for the size) */
  fsListxattr(fd: number, buf: Uint8Array): number;
  /** setxattr("/proc/self/fd/N", name, value, flags) (XATTR_CREATE / XATTR_REPLACE) */
  fsSetxattr(fd: number, name: FsName, value: Uint8Array, flags: number): void;
  fsRemovexattr(fd: number, name: FsName): void;
}

/** A file name or path for the fs*() calls: UTF-8 text or raw bytes, without NUL. */
export type FsName = string | Uint8Array;

/** struct stat as fsFstatat returns it (dev and ino are 64-bit, hence bigint). */
export interface NativeStat {
  dev: bigint;
  ino: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
}

/** struct statfs as fsFstatfs returns it. */
export interface NativeStatfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

let cached: NativeAddon | undefined;

/** Load the addon built by node-gyp (build/Release/kata_ts_native.node). */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/src/kvm -> repo root, or src/kvm -> repo root
  const candidates = [join(here, '../../../build/Release/kata_ts_native.node'), join(here, '../../build/Release/kata_ts_native.node')];
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    throw new Error('native addon not built: run `npm ci` (or `npm run build:native`) in the kata-ts checkout');
  }
  const req = createRequire(import.meta.url);
  cached = req(path) as NativeAddon;
  return cached;
}

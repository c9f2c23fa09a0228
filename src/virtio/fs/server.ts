// The FUSE server behind virtio-fs (fuse.h protocol 7.31+, as Linux 6.1's virtiofs driver speaks it): takes
// a parsed FuseRequest (request.ts), checks every guest number against its limit, calls the FsBackend by
// inode fd + one checked name component, and writes fuse_out_header + the reply into the chain.
//
// Semantics follow virtiofsd's passthrough: inodes are O_PATH fds found again by (st_dev, st_ino) with the
// kernel's lookup counts; names are single components ('/' or '.'/'..' refused with EINVAL); symlinks are
// never followed (lookup yields the link; OPEN of anything but a regular file is refused); `readonly` makes
// every mutating op EROFS; `xattr: false` makes the xattr ops ENOSYS; cache=none|auto|always sets the
// entry/attr timeouts (0 / 1 s / 1 day) and FOPEN_DIRECT_IO / FOPEN_KEEP_CACHE as virtiofsd does.
// Device nodes are not created (MKNOD of S_IFCHR/S_IFBLK is EPERM): the guest's kernel handles the
// special files it sees, and a host device node in the share would be a way out.
//
// Files are created with the host process's credentials (not the caller's fsuid/fsgid).

import { DeviceBroken } from '../device.js';
import {
  ATTR_OUT_SIZE,
  ENTRY_OUT_SIZE,
  Errno,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  FATTR_ATIME,
  FATTR_ATIME_NOW,
  FATTR_FH,
  FATTR_GID,
  FATTR_MODE,
  FATTR_MTIME,
  FATTR_MTIME_NOW,
  FATTR_SIZE,
  FATTR_UID,
  FOPEN_CACHE_DIR,
  FOPEN_DIRECT_IO,
  FOPEN_KEEP_CACHE,
  FUSE_ASYNC_READ,
  FUSE_BIG_WRITES,
  FUSE_DO_READDIRPLUS,
  FUSE_FSYNC_FDATASYNC,
  FUSE_INIT_EXT,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FUSE_MAX_PAGES,
  FUSE_MAX_PAGES_VALUE,
  FUSE_MAX_READ,
  FUSE_MAX_WRITE,
  FUSE_MIN_MINOR,
  FUSE_PARALLEL_DIROPS,
  FUSE_READDIRPLUS_AUTO,
  GETXATTR_OUT_SIZE,
  INIT_OUT_SIZE,
  LSEEK_OUT_SIZE,
  NAME_MAX,
  OPEN_OUT_SIZE,
  OUT_HEADER_SIZE,
  O_ACCMODE,
  O_APPEND,
  O_DIRECT,
  O_DIRECTORY,
  O_DSYNC,
  O_EXCL,
  O_LARGEFILE,
  O_NOATIME,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  O_SYNC,
  O_TRUNC,
  O_WRONLY,
  PATH_MAX,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  SEEK_DATA,
  SEEK_END,
  SEEK_HOLE,
  SEEK_SET,
  STATFS_OUT_SIZE,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  UTIME_NOW,
  UTIME_OMIT,
  WRITE_OUT_SIZE,
  XATTR_CREATE,
  XATTR_LIST_MAX,
  XATTR_NAME_MAX,
  XATTR_REPLACE,
  XATTR_SIZE_MAX,
  DIRENT_HEADER_SIZE,
  DIRENTPLUS_HEADER_SIZE,
} from './abi.js';
import { FsError, type FsBackend, type FsStat } from './backend.js';
import { HandleTable, InodeTable, type Handle, type Inode } from './inodes.js';
import { hostDirents, putAttrOut, putEntry, putOpen, putOutHeader, putStatfs, type Timeouts } from './reply.js';
import type { FuseBody, FuseRequest } from './request.js';

export type FsCache = 'none' | 'auto' | 'always';

export interface FuseServerOptions {
  readOnly: boolean;
  cache: FsCache;
  xattr: boolean;
  /** most open handles at once (each holds a host fd); EMFILE beyond. Default 65536 */
  maxHandles?: number;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const MAX_SAFE_BIG = BigInt(MAX_SAFE);
const I64_MAX = (1n << 63n) - 1n;
/** Most bytes one COPY_FILE_RANGE copies (the reply's u32 count may be short; the guest loops): bounds the
 * work of one request on the device worker. */
const COPY_MAX = 8 * FUSE_MAX_WRITE;
/** open(2) flags a guest may pass through to the host (O_CREAT, O_EXCL, O_NOFOLLOW, O_PATH, O_DIRECTORY,
 * O_NOCTTY, O_TMPFILE, O_CLOEXEC are the server's business, not the guest's). */
const OPEN_PASS = O_ACCMODE | O_APPEND | O_TRUNC | O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECT | O_LARGEFILE | O_NOATIME;
/** fallocate modes accepted (falloc.h): plain, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE[|KEEP_SIZE] */
const FALLOC_OK = new Set([0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE]);

const TIMEOUTS: Record<FsCache, Timeouts> = { none: { entry: 0, attr: 0 }, auto: { entry: 1, attr: 1 }, always: { entry: 86400, attr: 86400 } };

/** Refuse with an errno (the guest gets -errno). */
function refuse(errno: number, why: string): FsError {
  return new FsError(errno, why);
}

/** A name the guest passed for one directory entry (lookup/create/...): one component, not '.'/'..'. */
function checkName(name: Uint8Array): void {
  if (name.length === 0) throw refuse(Errno.EINVAL, 'empty name');
  if (name.length > NAME_MAX) throw refuse(Errno.ENAMETOOLONG, `name of ${String(name.length)} bytes exceeds NAME_MAX`);
  if (name.includes(0x2f)) throw refuse(Errno.EINVAL, "name contains '/'"); // virtiofsd: is_safe_path_component
  if (name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e))) throw refuse(Errno.EINVAL, "name is '.' or '..'");
}

function isDotName(name: Uint8Array): boolean {
  return name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e));
}

/** An offset a guest passed as u64, usable as a file position (< 2^53) or refused. */
function fileOffset(off: bigint, errno: number = Errno.EINVAL): number {
  if (off > MAX_SAFE_BIG) throw refuse(errno, `offset ${off} is beyond 2^53`);
  return Number(off);
}

export class FuseServer {
  private readonly inodes: InodeTable;
  private readonly handles: HandleTable;
  private readonly timeouts: Timeouts;
  private initialized = false;
  /** reply staging for READDIR and small structs (header + FUSE_MAX_READ) */
  private readonly scratch = new Uint8Array(OUT_HEADER_SIZE + FUSE_MAX_READ);
  private readonly sv = new DataView(this.scratch.buffer);
  /** getdents64 buffer */
  private readonly dents = new Uint8Array(FUSE_MAX_READ);
  private readonly counters = { requests: 0, replies: 0, errors: 0, enosys: 0, bytesRead: 0, bytesWritten: 0 };
  private readonly byOp = new Map<string, number>();
  private readonly internal = new Map<string, number>();

  constructor(
    private readonly fs: FsBackend,
    private readonly opts: FuseServerOptions,
  ) {
    const rootStat = fs.stat(fs.rootFd);
    if ((rootStat.mode & S_IFMT) !== S_IFDIR) throw new FsError(Errno.ENOTDIR, 'the shared root is not a directory');
    const close = (fd: number): void => {
      try {
        fs.close(fd);
      } catch {
        // a failed close leaves nothing to do
      }
    };
    this.inodes = new InodeTable(fs.rootFd, rootStat, close);
    this.handles = new HandleTable(close, opts.maxHandles ?? 65536);
    this.timeouts = TIMEOUTS[opts.cache];
  }

  /** Inodes and handles held now (for tests: FORGET drops inodes). */
  get inodeCount(): number {
    return this.inodes.size;
  }
  get handleCount(): number {
    return this.handles.size;
  }

  metrics(): Record<string, number> {
    const m: Record<string, number> = { ...this.counters, inodes: this.inodes.size, handles: this.handles.size };
    for (const [k, v] of this.byOp) m[`op.${k}`] = v;
    for (const [k, v] of this.internal) m[`internal.${k}`] = v;
    return m;
  }

  /** Drop every inode but the root and every handle (device reset / DESTROY). */
  reset(): void {
    this.handles.clear();
    this.inodes.clear();
    this.initialized = false;
  }

  /**
   * Serve one parsed request; returns the chain's used length (0 for requests without a reply). Only
   * DeviceBroken escapes; a host error or a refused value becomes an error reply.
   */
  handle(req: FuseRequest): number {
    this.counters.requests++;
    const op = req.body.op;
    this.byOp.set(op, (this.byOp.get(op) ?? 0) + 1);
    try {
      return this.dispatch(req, req.body);
    } catch (e) {
      if (e instanceof DeviceBroken) throw e;
      let errno: number = Errno.EIO;
      if (e instanceof FsError) errno = e.errno;
      else {
        const name = e instanceof Error ? e.name : 'NonError';
        this.internal.set(name, (this.internal.get(name) ?? 0) + 1);
      }
      return this.replyError(req, errno);
    }
  }

  // ---- replies

  private replyError(req: FuseRequest, errno: number): number {
    if (req.reply === undefined) return 0;
    this.counters.errors++;
    if (errno === Errno.ENOSYS) this.counters.enosys++;
    const v = this.sv;
    putOutHeader(v, 0, OUT_HEADER_SIZE, -errno, req.unique);
    req.reply.write(this.scratch.subarray(0, OUT_HEADER_SIZE));
    return OUT_HEADER_SIZE;
  }

  /** Reply with header + scratch[16, 16 + n) (the caller filled the payload in scratch after the header). */
  private replyScratch(req: FuseRequest, n: number): number {
    if (req.reply === undefined) return 0;
    const len = OUT_HEADER_SIZE + n;
    // BOUNDS: the parser checked capacity >= header + fixed reply; variable replies check n <= payloadCapacity
    if (len > req.reply.capacity) throw refuse(Errno.ERANGE, `reply of ${String(len)} bytes does not fit ${String(req.reply.capacity)}`);
    putOutHeader(this.sv, 0, len, 0, req.unique);
    req.reply.write(this.scratch.subarray(0, len));
    this.counters.replies++;
    return len;
  }

  private replyOk(req: FuseRequest): number {
    return this.replyScratch(req, 0);
  }

  // ---- lookups

  private inode(id: number): Inode {
    const i = this.inodes.get(id);
    if (i === undefined) throw refuse(Errno.EBADF, `unknown nodeid ${String(id)}`); // virtiofsd: EBADF
    return i;
  }

  private dir(id: number): Inode {
    const i = this.inode(id);
    if (i.type !== S_IFDIR) throw refuse(Errno.ENOTDIR, `nodeid ${String(id)} is not a directory`);
    return i;
  }

  private handleOf(fh: number, kind: 'file' | 'dir'): Handle {
    const h = this.handles.get(fh, kind);
    if (h === undefined) throw refuse(Errno.EBADF, `unknown ${kind} handle ${String(fh)}`);
    return h;
  }

  private writable(what: string): void {
    if (this.opts.readOnly) throw refuse(Errno.EROFS, `${what} on a read-only share`);
  }

  /** Look `name` up beneath `parent`, count the lookup, return the inode and its stat. */
  private lookupChild(parent: Inode, name: Uint8Array): { inode: Inode; st: FsStat } {
    const fd = this.fs.lookup(parent.fd, name);
    let st: FsStat;
    try {
      st = this.fs.stat(fd);
    } catch (e) {
      this.fs.close(fd);
      throw e;
    }
    return { inode: this.inodes.insert(fd, st), st };
  }

  private replyEntry(req: FuseRequest, inode: Inode, st: FsStat): number {
    putEntry(this.sv, OUT_HEADER_SIZE, inode.id, st, this.timeouts);
    return this.replyScratch(req, ENTRY_OUT_SIZE);
  }

  /** After creating `name` in `parent` with permission bits `mode`: look it up, fix the bits the host umask took. */
  private created(req: FuseRequest, parent: Inode, name: Uint8Array, mode: number): number {
    const { inode, st } = this.lookupChild(parent, name);
    let s = st;
    if ((s.mode & S_IFMT) !== S_IFLNK && (s.mode & 0o7777) !== (mode & 0o7777)) {
      this.fs.chmod(inode.fd, mode & 0o7777);
      s = this.fs.stat(inode.fd);
    }
    return this.replyEntry(req, inode, s);
  }

  private openFlags(kind: 'file' | 'dir'): number {
    switch (this.opts.cache) {
      case 'none':
        return kind === 'file' ? FOPEN_DIRECT_IO : 0;
      case 'auto':
        return 0;
      case 'always':
        return kind === 'file' ? FOPEN_KEEP_CACHE : FOPEN_CACHE_DIR;
    }
  }

  // ---- dispatch

  private dispatch(req: FuseRequest, b: FuseBody): number {
    if (b.op === 'init') return this.init(req, b);
    if (!this.initialized) {
      if (req.reply === undefined) return 0;
      throw refuse(Errno.EIO, 'request before INIT'); // virtiofsd: EIO until INIT
    }
    switch (b.op) {
      case 'destroy':
        this.reset();
        return this.replyOk(req);
      case 'lookup': {
        checkName(b.name);
        const { inode, st } = this.lookupChild(this.dir(req.nodeid), b.name);
        return this.replyEntry(req, inode, st);
      }
      case 'forget':
        this.inodes.forget(req.nodeid, b.nlookup);
        return 0;
      case 'batch-forget':
        for (const f of b.items) this.inodes.forget(f.nodeid, f.nlookup);
        return 0;
      case 'interrupt':
        return 0; // requests complete synchronously: nothing to interrupt
      case 'getattr': {
        const st = this.fs.stat(this.inode(req.nodeid).fd);
        putAttrOut(this.sv, OUT_HEADER_SIZE, st, this.timeouts);
        return this.replyScratch(req, ATTR_OUT_SIZE);
      }
      case 'setattr':
        return this.setattr(req, b);
      case 'readlink': {
        const i = this.inode(req.nodeid);
        if (i.type !== S_IFLNK) throw refuse(Errno.EINVAL, 'READLINK of a non-symlink');
        const target = this.fs.readlink(i.fd);
        if (target.length > req.reply!.payloadCapacity) throw refuse(Errno.ENAMETOOLONG, 'link target does not fit the reply');
        this.scratch.set(target, OUT_HEADER_SIZE);
        return this.replyScratch(req, target.length);
      }
      case 'symlink': {
        this.writable('SYMLINK');
        checkName(b.name);
        if (b.target.length === 0 || b.target.length >= PATH_MAX) throw refuse(Errno.ENAMETOOLONG, 'symlink target length');
        const parent = this.dir(req.nodeid);
        this.fs.symlink(b.target, parent.fd, b.name);
        const { inode, st } = this.lookupChild(parent, b.name);
        return this.replyEntry(req, inode, st);
      }
      case 'mknod': {
        this.writable('MKNOD');
        checkName(b.name);
        const type = b.mode & S_IFMT;
        if (type === S_IFCHR || type === S_IFBLK) throw refuse(Errno.EPERM, 'device nodes are not created in the share');
        if (type !== S_IFREG && type !== S_IFIFO && type !== S_IFSOCK) throw refuse(Errno.EINVAL, `MKNOD of file type 0o${type.toString(8)}`);
        const parent = this.dir(req.nodeid);
        this.fs.mknod(parent.fd, b.name, type | (b.mode & 0o7777), 0);
        return this.created(req, parent, b.name, b.mode);
      }
      case 'mkdir': {
        this.writable('MKDIR');
        checkName(b.name);
        const parent = this.dir(req.nodeid);
        this.fs.mkdir(parent.fd, b.name, b.mode & 0o7777);
        return this.created(req, parent, b.name, b.mode);
      }
      case 'unlink':
      case 'rmdir': {
        this.writable(b.op.toUpperCase());
        checkName(b.name);
        this.fs.unlink(this.dir(req.nodeid).fd, b.name, b.op === 'rmdir');
        return this.replyOk(req);
      }
      case 'rename': {
        this.writable('RENAME');
        checkName(b.name);
        checkName(b.newname);
        if ((b.flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0 || b.flags === (RENAME_NOREPLACE | RENAME_EXCHANGE)) {
          throw refuse(Errno.EINVAL, `RENAME2 flags 0x${b.flags.toString(16)}`);
        }
        const from = this.dir(req.nodeid);
        const to = this.dir(b.newdir);
        this.fs.rename(from.fd, b.name, to.fd, b.newname, b.flags);
        return this.replyOk(req);
      }
      case 'link': {
        this.writable('LINK');
        checkName(b.name);
        const target = this.inode(b.oldnodeid);
        if (target.type === S_IFDIR) throw refuse(Errno.EPERM, 'hard link to a directory');
        const parent = this.dir(req.nodeid);
        this.fs.link(target.fd, parent.fd, b.name);
        const { inode, st } = this.lookupChild(parent, b.name);
        return this.replyEntry(req, inode, st);
      }
      case 'open':
        return this.open(req, b.flags);
      case 'opendir': {
        const i = this.dir(req.nodeid);
        if (this.handles.full) throw refuse(Errno.EMFILE, 'too many open handles');
        const fd = this.fs.reopen(i.fd, O_RDONLY | O_DIRECTORY);
        const h = this.handles.add(fd, i.id, 'dir');
        putOpen(this.sv, OUT_HEADER_SIZE, h.fh, this.openFlags('dir'));
        return this.replyScratch(req, OPEN_OUT_SIZE);
      }
      case 'read':
        return this.read(req, b.fh, b.offset, b.size);
      case 'write': {
        this.writable('WRITE');
        const h = this.handleOf(b.fh, 'file');
        const off = fileOffset(b.offset, Errno.EFBIG);
        if (off + b.size > MAX_SAFE) throw refuse(Errno.EFBIG, 'write past 2^53');
        let done = 0;
        if (b.size > 0) done = this.fs.pwritev(h.fd, b.data, off);
        this.counters.bytesWritten += done;
        this.sv.setUint32(OUT_HEADER_SIZE, done, true);
        this.sv.setUint32(OUT_HEADER_SIZE + 4, 0, true);
        return this.replyScratch(req, WRITE_OUT_SIZE);
      }
      case 'statfs': {
        putStatfs(this.sv, OUT_HEADER_SIZE, this.fs.statfs(this.inode(req.nodeid).fd));
        return this.replyScratch(req, STATFS_OUT_SIZE);
      }
      case 'release':
      case 'releasedir': {
        if (!this.handles.release(b.fh, b.op === 'release' ? 'file' : 'dir')) throw refuse(Errno.EBADF, `unknown handle ${String(b.fh)}`);
        return this.replyOk(req);
      }
      case 'fsync':
      case 'fsyncdir': {
        const h = this.handleOf(b.fh, b.op === 'fsync' ? 'file' : 'dir');
        this.fs.fsync(h.fd, (b.fsyncFlags & FUSE_FSYNC_FDATASYNC) !== 0);
        return this.replyOk(req);
      }
      case 'flush':
        this.handleOf(b.fh, 'file');
        return this.replyOk(req);
      case 'setxattr':
      case 'getxattr':
      case 'listxattr':
      case 'removexattr':
        return this.xattr(req, b);
      case 'readdir':
      case 'readdirplus':
        return this.readdir(req, b.fh, b.offset, b.size, b.op === 'readdirplus');
      case 'access':
        return this.access(req, b.mask);
      case 'create':
        return this.create(req, b);
      case 'fallocate': {
        this.writable('FALLOCATE');
        const h = this.handleOf(b.fh, 'file');
        if (!FALLOC_OK.has(b.mode)) throw refuse(Errno.EOPNOTSUPP, `fallocate mode 0x${b.mode.toString(16)}`);
        const off = fileOffset(b.offset);
        const len = fileOffset(b.length);
        if (len === 0) throw refuse(Errno.EINVAL, 'fallocate of length 0');
        if (off + len > MAX_SAFE) throw refuse(Errno.EFBIG, 'fallocate past 2^53');
        this.fs.fallocate(h.fd, b.mode, off, len);
        return this.replyOk(req);
      }
      case 'lseek': {
        const h = this.handleOf(b.fh, 'file');
        if (b.whence !== SEEK_SET && b.whence !== SEEK_END && b.whence !== SEEK_DATA && b.whence !== SEEK_HOLE) {
          throw refuse(Errno.EINVAL, `lseek whence ${String(b.whence)}`);
        }
        if (b.offset > I64_MAX) throw refuse(Errno.EINVAL, 'lseek offset beyond 2^63');
        const pos = this.fs.lseek(h.fd, b.offset, b.whence);
        this.sv.setBigUint64(OUT_HEADER_SIZE, pos, true);
        return this.replyScratch(req, LSEEK_OUT_SIZE);
      }
      case 'copy-file-range': {
        this.writable('COPY_FILE_RANGE');
        if (b.flags !== 0n) throw refuse(Errno.EINVAL, 'copy_file_range flags');
        const src = this.handleOf(b.fhIn, 'file');
        this.inode(b.nodeidOut);
        const dst = this.handleOf(b.fhOut, 'file');
        const offIn = fileOffset(b.offIn);
        const offOut = fileOffset(b.offOut, Errno.EFBIG);
        const len = b.len > BigInt(COPY_MAX) ? COPY_MAX : Number(b.len);
        if (offOut + len > MAX_SAFE || offIn + len > MAX_SAFE) throw refuse(Errno.EFBIG, 'copy past 2^53');
        const n = this.fs.copyFileRange(src.fd, offIn, dst.fd, offOut, len);
        this.sv.setUint32(OUT_HEADER_SIZE, n, true);
        this.sv.setUint32(OUT_HEADER_SIZE + 4, 0, true);
        return this.replyScratch(req, WRITE_OUT_SIZE);
      }
      case 'unsupported':
        throw refuse(Errno.ENOSYS, `opcode ${String(req.opcode)} is not implemented`);
    }
  }

  /** fuse.h INIT: accept 7.31+, answer with our limits and the flags both sides support. */
  private init(req: FuseRequest, b: Extract<FuseBody, { op: 'init' }>): number {
    if (b.major < FUSE_KERNEL_VERSION) throw refuse(Errno.EPROTO, `FUSE major ${String(b.major)} is too old`);
    const v = this.sv;
    new Uint8Array(this.scratch.buffer, OUT_HEADER_SIZE, INIT_OUT_SIZE).fill(0);
    v.setUint32(OUT_HEADER_SIZE, FUSE_KERNEL_VERSION, true);
    v.setUint32(OUT_HEADER_SIZE + 4, FUSE_KERNEL_MINOR_VERSION, true);
    if (b.major > FUSE_KERNEL_VERSION) {
      // fuse.h: a newer major gets only our major/minor back; the kernel then retries with ours
      return this.replyScratch(req, 8);
    }
    if (b.minor < FUSE_MIN_MINOR) throw refuse(Errno.EPROTO, `FUSE 7.${String(b.minor)} is older than 7.${String(FUSE_MIN_MINOR)}`);
    if (req.reply!.payloadCapacity < INIT_OUT_SIZE) throw refuse(Errno.EPROTO, 'INIT reply buffer is smaller than struct fuse_init_out');
    const offer = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_INIT_EXT;
    const flags = b.flags & offer;
    v.setUint32(OUT_HEADER_SIZE + 8, b.maxReadahead, true);
    v.setUint32(OUT_HEADER_SIZE + 12, Number(flags & 0xffff_ffffn), true);
    v.setUint16(OUT_HEADER_SIZE + 16, 16, true); // max_background
    v.setUint16(OUT_HEADER_SIZE + 18, 12, true); // congestion_threshold
    v.setUint32(OUT_HEADER_SIZE + 20, FUSE_MAX_WRITE, true);
    v.setUint32(OUT_HEADER_SIZE + 24, 1, true); // time_gran: 1 ns
    v.setUint16(OUT_HEADER_SIZE + 28, FUSE_MAX_PAGES_VALUE, true);
    v.setUint16(OUT_HEADER_SIZE + 30, 0, true); // map_alignment: no DAX
    v.setUint32(OUT_HEADER_SIZE + 32, Number(flags >> 32n), true);
    if (this.initialized) this.reset(); // a second INIT starts a new session
    this.initialized = true;
    return this.replyScratch(req, INIT_OUT_SIZE);
  }

  private setattr(req: FuseRequest, b: Extract<FuseBody, { op: 'setattr' }>): number {
    this.writable('SETATTR');
    const i = this.inode(req.nodeid);
    const h = (b.valid & FATTR_FH) !== 0 ? this.handles.get(b.fh, 'file') : undefined;
    if ((b.valid & FATTR_FH) !== 0 && h === undefined) throw refuse(Errno.EBADF, `unknown handle ${String(b.fh)}`);
    if ((b.valid & FATTR_MODE) !== 0) {
      if (i.type === S_IFLNK) throw refuse(Errno.EOPNOTSUPP, 'chmod of a symlink');
      this.fs.chmod(i.fd, b.mode & 0o7777);
    }
    if ((b.valid & (FATTR_UID | FATTR_GID)) !== 0) {
      this.fs.chown(i.fd, (b.valid & FATTR_UID) !== 0 ? b.uid : -1, (b.valid & FATTR_GID) !== 0 ? b.gid : -1);
    }
    if ((b.valid & FATTR_SIZE) !== 0) {
      if (b.size > MAX_SAFE) throw refuse(Errno.EFBIG, 'truncate beyond 2^53');
      if (i.type === S_IFDIR) throw refuse(Errno.EISDIR, 'truncate of a directory');
      if (i.type !== S_IFREG) throw refuse(Errno.EINVAL, 'truncate of a non-regular file');
      if (h !== undefined) this.fs.truncate(h.fd, b.size);
      else {
        const fd = this.fs.reopen(i.fd, O_WRONLY);
        try {
          this.fs.truncate(fd, b.size);
        } finally {
          this.fs.close(fd);
        }
      }
    }
    const times = b.valid & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW);
    if (times !== 0) {
      const pick = (set: number, now: number, sec: number, nsec: number): [number, number] => {
        if ((b.valid & now) !== 0) return [0, UTIME_NOW];
        if ((b.valid & set) !== 0) {
          if (nsec >= 1_000_000_000) throw refuse(Errno.EINVAL, `time nsec ${String(nsec)} is not below 10^9`);
          return [sec, nsec];
        }
        return [0, UTIME_OMIT];
      };
      const [as, an] = pick(FATTR_ATIME, FATTR_ATIME_NOW, b.atimeSec, b.atimeNsec);
      const [ms, mn] = pick(FATTR_MTIME, FATTR_MTIME_NOW, b.mtimeSec, b.mtimeNsec);
      if (i.type === S_IFLNK) throw refuse(Errno.EOPNOTSUPP, 'utimens of a symlink');
      this.fs.utimens(i.fd, as, an, ms, mn);
    }
    putAttrOut(this.sv, OUT_HEADER_SIZE, this.fs.stat(i.fd), this.timeouts);
    return this.replyScratch(req, ATTR_OUT_SIZE);
  }

  /** Host flags for a guest open(2): only OPEN_PASS bits; EROFS for write access on a read-only share. */
  private hostOpenFlags(flags: number): number {
    const acc = flags & O_ACCMODE;
    if (acc === O_ACCMODE) throw refuse(Errno.EINVAL, 'open access mode 3');
    if (this.opts.readOnly && (acc !== O_RDONLY || (flags & O_TRUNC) !== 0)) throw refuse(Errno.EROFS, 'open for writing on a read-only share');
    return flags & OPEN_PASS;
  }

  private open(req: FuseRequest, flags: number): number {
    const i = this.inode(req.nodeid);
    if (i.type === S_IFDIR) throw refuse(Errno.EISDIR, 'OPEN of a directory');
    if (i.type === S_IFLNK) throw refuse(Errno.ELOOP, 'OPEN of a symlink'); // never followed
    if (i.type !== S_IFREG) throw refuse(Errno.EPERM, 'OPEN of a special file');
    const host = this.hostOpenFlags(flags);
    if (this.handles.full) throw refuse(Errno.EMFILE, 'too many open handles');
    const fd = this.fs.reopen(i.fd, host);
    const h = this.handles.add(fd, i.id, 'file');
    putOpen(this.sv, OUT_HEADER_SIZE, h.fh, this.openFlags('file'));
    return this.replyScratch(req, OPEN_OUT_SIZE);
  }

  private create(req: FuseRequest, b: Extract<FuseBody, { op: 'create' }>): number {
    this.writable('CREATE');
    checkName(b.name);
    const parent = this.dir(req.nodeid);
    const host = this.hostOpenFlags(b.flags) | (b.flags & O_EXCL);
    if (this.handles.full) throw refuse(Errno.EMFILE, 'too many open handles');
    const { fd, created } = this.createOrOpen(parent, b.name, host, (b.flags & O_EXCL) !== 0, b.mode & 0o7777);
    let pathFd: number;
    let st: FsStat;
    try {
      pathFd = this.fs.reopen(fd, O_PATH); // the inode just opened, not whatever the name points at now
      st = this.fs.stat(pathFd);
      if (created && (st.mode & 0o7777) !== (b.mode & 0o7777)) {
        this.fs.chmod(pathFd, b.mode & 0o7777);
        st = this.fs.stat(pathFd);
      }
    } catch (e) {
      this.fs.close(fd);
      throw e;
    }
    const inode = this.inodes.insert(pathFd, st);
    const h = this.handles.add(fd, inode.id, 'file');
    putEntry(this.sv, OUT_HEADER_SIZE, inode.id, st, this.timeouts);
    putOpen(this.sv, OUT_HEADER_SIZE + ENTRY_OUT_SIZE, h.fh, this.openFlags('file'));
    return this.replyScratch(req, ENTRY_OUT_SIZE + OPEN_OUT_SIZE);
  }

  /**
   * CREATE's open: always O_EXCL on the host, so an existing FIFO or device node is never opened (a FIFO
   * would block the worker, a device would reach the host). Without the guest's O_EXCL an existing name is
   * opened only when it is a regular file, through its O_PATH fd.
   */
  private createOrOpen(parent: Inode, name: Uint8Array, host: number, excl: boolean, mode: number): { fd: number; created: boolean } {
    try {
      return { fd: this.fs.create(parent.fd, name, host | O_EXCL, mode), created: true };
    } catch (e) {
      if (excl || !(e instanceof FsError) || e.errno !== Errno.EEXIST) throw e;
    }
    const pathFd = this.fs.lookup(parent.fd, name);
    try {
      const type = this.fs.stat(pathFd).mode & S_IFMT;
      if (type === S_IFDIR) throw refuse(Errno.EISDIR, 'CREATE over a directory');
      if (type === S_IFLNK) throw refuse(Errno.ELOOP, 'CREATE over a symlink'); // never followed
      if (type !== S_IFREG) throw refuse(Errno.EPERM, 'CREATE over a special file');
      return { fd: this.fs.reopen(pathFd, host), created: false };
    } finally {
      this.fs.close(pathFd);
    }
  }

  /** READ: preadv straight into the chain's writable buffers after the out header (no copy). */
  private read(req: FuseRequest, fh: number, offset: bigint, size: number): number {
    const reply = req.reply!;
    const h = this.handleOf(fh, 'file');
    if (size > FUSE_MAX_READ) throw refuse(Errno.EINVAL, `READ of ${String(size)} bytes exceeds max_read`);
    if (size > reply.payloadCapacity) throw refuse(Errno.EINVAL, `READ of ${String(size)} bytes does not fit the ${String(reply.payloadCapacity)}-byte buffer`);
    const off = fileOffset(offset);
    let done = 0;
    if (size > 0) {
      const views = reply.views(OUT_HEADER_SIZE, size);
      // loop over short reads (a regular file returns less only at EOF, but stay correct)
      while (done < size) {
        const n = this.fs.preadv(h.fd, done === 0 ? views : skipViews(views, done), off + done);
        if (n <= 0) break;
        done += n;
      }
    }
    this.counters.bytesRead += done;
    putOutHeader(this.sv, 0, OUT_HEADER_SIZE + done, 0, req.unique);
    reply.write(this.scratch.subarray(0, OUT_HEADER_SIZE));
    this.counters.replies++;
    return OUT_HEADER_SIZE + done;
  }

  /** READDIR / READDIRPLUS: getdents64 from the guest's offset (a d_off cookie), as many entries as fit. */
  private readdir(req: FuseRequest, fh: number, offset: bigint, size: number, plus: boolean): number {
    const reply = req.reply!;
    const h = this.handleOf(fh, 'dir');
    if (size > FUSE_MAX_READ) throw refuse(Errno.EINVAL, `READDIR of ${String(size)} bytes exceeds the limit`);
    if (size > reply.payloadCapacity) throw refuse(Errno.EINVAL, `READDIR of ${String(size)} bytes does not fit the ${String(reply.payloadCapacity)}-byte buffer`);
    if (offset > I64_MAX) throw refuse(Errno.EINVAL, 'READDIR offset beyond 2^63');
    if (size === 0) return this.replyScratch(req, 0);
    this.fs.lseek(h.fd, offset, SEEK_SET);
    const v = this.sv;
    let used = 0;
    const parent = this.inode(h.inode);
    for (;;) {
      const n = this.fs.getdents(h.fd, this.dents.subarray(0, Math.max(size, 4096)));
      if (n <= 0) break;
      let full = false;
      for (const d of hostDirents(this.dents, n)) {
        // fuse.h: FUSE_DIRENT_SIZE / FUSE_DIRENTPLUS_SIZE, 8-byte aligned records
        const head = plus ? DIRENTPLUS_HEADER_SIZE : DIRENT_HEADER_SIZE;
        const rec = (head + d.name.length + 7) & ~7;
        if (used + rec > size) {
          full = true;
          break;
        }
        const at = OUT_HEADER_SIZE + used;
        let ino = d.ino;
        if (plus) {
          let entry: { inode: Inode; st: FsStat } | undefined;
          if (!isDotName(d.name)) {
            try {
              entry = this.lookupChild(parent, d.name);
            } catch {
              entry = undefined; // gone meanwhile: a nodeid-0 entry, which the kernel skips
            }
          }
          putEntry(v, at, entry?.inode.id ?? 0, entry?.st, this.timeouts);
          if (entry !== undefined) ino = entry.st.ino;
        }
        const dh = at + (plus ? ENTRY_OUT_SIZE : 0);
        v.setBigUint64(dh, ino, true);
        v.setBigUint64(dh + 8, BigInt.asUintN(64, d.off), true);
        v.setUint32(dh + 16, d.name.length, true);
        v.setUint32(dh + 20, d.type, true);
        this.scratch.set(d.name, dh + DIRENT_HEADER_SIZE);
        this.scratch.fill(0, dh + DIRENT_HEADER_SIZE + d.name.length, at + rec);
        used += rec;
      }
      if (full || used === 0) break;
      // the buffer may hold more: getdents continues from where it stopped (the fd's position)
      if (used + DIRENT_HEADER_SIZE + 8 > size) break;
    }
    return this.replyScratch(req, used);
  }

  private access(req: FuseRequest, mask: number): number {
    const i = this.inode(req.nodeid);
    if ((mask & ~7) !== 0) throw refuse(Errno.EINVAL, `access mask 0x${mask.toString(16)}`);
    if ((mask & 2) !== 0 && this.opts.readOnly) throw refuse(Errno.EROFS, 'W_OK on a read-only share');
    const st = this.fs.stat(i.fd);
    if (mask === 0) return this.replyOk(req);
    // POSIX permission check for the caller (fuse_in_header uid/gid); root needs an x bit for X_OK only
    let bits: number;
    if (req.uid === 0) bits = 6 | ((st.mode & 0o111) !== 0 || (st.mode & S_IFMT) === S_IFDIR ? 1 : 0);
    else if (req.uid === st.uid) bits = (st.mode >> 6) & 7;
    else if (req.gid === st.gid) bits = (st.mode >> 3) & 7;
    else bits = st.mode & 7;
    if ((mask & ~bits) !== 0) throw refuse(Errno.EACCES, 'access denied');
    return this.replyOk(req);
  }

  private xattr(req: FuseRequest, b: Extract<FuseBody, { op: 'setxattr' | 'getxattr' | 'listxattr' | 'removexattr' }>): number {
    if (!this.opts.xattr) throw refuse(Errno.ENOSYS, 'xattrs are off for this share'); // virtiofsd: -o no_xattr
    const i = this.inode(req.nodeid);
    const reply = req.reply!;
    switch (b.op) {
      case 'setxattr': {
        this.writable('SETXATTR');
        if (b.name.length === 0 || b.name.length > XATTR_NAME_MAX) throw refuse(Errno.ERANGE, 'xattr name length');
        if (b.value.length > XATTR_SIZE_MAX) throw refuse(Errno.E2BIG, 'xattr value larger than XATTR_SIZE_MAX');
        if ((b.flags & ~(XATTR_CREATE | XATTR_REPLACE)) !== 0) throw refuse(Errno.EINVAL, 'setxattr flags');
        this.fs.setxattr(i.fd, b.name, b.value, b.flags);
        return this.replyOk(req);
      }
      case 'removexattr':
        this.writable('REMOVEXATTR');
        if (b.name.length === 0 || b.name.length > XATTR_NAME_MAX) throw refuse(Errno.ERANGE, 'xattr name length');
        this.fs.removexattr(i.fd, b.name);
        return this.replyOk(req);
      case 'getxattr':
      case 'listxattr': {
        const max = b.op === 'getxattr' ? XATTR_SIZE_MAX : XATTR_LIST_MAX;
        if (b.op === 'getxattr' && (b.name.length === 0 || b.name.length > XATTR_NAME_MAX)) throw refuse(Errno.ERANGE, 'xattr name length');
        if (b.size > max) throw refuse(Errno.E2BIG, `xattr buffer of ${String(b.size)} bytes is above the limit`);
        const get = (buf: Uint8Array): number => (b.op === 'getxattr' ? this.fs.getxattr(i.fd, b.name, buf) : this.fs.listxattr(i.fd, buf));
        if (b.size === 0) {
          // fuse.h: size 0 asks for the size, in struct fuse_getxattr_out
          if (reply.payloadCapacity < GETXATTR_OUT_SIZE) throw refuse(Errno.ERANGE, 'no room for fuse_getxattr_out');
          const need = get(new Uint8Array(0));
          this.sv.setUint32(OUT_HEADER_SIZE, need, true);
          this.sv.setUint32(OUT_HEADER_SIZE + 4, 0, true);
          return this.replyScratch(req, GETXATTR_OUT_SIZE);
        }
        if (b.size > reply.payloadCapacity) throw refuse(Errno.EINVAL, 'xattr size does not fit the reply buffer');
        const n = get(this.scratch.subarray(OUT_HEADER_SIZE, OUT_HEADER_SIZE + b.size));
        return this.replyScratch(req, n);
      }
    }
  }
}

/** The views after skipping `n` bytes of them. */
function skipViews(views: Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = n;
  for (const v of views) {
    if (skip >= v.length) {
      skip -= v.length;
      continue;
    }
    out.push(skip > 0 ? v.subarray(skip) : v);
    skip = 0;
  }
  return out;
}


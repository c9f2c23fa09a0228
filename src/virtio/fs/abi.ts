// virtio-fs and FUSE wire format: include/uapi/linux/virtio_fs.h and include/uapi/linux/fuse.h (Linux 6.1,
// FUSE 7.38; we answer as 7.31+ the way Linux 6.1's virtiofs driver speaks it), virtio 1.2 §5.11.
// All FUSE structs are little-endian on virtio (virtio 1.2 §5.11.6: "in the guest's native endianness" on
// a modern device the driver's fields are little-endian x86-64).

/** virtio 1.2 §5.11.4: struct virtio_fs_config { u8 tag[36]; le32 num_request_queues; } (packed). */
export const FsConfig = {
  tag: 0,
  tagBytes: 36,
  numRequestQueues: 36,
  size: 40,
} as const;

/** fuse.h: FUSE_KERNEL_VERSION / the oldest minor we accept (7.31: what the virtiofs driver needs). */
export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 38;
export const FUSE_MIN_MINOR = 31;
/** fuse.h: FUSE_ROOT_ID */
export const FUSE_ROOT_ID = 1;

// fuse.h: enum fuse_opcode
export const FuseOp = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
} as const;

// Struct sizes (fuse.h)
export const IN_HEADER_SIZE = 40; // struct fuse_in_header
export const OUT_HEADER_SIZE = 16; // struct fuse_out_header
export const ATTR_SIZE = 88; // struct fuse_attr
export const ENTRY_OUT_SIZE = 128; // struct fuse_entry_out (40 + fuse_attr)
export const ATTR_OUT_SIZE = 104; // struct fuse_attr_out (16 + fuse_attr)
export const OPEN_OUT_SIZE = 16; // struct fuse_open_out
export const WRITE_OUT_SIZE = 8; // struct fuse_write_out
export const STATFS_OUT_SIZE = 80; // struct fuse_statfs_out (fuse_kstatfs)
export const GETXATTR_OUT_SIZE = 8; // struct fuse_getxattr_out
export const INIT_OUT_SIZE = 64; // struct fuse_init_out
export const LSEEK_OUT_SIZE = 8; // struct fuse_lseek_out
export const DIRENT_HEADER_SIZE = 24; // offsetof(struct fuse_dirent, name)
export const DIRENTPLUS_HEADER_SIZE = ENTRY_OUT_SIZE + DIRENT_HEADER_SIZE; // FUSE_NAME_OFFSET_DIRENTPLUS

/** Fixed request body sizes (after fuse_in_header) of each opcode that has one (fuse.h structs). */
export const BodySize = {
  INIT_IN_MIN: 16, // fuse_init_in up to `flags` (7.6+); 64 with FUSE_INIT_EXT (flags2 + unused)
  FORGET_IN: 8,
  BATCH_FORGET_IN: 8,
  FORGET_ONE: 16,
  GETATTR_IN: 16,
  SETATTR_IN: 88,
  MKNOD_IN: 16,
  MKDIR_IN: 8,
  RENAME_IN: 8,
  RENAME2_IN: 16,
  LINK_IN: 8,
  OPEN_IN: 8,
  CREATE_IN: 16,
  READ_IN: 40,
  WRITE_IN: 40,
  RELEASE_IN: 24,
  FLUSH_IN: 24,
  FSYNC_IN: 16,
  SETXATTR_IN: 8, // FUSE_COMPAT_SETXATTR_IN_SIZE; 16 when FUSE_SETXATTR_EXT was negotiated (we do not offer it)
  GETXATTR_IN: 8,
  ACCESS_IN: 8,
  INTERRUPT_IN: 8,
  FALLOCATE_IN: 32,
  LSEEK_IN: 24,
  COPY_FILE_RANGE_IN: 56,
} as const;

// fuse.h: INIT flags (flags | flags2 << 32)
export const FUSE_ASYNC_READ = 1n << 0n;
export const FUSE_POSIX_LOCKS = 1n << 1n;
export const FUSE_ATOMIC_O_TRUNC = 1n << 3n;
export const FUSE_EXPORT_SUPPORT = 1n << 4n;
export const FUSE_BIG_WRITES = 1n << 5n;
export const FUSE_DONT_MASK = 1n << 6n;
export const FUSE_FLOCK_LOCKS = 1n << 10n;
export const FUSE_AUTO_INVAL_DATA = 1n << 12n;
export const FUSE_DO_READDIRPLUS = 1n << 13n;
export const FUSE_READDIRPLUS_AUTO = 1n << 14n;
export const FUSE_ASYNC_DIO = 1n << 15n;
export const FUSE_WRITEBACK_CACHE = 1n << 16n;
export const FUSE_PARALLEL_DIROPS = 1n << 18n;
export const FUSE_HANDLE_KILLPRIV = 1n << 19n;
export const FUSE_POSIX_ACL = 1n << 20n;
export const FUSE_MAX_PAGES = 1n << 22n;
export const FUSE_CACHE_SYMLINKS = 1n << 23n;
export const FUSE_SETXATTR_EXT = 1n << 29n;
export const FUSE_INIT_EXT = 1n << 30n;

// fuse.h: fuse_setattr_in.valid
export const FATTR_MODE = 1 << 0;
export const FATTR_UID = 1 << 1;
export const FATTR_GID = 1 << 2;
export const FATTR_SIZE = 1 << 3;
export const FATTR_ATIME = 1 << 4;
export const FATTR_MTIME = 1 << 5;
export const FATTR_FH = 1 << 6;
export const FATTR_ATIME_NOW = 1 << 7;
export const FATTR_MTIME_NOW = 1 << 8;
export const FATTR_LOCKOWNER = 1 << 9;
export const FATTR_CTIME = 1 << 10;
export const FATTR_KILL_SUIDGID = 1 << 11;

// fuse.h: open reply flags
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;

/** fuse.h: FUSE_GETATTR_FH */
export const FUSE_GETATTR_FH = 1 << 0;
/** fuse.h: FUSE_FSYNC_FDATASYNC */
export const FUSE_FSYNC_FDATASYNC = 1 << 0;

/** Limits the server advertises in INIT and holds the guest to. */
export const FUSE_MAX_PAGES_VALUE = 256; // 1 MiB with 4 KiB pages
export const FUSE_MAX_WRITE = FUSE_MAX_PAGES_VALUE * 4096;
/** Largest READ / READDIR / GETXATTR / LISTXATTR size the server serves in one request. */
export const FUSE_MAX_READ = FUSE_MAX_WRITE;
/** Linux NAME_MAX and XATTR_NAME_MAX / XATTR_SIZE_MAX / XATTR_LIST_MAX (include/uapi/linux/limits.h). */
export const NAME_MAX = 255;
export const PATH_MAX = 4096;
export const XATTR_NAME_MAX = 255;
export const XATTR_SIZE_MAX = 65536;
export const XATTR_LIST_MAX = 65536;
/** Most forget entries one BATCH_FORGET may carry (the kernel sends at most a page's worth). */
export const MAX_BATCH_FORGET = 65536;

/** Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h) the server replies with. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EEXIST: 17,
  EMFILE: 24,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  E2BIG: 7,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  EPROTO: 71,
} as const;

// Host open(2) flags (x86-64 asm-generic/fcntl.h) and friends used by the passthrough backend.
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DSYNC = 0o10000;
export const O_DIRECT = 0o40000;
export const O_LARGEFILE = 0o100000;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_NOATIME = 0o1000000;
export const O_CLOEXEC = 0o2000000;
export const O_SYNC = 0o4010000;
export const O_PATH = 0o10000000;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EMPTY_PATH = 0x1000;
/** openat2(2) RESOLVE_* (include/uapi/linux/openat2.h) */
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
/** renameat2(2) flags (include/uapi/linux/fs.h) */
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;
/** utimensat(2) special nsec values */
export const UTIME_NOW = (1 << 30) - 1;
export const UTIME_OMIT = (1 << 30) - 2;
/** setxattr(2) flags */
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;
/** lseek(2) whence */
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
/** fallocate(2) modes (include/uapi/linux/falloc.h) */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
/** st_mode file types (include/uapi/linux/stat.h) */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

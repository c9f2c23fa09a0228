// *at() file-system syscalls for the virtio-fs passthrough backend (src/virtio/fs/passthrough.ts). Thin
// wrappers only: argument checks (TypeError/RangeError), errno errors as ThrowErrno reports them, no policy.
// Which names are allowed, which flags a guest may pass and how inodes are tracked is decided in TypeScript.
//
// Names cross as a string or a Uint8Array (guest names are bytes, not necessarily UTF-8); an embedded NUL is
// refused with a TypeError, so a name can never be cut short silently. Every fd made here is O_CLOEXEC.
// Operations on an O_PATH fd that the kernel only offers by path go through "/proc/self/fd/N", as
// virtiofsd does (the magic link names the inode itself, whatever its current path).
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"

namespace kata {
namespace {

constexpr int64_t kMaxSafe = INT64_C(9007199254740991);
// Largest single buffer a caller may hand in (getdents, xattr values, readlink): 16 MiB.
constexpr size_t kMaxBuf = 16u << 20;

// A path component or path: string or Uint8Array, no NUL, at most PATH_MAX - 1 bytes.
std::string NameArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* what) {
  Napi::Value v = info[i];
  std::string s;
  if (v.IsString()) {
    s = v.As<Napi::String>().Utf8Value();
  } else if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    s.assign(reinterpret_cast<const char*>(a.Data()), a.ByteLength());
  } else {
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + what + " must be a string or a Uint8Array");
  }
  if (s.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + what + " contains a NUL byte");
  }
  if (s.size() >= PATH_MAX) {
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": " + what + " is longer than PATH_MAX - 1 bytes");
  }
  return s;
}

int FlagsArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  return static_cast<int>(IntArg(info, i, fn, name, INT32_MIN, INT32_MAX));
}

std::string ProcPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

Napi::Uint8Array BufArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Uint8Array b = BytesArg(info, i, fn, name, -1);
  if (b.ByteLength() > kMaxBuf) {
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": " + name + " is larger than 16 MiB");
  }
  return b;
}

Napi::Value Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

Napi::Object StatObject(Napi::Env env, const struct stat& st) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dev", Napi::BigInt::New(env, static_cast<uint64_t>(st.st_dev)));
  o.Set("ino", Napi::BigInt::New(env, static_cast<uint64_t>(st.st_ino)));
  o.Set("mode", Num(env, st.st_mode));
  o.Set("nlink", Num(env, static_cast<double>(st.st_nlink)));
  o.Set("uid", Num(env, st.st_uid));
  o.Set("gid", Num(env, st.st_gid));
  o.Set("rdev", Num(env, static_cast<double>(st.st_rdev)));
  o.Set("size", Num(env, static_cast<double>(st.st_size)));
  o.Set("blksize", Num(env, static_cast<double>(st.st_blksize)));
  o.Set("blocks", Num(env, static_cast<double>(st.st_blocks)));
  o.Set("atimeSec", Num(env, static_cast<double>(st.st_atim.tv_sec)));
  o.Set("atimeNsec", Num(env, static_cast<double>(st.st_atim.tv_nsec)));
  o.Set("mtimeSec", Num(env, static_cast<double>(st.st_mtim.tv_sec)));
  o.Set("mtimeNsec", Num(env, static_cast<double>(st.st_mtim.tv_nsec)));
  o.Set("ctimeSec", Num(env, static_cast<double>(st.st_ctim.tv_sec)));
  o.Set("ctimeNsec", Num(env, static_cast<double>(st.st_ctim.tv_nsec)));
  return o;
}

// fsOpenat(dirFd, name, flags, mode) -> fd (O_CLOEXEC added).
Napi::Value FsOpenat(const Napi::CallbackInfo& info) {
  const char* fn = "fsOpenat";
  RequireArgs(info, 4, fn);
  int dirfd = FdArg(info, 0, fn, "dirFd");
  std::string name = NameArg(info, 1, fn, "name");
  int flags = FlagsArg(info, 2, fn, "flags");
  auto mode = static_cast<mode_t>(IntArg(info, 3, fn, "mode", 0, 07777));
  int fd;
  do {
    fd = openat(dirfd, name.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(info.Env(), "openat", errno);
  return Num(info.Env(), fd);
}

// fsOpenat2(dirFd, name, flags, mode, resolve) -> fd (O_CLOEXEC added); ENOSYS where the kernel lacks it.
Napi::Value FsOpenat2(const Napi::CallbackInfo& info) {
  const char* fn = "fsOpenat2";
  RequireArgs(info, 5, fn);
  int dirfd = FdArg(info, 0, fn, "dirFd");
  std::string name = NameArg(info, 1, fn, "name");
  int flags = FlagsArg(info, 2, fn, "flags");
  auto mode = static_cast<uint64_t>(IntArg(info, 3, fn, "mode", 0, 07777));
  auto resolve = static_cast<uint64_t>(IntArg(info, 4, fn, "resolve", 0, 0xffff));
  open_how how{};
  how.flags = static_cast<uint64_t>(static_cast<uint32_t>(flags | O_CLOEXEC));
  // openat2(2): mode must be 0 unless O_CREAT or O_TMPFILE is set.
  how.mode = ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) ? mode : 0;  // O_TMPFILE includes O_DIRECTORY
  how.resolve = resolve;
  long fd;
  do {
    fd = syscall(SYS_openat2, dirfd, name.c_str(), &how, sizeof how);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(info.Env(), "openat2", errno);
  return Num(info.Env(), static_cast<double>(fd));
}

// fsReopen(fd, flags) -> fd: open("/proc/self/fd/N", flags | O_CLOEXEC), a new open file of the same inode.
Napi::Value FsReopen(const Napi::CallbackInfo& info) {
  const char* fn = "fsReopen";
  RequireArgs(info, 2, fn);
  int fd = FdArg(info, 0, fn, "fd");
  int flags = FlagsArg(info, 1, fn, "flags");
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) throw Napi::TypeError::New(info.Env(), "fsReopen: O_CREAT/O_TMPFILE not allowed");
  std::string p = ProcPath(fd);
  int nfd;
  do {
    nfd = open(p.c_str(), flags | O_CLOEXEC);
  } while (nfd < 0 && errno == EINTR);
  if (nfd < 0) ThrowErrno(info.Env(), "open", errno, p);
  return Num(info.Env(), nfd);
}

// fsFstatat(dirFd, name, flags) -> stat object.
Napi::Value FsFstatat(const Napi::CallbackInfo& info) {
  const char* fn = "fsFstatat";
  RequireArgs(info, 3, fn);
  int dirfd = FdArg(info, 0, fn, "dirFd");
  std::string name = NameArg(info, 1, fn, "name");
  int flags = FlagsArg(info, 2, fn, "flags");
  struct stat st{};
  if (fstatat(dirfd, name.c_str(), &st, flags) < 0) ThrowErrno(info.Env(), "fstatat", errno);
  return StatObject(info.Env(), st);
}

// fsReadlinkat(dirFd, name) -> Uint8Array (the target bytes).
Napi::Value FsReadlinkat(const Napi::CallbackInfo& info) {
  const char* fn = "fsReadlinkat";
  RequireArgs(info, 2, fn);
  int dirfd = FdArg(info, 0, fn, "dirFd");
  std::string name = NameArg(info, 1, fn, "name");
  std::vector<char> buf(PATH_MAX);
  ssize_t n = readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
  if (n < 0) ThrowErrno(info.Env(), "readlinkat", errno);
  return CopyOut(info.Env(), buf.data(), static_cast<size_t>(n));
}

Napi::Value FsMkdirat(const Napi::CallbackInfo& info) {
  const char* fn = "fsMkdirat";
  RequireArgs(info, 3, fn);
  int dirfd = FdArg(info, 0, fn, "dirFd");
  std::string name = NameArg(info, 1, fn, "name");
  auto mode = static_cast<mode_t>(IntArg(info, 2, fn, "mode", 0, 07777));
  if (mkdirat(dirfd, name.c_str(), mode) < 0) ThrowErrno(info.Env(), "mkdirat", errno);
  return info.Env().Undefined();
}

Napi::Value FsMknodat(const Napi::CallbackInfo& info) {
  const char* fn = "fsMknodat";
  RequireArgs(info, 4, fn);
  int dirfd = FdArg(info, 0, fn, "dirFd");
  std::string name = NameArg(info, 1, fn, "name");
  auto mode = static_cast<mode_t>(IntArg(info, 2, fn, "mode", 0, 0xffff));
  auto dev = static_cast<dev_t>(IntArg(info, 3, fn, "rdev", 0, UINT32_MAX));
  if (mknodat(dirfd, name.c_str(), mode, dev) < 0) ThrowErrno(info.Env(), "mknodat", errno);
  return info.Env().Undefined();
}

// fsSymlinkat(target, dirFd, name)
Napi::Value FsSymlinkat(const Napi::CallbackInfo& info) {
  const char* fn = "fsSymlinkat";
  RequireArgs(info, 3, fn);
  std::string target = NameArg(info, 0, fn, "target");
  int dirfd = FdArg(info, 1, fn, "dirFd");
  std::string name = NameArg(info, 2, fn, "name");
  if (symlinkat(target.c_str(), dirfd, name.c_str()) < 0) ThrowErrno(info.Env(), "symlinkat", errno);
  return info.Env().Undefined();
}

// fsLinkat(oldDirFd, oldName, newDirFd, newName, flags)
Napi::Value FsLinkat(const Napi::CallbackInfo& info) {
  const char* fn = "fsLinkat";
  RequireArgs(info, 5, fn);
  int olddir = FdArg(info, 0, fn, "oldDirFd");
  std::string oldname = NameArg(info, 1, fn, "oldName");
  int newdir = FdArg(info, 2, fn, "newDirFd");
  std::string newname = NameArg(info, 3, fn, "newName");
  int flags = FlagsArg(info, 4, fn, "flags");
  if (linkat(olddir, oldname.c_str(), newdir, newname.c_str(), flags) < 0) ThrowErrno(info.Env(), "linkat", errno);
  return info.Env().Undefined();
}

// fsLinkFd(fd, newDirFd, newName): a new name for the inode behind an O_PATH fd, via its /proc/self/fd link
// (linkat(AT_FDCWD, "/proc/self/fd/N", ..., AT_SYMLINK_FOLLOW), which needs no CAP_DAC_READ_SEARCH).
Napi::Value FsLinkFd(const Napi::CallbackInfo& info) {
  const char* fn = "fsLinkFd";
  RequireArgs(info, 3, fn);
  int fd = FdArg(info, 0, fn, "fd");
  int newdir = FdArg(info, 1, fn, "newDirFd");
  std::string newname = NameArg(info, 2, fn, "newName");
  std::string p = ProcPath(fd);
  if (linkat(AT_FDCWD, p.c_str(), newdir, newname.c_str(), AT_SYMLINK_FOLLOW) < 0) ThrowErrno(info.Env(), "linkat", errno);
  return info.Env().Undefined();
}

Napi::Value FsUnlinkat(const Napi::CallbackInfo& info) {
  const char* fn = "fsUnlinkat";
  RequireArgs(info, 3, fn);
  int dirfd = FdArg(info, 0, fn, "dirFd");
  std::string name = NameArg(info, 1, fn, "name");
  int flags = FlagsArg(info, 2, fn, "flags");
  if (unlinkat(dirfd, name.c_str(), flags) < 0) ThrowErrno(info.Env(), "unlinkat", errno);
  return info.Env().Undefined();
}

// fsRenameat2(oldDirFd, oldName, newDirFd, newName, flags)
Napi::Value FsRenameat2(const Napi::CallbackInfo& info) {
  const char* fn = "fsRenameat2";
  RequireArgs(info, 5, fn);
  int olddir = FdArg(info, 0, fn, "oldDirFd");
  std::string oldname = NameArg(info, 1, fn, "oldName");
  int newdir = FdArg(info, 2, fn, "newDirFd");
  std::string newname = NameArg(info, 3, fn, "newName");
  auto flags = static_cast<unsigned>(IntArg(info, 4, fn, "flags", 0, UINT32_MAX));
  if (syscall(SYS_renameat2, olddir, oldname.c_str(), newdir, newname.c_str(), flags) < 0) {
    ThrowErrno(info.Env(), "renameat2", errno);
  }
  return info.Env().Undefined();
}

// fsChmodFd(fd, mode): fchmodat(AT_FDCWD, "/proc/self/fd/N", mode, 0) (works on O_PATH fds).
Napi::Value FsChmodFd(const Napi::CallbackInfo& info) {
  const char* fn = "fsChmodFd";
  RequireArgs(info, 2, fn);
  int fd = FdArg(info, 0, fn, "fd");
  auto mode = static_cast<mode_t>(IntArg(info, 1, fn, "mode", 0, 07777));
  std::string p = ProcPath(fd);
  if (fchmodat(AT_FDCWD, p.c_str(), mode, 0) < 0) ThrowErrno(info.Env(), "fchmodat", errno);
  return info.Env().Undefined();
}

// fsChownFd(fd, uid, gid): fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW); -1 leaves one as is.
Napi::Value FsChownFd(const Napi::CallbackInfo& info) {
  const char* fn = "fsChownFd";
  RequireArgs(info, 3, fn);
  int fd = FdArg(info, 0, fn, "fd");
  auto uid = static_cast<uid_t>(IntArg(info, 1, fn, "uid", -1, UINT32_MAX));
  auto gid = static_cast<gid_t>(IntArg(info, 2, fn, "gid", -1, UINT32_MAX));
  if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) ThrowErrno(info.Env(), "fchownat", errno);
  return info.Env().Undefined();
}

// fsUtimensFd(fd, atimeSec, atimeNsec, mtimeSec, mtimeNsec): utimensat(AT_FDCWD, "/proc/self/fd/N", ts, 0).
// nsec may be UTIME_NOW or UTIME_OMIT (both below 2^30).
Napi::Value FsUtimensFd(const Napi::CallbackInfo& info) {
  const char* fn = "fsUtimensFd";
  RequireArgs(info, 5, fn);
  int fd = FdArg(info, 0, fn, "fd");
  timespec ts[2];
  ts[0].tv_sec = static_cast<time_t>(IntArg(info, 1, fn, "atimeSec", -kMaxSafe, kMaxSafe));
  ts[0].tv_nsec = static_cast<long>(IntArg(info, 2, fn, "atimeNsec", 0, UTIME_NOW));
  ts[1].tv_sec = static_cast<time_t>(IntArg(info, 3, fn, "mtimeSec", -kMaxSafe, kMaxSafe));
  ts[1].tv_nsec = static_cast<long>(IntArg(info, 4, fn, "mtimeNsec", 0, UTIME_NOW));
  std::string p = ProcPath(fd);
  if (utimensat(AT_FDCWD, p.c_str(), ts, 0) < 0) ThrowErrno(info.Env(), "utimensat", errno);
  return info.Env().Undefined();
}

// fsFallocate(fd, mode, offset, len)
Napi::Value FsFallocate(const Napi::CallbackInfo& info) {
  const char* fn = "fsFallocate";
  RequireArgs(info, 4, fn);
  int fd = FdArg(info, 0, fn, "fd");
  int mode = FlagsArg(info, 1, fn, "mode");
  auto off = static_cast<off_t>(IntArg(info, 2, fn, "offset", 0, kMaxSafe));
  auto len = static_cast<off_t>(IntArg(info, 3, fn, "len", 0, kMaxSafe));
  if (fallocate(fd, mode, off, len) < 0) ThrowErrno(info.Env(), "fallocate", errno);
  return info.Env().Undefined();
}

// fsLseek(fd, offset: bigint, whence) -> new offset (bigint): directory offsets are 63-bit cookies on ext4.
Napi::Value FsLseek(const Napi::CallbackInfo& info) {
  const char* fn = "fsLseek";
  RequireArgs(info, 3, fn);
  int fd = FdArg(info, 0, fn, "fd");
  uint64_t off = U64Arg(info, 1, fn, "offset");
  if (off > static_cast<uint64_t>(INT64_MAX)) throw Napi::RangeError::New(info.Env(), "fsLseek: offset must be below 2^63");
  int whence = static_cast<int>(IntArg(info, 2, fn, "whence", 0, 4));
  off_t r = lseek(fd, static_cast<off_t>(off), whence);
  if (r < 0) ThrowErrno(info.Env(), "lseek", errno);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(r));
}

// fsCopyFileRange(fdIn, offIn, fdOut, offOut, len, flags) -> bytes copied
Napi::Value FsCopyFileRange(const Napi::CallbackInfo& info) {
  const char* fn = "fsCopyFileRange";
  RequireArgs(info, 6, fn);
  int fdIn = FdArg(info, 0, fn, "fdIn");
  auto offIn = static_cast<loff_t>(IntArg(info, 1, fn, "offIn", 0, kMaxSafe));
  int fdOut = FdArg(info, 2, fn, "fdOut");
  auto offOut = static_cast<loff_t>(IntArg(info, 3, fn, "offOut", 0, kMaxSafe));
  auto len = static_cast<size_t>(IntArg(info, 4, fn, "len", 0, kMaxSafe));
  auto flags = static_cast<unsigned>(IntArg(info, 5, fn, "flags", 0, UINT32_MAX));
  ssize_t n = copy_file_range(fdIn, &offIn, fdOut, &offOut, len, flags);
  if (n < 0) ThrowErrno(info.Env(), "copy_file_range", errno);
  return Num(info.Env(), static_cast<double>(n));
}

Napi::Value FsFstatfs(const Napi::CallbackInfo& info) {
  const char* fn = "fsFstatfs";
  RequireArgs(info, 1, fn);
  int fd = FdArg(info, 0, fn, "fd");
  struct statfs s{};
  if (fstatfs(fd, &s) < 0) ThrowErrno(info.Env(), "fstatfs", errno);
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("blocks", Num(env, static_cast<double>(s.f_blocks)));
  o.Set("bfree", Num(env, static_cast<double>(s.f_bfree)));
  o.Set("bavail", Num(env, static_cast<double>(s.f_bavail)));
  o.Set("files", Num(env, static_cast<double>(s.f_files)));
  o.Set("ffree", Num(env, static_cast<double>(s.f_ffree)));
  o.Set("bsize", Num(env, static_cast<double>(s.f_bsize)));
  o.Set("namelen", Num(env, static_cast<double>(s.f_namelen)));
  o.Set("frsize", Num(env, static_cast<double>(s.f_frsize)));
  return o;
}

// fsGetdents64(fd, buf) -> bytes of struct linux_dirent64 records written into buf (0 at the end).
Napi::Value FsGetdents64(const Napi::CallbackInfo& info) {
  const char* fn = "fsGetdents64";
  RequireArgs(info, 2, fn);
  int fd = FdArg(info, 0, fn, "fd");
  Napi::Uint8Array buf = BufArg(info, 1, fn, "buf");
  long n = syscall(SYS_getdents64, fd, buf.Data(), buf.ByteLength());
  if (n < 0) ThrowErrno(info.Env(), "getdents64", errno);
  return Num(info.Env(), static_cast<double>(n));
}

// fsGetxattr(fd, name, buf) -> value size (buf of length 0: the size needed).
Napi::Value FsGetxattr(const Napi::CallbackInfo& info) {
  const char* fn = "fsGetxattr";
  RequireArgs(info, 3, fn);
  int fd = FdArg(info, 0, fn, "fd");
  std::string name = NameArg(info, 1, fn, "name");
  Napi::Uint8Array buf = BufArg(info, 2, fn, "buf");
  std::string p = ProcPath(fd);
  ssize_t n = getxattr(p.c_str(), name.c_str(), buf.ByteLength() > 0 ? buf.Data() : nullptr, buf.ByteLength());
  if (n < 0) ThrowErrno(info.Env(), "getxattr", errno);
  return Num(info.Env(), static_cast<double>(n));
}

// fsListxattr(fd, buf) -> list size (buf of length 0: the size needed).
Napi::Value FsListxattr(const Napi::CallbackInfo& info) {
  const char* fn = "fsListxattr";
  RequireArgs(info, 2, fn);
  int fd = FdArg(info, 0, fn, "fd");
  Napi::Uint8Array buf = BufArg(info, 1, fn, "buf");
  std::string p = ProcPath(fd);
  ssize_t n = listxattr(p.c_str(), buf.ByteLength() > 0 ? reinterpret_cast<char*>(buf.Data()) : nullptr, buf.ByteLength());
  if (n < 0) ThrowErrno(info.Env(), "listxattr", errno);
  return Num(info.Env(), static_cast<double>(n));
}

// fsSetxattr(fd, name, value, flags)
Napi::Value FsSetxattr(const Napi::CallbackInfo& info) {
  const char* fn = "fsSetxattr";
  RequireArgs(info, 4, fn);
  int fd = FdArg(info, 0, fn, "fd");
  std::string name = NameArg(info, 1, fn, "name");
  Napi::Uint8Array value = BufArg(info, 2, fn, "value");
  int flags = FlagsArg(info, 3, fn, "flags");
  std::string p = ProcPath(fd);
  if (setxattr(p.c_str(), name.c_str(), value.Data(), value.ByteLength(), flags) < 0) ThrowErrno(info.Env(), "setxattr", errno);
  return info.Env().Undefined();
}

// fsRemovexattr(fd, name)
Napi::Value FsRemovexattr(const Napi::CallbackInfo& info) {
  const char* fn = "fsRemovexattr";
  RequireArgs(info, 2, fn);
  int fd = FdArg(info, 0, fn, "fd");
  std::string name = NameArg(info, 1, fn, "name");
  std::string p = ProcPath(fd);
  if (removexattr(p.c_str(), name.c_str()) < 0) ThrowErrno(info.Env(), "removexattr", errno);
  return info.Env().Undefined();
}

}  // namespace

void RegisterFsAt(Napi::Env env, Napi::Object exports) {
  exports.Set("fsOpenat", Napi::Function::New(env, FsOpenat, "fsOpenat"));
  exports.Set("fsOpenat2", Napi::Function::New(env, FsOpenat2, "fsOpenat2"));
  exports.Set("fsReopen", Napi::Function::New(env, FsReopen, "fsReopen"));
  exports.Set("fsFstatat", Napi::Function::New(env, FsFstatat, "fsFstatat"));
  exports.Set("fsReadlinkat", Napi::Function::New(env, FsReadlinkat, "fsReadlinkat"));
  exports.Set("fsMkdirat", Napi::Function::New(env, FsMkdirat, "fsMkdirat"));
  exports.Set("fsMknodat", Napi::Function::New(env, FsMknodat, "fsMknodat"));
  exports.Set("fsSymlinkat", Napi::Function::New(env, FsSymlinkat, "fsSymlinkat"));
  exports.Set("fsLinkat", Napi::Function::New(env, FsLinkat, "fsLinkat"));
  exports.Set("fsLinkFd", Napi::Function::New(env, FsLinkFd, "fsLinkFd"));
  exports.Set("fsUnlinkat", Napi::Function::New(env, FsUnlinkat, "fsUnlinkat"));
  exports.Set("fsRenameat2", Napi::Function::New(env, FsRenameat2, "fsRenameat2"));
  exports.Set("fsChmodFd", Napi::Function::New(env, FsChmodFd, "fsChmodFd"));
  exports.Set("fsChownFd", Napi::Function::New(env, FsChownFd, "fsChownFd"));
  exports.Set("fsUtimensFd", Napi::Function::New(env, FsUtimensFd, "fsUtimensFd"));
  exports.Set("fsFallocate", Napi::Function::New(env, FsFallocate, "fsFallocate"));
  exports.Set("fsLseek", Napi::Function::New(env, FsLseek, "fsLseek"));
  exports.Set("fsCopyFileRange", Napi::Function::New(env, FsCopyFileRange, "fsCopyFileRange"));
  exports.Set("fsFstatfs", Napi::Function::New(env, FsFstatfs, "fsFstatfs"));
  exports.Set("fsGetdents64", Napi::Function::New(env, FsGetdents64, "fsGetdents64"));
  exports.Set("fsGetxattr", Napi::Function::New(env, FsGetxattr, "fsGetxattr"));
  exports.Set("fsListxattr", Napi::Function::New(env, FsListxattr, "fsListxattr"));
  exports.Set("fsSetxattr", Napi::Function::New(env, FsSetxattr, "fsSetxattr"));
  exports.Set("fsRemovexattr", Napi::Function::New(env, FsRemovexattr, "fsRemovexattr"));
}

}  // namespace kata

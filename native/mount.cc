// Bind mounts for the runtime's virtio-fs share (src/host/mounts.ts): a container's rootfs and its host bind
// mounts are bind-mounted into the sandbox's shared directory, which the virtio-fs device exports. Thin
// wrappers only; which paths are shared, and the rule that the caller must be in a private mount namespace,
// are decided in TypeScript.
//
// Both ends are O_PATH fds the caller opened (O_NOFOLLOW where a link must not be followed): mount(2) is given
// "/proc/self/fd/N", which names the inode the fd holds, so nothing is resolved by path between the caller's
// check and the mount.
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common.h"

namespace kata {
namespace {

std::string ProcFd(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// bindMount(sourceFd, targetFd, recursive, readOnly): mount --bind [--rbind] the source onto the target; a
// read-only bind is a bind and then a read-only remount of it (one mount(2) cannot do both). A failed remount
// undoes the bind before it throws, so no writable bind is left behind.
Napi::Value BindMount(const Napi::CallbackInfo& info) {
  const char* fn = "bindMount";
  RequireArgs(info, 4, fn);
  int src = FdArg(info, 0, fn, "sourceFd");
  int dst = FdArg(info, 1, fn, "targetFd");
  bool recursive = BoolArg(info, 2, fn, "recursive");
  bool readOnly = BoolArg(info, 3, fn, "readOnly");
  std::string s = ProcFd(src), d = ProcFd(dst);
  unsigned long flags = MS_BIND | (recursive ? MS_REC : 0);
  if (mount(s.c_str(), d.c_str(), nullptr, flags, nullptr) != 0) ThrowErrno(info.Env(), "mount", errno, "bind");
  if (readOnly) {
    // the new mount sits on top of the target's inode: reach it by the target's path in this mount namespace
    // (the fd still names the covered directory underneath)
    char path[4096];
    ssize_t n = readlink(d.c_str(), path, sizeof path - 1);
    int err = n < 0 ? errno : 0;
    if (n >= 0) {
      path[n] = '\0';
      if (mount(nullptr, path, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) err = errno;
    }
    if (err != 0) {
      if (n >= 0) umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
      ThrowErrno(info.Env(), "mount", err, "read-only remount");
    }
  }
  return info.Env().Undefined();
}

// unmount(path, detach): umount2(path, UMOUNT_NOFOLLOW | (detach ? MNT_DETACH : 0)).
Napi::Value Unmount(const Napi::CallbackInfo& info) {
  const char* fn = "unmount";
  RequireArgs(info, 2, fn);
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "unmount: path must be a string");
  std::string p = info[0].As<Napi::String>().Utf8Value();
  if (p.find('\0') != std::string::npos) throw Napi::TypeError::New(info.Env(), "unmount: path contains a NUL byte");
  bool detach = BoolArg(info, 1, fn, "detach");
  if (umount2(p.c_str(), UMOUNT_NOFOLLOW | (detach ? MNT_DETACH : 0)) != 0) ThrowErrno(info.Env(), "umount2", errno, p);
  return info.Env().Undefined();
}

}  // namespace

void RegisterMount(Napi::Env env, Napi::Object exports) {
  exports.Set("bindMount", Napi::Function::New(env, BindMount, "bindMount"));
  exports.Set("unmount", Napi::Function::New(env, Unmount, "unmount"));
}

}  // namespace kata

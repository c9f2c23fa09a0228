#include "storage.h"

#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ttrpc.h"
#include "util.h"

namespace {

struct Flag { const char* name; unsigned long set; bool clear; };
// mount(8) option names → MS_* flags (include/uapi/linux/mount.h).
const Flag kFlags[] = {
    {"ro", MS_RDONLY, false},       {"rw", MS_RDONLY, true},          {"nosuid", MS_NOSUID, false},
    {"suid", MS_NOSUID, true},      {"nodev", MS_NODEV, false},       {"dev", MS_NODEV, true},
    {"noexec", MS_NOEXEC, false},   {"exec", MS_NOEXEC, true},        {"sync", MS_SYNCHRONOUS, false},
    {"async", MS_SYNCHRONOUS, true}, {"noatime", MS_NOATIME, false}, {"relatime", MS_RELATIME, false},
    {"nodiratime", MS_NODIRATIME, false}, {"strictatime", MS_STRICTATIME, false}, {"defaults", 0, false},
};

void parse_options(const std::vector<std::string>& opts, unsigned long& flags, std::string& data) {
  for (const auto& o : opts) {
    bool known = false;
    for (const auto& f : kFlags) {
      if (o == f.name) {
        if (f.clear) flags &= ~f.set; else flags |= f.set;
        known = true;
        break;
      }
    }
    if (!known) data += (data.empty() ? "" : ",") + o;
  }
}

}  // namespace

bool mount_storage(const msg::Storage& s, std::string& err, int& code) {
  code = ttrpc::INVALID_ARGUMENT;
  if (!valid_abs_path(s.mount_point)) {
    err = "storage mount_point \"" + s.mount_point + "\" must be an absolute path without \"..\"";
    return false;
  }
  unsigned long flags = 0;
  std::string data;
  parse_options(s.options, flags, data);
  std::string source, fstype;
  if (s.driver == "blk") {
    if (!valid_abs_path(s.source)) { err = "blk storage source \"" + s.source + "\" must be a device path like /dev/vda"; return false; }
    if (s.fstype.empty()) { err = "blk storage needs fstype (ext4, ...)"; return false; }
    source = s.source;
    fstype = s.fstype;
    // The device node appears when the virtio-blk driver probes; give a late probe up to 2 s.
    struct stat st{};
    for (int i = 0; i < 200 && stat(source.c_str(), &st) != 0; i++) usleep(10000);
  } else if (s.driver == "virtio-fs") {
    if (s.source.empty()) { err = "virtio-fs storage needs source = the mount tag"; return false; }
    source = s.source;
    fstype = "virtiofs";
  } else if (s.driver == "tmpfs") {
    source = "tmpfs";
    fstype = "tmpfs";
  } else if (s.driver == "bind") {
    if (!valid_abs_path(s.source)) { err = "bind storage source \"" + s.source + "\" must be an absolute path"; return false; }
    source = s.source;
  } else {
    err = "unknown storage driver \"" + s.driver + "\" (use blk, virtio-fs, tmpfs or bind)";
    return false;
  }
  code = ttrpc::INTERNAL;
  if (!mkdir_p(s.mount_point, 0755)) {
    err = "create mount point " + s.mount_point + ": " + errno_text(errno);
    return false;
  }
  if (s.driver == "bind") {
    if (mount(source.c_str(), s.mount_point.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      err = "bind mount " + source + " at " + s.mount_point + ": " + errno_text(errno);
      return false;
    }
    if (flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)) {
      if (mount(nullptr, s.mount_point.c_str(), nullptr, MS_BIND | MS_REMOUNT | flags, nullptr) != 0) {
        err = "remount " + s.mount_point + " with options: " + errno_text(errno);
        umount2(s.mount_point.c_str(), MNT_DETACH);
        return false;
      }
    }
    return true;
  }
  if (mount(source.c_str(), s.mount_point.c_str(), fstype.c_str(), flags, data.empty() ? nullptr : data.c_str()) != 0) {
    err = "mount " + source + " (" + fstype + ") at " + s.mount_point + ": " + errno_text(errno);
    return false;
  }
  return true;
}

void unmount_all(const std::vector<std::string>& mps) {
  for (auto it = mps.rbegin(); it != mps.rend(); ++it)
    if (umount2(it->c_str(), MNT_DETACH) != 0) log_warn("unmount " + *it + ": " + errno_text(errno));
}

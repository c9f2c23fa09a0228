// TAP devices for virtio-net: open /dev/net/tun as a tap with a virtio-net header in front of every
// frame, and set the offloads the guest negotiated. include/uapi/linux/if_tun.h, Documentation/networking/tuntap.rst.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common.h"

namespace kata {
namespace {

Napi::Value TapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 2, "tapOpen");
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "tapOpen: name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  bool vnetHdr = BoolArg(info, 1, "tapOpen", "vnetHdr");
  if (name.size() >= IFNAMSIZ) {
    throw Napi::RangeError::New(env, "tapOpen: interface name '" + name + "' is longer than " + std::to_string(IFNAMSIZ - 1) +
                                         " bytes (IFNAMSIZ)");
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, "open", errno, "/dev/net/tun");
  struct ifreq ifr {};
  std::memcpy(ifr.ifr_name, name.data(), name.size());  // "" lets the kernel pick tapN
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnetHdr ? IFF_VNET_HDR : 0);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "TUNSETIFF", err, name);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", Napi::Number::New(env, fd));
  o.Set("name", Napi::String::New(env, std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ))));
  return o;
}

Napi::Value TapSetOffload(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "tapSetOffload");
  int fd = FdArg(info, 0, "tapSetOffload", "fd");
  auto flags = static_cast<unsigned int>(IntArg(info, 1, "tapSetOffload", "flags", 0, UINT32_MAX));
  if (ioctl(fd, TUNSETOFFLOAD, flags) < 0) ThrowErrno(info.Env(), "TUNSETOFFLOAD", errno);
  return info.Env().Undefined();
}

Napi::Value TapSetVnetHdrSize(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "tapSetVnetHdrSize");
  int fd = FdArg(info, 0, "tapSetVnetHdrSize", "fd");
  int n = static_cast<int>(IntArg(info, 1, "tapSetVnetHdrSize", "size", 0, 1024));
  if (ioctl(fd, TUNSETVNETHDRSZ, &n) < 0) ThrowErrno(info.Env(), "TUNSETVNETHDRSZ", errno);
  return info.Env().Undefined();
}

}  // namespace

void RegisterTap(Napi::Env env, Napi::Object exports) {
  exports.Set("tapOpen", Napi::Function::New(env, TapOpen, "tapOpen"));
  exports.Set("tapSetOffload", Napi::Function::New(env, TapSetOffload, "tapSetOffload"));
  exports.Set("tapSetVnetHdrSize", Napi::Function::New(env, TapSetVnetHdrSize, "tapSetVnetHdrSize"));
}

}  // namespace kata

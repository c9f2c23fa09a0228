// Pseudo-terminals for `create --console-socket` (runc's contract: the runtime makes a pty, hands the master to
// the caller over a unix socket with SCM_RIGHTS and keeps the slave as the container's terminal). Here the slave
// is the stdio of the process's host stdio relay, which forwards it to the guest's own pty through the agent.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common.h"

namespace kata {
namespace {

// openpty() -> { master, slave, name }: both O_RDWR | O_NOCTTY | O_CLOEXEC; name is the slave's /dev/pts path.
Napi::Value OpenPty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) ThrowErrno(env, "posix_openpt", errno);
  char name[128];
  int err = 0;
  const char* step = "unlockpt";
  if (grantpt(m) != 0 || unlockpt(m) != 0) {
    err = errno;
  } else {
    step = "ptsname_r";
    err = ptsname_r(m, name, sizeof name);
  }
  if (err != 0) {
    close(m);
    ThrowErrno(env, step, err);
  }
  int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0) {
    err = errno;
    close(m);
    ThrowErrno(env, "open", err, name);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("master", Napi::Number::New(env, m));
  o.Set("slave", Napi::Number::New(env, s));
  o.Set("name", Napi::String::New(env, name));
  return o;
}

// setControllingTty(fd): ioctl(fd, TIOCSCTTY, 0) — the calling session leader's controlling terminal becomes
// fd's, so the kernel sends it SIGWINCH when the terminal's size changes.
Napi::Value SetControllingTty(const Napi::CallbackInfo& info) {
  const char* fn = "setControllingTty";
  RequireArgs(info, 1, fn);
  int fd = FdArg(info, 0, fn, "fd");
  if (ioctl(fd, TIOCSCTTY, 0) != 0) ThrowErrno(info.Env(), "ioctl", errno, "TIOCSCTTY");
  return info.Env().Undefined();
}

// setWindowSize(fd, rows, cols): ioctl(fd, TIOCSWINSZ).
Napi::Value SetWindowSize(const Napi::CallbackInfo& info) {
  const char* fn = "setWindowSize";
  RequireArgs(info, 3, fn);
  int fd = FdArg(info, 0, fn, "fd");
  winsize ws{};
  ws.ws_row = static_cast<unsigned short>(IntArg(info, 1, fn, "rows", 0, 65535));
  ws.ws_col = static_cast<unsigned short>(IntArg(info, 2, fn, "cols", 0, 65535));
  if (ioctl(fd, TIOCSWINSZ, &ws) != 0) ThrowErrno(info.Env(), "ioctl", errno, "TIOCSWINSZ");
  return info.Env().Undefined();
}

// ttyMakeRaw(fd) -> Uint8Array: tcsetattr(cfmakeraw) and the termios it replaced, for ttyRestore. Unlike
// libuv's raw mode (which keeps ONLCR), output is untouched too: a relay of a guest pty must not turn the
// guest's "\r\n" into "\r\r\n".
Napi::Value TtyMakeRaw(const Napi::CallbackInfo& info) {
  const char* fn = "ttyMakeRaw";
  RequireArgs(info, 1, fn);
  int fd = FdArg(info, 0, fn, "fd");
  termios saved{};
  if (tcgetattr(fd, &saved) != 0) ThrowErrno(info.Env(), "tcgetattr", errno);
  termios raw = saved;
  cfmakeraw(&raw);
  if (tcsetattr(fd, TCSANOW, &raw) != 0) ThrowErrno(info.Env(), "tcsetattr", errno);
  return CopyOut(info.Env(), &saved, sizeof saved);
}

// ttyRestore(fd, saved): tcsetattr(TCSADRAIN) of what ttyMakeRaw returned.
Napi::Value TtyRestore(const Napi::CallbackInfo& info) {
  const char* fn = "ttyRestore";
  RequireArgs(info, 2, fn);
  int fd = FdArg(info, 0, fn, "fd");
  Napi::Uint8Array b = BytesArg(info, 1, fn, "saved", sizeof(termios));
  termios t{};
  memcpy(&t, b.Data(), sizeof t);
  if (tcsetattr(fd, TCSADRAIN, &t) != 0) ThrowErrno(info.Env(), "tcsetattr", errno);
  return info.Env().Undefined();
}

}  // namespace

void RegisterPty(Napi::Env env, Napi::Object exports) {
  exports.Set("openPty", Napi::Function::New(env, OpenPty, "openPty"));
  exports.Set("setControllingTty", Napi::Function::New(env, SetControllingTty, "setControllingTty"));
  exports.Set("setWindowSize", Napi::Function::New(env, SetWindowSize, "setWindowSize"));
  exports.Set("ttyMakeRaw", Napi::Function::New(env, TtyMakeRaw, "ttyMakeRaw"));
  exports.Set("ttyRestore", Napi::Function::New(env, TtyRestore, "ttyRestore"));
}

}  // namespace kata

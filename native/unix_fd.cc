// AF_UNIX stream sockets with file-descriptor passing (SCM_RIGHTS, unix(7), cmsg(3)) for the vhost-user
// server (src/vhost-user/), and the peer credentials of a connection (SO_PEERCRED, for the runtime's control
// socket). The addon only mirrors the syscalls: listen/accept/connect/socketpair on non-blocking, close-on-exec
// sockets, recvmsg/sendmsg that carry fds, getsockopt(SO_PEERCRED). Framing, limits and policy are in TypeScript.
// EAGAIN comes back as null (the socket is watched with watchReadable), never as an error.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"

namespace kata {
namespace {

// SCM_MAX_FD in include/net/scm.h is 253; the vhost-user protocol never passes more than 8 per message.
constexpr uint32_t kMaxFds = 253;
// recvmsg/sendmsg buffers are bounded so a caller cannot ask for a huge allocation by mistake.
constexpr int64_t kMaxIo = 1 << 20;

sockaddr_un UnixAddr(Napi::Env env, const std::string& path, const char* fn) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path) {
    throw Napi::RangeError::New(env, std::string(fn) + ": socket path '" + path + "' must be 1.." +
                                         std::to_string(sizeof a.sun_path - 1) + " bytes (sockaddr_un.sun_path)");
  }
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

std::string PathArg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": path must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// unixListen(path, backlog) -> fd: socket + bind + listen, non-blocking and close-on-exec.
Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  const char* fn = "unixListen";
  RequireArgs(info, 2, fn);
  std::string path = PathArg(info, 0, fn);
  int backlog = static_cast<int>(IntArg(info, 1, fn, "backlog", 1, 4096));
  sockaddr_un a = UnixAddr(info.Env(), path, fn);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), "socket", errno);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(info.Env(), "bind", err, path);
  }
  if (listen(fd, backlog) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(info.Env(), "listen", err, path);
  }
  return Napi::Number::New(info.Env(), fd);
}

// unixAccept(listenFd) -> fd | null (EAGAIN): accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
Napi::Value UnixAccept(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "unixAccept");
  int lfd = FdArg(info, 0, "unixAccept", "fd");
  int fd;
  do {
    fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return info.Env().Null();
    ThrowErrno(info.Env(), "accept4", errno);
  }
  return Napi::Number::New(info.Env(), fd);
}

// unixConnect(path) -> fd: a blocking connect (local sockets connect at once or fail), then O_NONBLOCK.
Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  const char* fn = "unixConnect";
  RequireArgs(info, 1, fn);
  std::string path = PathArg(info, 0, fn);
  sockaddr_un a = UnixAddr(info.Env(), path, fn);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), "socket", errno);
  int r;
  do {
    r = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(info.Env(), "connect", err, path);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(info.Env(), "fcntl", err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// socketpair() -> [fd, fd]: AF_UNIX SOCK_STREAM, both non-blocking and close-on-exec.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) ThrowErrno(info.Env(), "socketpair", errno);
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::Number::New(info.Env(), sv[0]));
  a.Set(1u, Napi::Number::New(info.Env(), sv[1]));
  return a;
}

// recvmsgFds(fd, buf, maxFds) -> { bytes, fds, truncated } | null (EAGAIN). bytes 0 = peer closed.
// Received fds are close-on-exec (MSG_CMSG_CLOEXEC). If the peer sent more fds than maxFds the kernel
// drops the rest (MSG_CTRUNC): `truncated` is true and the caller must treat the message as malformed.
Napi::Value RecvmsgFds(const Napi::CallbackInfo& info) {
  const char* fn = "recvmsgFds";
  RequireArgs(info, 3, fn);
  int fd = FdArg(info, 0, fn, "fd");
  Napi::Uint8Array buf = BytesArg(info, 1, fn, "buf", -1);
  auto maxFds = static_cast<uint32_t>(IntArg(info, 2, fn, "maxFds", 0, kMaxFds));
  if (buf.ByteLength() == 0 || static_cast<int64_t>(buf.ByteLength()) > kMaxIo) {
    throw Napi::RangeError::New(info.Env(), "recvmsgFds: buf must hold 1.." + std::to_string(kMaxIo) + " bytes");
  }
  std::vector<char> control(CMSG_SPACE(sizeof(int) * (maxFds > 0 ? maxFds : 1)));
  iovec iov{buf.Data(), buf.ByteLength()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (maxFds > 0) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
  }
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return info.Env().Null();
    ThrowErrno(info.Env(), "recvmsg", errno);
  }
  Napi::Array fds = Napi::Array::New(info.Env());
  uint32_t k = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (size_t j = 0; j < count; j++) {
      int rfd;
      std::memcpy(&rfd, data + j * sizeof(int), sizeof rfd);
      fds.Set(k++, Napi::Number::New(info.Env(), rfd));
    }
  }
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(n)));
  out.Set("fds", fds);
  out.Set("truncated", Napi::Boolean::New(info.Env(), (msg.msg_flags & MSG_CTRUNC) != 0));
  return out;
}

// sendmsgFds(fd, buf, fds) -> bytes sent | null (EAGAIN). MSG_NOSIGNAL: a closed peer gives EPIPE, not SIGPIPE.
Napi::Value SendmsgFds(const Napi::CallbackInfo& info) {
  const char* fn = "sendmsgFds";
  RequireArgs(info, 3, fn);
  int fd = FdArg(info, 0, fn, "fd");
  Napi::Uint8Array buf = BytesArg(info, 1, fn, "buf", -1);
  Napi::Array arr = ArrayArg(info, 2, fn, "fds", kMaxFds);
  if (buf.ByteLength() == 0 || static_cast<int64_t>(buf.ByteLength()) > kMaxIo) {
    throw Napi::RangeError::New(info.Env(), "sendmsgFds: buf must hold 1.." + std::to_string(kMaxIo) + " bytes");
  }
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), "sendmsgFds: fds must be numbers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (d < 0 || d > INT32_MAX || d != static_cast<double>(static_cast<int>(d))) {
      throw Napi::RangeError::New(info.Env(), "sendmsgFds: fds[" + std::to_string(i) + "] is not a file descriptor");
    }
    fds.push_back(static_cast<int>(d));
  }
  std::vector<char> control(CMSG_SPACE(sizeof(int) * (fds.empty() ? 1 : fds.size())));
  iovec iov{buf.Data(), buf.ByteLength()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return info.Env().Null();
    ThrowErrno(info.Env(), "sendmsg", errno);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// peerCred(fd) -> { pid, uid, gid }: getsockopt(SO_PEERCRED) of a connected AF_UNIX socket (unix(7),
// socket(7)): the credentials the peer had when it called connect(2) (or listen(2)/socketpair(2)). Who may
// connect is the caller's policy.
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "peerCred");
  int fd = FdArg(info, 0, "peerCred", "fd");
  ucred c{};
  socklen_t len = sizeof c;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) < 0) ThrowErrno(info.Env(), "getsockopt", errno, "(SO_PEERCRED)");
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("pid", Napi::Number::New(info.Env(), c.pid));
  out.Set("uid", Napi::Number::New(info.Env(), c.uid));
  out.Set("gid", Napi::Number::New(info.Env(), c.gid));
  return out;
}

// memfdCreate(name[, flags]) -> fd: memfd_create(name, flags | MFD_CLOEXEC) (shared guest RAM in tests; size
// with ftruncate; MFD_ALLOW_SEALING for RAM a vhost-user back end will seal).
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "memfdCreate");
  std::string name = PathArg(info, 0, "memfdCreate");
  if (name.size() > 249) throw Napi::RangeError::New(info.Env(), "memfdCreate: name is longer than 249 bytes (memfd_create(2))");
  auto flags = info.Length() > 1 ? static_cast<unsigned int>(IntArg(info, 1, "memfdCreate", "flags", 0, UINT32_MAX)) : 0U;
  int fd = memfd_create(name.c_str(), flags | MFD_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), "memfd_create", errno);
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void RegisterUnixFd(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, UnixListen, "unixListen"));
  exports.Set("unixAccept", Napi::Function::New(env, UnixAccept, "unixAccept"));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect, "unixConnect"));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair, "socketpair"));
  exports.Set("recvmsgFds", Napi::Function::New(env, RecvmsgFds, "recvmsgFds"));
  exports.Set("sendmsgFds", Napi::Function::New(env, SendmsgFds, "sendmsgFds"));
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred, "peerCred"));
}

}  // namespace kata

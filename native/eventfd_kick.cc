// eventfd (irqfd/ioeventfd endpoints) and vCPU kicks (DESIGN decision 4): a no-op real-time signal
// handler installed without SA_RESTART makes a KVM_RUN in the signalled thread return EINTR.
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <mutex>

#include "common.h"

static_assert(sizeof(pthread_t) <= sizeof(uint64_t), "pthread_t fits in a u64 handle");

namespace kata {
namespace {

Napi::Value Eventfd(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "eventfd");
  auto init = static_cast<unsigned int>(IntArg(info, 0, "eventfd", "initval", 0, UINT32_MAX));
  int flags = static_cast<int>(IntArg(info, 1, "eventfd", "flags", 0, INT32_MAX));
  int fd = eventfd(init, flags);
  if (fd < 0) ThrowErrno(info.Env(), "eventfd", errno);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "eventfdWrite");
  int fd = FdArg(info, 0, "eventfdWrite", "fd");
  uint64_t v = U64Arg(info, 1, "eventfdWrite", "value");
  if (v == UINT64_MAX) throw Napi::RangeError::New(info.Env(), "eventfdWrite: value 2^64-1 is not allowed (eventfd(2))");
  ssize_t n;
  do {
    n = write(fd, &v, sizeof v);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(info.Env(), "write", errno, "(eventfd)");
  if (n != sizeof v) ThrowErrno(info.Env(), "write", EIO, "(eventfd, short write)");
  return info.Env().Undefined();
}

Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "eventfdRead");
  int fd = FdArg(info, 0, "eventfdRead", "fd");
  uint64_t v = 0;
  ssize_t n;
  do {
    n = read(fd, &v, sizeof v);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return info.Env().Null();
    ThrowErrno(info.Env(), "read", errno, "(eventfd)");
  }
  if (n != sizeof v) ThrowErrno(info.Env(), "read", EIO, "(eventfd, short read)");
  return Napi::BigInt::New(info.Env(), v);
}

void NoopKick(int, siginfo_t*, void*) {}

int SignoArg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  // Only real-time signals: the kick must never replace a handler Node or libuv relies on.
  return static_cast<int>(IntArg(info, i, fn, "signo", SIGRTMIN, SIGRTMAX));
}

std::mutex g_kick_mu;  // serialises sigaction between worker threads

Napi::Value InstallKickHandler(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 1, "installKickHandler");
  int signo = SignoArg(info, 0, "installKickHandler");
  {
    std::lock_guard<std::mutex> lock(g_kick_mu);
    struct sigaction cur {};
    if (sigaction(signo, nullptr, &cur) < 0) ThrowErrno(env, "sigaction", errno);
    bool installed = (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == NoopKick;
    if (!installed) {
      struct sigaction sa {};
      sa.sa_sigaction = NoopKick;
      sa.sa_flags = SA_SIGINFO;  // deliberately no SA_RESTART: KVM_RUN must return EINTR
      sigemptyset(&sa.sa_mask);
      if (sigaction(signo, &sa, nullptr) < 0) ThrowErrno(env, "sigaction", errno);
    }
  }
  // Node starts Worker threads with every signal blocked; a blocked signal would stay pending and
  // never interrupt KVM_RUN. Unblock it in the calling thread (each vCPU thread calls this).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  int err = pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  if (err != 0) ThrowErrno(env, "pthread_sigmask", err);
  return env.Undefined();
}

Napi::Value Sigrtmin(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), SIGRTMIN); }

Napi::Value ThreadSelf(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(pthread_self()));
}

Napi::Value ThreadKill(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "threadKill");
  uint64_t t = U64Arg(info, 0, "threadKill", "thread");
  int signo = SignoArg(info, 1, "threadKill");
  int err = pthread_kill(static_cast<pthread_t>(t), signo);
  if (err != 0) ThrowErrno(info.Env(), "pthread_kill", err);
  return info.Env().Undefined();
}

}  // namespace

void RegisterEventfd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfd", Napi::Function::New(env, Eventfd, "eventfd"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite, "eventfdWrite"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventfdRead, "eventfdRead"));
}

void RegisterKick(Napi::Env env, Napi::Object exports) {
  exports.Set("installKickHandler", Napi::Function::New(env, InstallKickHandler, "installKickHandler"));
  exports.Set("sigrtmin", Napi::Function::New(env, Sigrtmin, "sigrtmin"));
  exports.Set("threadSelf", Napi::Function::New(env, ThreadSelf, "threadSelf"));
  exports.Set("threadKill", Napi::Function::New(env, ThreadKill, "threadKill"));
}

}  // namespace kata

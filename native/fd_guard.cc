// Syscalls for file descriptors a peer hands us (the vhost-user back-end's front end may be hostile):
// O_NONBLOCK, memfd seals (fcntl(2) "File Sealing"), a connect(2) that never
// blocks (is anything listening on a socket path?), and eventfd reads/writes that give up at a deadline.
//
// Why a deadline: O_NONBLOCK lives in the open file description, which the peer shares with us, so a peer
// can clear it again with its own fcntl(F_SETFL) and then fill (or drain) the eventfd counter: a plain
// write(2)/read(2) would then sleep until the peer relents. eventfdWriteDeadline/eventfdReadDeadline arm a
// one-shot per-thread POSIX timer that sends `signo` to this thread only (SIGEV_THREAD_ID); its handler
// must be installed without SA_RESTART (installKickHandler does that), so a call still asleep when the
// deadline passes returns EINTR (reported as ETIMEDOUT). A call that does not sleep is never cut short: a
// signal arriving while it runs is only handled (no-op) on its way back. Policy (which signal, how long,
// what a timeout means) is the caller's.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common.h"

namespace kata {
namespace {

// fdSetNonblock(fd, on): fcntl(F_SETFL) with O_NONBLOCK set (on) or cleared.
Napi::Value FdSetNonblock(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "fdSetNonblock");
  int fd = FdArg(info, 0, "fdSetNonblock", "fd");
  bool on = BoolArg(info, 1, "fdSetNonblock", "on");
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) ThrowErrno(info.Env(), "fcntl", errno, "(F_GETFL)");
  int want = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (want != fl && fcntl(fd, F_SETFL, want) < 0) ThrowErrno(info.Env(), "fcntl", errno, "(F_SETFL)");
  return info.Env().Undefined();
}

// fdGetSeals(fd) -> seals: fcntl(F_GET_SEALS). EINVAL: the file does not support sealing.
Napi::Value FdGetSeals(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "fdGetSeals");
  int fd = FdArg(info, 0, "fdGetSeals", "fd");
  int s = fcntl(fd, F_GET_SEALS);
  if (s < 0) ThrowErrno(info.Env(), "fcntl", errno, "(F_GET_SEALS)");
  return Napi::Number::New(info.Env(), s);
}

// fdAddSeals(fd, seals): fcntl(F_ADD_SEALS). EPERM: F_SEAL_SEAL is set or the fd is not writable.
Napi::Value FdAddSeals(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "fdAddSeals");
  int fd = FdArg(info, 0, "fdAddSeals", "fd");
  int seals = static_cast<int>(IntArg(info, 1, "fdAddSeals", "seals", 0, INT32_MAX));
  if (fcntl(fd, F_ADD_SEALS, seals) < 0) ThrowErrno(info.Env(), "fcntl", errno, "(F_ADD_SEALS)");
  return info.Env().Undefined();
}

// unixConnectProbe(path) -> null | errno name: a NON-blocking connect(2) to a unix stream socket path,
// closed at once. null: something accepted (or queued) the connection; 'ECONNREFUSED': a socket file that
// nobody listens on (or not a socket at all); 'EAGAIN': a listener whose backlog is full; 'ENOENT': nothing.
Napi::Value UnixConnectProbe(const Napi::CallbackInfo& info) {
  const char* fn = "unixConnectProbe";
  RequireArgs(info, 1, fn);
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path) {
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": socket path '" + path + "' must be 1.." +
                                                std::to_string(sizeof a.sun_path - 1) + " bytes (sockaddr_un.sun_path)");
  }
  std::memcpy(a.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), "socket", errno);
  int r;
  do {
    r = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } while (r < 0 && errno == EINTR);
  int err = r < 0 ? errno : 0;
  close(fd);
  if (err == 0 || err == EINPROGRESS) return info.Env().Null();
  return Napi::String::New(info.Env(), ErrnoName(err));
}

// --- eventfd I/O bounded by a deadline

struct ThreadTimer {
  timer_t id{};
  int signo = 0;  // 0: no timer yet
  ~ThreadTimer() {
    if (signo != 0) timer_delete(id);
  }
};
thread_local ThreadTimer t_timer;

// The per-thread timer for `signo`, made on first use after checking that the signal interrupts syscalls
// in this thread: a handler without SA_RESTART (a default action would kill the process) and unblocked.
timer_t& TimerFor(Napi::Env env, int signo, const char* fn) {
  if (t_timer.signo == signo) return t_timer.id;
  struct sigaction cur {};
  if (sigaction(signo, nullptr, &cur) < 0) ThrowErrno(env, "sigaction", errno);
  bool handled = (cur.sa_flags & SA_SIGINFO) ? cur.sa_sigaction != nullptr
                                              : (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN);
  sigset_t mask;
  int err = pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  if (err != 0) ThrowErrno(env, "pthread_sigmask", err);
  if (!handled || (cur.sa_flags & SA_RESTART) != 0 || sigismember(&mask, signo) == 1) {
    throw Napi::Error::New(env, std::string(fn) + ": signal " + std::to_string(signo) +
                                    " has no handler without SA_RESTART unblocked in this thread: call installKickHandler(signo) on this thread first");
  }
  if (t_timer.signo != 0) {
    timer_delete(t_timer.id);
    t_timer.signo = 0;
  }
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = signo;
  sev._sigev_un._tid = gettid();
  if (timer_create(CLOCK_MONOTONIC, &sev, &t_timer.id) < 0) ThrowErrno(env, "timer_create", errno);
  t_timer.signo = signo;
  return t_timer.id;
}

void Arm(Napi::Env env, timer_t id, int64_t ms) {
  itimerspec its{};
  its.it_value.tv_sec = static_cast<time_t>(ms / 1000);
  its.it_value.tv_nsec = static_cast<long>((ms % 1000) * 1000000);
  if (timer_settime(id, 0, &its, nullptr) < 0) ThrowErrno(env, "timer_settime", errno);
}

void Disarm(timer_t id) {
  itimerspec zero{};
  timer_settime(id, 0, &zero, nullptr);
}

// One read(2) or write(2) of 8 bytes, retried on EINTR until the deadline passed. Returns bytes or -errno
// (-ETIMEDOUT when the deadline interrupted it).
template <typename Op>
ssize_t Bounded(Napi::Env env, int signo, int64_t ms, const char* fn, Op op) {
  timer_t& id = TimerFor(env, signo, fn);
  Arm(env, id, ms);
  ssize_t n;
  int err = 0;
  for (;;) {
    n = op();
    if (n >= 0) break;
    err = errno;
    if (err != EINTR) break;
    itimerspec cur{};
    timer_gettime(id, &cur);
    if (cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0) {
      err = ETIMEDOUT;
      break;
    }
  }
  Disarm(id);
  return n >= 0 ? n : -err;
}

// eventfdWriteDeadline(fd, value, signo, ms) -> true (added to the counter) | false (EAGAIN: the counter is
// full, so the peer has a signal pending). A write still asleep when `ms` passed throws ETIMEDOUT.
Napi::Value EventfdWriteDeadline(const Napi::CallbackInfo& info) {
  const char* fn = "eventfdWriteDeadline";
  RequireArgs(info, 4, fn);
  int fd = FdArg(info, 0, fn, "fd");
  uint64_t v = U64Arg(info, 1, fn, "value");
  if (v == UINT64_MAX) throw Napi::RangeError::New(info.Env(), "eventfdWriteDeadline: value 2^64-1 is not allowed (eventfd(2))");
  int signo = static_cast<int>(IntArg(info, 2, fn, "signo", SIGRTMIN, SIGRTMAX));
  int64_t ms = IntArg(info, 3, fn, "ms", 1, 60000);
  ssize_t n = Bounded(info.Env(), signo, ms, fn, [&] { return write(fd, &v, sizeof v); });
  if (n == -EAGAIN) return Napi::Boolean::New(info.Env(), false);
  if (n < 0) ThrowErrno(info.Env(), "write", static_cast<int>(-n), "(eventfd)");
  if (n != sizeof v) ThrowErrno(info.Env(), "write", EIO, "(eventfd, short write)");
  return Napi::Boolean::New(info.Env(), true);
}

// eventfdReadDeadline(fd, signo, ms) -> counter | null (EAGAIN: nothing to read). A read still asleep when
// `ms` passed throws ETIMEDOUT.
Napi::Value EventfdReadDeadline(const Napi::CallbackInfo& info) {
  const char* fn = "eventfdReadDeadline";
  RequireArgs(info, 3, fn);
  int fd = FdArg(info, 0, fn, "fd");
  int signo = static_cast<int>(IntArg(info, 1, fn, "signo", SIGRTMIN, SIGRTMAX));
  int64_t ms = IntArg(info, 2, fn, "ms", 1, 60000);
  uint64_t v = 0;
  ssize_t n = Bounded(info.Env(), signo, ms, fn, [&] { return read(fd, &v, sizeof v); });
  if (n == -EAGAIN) return info.Env().Null();
  if (n < 0) ThrowErrno(info.Env(), "read", static_cast<int>(-n), "(eventfd)");
  if (n != sizeof v) ThrowErrno(info.Env(), "read", EIO, "(eventfd, short read)");
  return Napi::BigInt::New(info.Env(), v);
}

}  // namespace

void RegisterFdGuard(Napi::Env env, Napi::Object exports) {
  exports.Set("fdSetNonblock", Napi::Function::New(env, FdSetNonblock, "fdSetNonblock"));
  exports.Set("fdGetSeals", Napi::Function::New(env, FdGetSeals, "fdGetSeals"));
  exports.Set("fdAddSeals", Napi::Function::New(env, FdAddSeals, "fdAddSeals"));
  exports.Set("unixConnectProbe", Napi::Function::New(env, UnixConnectProbe, "unixConnectProbe"));
  exports.Set("eventfdWriteDeadline", Napi::Function::New(env, EventfdWriteDeadline, "eventfdWriteDeadline"));
  exports.Set("eventfdReadDeadline", Napi::Function::New(env, EventfdReadDeadline, "eventfdReadDeadline"));
}

}  // namespace kata

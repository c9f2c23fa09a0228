// Syscalls for file descriptors a peer hands us (the vhost-user back-end's front end may be hostile):
// O_NONBLOCK, memfd seals (fcntl(2) "File Sealing"), a connect(2) that never
// blocks (is anything listening on a socket path?), and eventfd reads/writes that give up at a deadline.
//
// Why a deadline: O_NONBLOCK lives in the open file description, which the peer shares with us, so a peer
// can clear it again with its own fcntl(F_SETFL) and then fill (or drain) the eventfd counter: a plain
// write(2)/read(2) would then sleep until the peer relents. eventfdWriteDeadline/eventfdReadDeadline mark
// this thread as "in a call until the deadline" and a watchdog thread sends `signo` to this thread only
// (tgkill) if it is still in that call past the deadline; the handler must be installed without
// SA_RESTART (installKickHandler does that), so a call still asleep then returns EINTR (reported as
// ETIMEDOUT). A call that does not sleep is never cut short: a signal arriving while it runs is only
// handled (no-op) on its way back. Reads also pass RWF_NOWAIT, which eventfd honours whatever O_NONBLOCK
// says; writes have no such flag (eventfd has no write_iter: pwritev2(RWF_NOWAIT) is EOPNOTSUPP, 6.1 to
// 6.18), so for them the watchdog is the guarantee. Policy (which signal, how long, what a timeout means)
// is the caller's.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
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
//
// A watchdog thread, not a timer per call. A timer armed and disarmed around each syscall (timer_settime
// twice) cost about 5 µs per call on a VM host (each arming reprograms the hrtimer), four times the syscall
// it guarded. Here a guarded call only publishes "in a call since, until `deadline`" in its thread's slot
// (two atomic stores and a vDSO clock read); a watchdog thread looks at the slots once per tick while calls
// keep coming and sends `signo` (tgkill) to a thread still in the same call past its deadline, again every
// tick until the call ends (so a call that began its syscall just after a signal was handled is still cut
// short). When no call has started for IDLE_TICKS ticks it sleeps on a futex, and the next call wakes it.
//
// A signal must never reach the thread outside the call it was meant for (it would interrupt some other
// syscall of the event loop with EINTR): each slot holds (call number << 2 | phase) in one atomic word. The
// watchdog moves IN_CALL -> KILLING -> (tgkill) -> KILLED with compare-and-swap on the whole word, so a call
// that ended, or a newer call, is never signalled for an older call's deadline; the calling thread ends its
// call with a compare-and-swap back to IDLE, waits out KILLING (tgkill in progress), and after KILLED makes
// one more syscall so that a signal still pending is handled there, inside this function.

constexpr int64_t kTickNs = 1000000;  // 1 ms: a sleeping call is interrupted within its deadline + ~1 tick
constexpr int kIdleTicks = 100;       // the watchdog sleeps after 100 ms without a guarded call
constexpr int kMaxSlots = 64;         // threads that may make guarded calls at once

enum Phase : uint64_t { kIdle = 0, kInCall = 1, kKilling = 2, kKilled = 3 };

struct Slot {
  std::atomic<bool> used{false};
  std::atomic<pid_t> tid{0};
  std::atomic<int> signo{0};
  std::atomic<uint64_t> state{0};      // call number << 2 | Phase
  std::atomic<int64_t> deadline{0};    // CLOCK_MONOTONIC ns; written before state moves to kInCall
};
Slot g_slots[kMaxSlots];
std::mutex g_slots_mu;                 // slot allocation only
std::atomic<int> g_watchdog_asleep{0};  // 1: waiting on this futex word for a call to start

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

long Futex(std::atomic<int>* word, int op, int val, const timespec* timeout) {
  return syscall(SYS_futex, reinterpret_cast<int*>(word), op, val, timeout, nullptr, 0);
}

// One watchdog pass: signal every thread still in a call past its deadline (or past its last signal by a
// tick). Returns whether a call is in progress and, in *seqs, the sum of the call numbers (idle detection).
bool WatchdogPass(int64_t now, int64_t rekill_at[], uint64_t* seqs) {
  bool busy = false;
  uint64_t sum = 0;
  for (int i = 0; i < kMaxSlots; i++) {
    Slot& s = g_slots[i];
    if (!s.used.load(std::memory_order_acquire)) continue;
    uint64_t st = s.state.load(std::memory_order_seq_cst);
    sum += st >> 2;
    uint64_t ph = st & 3;
    if (ph == kIdle) continue;
    busy = true;
    bool due = ph == kInCall ? now >= s.deadline.load(std::memory_order_relaxed) : ph == kKilled && now >= rekill_at[i];
    if (!due) continue;
    uint64_t call = st & ~uint64_t{3};
    if (!s.state.compare_exchange_strong(st, call | kKilling, std::memory_order_acq_rel)) continue;  // it ended
    syscall(SYS_tgkill, getpid(), s.tid.load(std::memory_order_relaxed), s.signo.load(std::memory_order_relaxed));
    s.state.store(call | kKilled, std::memory_order_release);
    rekill_at[i] = now + kTickNs;
  }
  *seqs = sum;
  return busy;
}

void* WatchdogMain(void*) {
  int64_t rekill_at[kMaxSlots] = {};
  uint64_t last_seqs = 0;
  int idle = 0;
  for (;;) {
    timespec tick{0, kTickNs};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &tick, &tick) == EINTR) {
    }
    uint64_t seqs = 0;
    bool busy = WatchdogPass(NowNs(), rekill_at, &seqs);
    idle = (busy || seqs != last_seqs) ? 0 : idle + 1;
    last_seqs = seqs;
    if (idle < kIdleTicks) continue;
    // Sleep until a call starts. Dekker-style with the caller (Enter): it stores kInCall then loads
    // g_watchdog_asleep; we store 1 then look at every slot again, so one of us sees the other.
    g_watchdog_asleep.store(1, std::memory_order_seq_cst);
    if (WatchdogPass(NowNs(), rekill_at, &seqs) || seqs != last_seqs) {
      g_watchdog_asleep.store(0, std::memory_order_seq_cst);
    } else {
      while (g_watchdog_asleep.load(std::memory_order_seq_cst) == 1) Futex(&g_watchdog_asleep, FUTEX_WAIT_PRIVATE, 1, nullptr);
    }
    last_seqs = seqs;
    idle = 0;
  }
  return nullptr;
}

void StartWatchdog(Napi::Env env) {
  static std::once_flag once;
  static int err = 0;
  std::call_once(once, [] {
    // every signal blocked in the watchdog: process-directed signals go to the other threads
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t th;
    err = pthread_create(&th, nullptr, WatchdogMain, nullptr);
    if (err == 0) pthread_detach(th);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  });
  if (err != 0) ThrowErrno(env, "pthread_create", err, "(fd guard watchdog)");
}

// This thread's slot, released when the thread ends (a call never outlives its thread).
struct ThreadSlot {
  Slot* slot = nullptr;
  uint64_t calls = 0;
  ~ThreadSlot() {
    if (slot == nullptr) return;
    std::lock_guard<std::mutex> lock(g_slots_mu);
    slot->state.store(0, std::memory_order_seq_cst);
    slot->used.store(false, std::memory_order_release);
  }
};
thread_local ThreadSlot t_slot;

// The slot of this thread for `signo`, taken on first use after checking that the signal interrupts
// syscalls in this thread: a handler without SA_RESTART (a default action would kill the process) and
// unblocked.
Slot& SlotFor(Napi::Env env, int signo, const char* fn) {
  if (t_slot.slot != nullptr && t_slot.slot->signo.load(std::memory_order_relaxed) == signo) return *t_slot.slot;
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
  StartWatchdog(env);
  if (t_slot.slot == nullptr) {
    std::lock_guard<std::mutex> lock(g_slots_mu);
    for (Slot& s : g_slots) {
      if (s.used.load(std::memory_order_relaxed)) continue;
      s.tid.store(gettid(), std::memory_order_relaxed);
      s.state.store(0, std::memory_order_relaxed);
      s.used.store(true, std::memory_order_release);
      t_slot.slot = &s;
      break;
    }
    if (t_slot.slot == nullptr) {
      throw Napi::Error::New(env, std::string(fn) + ": more than " + std::to_string(kMaxSlots) + " threads make deadline-bounded calls");
    }
  }
  t_slot.slot->signo.store(signo, std::memory_order_relaxed);  // only this thread's calls read it, when in a call
  return *t_slot.slot;
}

// One read(2) or write(2) of 8 bytes, retried on EINTR until the deadline passed. Returns bytes or -errno
// (-ETIMEDOUT when the deadline interrupted it).
template <typename Op>
ssize_t Bounded(Napi::Env env, int signo, int64_t ms, const char* fn, Op op) {
  Slot& s = SlotFor(env, signo, fn);
  const uint64_t call = ++t_slot.calls << 2;
  const int64_t deadline = NowNs() + ms * 1000000;
  s.deadline.store(deadline, std::memory_order_relaxed);
  s.state.store(call | kInCall, std::memory_order_seq_cst);  // publishes the deadline too
  if (g_watchdog_asleep.load(std::memory_order_seq_cst) == 1 && g_watchdog_asleep.exchange(0) == 1) {
    Futex(&g_watchdog_asleep, FUTEX_WAKE_PRIVATE, 1, nullptr);
  }
  ssize_t n;
  int err = 0;
  for (;;) {
    n = op();
    if (n >= 0) break;
    err = errno;
    if (err != EINTR) break;
    if (NowNs() >= deadline) {  // the watchdog's signal (or another one past the deadline)
      err = ETIMEDOUT;
      break;
    }
  }
  // Leave the call: IN_CALL -> IDLE; KILLING: tgkill in progress; KILLED: a signal may still be pending.
  bool signalled = false;
  for (;;) {
    uint64_t st = call | kInCall;
    if (s.state.compare_exchange_strong(st, call | kIdle, std::memory_order_acq_rel)) break;
    if (st == (call | kKilled)) {
      if (s.state.compare_exchange_strong(st, call | kIdle, std::memory_order_acq_rel)) {
        signalled = true;
        break;
      }
      continue;
    }
    sched_yield();  // kKilling
  }
  // tgkill has returned, so the signal is pending on this thread: it is handled on the way back from this
  // syscall, here, rather than cutting short a later syscall of the event loop.
  if (signalled) syscall(SYS_getppid);
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
  // RWF_NOWAIT: eventfd's read_iter never sleeps with IOCB_NOWAIT (fs/eventfd.c, Linux 5.12+), whatever the
  // front end did to O_NONBLOCK; a file without FMODE_NOWAIT answers EOPNOTSUPP and gets a plain read(2).
  // Both run under the deadline: the guarantee does not rest on what kind of file the front end passed.
  ssize_t n = Bounded(info.Env(), signo, ms, fn, [&] {
    iovec io{&v, sizeof v};
    ssize_t r = preadv2(fd, &io, 1, -1, RWF_NOWAIT);
    return r < 0 && errno == EOPNOTSUPP ? read(fd, &v, sizeof v) : r;
  });
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

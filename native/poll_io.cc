// fd readiness watchers and scatter/gather I/O for the device workers (DESIGN decision 3).
//
// watchReadable(fd, cb) starts a uv_poll_t on the event loop of the CALLING thread (main thread or a
// worker thread: napi_get_uv_event_loop), so a device worker is woken by its ioeventfds without any
// JS-side polling. The callback runs through MakeCallback (microtasks drained, exceptions reach
// 'uncaughtException' of that thread). Every watcher carries an async cleanup hook, so a worker that is
// terminated with watchers still open closes them before its loop is closed.
//
// readv/writev move bytes between an fd and a list of Uint8Arrays (guest-memory views) with no copy;
// EAGAIN comes back as -EAGAIN instead of an exception (non-blocking tap/socket fds hit it routinely).
#include <sys/uio.h>
#include <uv.h>
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "common.h"

namespace kata {
namespace {

struct Watch {
  uint32_t id;
  napi_env env;
  uv_poll_t poll;
  Napi::FunctionReference cb;
  napi_async_context async = nullptr;
  napi_async_cleanup_hook_handle hook = nullptr;
  bool closing = false;
};

// id -> watcher. A watcher is only ever touched on the thread whose loop it is on; the map itself is
// shared by all threads (ids are process-wide), hence the mutex.
std::mutex g_watch_mu;
std::map<uint32_t, Watch*> g_watches;
uint32_t g_next_id = 1;

void OnClosed(uv_handle_t* h) {
  Watch* w = static_cast<Watch*>(h->data);
  napi_env env = w->env;
  {
    Napi::Env e(env);
    Napi::HandleScope scope(e);
    w->cb.Reset();
    if (w->async != nullptr) napi_async_destroy(env, w->async);
  }
  if (w->hook != nullptr) napi_remove_async_cleanup_hook(w->hook);  // from the cleanup path: done now
  delete w;
}

void CloseWatch(Watch* w) {
  if (w->closing) return;
  w->closing = true;
  {
    std::lock_guard<std::mutex> lock(g_watch_mu);
    g_watches.erase(w->id);
  }
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnClosed);
}

// The thread's environment is going away (worker terminated / process exiting) with this watcher open.
void OnEnvCleanup(napi_async_cleanup_hook_handle handle, void* arg) {
  Watch* w = static_cast<Watch*>(arg);
  w->hook = handle;  // removed in OnClosed, which tells Node the asynchronous cleanup is over
  if (w->closing) return;
  CloseWatch(w);
}

void OnReadable(uv_poll_t* p, int status, int events) {
  (void)status;
  (void)events;
  Watch* w = static_cast<Watch*>(p->data);
  if (w->closing) return;
  Napi::Env env(w->env);
  Napi::HandleScope scope(env);
  // an error status (e.g. EBADF) is reported by the read the callback does
  napi_value global;
  napi_get_global(w->env, &global);
  napi_value fn = w->cb.Value();
  napi_value result;
  napi_status st = napi_make_callback(w->env, w->async, global, fn, 0, nullptr, &result);
  if (st == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(w->env, &err);
    napi_fatal_exception(w->env, err);  // -> 'uncaughtException' of this thread
  }
}

Napi::Value WatchReadable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 2, "watchReadable");
  int fd = FdArg(info, 0, "watchReadable", "fd");
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "watchReadable: cb must be a function");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "watchReadable: this thread has no libuv event loop");
  }
  auto* w = new Watch();
  w->env = env;
  int err = uv_poll_init(loop, &w->poll, fd);
  if (err != 0) {
    delete w;
    ThrowErrno(env, "uv_poll_init", -err);
  }
  w->poll.data = w;
  w->cb = Napi::Persistent(info[1].As<Napi::Function>());
  napi_async_init(env, nullptr, Napi::String::New(env, "kata-ts:watchReadable"), &w->async);
  {
    std::lock_guard<std::mutex> lock(g_watch_mu);
    w->id = g_next_id++;
    if (g_next_id > 0x7fffffff) g_next_id = 1;
    g_watches[w->id] = w;
  }
  err = uv_poll_start(&w->poll, UV_READABLE, OnReadable);
  if (err != 0) {
    CloseWatch(w);
    ThrowErrno(env, "uv_poll_start", -err);
  }
  napi_add_async_cleanup_hook(env, OnEnvCleanup, w, &w->hook);
  // OnEnvCleanup overwrites hook with the same handle; an explicit unwatch removes it first
  return Napi::Number::New(env, w->id);
}

Napi::Value Unwatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 1, "unwatch");
  auto id = static_cast<uint32_t>(IntArg(info, 0, "unwatch", "id", 1, 0x7fffffff));
  Watch* w = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_watch_mu);
    auto it = g_watches.find(id);
    if (it != g_watches.end()) w = it->second;
  }
  if (w == nullptr) return env.Undefined();  // already gone: unwatch is idempotent
  if (w->env != static_cast<napi_env>(env)) {
    throw Napi::Error::New(env, "unwatch: watcher " + std::to_string(id) + " belongs to another thread; unwatch it there");
  }
  if (w->hook != nullptr) {
    napi_remove_async_cleanup_hook(w->hook);
    w->hook = nullptr;
  }
  CloseWatch(w);
  return env.Undefined();
}

// Collect the Uint8Arrays of argument i into iovecs (at most IOV_MAX).
std::vector<iovec> Iovecs(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  Napi::Array arr = ArrayArg(info, i, fn, "bufs", IOV_MAX);
  std::vector<iovec> iov;
  iov.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(info.Env(), std::string(fn) + ": bufs[" + std::to_string(k) + "] must be a Uint8Array");
    }
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    iov.push_back({a.Data(), a.ByteLength()});
  }
  return iov;
}

Napi::Value Readv(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "readv");
  int fd = FdArg(info, 0, "readv", "fd");
  std::vector<iovec> iov = Iovecs(info, 1, "readv");
  ssize_t n;
  do {
    n = readv(fd, iov.data(), static_cast<int>(iov.size()));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return Napi::Number::New(info.Env(), -EAGAIN);
    ThrowErrno(info.Env(), "readv", errno);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

Napi::Value Writev(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "writev");
  int fd = FdArg(info, 0, "writev", "fd");
  std::vector<iovec> iov = Iovecs(info, 1, "writev");
  ssize_t n;
  do {
    n = writev(fd, iov.data(), static_cast<int>(iov.size()));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return Napi::Number::New(info.Env(), -EAGAIN);
    ThrowErrno(info.Env(), "writev", errno);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

}  // namespace

void RegisterPollIo(Napi::Env env, Napi::Object exports) {
  exports.Set("watchReadable", Napi::Function::New(env, WatchReadable, "watchReadable"));
  exports.Set("unwatch", Napi::Function::New(env, Unwatch, "unwatch"));
  exports.Set("readv", Napi::Function::New(env, Readv, "readv"));
  exports.Set("writev", Napi::Function::New(env, Writev, "writev"));
}

}  // namespace kata

// kata-ts native addon: a thin, context-aware (worker_threads-safe) N-API module that mirrors the
// kernel: /dev/kvm ioctls, eventfd, mmap, vCPU kick signals, fd watchers, readv/writev and tap. Typed by hand in src/kvm/native.ts.
// Init keeps no per-env or global JS state; the only shared state is the C++ mapping registry
// (memory.cc, mutex-guarded) and the signal disposition (eventfd_kick.cc).
#include <napi.h>

#include "common.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  kata::RegisterKvm(env, exports);
  kata::RegisterMemory(env, exports);
  kata::RegisterEventfd(env, exports);
  kata::RegisterKick(env, exports);
  kata::RegisterPollIo(env, exports);
  kata::RegisterTap(env, exports);
  kata::RegisterUnixFd(env, exports);
  kata::RegisterFdGuard(env, exports);
  kata::RegisterFsAt(env, exports);
  kata::RegisterMount(env, exports);
  kata::RegisterPty(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(kata_ts_native, Init)

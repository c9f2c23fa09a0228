// mmap/munmap and the registry of live mappings. Guest memory is one mmap seen by every thread
// (DESIGN decision 2): each worker wraps the same range as its own external ArrayBuffer.
//
// The registry is process-wide (all worker threads share it) and guarded by a mutex. External
// ArrayBuffers carry NO finalizer: the owner calls munmap() explicitly after stopping every thread
// that wraps the mapping.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "common.h"

namespace kata {
namespace {

std::mutex g_mappings_mu;
std::map<uintptr_t, size_t> g_mappings;  // start address -> length, guarded by g_mappings_mu

constexpr double kMaxMapping = 1ULL << 46;  // 64 TiB: far above any guest, below the address space

void Register(uintptr_t addr, size_t size) {
  std::lock_guard<std::mutex> lock(g_mappings_mu);
  g_mappings[addr] = size;
}

// True when [addr, addr+size) lies inside one registered mapping. Caller holds g_mappings_mu.
bool InsideLocked(uintptr_t addr, size_t size) {
  auto it = g_mappings.upper_bound(addr);
  if (it == g_mappings.begin()) return false;
  --it;
  uintptr_t start = it->first;
  size_t len = it->second;
  if (addr < start) return false;
  uintptr_t off = addr - start;
  return off <= len && size <= len - off;
}

Napi::Object MappingObject(Napi::Env env, void* ptr, size_t size) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("addr", Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ptr))));
  o.Set("size", Napi::Number::New(env, static_cast<double>(size)));
  o.Set("buffer", Napi::ArrayBuffer::New(env, ptr, size));  // no finalizer: see file comment
  return o;
}

Napi::Value MmapAnonymous(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "mmapAnonymous");
  auto size = static_cast<size_t>(IntArg(info, 0, "mmapAnonymous", "size", 1, static_cast<int64_t>(kMaxMapping)));
  bool shared = BoolArg(info, 1, "mmapAnonymous", "shared");
  int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_NORESERVE;
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED) ThrowErrno(info.Env(), "mmap", errno);
  // The kernel rounds the length up to whole pages; register what it mapped.
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  Register(reinterpret_cast<uintptr_t>(p), (size + page - 1) / page * page);
  return MappingObject(info.Env(), p, size);
}

Napi::Value MmapFd(const Napi::CallbackInfo& info) {
  const char* fn = "mmapFd";
  RequireArgs(info, 5, fn);
  int fd = FdArg(info, 0, fn, "fd");
  auto size = static_cast<size_t>(IntArg(info, 1, fn, "size", 1, static_cast<int64_t>(kMaxMapping)));
  int prot = static_cast<int>(IntArg(info, 2, fn, "prot", 0, INT32_MAX));
  int flags = static_cast<int>(IntArg(info, 3, fn, "flags", 0, INT32_MAX));
  auto offset = static_cast<off_t>(IntArg(info, 4, fn, "offset", 0, INT64_C(9007199254740991)));
  if (flags & MAP_FIXED) throw Napi::TypeError::New(info.Env(), "mmapFd: MAP_FIXED is not allowed");
  void* p = mmap(nullptr, size, prot, flags, fd, offset);
  if (p == MAP_FAILED) ThrowErrno(info.Env(), "mmap", errno);
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  Register(reinterpret_cast<uintptr_t>(p), (size + page - 1) / page * page);
  return MappingObject(info.Env(), p, size);
}

Napi::Value WrapMapping(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 2, "wrapMapping");
  uint64_t addr = U64Arg(info, 0, "wrapMapping", "addr");
  auto size = static_cast<size_t>(IntArg(info, 1, "wrapMapping", "size", 0, static_cast<int64_t>(kMaxMapping)));
  {
    std::lock_guard<std::mutex> lock(g_mappings_mu);
    if (!InsideLocked(static_cast<uintptr_t>(addr), size)) {
      throw Napi::RangeError::New(env, "wrapMapping: [addr, addr+size) is not inside a live mapping of this process");
    }
  }
  return Napi::ArrayBuffer::New(env, reinterpret_cast<void*>(static_cast<uintptr_t>(addr)), size);
}

Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 1, "munmap");
  auto addr = static_cast<uintptr_t>(U64Arg(info, 0, "munmap", "addr"));
  std::lock_guard<std::mutex> lock(g_mappings_mu);
  auto it = g_mappings.find(addr);
  if (it == g_mappings.end()) {
    throw Napi::RangeError::New(env, "munmap: addr is not the start of a live mapping made by mmapAnonymous/mmapFd");
  }
  if (::munmap(reinterpret_cast<void*>(addr), it->second) < 0) ThrowErrno(env, "munmap", errno);
  g_mappings.erase(it);
  return env.Undefined();
}

Napi::Value ResidentBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 2, "residentBytes");
  auto addr = static_cast<uintptr_t>(U64Arg(info, 0, "residentBytes", "addr"));
  auto size = static_cast<size_t>(IntArg(info, 1, "residentBytes", "size", 0, static_cast<int64_t>(kMaxMapping)));
  if (size == 0) return Napi::Number::New(env, 0);
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  uintptr_t start = addr / page * page;
  uintptr_t end = (addr + size + page - 1) / page * page;
  std::vector<unsigned char> vec((end - start) / page);
  {
    // Hold the lock so the mapping cannot be unmapped (and reused) while mincore() reads it.
    std::lock_guard<std::mutex> lock(g_mappings_mu);
    if (!InsideLocked(addr, size)) {
      throw Napi::RangeError::New(env, "residentBytes: [addr, addr+size) is not inside a live mapping of this process");
    }
    if (mincore(reinterpret_cast<void*>(start), end - start, vec.data()) < 0) ThrowErrno(env, "mincore", errno);
  }
  double resident = 0;
  for (unsigned char c : vec) {
    if (c & 1) resident += static_cast<double>(page);
  }
  return Napi::Number::New(env, resident);
}

}  // namespace

void RegisterMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mmapAnonymous", Napi::Function::New(env, MmapAnonymous, "mmapAnonymous"));
  exports.Set("mmapFd", Napi::Function::New(env, MmapFd, "mmapFd"));
  exports.Set("wrapMapping", Napi::Function::New(env, WrapMapping, "wrapMapping"));
  exports.Set("munmap", Napi::Function::New(env, Munmap, "munmap"));
  exports.Set("residentBytes", Napi::Function::New(env, ResidentBytes, "residentBytes"));
}

}  // namespace kata

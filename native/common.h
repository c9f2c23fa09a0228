// Shared helpers of the kata-ts addon: argument checks (TypeError/RangeError with plain messages) and
// the errno -> Error conversion. The addon is thin: no policy, no device logic (DESIGN decision 1).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace kata {

// --- argument checks: each throws Napi::TypeError (wrong type/count/size) or Napi::RangeError (value).
void RequireArgs(const Napi::CallbackInfo& info, size_t n, const char* fn);
/** A file descriptor: an integer Number in [0, INT32_MAX]. */
int FdArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
/** An integer Number in [min, max] (both within the safe-integer range). */
int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t min, int64_t max);
/** A non-negative BigInt that fits in 64 bits. */
uint64_t U64Arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
uint64_t U64Value(const Napi::Env& env, const Napi::Value& v, const char* fn, const char* name);
bool BoolArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
/** A Uint8Array (or Buffer). If exact >= 0 its byteLength must equal exact. */
Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t exact);
Napi::Array ArrayArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, uint32_t maxLen);

/** Copy `len` bytes into a new Uint8Array. */
Napi::Uint8Array CopyOut(Napi::Env env, const void* data, size_t len);

// --- errors
/** errno name ("EINVAL"), or "E<number>" if the libc does not know it. */
std::string ErrnoName(int err);
/** Build { message: "<syscall> failed: <strerror> (<NAME>)", code, errno, syscall } (message prefix optional). */
Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err, const std::string& detail = "");
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall, int err, const std::string& detail = "");

// --- registration of each group of entry points on the exports object
void RegisterKvm(Napi::Env env, Napi::Object exports);
void RegisterMemory(Napi::Env env, Napi::Object exports);
void RegisterEventfd(Napi::Env env, Napi::Object exports);
void RegisterKick(Napi::Env env, Napi::Object exports);
void RegisterPollIo(Napi::Env env, Napi::Object exports);
void RegisterTap(Napi::Env env, Napi::Object exports);
void RegisterUnixFd(Napi::Env env, Napi::Object exports);
void RegisterFdGuard(Napi::Env env, Napi::Object exports);
/** *at() file-system calls for the virtio-fs passthrough backend (fs_at.cc). */
void RegisterFsAt(Napi::Env env, Napi::Object exports);
/** bind mounts of the runtime's virtio-fs share (mount.cc). */
void RegisterMount(Napi::Env env, Napi::Object exports);
/** pseudo-terminals for create --console-socket (pty.cc). */
void RegisterPty(Napi::Env env, Napi::Object exports);

}  // namespace kata

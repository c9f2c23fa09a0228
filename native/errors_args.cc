// Argument checking and errno errors for every entry point (see common.h).
#include <cerrno>
#include <cmath>
#include <cstring>

#include "common.h"

namespace kata {

namespace {
constexpr double kMaxSafeInteger = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

std::string Where(const char* fn, const char* name) { return std::string(fn) + ": " + name; }
}  // namespace

void RequireArgs(const Napi::CallbackInfo& info, size_t n, const char* fn) {
  if (info.Length() < n) {
    throw Napi::TypeError::New(info.Env(), std::string(fn) + " expects " + std::to_string(n) + " argument" +
                                               (n == 1 ? "" : "s") + ", got " + std::to_string(info.Length()));
  }
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t min, int64_t max) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) {
    throw Napi::TypeError::New(info.Env(), Where(fn, name) + " must be a number");
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || std::fabs(d) > kMaxSafeInteger) {
    throw Napi::TypeError::New(info.Env(), Where(fn, name) + " must be an integer");
  }
  int64_t x = static_cast<int64_t>(d);
  if (x < min || x > max) {
    throw Napi::RangeError::New(info.Env(), Where(fn, name) + " is " + std::to_string(x) + ", outside [" +
                                                std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return x;
}

int FdArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  return static_cast<int>(IntArg(info, i, fn, name, 0, INT32_MAX));
}

uint64_t U64Value(const Napi::Env& env, const Napi::Value& v, const char* fn, const char* name) {
  if (!v.IsBigInt()) {
    throw Napi::TypeError::New(env, Where(fn, name) + " must be a bigint");
  }
  bool lossless = false;
  uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) {
    throw Napi::RangeError::New(env, Where(fn, name) + " must be a bigint in [0, 2^64)");
  }
  return x;
}

uint64_t U64Arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  return U64Value(info.Env(), info[i], fn, name);
}

bool BoolArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) {
    throw Napi::TypeError::New(info.Env(), Where(fn, name) + " must be a boolean");
  }
  return v.As<Napi::Boolean>().Value();
}

Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t exact) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), Where(fn, name) + " must be a Uint8Array");
  }
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  if (exact >= 0 && a.ByteLength() != static_cast<size_t>(exact)) {
    throw Napi::TypeError::New(info.Env(), Where(fn, name) + " must be exactly " + std::to_string(exact) +
                                               " bytes, got " + std::to_string(a.ByteLength()));
  }
  return a;
}

Napi::Array ArrayArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, uint32_t maxLen) {
  Napi::Value v = info[i];
  if (!v.IsArray()) {
    throw Napi::TypeError::New(info.Env(), Where(fn, name) + " must be an array");
  }
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > maxLen) {
    throw Napi::RangeError::New(info.Env(), Where(fn, name) + " has " + std::to_string(a.Length()) +
                                                " elements, at most " + std::to_string(maxLen) + " allowed");
  }
  return a;
}

Napi::Uint8Array CopyOut(Napi::Env env, const void* data, size_t len) {
  Napi::Uint8Array out = Napi::Uint8Array::New(env, len);
  if (len > 0) std::memcpy(out.Data(), data, len);
  return out;
}

std::string ErrnoName(int err) {
  const char* n = strerrorname_np(err);  // glibc >= 2.32
  return n != nullptr ? std::string(n) : "E" + std::to_string(err);
}

Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err, const std::string& detail) {
  std::string name = ErrnoName(err);
  std::string msg = std::string(syscall) + (detail.empty() ? "" : " " + detail) + " failed: " + std::strerror(err) +
                    " (" + name + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowErrno(Napi::Env env, const char* syscall, int err, const std::string& detail) {
  throw ErrnoError(env, syscall, err, detail);
}

}  // namespace kata

// /dev/kvm, VM and vCPU ioctls. Structs cross the boundary as byte buffers of their exact kernel size
// (encoded in src/kvm/structs.ts); ioctl numbers and layouts come from the system <linux/kvm.h>.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "common.h"

// include/uapi/asm-x86/kvm.h: the sizes src/kvm/structs.ts encodes.
static_assert(sizeof(struct kvm_regs) == 144, "struct kvm_regs is 144 bytes");
static_assert(sizeof(struct kvm_sregs) == 312, "struct kvm_sregs is 312 bytes");
static_assert(sizeof(struct kvm_segment) == 24, "struct kvm_segment is 24 bytes");
static_assert(sizeof(struct kvm_cpuid_entry2) == 40, "struct kvm_cpuid_entry2 is 40 bytes");
static_assert(sizeof(struct kvm_msr_entry) == 16, "struct kvm_msr_entry is 16 bytes");
static_assert(sizeof(struct kvm_lapic_state) == 1024, "struct kvm_lapic_state is 1024 bytes");
static_assert(sizeof(struct kvm_ioeventfd) == 64, "struct kvm_ioeventfd is 64 bytes");
static_assert(sizeof(struct kvm_irqfd) == 32, "struct kvm_irqfd is 32 bytes");
static_assert(sizeof(struct kvm_pit_config) == 64, "struct kvm_pit_config is 64 bytes");
// include/uapi/linux/kvm.h struct kvm_run: the offsets src/kvm/run.ts reads.
static_assert(offsetof(struct kvm_run, immediate_exit) == 1, "kvm_run.immediate_exit at 1");
static_assert(offsetof(struct kvm_run, exit_reason) == 8, "kvm_run.exit_reason at 8");
static_assert(offsetof(struct kvm_run, io) == 32, "kvm_run exit union at 32");
static_assert(offsetof(struct kvm_run, mmio.len) == 48, "kvm_run.mmio.len at 48");
static_assert(offsetof(struct kvm_run, mmio.is_write) == 52, "kvm_run.mmio.is_write at 52");
static_assert(offsetof(struct kvm_run, io.data_offset) == 40, "kvm_run.io.data_offset at 40");

namespace kata {
namespace {

// struct kvm_cpuid2 and struct kvm_msrs end in __DECLARE_FLEX_ARRAY, which in C++ (uapi <= 6.4) puts
// a 1-byte empty struct before the array and moves `entries` to offset 12/16 instead of 8. Use
// these ABI-exact headers and address the entries at byte 8 ourselves.
struct Cpuid2Header {
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {
  uint32_t nmsrs;
  uint32_t pad;
};
static_assert(sizeof(Cpuid2Header) == 8 && sizeof(MsrsHeader) == 8, "kvm_cpuid2/kvm_msrs headers are 8 bytes");
// The same bug changes the size encoded in these ioctl numbers, so the kernel would answer EINVAL:
// re-derive them from the ABI-exact headers (include/uapi/linux/kvm.h).
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2Header);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2Header);

// Upper bounds that keep allocations sane; the kernel applies its own, smaller limits
// (KVM_MAX_CPUID_ENTRIES 256, MAX_IO_MSRS 256).
constexpr uint32_t kMaxCpuidEntries = 4096;
constexpr uint32_t kMaxMsrs = 4096;

// ioctl on fd; throws the errno error named `name` on failure, else returns the result.
int Ioctl(Napi::Env env, int fd, unsigned long req, const char* name, unsigned long arg) {
  int r = ioctl(fd, req, arg);
  if (r < 0) ThrowErrno(env, name, errno);
  return r;
}
int Ioctl(Napi::Env env, int fd, unsigned long req, const char* name, void* arg) {
  int r = ioctl(fd, req, arg);
  if (r < 0) ThrowErrno(env, name, errno);
  return r;
}

Napi::Value OpenDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 1, "openDevice");
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "openDevice: path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(env, "openDevice: path must be a non-empty string without NUL bytes");
  }
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    Napi::Error e = ErrnoError(env, "open", err, path);
    e.Set("path", Napi::String::New(env, path));
    throw e;
  }
  return Napi::Number::New(env, fd);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "close");
  int fd = FdArg(info, 0, "close", "fd");
  if (close(fd) < 0 && errno != EINTR) ThrowErrno(info.Env(), "close", errno);  // EINTR: fd is closed on Linux
  return info.Env().Undefined();
}

// ---- system ioctls (/dev/kvm fd)

Napi::Value GetApiVersion(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "getApiVersion");
  int fd = FdArg(info, 0, "getApiVersion", "kvmFd");
  return Napi::Number::New(info.Env(), Ioctl(info.Env(), fd, KVM_GET_API_VERSION, "KVM_GET_API_VERSION", 0UL));
}

Napi::Value CheckExtension(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "checkExtension");
  int fd = FdArg(info, 0, "checkExtension", "fd");
  auto cap = static_cast<unsigned long>(IntArg(info, 1, "checkExtension", "cap", 0, INT32_MAX));
  return Napi::Number::New(info.Env(), Ioctl(info.Env(), fd, KVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION", cap));
}

Napi::Value CreateVm(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "createVm");
  int fd = FdArg(info, 0, "createVm", "kvmFd");
  auto type = static_cast<unsigned long>(IntArg(info, 1, "createVm", "type", 0, UINT32_MAX));
  return Napi::Number::New(info.Env(), Ioctl(info.Env(), fd, KVM_CREATE_VM, "KVM_CREATE_VM", type));
}

Napi::Value GetVcpuMmapSize(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "getVcpuMmapSize");
  int fd = FdArg(info, 0, "getVcpuMmapSize", "kvmFd");
  return Napi::Number::New(info.Env(),
                           Ioctl(info.Env(), fd, KVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE", 0UL));
}

Napi::Value GetSupportedCpuid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 2, "getSupportedCpuid");
  int fd = FdArg(info, 0, "getSupportedCpuid", "kvmFd");
  auto max = static_cast<uint32_t>(IntArg(info, 1, "getSupportedCpuid", "maxEntries", 1, kMaxCpuidEntries));
  std::vector<uint32_t> buf((sizeof(Cpuid2Header) + max * sizeof(kvm_cpuid_entry2)) / 4, 0);
  auto* hdr = reinterpret_cast<Cpuid2Header*>(buf.data());
  hdr->nent = max;
  Ioctl(env, fd, kGetSupportedCpuid, "KVM_GET_SUPPORTED_CPUID", hdr);  // E2BIG: maxEntries too small
  if (hdr->nent > max) ThrowErrno(env, "KVM_GET_SUPPORTED_CPUID", E2BIG);
  return CopyOut(env, hdr + 1, hdr->nent * sizeof(kvm_cpuid_entry2));
}

// ---- VM ioctls

Napi::Value CreateVcpu(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "createVcpu");
  int fd = FdArg(info, 0, "createVcpu", "vmFd");
  auto id = static_cast<unsigned long>(IntArg(info, 1, "createVcpu", "id", 0, UINT32_MAX));
  return Napi::Number::New(info.Env(), Ioctl(info.Env(), fd, KVM_CREATE_VCPU, "KVM_CREATE_VCPU", id));
}

Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo& info) {
  const char* fn = "setUserMemoryRegion";
  RequireArgs(info, 6, fn);
  kvm_userspace_memory_region r{};
  int fd = FdArg(info, 0, fn, "vmFd");
  r.slot = static_cast<uint32_t>(IntArg(info, 1, fn, "slot", 0, UINT32_MAX));
  r.flags = static_cast<uint32_t>(IntArg(info, 2, fn, "flags", 0, UINT32_MAX));
  r.guest_phys_addr = U64Arg(info, 3, fn, "guestPhysAddr");
  r.memory_size = U64Arg(info, 4, fn, "memorySize");
  r.userspace_addr = U64Arg(info, 5, fn, "userspaceAddr");
  Ioctl(info.Env(), fd, KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &r);
  return info.Env().Undefined();
}

Napi::Value CreateIrqchip(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "createIrqchip");
  int fd = FdArg(info, 0, "createIrqchip", "vmFd");
  Ioctl(info.Env(), fd, KVM_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP", 0UL);
  return info.Env().Undefined();
}

Napi::Value CreatePit2(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "createPit2");
  int fd = FdArg(info, 0, "createPit2", "vmFd");
  kvm_pit_config cfg{};
  cfg.flags = static_cast<uint32_t>(IntArg(info, 1, "createPit2", "flags", 0, UINT32_MAX));
  Ioctl(info.Env(), fd, KVM_CREATE_PIT2, "KVM_CREATE_PIT2", &cfg);
  return info.Env().Undefined();
}

Napi::Value SetTssAddr(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "setTssAddr");
  int fd = FdArg(info, 0, "setTssAddr", "vmFd");
  // The TSS needs three pages below 4 GiB (api.rst KVM_SET_TSS_ADDR).
  auto addr = static_cast<unsigned long>(IntArg(info, 1, "setTssAddr", "addr", 0, UINT32_MAX));
  Ioctl(info.Env(), fd, KVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", addr);
  return info.Env().Undefined();
}

Napi::Value SetIdentityMapAddr(const Napi::CallbackInfo& info) {
  RequireArgs(info, 2, "setIdentityMapAddr");
  int fd = FdArg(info, 0, "setIdentityMapAddr", "vmFd");
  uint64_t addr = U64Arg(info, 1, "setIdentityMapAddr", "addr");
  Ioctl(info.Env(), fd, KVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR", &addr);
  return info.Env().Undefined();
}

Napi::Value Irqfd(const Napi::CallbackInfo& info) {
  RequireArgs(info, 4, "irqfd");
  kvm_irqfd r{};
  int fd = FdArg(info, 0, "irqfd", "vmFd");
  r.fd = static_cast<uint32_t>(FdArg(info, 1, "irqfd", "eventFd"));
  r.gsi = static_cast<uint32_t>(IntArg(info, 2, "irqfd", "gsi", 0, UINT32_MAX));
  r.flags = static_cast<uint32_t>(IntArg(info, 3, "irqfd", "flags", 0, UINT32_MAX));
  Ioctl(info.Env(), fd, KVM_IRQFD, "KVM_IRQFD", &r);
  return info.Env().Undefined();
}

Napi::Value Ioeventfd(const Napi::CallbackInfo& info) {
  const char* fn = "ioeventfd";
  RequireArgs(info, 6, fn);
  kvm_ioeventfd r{};
  int fd = FdArg(info, 0, fn, "vmFd");
  r.fd = FdArg(info, 1, fn, "eventFd");
  r.addr = U64Arg(info, 2, fn, "addr");
  r.len = static_cast<uint32_t>(IntArg(info, 3, fn, "len", 0, 8));
  uint32_t flags = static_cast<uint32_t>(IntArg(info, 5, fn, "flags", 0, UINT32_MAX));
  if (flags & KVM_IOEVENTFD_FLAG_DATAMATCH) {
    throw Napi::TypeError::New(info.Env(), "ioeventfd: pass datamatch as a bigint instead of the DATAMATCH flag");
  }
  if (!info[4].IsNull() && !info[4].IsUndefined()) {
    r.datamatch = U64Arg(info, 4, fn, "datamatch");
    flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
  }
  r.flags = flags;
  Ioctl(info.Env(), fd, KVM_IOEVENTFD, "KVM_IOEVENTFD", &r);
  return info.Env().Undefined();
}

Napi::Value IrqLine(const Napi::CallbackInfo& info) {
  RequireArgs(info, 3, "irqLine");
  int fd = FdArg(info, 0, "irqLine", "vmFd");
  kvm_irq_level l{};
  l.irq = static_cast<uint32_t>(IntArg(info, 1, "irqLine", "irq", 0, UINT32_MAX));
  l.level = static_cast<uint32_t>(IntArg(info, 2, "irqLine", "level", 0, 1));
  Ioctl(info.Env(), fd, KVM_IRQ_LINE, "KVM_IRQ_LINE", &l);
  return info.Env().Undefined();
}

// ---- vCPU ioctls

template <typename T>
Napi::Value GetStruct(const Napi::CallbackInfo& info, const char* fn, unsigned long req, const char* name) {
  RequireArgs(info, 1, fn);
  int fd = FdArg(info, 0, fn, "vcpuFd");
  T s{};
  Ioctl(info.Env(), fd, req, name, &s);
  return CopyOut(info.Env(), &s, sizeof(T));
}

template <typename T>
Napi::Value SetStruct(const Napi::CallbackInfo& info, const char* fn, unsigned long req, const char* name) {
  RequireArgs(info, 2, fn);
  int fd = FdArg(info, 0, fn, "vcpuFd");
  Napi::Uint8Array bytes = BytesArg(info, 1, fn, "bytes", sizeof(T));
  T s{};
  std::memcpy(&s, bytes.Data(), sizeof(T));
  Ioctl(info.Env(), fd, req, name, &s);
  return info.Env().Undefined();
}

Napi::Value GetRegs(const Napi::CallbackInfo& info) {
  return GetStruct<kvm_regs>(info, "getRegs", KVM_GET_REGS, "KVM_GET_REGS");
}
Napi::Value SetRegs(const Napi::CallbackInfo& info) {
  return SetStruct<kvm_regs>(info, "setRegs", KVM_SET_REGS, "KVM_SET_REGS");
}
Napi::Value GetSregs(const Napi::CallbackInfo& info) {
  return GetStruct<kvm_sregs>(info, "getSregs", KVM_GET_SREGS, "KVM_GET_SREGS");
}
Napi::Value SetSregs(const Napi::CallbackInfo& info) {
  return SetStruct<kvm_sregs>(info, "setSregs", KVM_SET_SREGS, "KVM_SET_SREGS");
}
Napi::Value GetLapic(const Napi::CallbackInfo& info) {
  return GetStruct<kvm_lapic_state>(info, "getLapic", KVM_GET_LAPIC, "KVM_GET_LAPIC");
}
Napi::Value SetLapic(const Napi::CallbackInfo& info) {
  return SetStruct<kvm_lapic_state>(info, "setLapic", KVM_SET_LAPIC, "KVM_SET_LAPIC");
}

// struct kvm_msrs with n entries, aligned for the 64-bit data fields.
struct MsrBuffer {
  explicit MsrBuffer(uint32_t n) : words((sizeof(MsrsHeader) + n * sizeof(kvm_msr_entry)) / 8, 0) {
    header()->nmsrs = n;
  }
  MsrsHeader* header() { return reinterpret_cast<MsrsHeader*>(words.data()); }
  kvm_msr_entry* entries() { return reinterpret_cast<kvm_msr_entry*>(words.data() + 1); }
  std::vector<uint64_t> words;
};

std::string Hex(uint32_t x) {
  char b[16];
  snprintf(b, sizeof b, "0x%x", x);
  return b;
}

Napi::Value GetMsrs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 2, "getMsrs");
  int fd = FdArg(info, 0, "getMsrs", "vcpuFd");
  Napi::Array idx = ArrayArg(info, 1, "getMsrs", "indices", kMaxMsrs);
  uint32_t n = idx.Length();
  MsrBuffer buf(n);
  kvm_msr_entry* entries = buf.entries();
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value v = idx.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, "getMsrs: indices must be numbers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= UINT32_MAX && std::trunc(d) == d)) {
      throw Napi::RangeError::New(env, "getMsrs: each index must be an integer in [0, 2^32)");
    }
    entries[i].index = static_cast<uint32_t>(d);
  }
  int got = Ioctl(env, fd, kGetMsrs, "KVM_GET_MSRS", buf.header());
  if (static_cast<uint32_t>(got) < n) {
    // The kernel stops at the first MSR it cannot read; report that one.
    Napi::Error e = ErrnoError(env, "KVM_GET_MSRS", EINVAL,
                               "(read " + std::to_string(got) + " of " + std::to_string(n) + " MSRs; MSR " +
                                   Hex(entries[got].index) + " is not supported)");
    e.Set("msrIndex", Napi::Number::New(env, entries[got].index));
    throw e;
  }
  Napi::Array out = Napi::Array::New(env, n);
  for (uint32_t i = 0; i < n; i++) out.Set(i, Napi::BigInt::New(env, static_cast<uint64_t>(entries[i].data)));
  return out;
}

Napi::Value SetMsrs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 3, "setMsrs");
  int fd = FdArg(info, 0, "setMsrs", "vcpuFd");
  Napi::Array idx = ArrayArg(info, 1, "setMsrs", "indices", kMaxMsrs);
  Napi::Array vals = ArrayArg(info, 2, "setMsrs", "values", kMaxMsrs);
  uint32_t n = idx.Length();
  if (vals.Length() != n) throw Napi::TypeError::New(env, "setMsrs: indices and values must have the same length");
  MsrBuffer buf(n);
  kvm_msr_entry* entries = buf.entries();
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value v = idx.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, "setMsrs: indices must be numbers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= UINT32_MAX && std::trunc(d) == d)) {
      throw Napi::RangeError::New(env, "setMsrs: each index must be an integer in [0, 2^32)");
    }
    entries[i].index = static_cast<uint32_t>(d);
    entries[i].data = U64Value(env, vals.Get(i), "setMsrs", "values[i]");
  }
  return Napi::Number::New(env, Ioctl(env, fd, kSetMsrs, "KVM_SET_MSRS", buf.header()));
}

Napi::Value SetCpuid2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 2, "setCpuid2");
  int fd = FdArg(info, 0, "setCpuid2", "vcpuFd");
  Napi::Uint8Array bytes = BytesArg(info, 1, "setCpuid2", "entries", -1);
  size_t len = bytes.ByteLength();
  if (len % sizeof(kvm_cpuid_entry2) != 0) {
    throw Napi::TypeError::New(env, "setCpuid2: entries must be a multiple of 40 bytes (struct kvm_cpuid_entry2), got " +
                                        std::to_string(len));
  }
  size_t n = len / sizeof(kvm_cpuid_entry2);
  if (n > kMaxCpuidEntries) throw Napi::RangeError::New(env, "setCpuid2: too many entries");
  std::vector<uint32_t> buf((sizeof(Cpuid2Header) + len) / 4, 0);
  auto* hdr = reinterpret_cast<Cpuid2Header*>(buf.data());
  hdr->nent = static_cast<uint32_t>(n);
  if (len > 0) std::memcpy(hdr + 1, bytes.Data(), len);
  Ioctl(env, fd, kSetCpuid2, "KVM_SET_CPUID2", hdr);
  return env.Undefined();
}

Napi::Value Run(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "run");
  int fd = FdArg(info, 0, "run", "vcpuFd");
  int r = ioctl(fd, KVM_RUN, 0);
  if (r < 0) {
    int err = errno;
    // Kicks (signal, immediate_exit) are control flow, not failures: DESIGN decision 4.
    if (err == EINTR || err == EAGAIN) return Napi::Number::New(info.Env(), err);
    ThrowErrno(info.Env(), "KVM_RUN", err);
  }
  return Napi::Number::New(info.Env(), 0);
}

}  // namespace

void RegisterKvm(Napi::Env env, Napi::Object exports) {
  auto set = [&](const char* name, Napi::Function::Callback cb) { exports.Set(name, Napi::Function::New(env, cb, name)); };
  set("openDevice", OpenDevice);
  set("close", Close);
  set("getApiVersion", GetApiVersion);
  set("checkExtension", CheckExtension);
  set("createVm", CreateVm);
  set("getVcpuMmapSize", GetVcpuMmapSize);
  set("getSupportedCpuid", GetSupportedCpuid);
  set("createVcpu", CreateVcpu);
  set("setUserMemoryRegion", SetUserMemoryRegion);
  set("createIrqchip", CreateIrqchip);
  set("createPit2", CreatePit2);
  set("setTssAddr", SetTssAddr);
  set("setIdentityMapAddr", SetIdentityMapAddr);
  set("irqfd", Irqfd);
  set("ioeventfd", Ioeventfd);
  set("irqLine", IrqLine);
  set("getRegs", GetRegs);
  set("setRegs", SetRegs);
  set("getSregs", GetSregs);
  set("setSregs", SetSregs);
  set("getMsrs", GetMsrs);
  set("setMsrs", SetMsrs);
  set("setCpuid2", SetCpuid2);
  set("getLapic", GetLapic);
  set("setLapic", SetLapic);
  set("run", Run);
}

}  // namespace kata

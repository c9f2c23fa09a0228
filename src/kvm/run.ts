// The kvm_run page shared by KVM and user space (mmap of the vCPU fd, size KVM_GET_VCPU_MMAP_SIZE).
// Layout: struct kvm_run in include/uapi/linux/kvm.h (Linux 6.1), x86-64, little-endian. The offsets
// below are also static_assert-ed in native/kvm_ioctls.cc.
//
// Port I/O data does NOT live in the exit union: it lives at (run page + io.data_offset), size*count
// bytes. KVM sets data_offset, but decodeExit still checks it against the page before anyone uses it.

// ---- struct kvm_run header
export const RUN_REQUEST_INTERRUPT_WINDOW = 0; // __u8 request_interrupt_window (in)
export const RUN_IMMEDIATE_EXIT = 1; //           __u8 immediate_exit (in)
export const RUN_EXIT_REASON = 8; //              __u32 exit_reason (out)
export const RUN_READY_FOR_INTERRUPT_INJECTION = 12; // __u8
export const RUN_IF_FLAG = 13; //                 __u8 if_flag
export const RUN_FLAGS = 14; //                   __u16 flags
export const RUN_CR8 = 16; //                     __u64 cr8
export const RUN_APIC_BASE = 24; //               __u64 apic_base
/** Start of the exit-reason union. */
export const RUN_EXIT_UNION = 32;

// ---- union member for KVM_EXIT_UNKNOWN: struct { __u64 hardware_exit_reason; } hw
export const RUN_HW_EXIT_REASON = 32;
// ---- KVM_EXIT_FAIL_ENTRY: __u64 hardware_entry_failure_reason; __u32 cpu
export const RUN_FAIL_ENTRY_REASON = 32;
export const RUN_FAIL_ENTRY_CPU = 40;
// ---- KVM_EXIT_IO: __u8 direction; __u8 size; __u16 port; __u32 count; __u64 data_offset
export const RUN_IO_DIRECTION = 32;
export const RUN_IO_SIZE = 33;
export const RUN_IO_PORT = 34;
export const RUN_IO_COUNT = 36;
export const RUN_IO_DATA_OFFSET = 40;
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;
// ---- KVM_EXIT_MMIO: __u64 phys_addr; __u8 data[8]; __u32 len; __u8 is_write
export const RUN_MMIO_PHYS_ADDR = 32;
export const RUN_MMIO_DATA = 40;
export const RUN_MMIO_LEN = 48;
export const RUN_MMIO_IS_WRITE = 52;
export const RUN_MMIO_DATA_MAX = 8;
// ---- KVM_EXIT_INTERNAL_ERROR: __u32 suberror; __u32 ndata; __u64 data[16]
export const RUN_INTERNAL_SUBERROR = 32;
export const RUN_INTERNAL_NDATA = 36;
export const RUN_INTERNAL_DATA = 40;
// ---- KVM_EXIT_SYSTEM_EVENT: __u32 type; __u32 ndata; union { __u64 flags; __u64 data[16]; }
export const RUN_SYSTEM_EVENT_TYPE = 32;
export const RUN_SYSTEM_EVENT_NDATA = 36;
export const RUN_SYSTEM_EVENT_DATA = 40;
/** internal.data[] and system_event.data[] both hold at most 16 words. */
export const RUN_DATA_WORDS_MAX = 16;

// ---- exit reasons (include/uapi/linux/kvm.h)
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_SET_TPR = 11;
export const KVM_EXIT_TPR_ACCESS = 12;
export const KVM_EXIT_NMI = 16;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_IOAPIC_EOI = 26;
export const KVM_EXIT_X86_RDMSR = 29;
export const KVM_EXIT_X86_WRMSR = 30;
export const KVM_EXIT_X86_BUS_LOCK = 33;
export const KVM_EXIT_NOTIFY = 37;

// ---- KVM_EXIT_INTERNAL_ERROR sub-errors
export const KVM_INTERNAL_ERROR_EMULATION = 1;
export const KVM_INTERNAL_ERROR_SIMUL_EX = 2;
export const KVM_INTERNAL_ERROR_DELIVERY_EV = 3;
export const KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;

// ---- KVM_EXIT_SYSTEM_EVENT types
export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
export const KVM_SYSTEM_EVENT_RESET = 2;
export const KVM_SYSTEM_EVENT_CRASH = 3;
export const KVM_SYSTEM_EVENT_WAKEUP = 4;
export const KVM_SYSTEM_EVENT_SUSPEND = 5;
export const KVM_SYSTEM_EVENT_SEV_TERM = 6;

/** A decoded vCPU exit. For port I/O the data lives at run page + dataOffset (see ioData()). */
export type VcpuExit =
  | { kind: 'io-out'; port: number; size: 1 | 2 | 4; count: number; dataOffset: number }
  | { kind: 'io-in'; port: number; size: 1 | 2 | 4; count: number; dataOffset: number }
  | { kind: 'mmio-read'; addr: number; len: number }
  | { kind: 'mmio-write'; addr: number; len: number; data: Uint8Array }
  | { kind: 'hlt' }
  | { kind: 'shutdown' }
  | { kind: 'system-event'; type: number; data: bigint[] }
  | { kind: 'fail-entry'; reason: bigint; cpu: number }
  | { kind: 'internal-error'; suberror: number; data: bigint[] }
  | { kind: 'intr' }
  | { kind: 'unknown'; reason: number; hardwareExitReason: bigint };

export type IoExit = Extract<VcpuExit, { kind: 'io-in' | 'io-out' }>;

/** The kvm_run page holds values no kernel would write (a corrupted or foreign page). */
export class KvmRunLayoutError extends Error {
  override name = 'KvmRunLayoutError';
}

function readDataWords(run: DataView, ndataOff: number, dataOff: number): bigint[] {
  const n = Math.min(run.getUint32(ndataOff, true), RUN_DATA_WORDS_MAX);
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) out.push(run.getBigUint64(dataOff + 8 * i, true));
  return out;
}

/** Guest physical addresses fit in 52 bits (x86 MAXPHYADDR), so a Number holds them exactly. */
function physAddr(run: DataView): number {
  const a = run.getBigUint64(RUN_MMIO_PHYS_ADDR, true);
  if (a > BigInt(Number.MAX_SAFE_INTEGER)) throw new KvmRunLayoutError(`mmio.phys_addr 0x${a.toString(16)} exceeds 2^53`);
  return Number(a);
}

/**
 * Decode the exit KVM_RUN just reported. `run` is a view of the whole kvm_run page (its byteLength is
 * the bound for io data). Throws KvmRunLayoutError on values the kernel never writes.
 */
export function decodeExit(run: DataView): VcpuExit {
  if (run.byteLength < RUN_SYSTEM_EVENT_DATA + 8 * RUN_DATA_WORDS_MAX) {
    throw new KvmRunLayoutError(`kvm_run view is ${run.byteLength} bytes; map the whole KVM_GET_VCPU_MMAP_SIZE page`);
  }
  const reason = run.getUint32(RUN_EXIT_REASON, true);
  switch (reason) {
    case KVM_EXIT_IO: {
      const direction = run.getUint8(RUN_IO_DIRECTION);
      const size = run.getUint8(RUN_IO_SIZE);
      const port = run.getUint16(RUN_IO_PORT, true);
      const count = run.getUint32(RUN_IO_COUNT, true);
      const off = run.getBigUint64(RUN_IO_DATA_OFFSET, true);
      if (size !== 1 && size !== 2 && size !== 4) throw new KvmRunLayoutError(`io.size ${size} is not 1, 2 or 4`);
      if (direction !== KVM_EXIT_IO_IN && direction !== KVM_EXIT_IO_OUT) {
        throw new KvmRunLayoutError(`io.direction ${direction} is neither IN (0) nor OUT (1)`);
      }
      // BOUNDS: [data_offset, data_offset + size*count) must lie inside the run page (kvm.h: "relative to kvm_run start").
      const end = off + BigInt(size) * BigInt(count);
      if (count === 0 || off < BigInt(RUN_EXIT_UNION) || end > BigInt(run.byteLength)) {
        throw new KvmRunLayoutError(
          `io data [${off}, ${end}) (size ${size} x count ${count}) is outside the ${run.byteLength}-byte kvm_run page`,
        );
      }
      const dataOffset = Number(off);
      return direction === KVM_EXIT_IO_OUT
        ? { kind: 'io-out', port, size, count, dataOffset }
        : { kind: 'io-in', port, size, count, dataOffset };
    }
    case KVM_EXIT_MMIO: {
      const len = run.getUint32(RUN_MMIO_LEN, true);
      if (len === 0 || len > RUN_MMIO_DATA_MAX) throw new KvmRunLayoutError(`mmio.len ${len} is not in 1..8`);
      const addr = physAddr(run);
      if (run.getUint8(RUN_MMIO_IS_WRITE) !== 0) {
        const data = new Uint8Array(run.buffer, run.byteOffset + RUN_MMIO_DATA, len).slice(); // a copy: the page is reused
        return { kind: 'mmio-write', addr, len, data };
      }
      return { kind: 'mmio-read', addr, len };
    }
    case KVM_EXIT_HLT:
      return { kind: 'hlt' };
    case KVM_EXIT_SHUTDOWN:
      return { kind: 'shutdown' };
    case KVM_EXIT_SYSTEM_EVENT:
      return {
        kind: 'system-event',
        type: run.getUint32(RUN_SYSTEM_EVENT_TYPE, true),
        data: readDataWords(run, RUN_SYSTEM_EVENT_NDATA, RUN_SYSTEM_EVENT_DATA),
      };
    case KVM_EXIT_FAIL_ENTRY:
      return {
        kind: 'fail-entry',
        reason: run.getBigUint64(RUN_FAIL_ENTRY_REASON, true),
        cpu: run.getUint32(RUN_FAIL_ENTRY_CPU, true),
      };
    case KVM_EXIT_INTERNAL_ERROR:
      return {
        kind: 'internal-error',
        suberror: run.getUint32(RUN_INTERNAL_SUBERROR, true),
        data: readDataWords(run, RUN_INTERNAL_NDATA, RUN_INTERNAL_DATA),
      };
    case KVM_EXIT_INTR:
      return { kind: 'intr' };
    default:
      return { kind: 'unknown', reason, hardwareExitReason: run.getBigUint64(RUN_HW_EXIT_REASON, true) };
  }
}

/**
 * The port I/O data of an io exit, as a live view into the run page: read it for io-out, fill it for
 * io-in before the next KVM_RUN. Bytes are in guest (little-endian) order, `size` bytes per item.
 */
export function ioData(run: DataView, exit: IoExit): Uint8Array {
  const len = exit.size * exit.count;
  // BOUNDS: re-checked here so a hand-built IoExit cannot reach outside the page.
  if (exit.dataOffset < RUN_EXIT_UNION || exit.dataOffset + len > run.byteLength) {
    throw new KvmRunLayoutError(`io data [${exit.dataOffset}, ${exit.dataOffset + len}) is outside the kvm_run page`);
  }
  return new Uint8Array(run.buffer, run.byteOffset + exit.dataOffset, len);
}

/** kvm_run.immediate_exit: when set, KVM_RUN returns EINTR at once (KVM_CAP_IMMEDIATE_EXIT). */
export function setImmediateExit(run: DataView, on: boolean): void {
  run.setUint8(RUN_IMMEDIATE_EXIT, on ? 1 : 0);
}

/** Answer an mmio-read exit: copy `data` (1..8 bytes, the exit's len) into mmio.data before the next KVM_RUN. */
export function writeMmioReadData(run: DataView, data: Uint8Array): void {
  if (data.byteLength === 0 || data.byteLength > RUN_MMIO_DATA_MAX) {
    throw new RangeError(`mmio read data must be 1..8 bytes, got ${data.byteLength}`);
  }
  new Uint8Array(run.buffer, run.byteOffset + RUN_MMIO_DATA, data.byteLength).set(data);
}

// A vCPU file descriptor (KVM_CREATE_VCPU): register state, MSRs, CPUID, LAPIC and KVM_RUN.
// The kvm_run page is mapped on demand by mapRun(); worker threads rebuild a VcpuFd from the fd number
// with VcpuFd.fromFd() and wrap the same run page with native.wrapMapping().

import { FdClosedError, MsrWriteError, wrapNative } from './errors.js';
import { loadNative, type NativeAddon, type NativeMapping } from './native.js';
import {
  KVM_LAPIC_STATE_SIZE,
  decodeRegs,
  decodeSregs,
  encodeCpuidEntries,
  encodeRegs,
  encodeSregs,
} from './structs.js';
import type { CpuidEntry, MsrEntry, Regs, Sregs } from './types.js';

// <sys/mman.h>
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;

export class VcpuFd {
  private closed = false;
  private runMapping: NativeMapping | undefined;

  constructor(
    readonly fd: number,
    /** KVM_GET_VCPU_MMAP_SIZE of the owning /dev/kvm */
    readonly mmapSize: number,
    private readonly native: NativeAddon = loadNative(),
  ) {}

  /** Wrap a vCPU fd this process already owns (worker threads). */
  static fromFd(fd: number, mmapSize: number, native: NativeAddon = loadNative()): VcpuFd {
    return new VcpuFd(fd, mmapSize, native);
  }

  private live(): number {
    if (this.closed) throw new FdClosedError(`vCPU fd ${this.fd}`);
    return this.fd;
  }

  getRegs(): Regs {
    const fd = this.live();
    return decodeRegs(wrapNative(() => this.native.getRegs(fd)));
  }

  setRegs(regs: Regs): void {
    const fd = this.live();
    const bytes = encodeRegs(regs);
    wrapNative(() => this.native.setRegs(fd, bytes));
  }

  getSregs(): Sregs {
    const fd = this.live();
    return decodeSregs(wrapNative(() => this.native.getSregs(fd)));
  }

  setSregs(sregs: Sregs): void {
    const fd = this.live();
    const bytes = encodeSregs(sregs);
    wrapNative(() => this.native.setSregs(fd, bytes));
  }

  /** KVM_GET_MSRS; throws KvmError naming the first unsupported MSR. */
  getMsrs(indices: readonly number[]): MsrEntry[] {
    const fd = this.live();
    const values = wrapNative(() => this.native.getMsrs(fd, [...indices]));
    return indices.map((index, i) => ({ index, data: values[i] ?? 0n }));
  }

  /** KVM_SET_MSRS; throws MsrWriteError when the kernel stops before the last entry. */
  setMsrs(entries: readonly MsrEntry[]): void {
    const fd = this.live();
    const n = wrapNative(() =>
      this.native.setMsrs(
        fd,
        entries.map((e) => e.index),
        entries.map((e) => e.data),
      ),
    );
    if (n < entries.length) throw new MsrWriteError(entries[n]?.index ?? -1, n, entries.length);
  }

  setCpuid2(entries: readonly CpuidEntry[]): void {
    const fd = this.live();
    const bytes = encodeCpuidEntries(entries);
    wrapNative(() => this.native.setCpuid2(fd, bytes));
  }

  /** struct kvm_lapic_state: the 1024-byte LAPIC register page. */
  getLapic(): Uint8Array {
    const fd = this.live();
    return wrapNative(() => this.native.getLapic(fd));
  }

  setLapic(lapic: Uint8Array): void {
    const fd = this.live();
    if (lapic.byteLength !== KVM_LAPIC_STATE_SIZE) {
      throw new TypeError(`setLapic: struct kvm_lapic_state is ${KVM_LAPIC_STATE_SIZE} bytes, got ${lapic.byteLength}`);
    }
    wrapNative(() => this.native.setLapic(fd, lapic));
  }

  /** The kvm_run page (mmap of this fd), mapped once and unmapped by close(). */
  mapRun(): NativeMapping {
    const fd = this.live();
    this.runMapping ??= wrapNative(() => this.native.mmapFd(fd, this.mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, 0));
    return this.runMapping;
  }

  /** A DataView over the whole kvm_run page (for decodeExit and friends in run.ts). */
  runView(): DataView {
    const m = this.mapRun();
    return new DataView(m.buffer, 0, m.size);
  }

  /**
   * KVM_RUN on the calling thread (blocks it while the guest runs). Returns 0 after a normal exit (read
   * it with decodeExit), or EINTR (4) / EAGAIN (11) when kicked. Other failures throw KvmError.
   */
  run(): number {
    const fd = this.live();
    return wrapNative(() => this.native.run(fd));
  }

  /** Unmap the run page (if this object mapped it) and close the fd. Stop the vCPU thread first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const m = this.runMapping;
    this.runMapping = undefined;
    if (m) wrapNative(() => this.native.munmap(m.addr));
    wrapNative(() => this.native.close(this.fd));
  }
}

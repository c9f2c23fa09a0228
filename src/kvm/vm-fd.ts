// A VM file descriptor (KVM_CREATE_VM): memory slots, vCPUs, the in-kernel irqchip/PIT, irqfd and
// ioeventfd. Argument meanings: Documentation/virt/kvm/api.rst §4.

import { FdClosedError, wrapNative } from './errors.js';
import type { EventFd } from './eventfd.js';
import { loadNative, type NativeAddon } from './native.js';
import { VcpuFd } from './vcpu-fd.js';

/** kvm.h: KVM_MEM_LOG_DIRTY_PAGES / KVM_MEM_READONLY for setUserMemoryRegion flags. */
export const KVM_MEM_LOG_DIRTY_PAGES = 1;
export const KVM_MEM_READONLY = 2;
/** kvm.h: KVM_IRQFD_FLAG_DEASSIGN */
export const KVM_IRQFD_FLAG_DEASSIGN = 1;
/** kvm.h: enum kvm_ioeventfd_flag_nr_* (DATAMATCH is set by the addon when datamatch is given). */
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
export const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;
/** kvm.h: KVM_PIT_SPEAKER_DUMMY for createPit2 */
export const KVM_PIT_SPEAKER_DUMMY = 1;

const PAGE_SIZE = 4096;

export interface UserMemoryRegion {
  slot: number;
  flags: number;
  guestPhysAddr: number;
  /** bytes; 0 deletes the slot */
  size: number;
  userspaceAddr: bigint;
}

export interface IoEventFdOptions {
  /** MMIO address or (with pio) port */
  addr: number | bigint;
  /** access width 1, 2, 4 or 8 (0: any, with KVM_CAP_IOEVENTFD_ANY_LENGTH) */
  len: number;
  /** only signal when the written value equals this */
  datamatch?: bigint;
  pio?: boolean;
  deassign?: boolean;
}

function checkAddr(what: string, v: number): bigint {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${v}`);
  // api.rst KVM_SET_USER_MEMORY_REGION: guest_phys_addr and memory_size must be page aligned.
  if (v % PAGE_SIZE !== 0) throw new RangeError(`${what} 0x${v.toString(16)} must be 4 KiB aligned`);
  return BigInt(v);
}

export class VmFd {
  private closed = false;

  constructor(
    readonly fd: number,
    /** KVM_GET_VCPU_MMAP_SIZE, handed to each VcpuFd for its run page */
    readonly vcpuMmapSize: number,
    private readonly native: NativeAddon = loadNative(),
  ) {}

  private live(): number {
    if (this.closed) throw new FdClosedError(`VM fd ${this.fd}`);
    return this.fd;
  }

  /** KVM_CHECK_EXTENSION on the VM fd (KVM_CAP_CHECK_EXTENSION_VM): per-VM answers. */
  checkExtension(cap: number): number {
    const fd = this.live();
    return wrapNative(() => this.native.checkExtension(fd, cap));
  }

  createVcpu(id: number): VcpuFd {
    const fd = this.live();
    return new VcpuFd(wrapNative(() => this.native.createVcpu(fd, id)), this.vcpuMmapSize, this.native);
  }

  setUserMemoryRegion(r: UserMemoryRegion): void {
    const fd = this.live();
    const gpa = checkAddr('guestPhysAddr', r.guestPhysAddr);
    const size = checkAddr('size', r.size);
    if (r.userspaceAddr % BigInt(PAGE_SIZE) !== 0n) throw new RangeError('userspaceAddr must be 4 KiB aligned');
    wrapNative(() => this.native.setUserMemoryRegion(fd, r.slot, r.flags, gpa, size, r.userspaceAddr));
  }

  /** KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and LAPICs (before creating vCPUs). */
  createIrqchip(): void {
    const fd = this.live();
    wrapNative(() => this.native.createIrqchip(fd));
  }

  /** KVM_CREATE_PIT2 (after createIrqchip). */
  createPit2(flags = KVM_PIT_SPEAKER_DUMMY): void {
    const fd = this.live();
    wrapNative(() => this.native.createPit2(fd, flags));
  }

  /** KVM_SET_TSS_ADDR: three pages of guest physical space below 4 GiB that the guest must not use. */
  setTssAddr(addr: number): void {
    const fd = this.live();
    wrapNative(() => this.native.setTssAddr(fd, addr));
  }

  /** KVM_SET_IDENTITY_MAP_ADDR: one page below 4 GiB (before creating vCPUs). */
  setIdentityMapAddr(addr: number): void {
    const fd = this.live();
    if (!Number.isSafeInteger(addr) || addr < 0) throw new RangeError(`identity map address must be a non-negative integer, got ${addr}`);
    wrapNative(() => this.native.setIdentityMapAddr(fd, BigInt(addr)));
  }

  /** KVM_IRQFD: writing `ev` raises `gsi` (needs the in-kernel irqchip). */
  irqfd(ev: EventFd, gsi: number, opts: { deassign?: boolean } = {}): void {
    const fd = this.live();
    wrapNative(() => this.native.irqfd(fd, ev.fd, gsi, opts.deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0));
  }

  /** KVM_IOEVENTFD: a guest write to addr (MMIO, or port with pio) signals `ev` instead of exiting. */
  ioeventfd(ev: EventFd, o: IoEventFdOptions): void {
    const fd = this.live();
    const addr = typeof o.addr === 'bigint' ? o.addr : BigInt(o.addr);
    const flags = (o.pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (o.deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0);
    wrapNative(() => this.native.ioeventfd(fd, ev.fd, addr, o.len, o.datamatch ?? null, flags));
  }

  /** KVM_IRQ_LINE: set an irqchip input line high (1 / true) or low. */
  irqLine(irq: number, level: number | boolean): void {
    const fd = this.live();
    wrapNative(() => this.native.irqLine(fd, irq, level === true || level === 1 ? 1 : 0));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    wrapNative(() => this.native.close(this.fd));
  }
}

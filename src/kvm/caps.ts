// KVM_CHECK_EXTENSION capability numbers (include/uapi/linux/kvm.h, Linux 6.1), as used by `kata-ts check`.
// Values verified against the header; "here" notes what the development machines' kvm_pvm answered.

export const KVM_API_VERSION = 12; // KVM_GET_API_VERSION must return this (api.rst §4.1)

export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_HLT = 1;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_EXT_CPUID = 7;
/** Recommended vCPUs per VM (2 here). */
export const KVM_CAP_NR_VCPUS = 9;
/** Memory slots per VM. */
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_SYNC_MMU = 16;
export const KVM_CAP_USER_NMI = 22;
export const KVM_CAP_IRQ_ROUTING = 25;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_PIT_STATE2 = 35;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_SET_IDENTITY_MAP_ADDR = 37;
export const KVM_CAP_ADJUST_CLOCK = 39;
export const KVM_CAP_VCPU_EVENTS = 41;
export const KVM_CAP_DEBUGREGS = 50;
export const KVM_CAP_XSAVE = 55;
export const KVM_CAP_XCRS = 56;
/** Maximum vCPUs per VM (1024 here). */
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_TSC_DEADLINE_TIMER = 72;
export const KVM_CAP_READONLY_MEM = 81;
export const KVM_CAP_IOEVENTFD_ANY_LENGTH = 122;
export const KVM_CAP_SPLIT_IRQCHIP = 121;
export const KVM_CAP_MAX_VCPU_ID = 128;
export const KVM_CAP_X2APIC_API = 129;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_GET_MSR_FEATURES = 153;

export interface RequiredCap {
  cap: number;
  name: string;
  /** what the VMM needs it for */
  why: string;
}

/** The capabilities the in-process VMM cannot work without (checked by createVm() and `kata-ts check`). */
export const REQUIRED_CAPS: readonly RequiredCap[] = [
  { cap: KVM_CAP_USER_MEMORY, name: 'KVM_CAP_USER_MEMORY', why: 'guest RAM from an anonymous mmap' },
  { cap: KVM_CAP_SET_TSS_ADDR, name: 'KVM_CAP_SET_TSS_ADDR', why: 'x86 TSS placement' },
  { cap: KVM_CAP_IRQCHIP, name: 'KVM_CAP_IRQCHIP', why: 'in-kernel PIC/IOAPIC/LAPIC' },
  { cap: KVM_CAP_PIT2, name: 'KVM_CAP_PIT2', why: 'in-kernel PIT' },
  { cap: KVM_CAP_IRQFD, name: 'KVM_CAP_IRQFD', why: 'device interrupts by eventfd' },
  { cap: KVM_CAP_IOEVENTFD, name: 'KVM_CAP_IOEVENTFD', why: 'queue notifications by eventfd' },
  { cap: KVM_CAP_IMMEDIATE_EXIT, name: 'KVM_CAP_IMMEDIATE_EXIT', why: 'race-free vCPU kicks' },
  { cap: KVM_CAP_HLT, name: 'KVM_CAP_HLT', why: 'HLT exits' },
];

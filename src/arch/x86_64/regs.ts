// Register state for the PVH 32-bit entry. Xen PVH ABI (docs/misc/pvh.pandoc) as Linux expects it in
// arch/x86/platform/pvh/head.S: protected mode, paging off, flat 32-bit CS/DS/ES/SS, TR a 32-bit TSS,
// %ebx = physical address of struct hvm_start_info, EFLAGS.IF/TF/VM clear.
import type { Regs, Sregs } from '../../kvm/types.js';
import { bootSegments } from './gdt.js';

/** CR0.PE: protected mode. */
export const X86_CR0_PE = 0x1n;
/** CR0.ET: extension type (always 1 on modern CPUs). */
export const X86_CR0_ET = 0x10n;
/** RFLAGS bit 1 is reserved and always 1. */
export const RFLAGS_RESERVED = 0x2n;

/** General registers at the PVH entry: rip = entry, rbx = start_info, rflags = 2, everything else 0. */
export function pvhBootRegs(entry: number, startInfoAddr: number): Regs {
  // PVH: the entry and start_info are 32-bit physical addresses.
  for (const [what, v] of [['entry', entry], ['start_info address', startInfoAddr]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
      throw new RangeError(`PVH ${what} ${String(v)} must be a 32-bit physical address`);
    }
  }
  return {
    rax: 0n, rbx: BigInt(startInfoAddr), rcx: 0n, rdx: 0n,
    rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n,
    r8: 0n, r9: 0n, r10: 0n, r11: 0n,
    r12: 0n, r13: 0n, r14: 0n, r15: 0n,
    rip: BigInt(entry), rflags: RFLAGS_RESERVED,
  };
}

/**
 * Special registers at the PVH entry, starting from `base` (what KVM_GET_SREGS returned, so apic_base,
 * the LDT and the interrupt bitmap keep KVM's values). Returns a new object; `base` is not changed.
 */
export function pvhBootSregs(base: Sregs): Sregs {
  const s = bootSegments();
  return {
    ...base,
    cs: { ...s.code },
    ds: { ...s.data },
    es: { ...s.data },
    fs: { ...s.data },
    gs: { ...s.data },
    ss: { ...s.data },
    tr: { ...s.tss },
    gdt: { ...s.gdt },
    idt: { ...s.idt },
    cr0: X86_CR0_PE | X86_CR0_ET, // PVH: PE set, PG clear
    cr2: 0n,
    cr3: 0n, // paging off: no page tables
    cr4: 0n,
    efer: 0n, // long mode off: the kernel's PVH entry enables it itself
    interruptBitmap: [...base.interruptBitmap],
  };
}

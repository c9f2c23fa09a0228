// Local APIC LVT setup for LINT0/LINT1 (Firecracker arch/x86_64/interrupts.rs set_lint): LINT0 takes the
// PIC's ExtINT, LINT1 delivers NMI. Offsets from arch/x86/include/asm/apicdef.h; kvm_lapic_state is the
// 1 KiB APIC register page.

/** Size of struct kvm_lapic_state (KVM_APIC_REG_SIZE). */
export const KVM_APIC_REG_SIZE = 0x400;
/** APIC_LVT0: local vector table entry for LINT0. */
export const APIC_LVT0 = 0x350;
/** APIC_LVT1: local vector table entry for LINT1. */
export const APIC_LVT1 = 0x360;
/** Delivery mode field, bits 8..10 of an LVT entry. */
const APIC_DELIVERY_MODE_MASK = 0x700;
/** Delivery mode NMI (APIC_MODE_NMI). */
export const APIC_MODE_NMI = 0x4;
/** Delivery mode ExtINT (APIC_MODE_EXTINT). */
export const APIC_MODE_EXTINT = 0x7;

function setDeliveryMode(reg: number, mode: number): number {
  return ((reg & ~APIC_DELIVERY_MODE_MASK) | (mode << 8)) >>> 0;
}

/** Return a copy of the APIC register page with LINT0 = ExtINT and LINT1 = NMI; the input is unchanged. */
export function setLint(lapic: Uint8Array): Uint8Array {
  if (lapic.length < KVM_APIC_REG_SIZE) {
    throw new RangeError(`LAPIC state is ${String(lapic.length)} bytes; kvm_lapic_state is ${String(KVM_APIC_REG_SIZE)}`);
  }
  const out = lapic.slice();
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  dv.setUint32(APIC_LVT0, setDeliveryMode(dv.getUint32(APIC_LVT0, true), APIC_MODE_EXTINT), true);
  dv.setUint32(APIC_LVT1, setDeliveryMode(dv.getUint32(APIC_LVT1, true), APIC_MODE_NMI), true);
  return out;
}

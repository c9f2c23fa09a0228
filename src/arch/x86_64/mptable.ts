// Intel MultiProcessor Specification 1.4 tables: how the guest finds its CPUs, IOAPIC and ISA interrupt
// routing without ACPI. Layouts from arch/x86/include/asm/mpspec_def.h; shape after Firecracker's mptable.rs.
import type { GuestMemory } from '../../memory/guest-memory.js';
import { HIMEM_START, IOAPIC_START, LAPIC_START, MPTABLE_START } from './layout.js';

/** Most vCPUs an MP table can describe here: APIC ids 0..n-1 plus the IOAPIC id n must stay below 0xff. */
export const MP_MAX_CPUS = 254;

// mpspec_def.h struct sizes
const MPF_INTEL_SIZE = 16;
const MPC_TABLE_SIZE = 44;
const MPC_CPU_SIZE = 20;
const MPC_BUS_SIZE = 8;
const MPC_IOAPIC_SIZE = 8;
const MPC_INTSRC_SIZE = 8;
const MPC_LINTSRC_SIZE = 8;

// mpspec_def.h entry types and flags
const MP_PROCESSOR = 0;
const MP_BUS = 1;
const MP_IOAPIC = 2;
const MP_INTSRC = 3;
const MP_LINTSRC = 4;
const CPU_ENABLED = 1;
const CPU_BOOTPROCESSOR = 2;
const MPC_APIC_USABLE = 0x01;
const MP_IRQ_INT = 0; // mp_INT
const MP_IRQ_NMI = 1; // mp_NMI
const MP_IRQ_EXTINT = 3; // mp_ExtINT
const MP_IRQDIR_DEFAULT = 0; // MP_IRQPOL_DEFAULT | MP_IRQTRIG_DEFAULT: conforms to the bus (ISA: edge, high)
const MP_APIC_ALL = 0xff;

/** MP spec revision 1.4. */
const MP_SPEC_REV = 4;
/** Local APIC version reported for each processor (an integrated APIC, as Firecracker). */
const APIC_VERSION = 0x14;
/** Family 6 in the cpufeature signature (CPU_FAMILY_MASK). */
const CPU_STEPPING = 0x600;
/** CPUID.1:EDX feature flags: FPU and APIC present. */
const CPU_FEATURE_FPU = 0x001;
const CPU_FEATURE_APIC = 0x200;
/** ISA interrupt lines routed through the IOAPIC, pin = irq. */
const ISA_IRQS = 16;
const SMP_MAGIC_IDENT = '_MP_';
const MPC_SIGNATURE = 'PCMP';
const MPC_OEM = 'KATA-TS ';
const MPC_PRODUCT_ID = '000000000000';

/** nCpus is outside 1..MP_MAX_CPUS. */
export class InvalidCpuCount extends RangeError {
  override readonly name = 'InvalidCpuCount';
  constructor(n: number) {
    super(`${String(n)} vCPUs cannot be described by the MP table: use between 1 and ${String(MP_MAX_CPUS)}`);
  }
}

/** The byte to store in a checksum field (currently 0) so that all `bytes` sum to 0 mod 256. */
export function mpChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

/** Bytes of the whole MP structure (floating pointer + config table + entries) for nCpus. */
export function mpTableSize(nCpus: number): number {
  return (
    MPF_INTEL_SIZE +
    MPC_TABLE_SIZE +
    MPC_CPU_SIZE * nCpus +
    MPC_BUS_SIZE +
    MPC_IOAPIC_SIZE +
    MPC_INTSRC_SIZE * ISA_IRQS +
    MPC_LINTSRC_SIZE * 2
  );
}

export function checkCpuCount(nCpus: number): void {
  if (!Number.isInteger(nCpus) || nCpus < 1 || nCpus > MP_MAX_CPUS) throw new InvalidCpuCount(nCpus);
}

function ascii(b: Uint8Array, off: number, s: string): void {
  for (let i = 0; i < s.length; i++) b[off + i] = s.charCodeAt(i);
}

/**
 * Build the MP floating pointer and configuration table for nCpus (APIC ids 0..n-1, the BSP is 0; IOAPIC id
 * n) and write them at MPTABLE_START. Returns the number of bytes written.
 */
export function writeMpTable(mem: GuestMemory, nCpus: number): number {
  checkCpuCount(nCpus);
  const size = mpTableSize(nCpus);
  // The whole structure must lie in the reserved EBDA..HIMEM_START window (the e820 map reserves it).
  if (MPTABLE_START + size > HIMEM_START) throw new InvalidCpuCount(nCpus);
  mem.checkRange(MPTABLE_START, size);

  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  const tableAddr = MPTABLE_START + MPF_INTEL_SIZE;
  const ioapicId = nCpus;
  let off = MPF_INTEL_SIZE + MPC_TABLE_SIZE;
  let entries = 0;

  // struct mpc_cpu, one per vCPU
  for (let cpu = 0; cpu < nCpus; cpu++) {
    dv.setUint8(off + 0, MP_PROCESSOR);
    dv.setUint8(off + 1, cpu); // apicid
    dv.setUint8(off + 2, APIC_VERSION);
    dv.setUint8(off + 3, CPU_ENABLED | (cpu === 0 ? CPU_BOOTPROCESSOR : 0));
    dv.setUint32(off + 4, CPU_STEPPING, true); // cpufeature (signature)
    dv.setUint32(off + 8, CPU_FEATURE_APIC | CPU_FEATURE_FPU, true); // featureflag
    off += MPC_CPU_SIZE;
    entries++;
  }
  // struct mpc_bus: bus 0 is ISA
  dv.setUint8(off + 0, MP_BUS);
  dv.setUint8(off + 1, 0);
  ascii(buf, off + 2, 'ISA   ');
  off += MPC_BUS_SIZE;
  entries++;
  // struct mpc_ioapic
  dv.setUint8(off + 0, MP_IOAPIC);
  dv.setUint8(off + 1, ioapicId);
  dv.setUint8(off + 2, APIC_VERSION);
  dv.setUint8(off + 3, MPC_APIC_USABLE);
  dv.setUint32(off + 4, IOAPIC_START, true);
  off += MPC_IOAPIC_SIZE;
  entries++;
  // struct mpc_intsrc: ISA irq i -> IOAPIC pin i
  for (let irq = 0; irq < ISA_IRQS; irq++) {
    dv.setUint8(off + 0, MP_INTSRC);
    dv.setUint8(off + 1, MP_IRQ_INT);
    dv.setUint16(off + 2, MP_IRQDIR_DEFAULT, true);
    dv.setUint8(off + 4, 0); // srcbus: ISA
    dv.setUint8(off + 5, irq); // srcbusirq
    dv.setUint8(off + 6, ioapicId); // dstapic
    dv.setUint8(off + 7, irq); // dstirq
    off += MPC_INTSRC_SIZE;
    entries++;
  }
  // struct mpc_lintsrc: ExtINT on LINT0 of the BSP, NMI on LINT1 of every local APIC
  for (const [irqtype, destapic, lint] of [
    [MP_IRQ_EXTINT, 0, 0],
    [MP_IRQ_NMI, MP_APIC_ALL, 1],
  ] as const) {
    dv.setUint8(off + 0, MP_LINTSRC);
    dv.setUint8(off + 1, irqtype);
    dv.setUint16(off + 2, MP_IRQDIR_DEFAULT, true);
    dv.setUint8(off + 4, 0); // srcbusid
    dv.setUint8(off + 5, 0); // srcbusirq
    dv.setUint8(off + 6, destapic);
    dv.setUint8(off + 7, lint); // destapiclint
    off += MPC_LINTSRC_SIZE;
    entries++;
  }

  // struct mpc_table header
  const t = MPF_INTEL_SIZE;
  ascii(buf, t + 0, MPC_SIGNATURE);
  dv.setUint16(t + 4, size - MPF_INTEL_SIZE, true); // length: header + entries
  dv.setUint8(t + 6, MP_SPEC_REV);
  ascii(buf, t + 8, MPC_OEM);
  ascii(buf, t + 16, MPC_PRODUCT_ID);
  dv.setUint32(t + 28, 0, true); // oemptr
  dv.setUint16(t + 32, 0, true); // oemsize
  dv.setUint16(t + 34, entries, true); // "oemcount": the MP spec's entry count
  dv.setUint32(t + 36, LAPIC_START, true);
  dv.setUint8(t + 7, mpChecksum(buf.subarray(t, size)));

  // struct mpf_intel
  ascii(buf, 0, SMP_MAGIC_IDENT);
  dv.setUint32(4, tableAddr, true); // physptr
  dv.setUint8(8, 1); // length in 16-byte paragraphs
  dv.setUint8(9, MP_SPEC_REV);
  dv.setUint8(10, mpChecksum(buf.subarray(0, MPF_INTEL_SIZE)));

  mem.write(MPTABLE_START, buf);
  return size;
}

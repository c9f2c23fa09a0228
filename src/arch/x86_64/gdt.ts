// Boot GDT for the PVH 32-bit entry, and the kvm_segment values matching its descriptors.
// Descriptor format: Intel SDM vol. 3 §3.4.5; packing after Firecracker's arch/x86_64/gdt.rs.
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { DTable, Segment } from '../../kvm/types.js';
import { BOOT_GDT_MAX_ENTRIES, BOOT_GDT_START, BOOT_IDT_START } from './layout.js';

/** Flags (access byte in bits 0..7, G/DB/L/AVL in bits 12..15) of each boot descriptor. */
export const GDT_FLAGS_CODE32 = 0xc09b; // G=1 D=1, P=1 DPL=0 S=1, type 0xb: execute/read, accessed
export const GDT_FLAGS_DATA = 0xc093; // G=1 B=1, P=1 DPL=0 S=1, type 0x3: read/write, accessed
export const GDT_FLAGS_TSS = 0x808b; // G=1, P=1 DPL=0 S=0, type 0xb: 32-bit busy TSS

/** Selectors (index * 8) of the boot GDT entries. */
export const BOOT_CS_SELECTOR = 0x08;
export const BOOT_DS_SELECTOR = 0x10;
export const BOOT_TSS_SELECTOR = 0x18;

/** Pack a segment descriptor from flags, a 32-bit base and a 20-bit limit. */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  const f = BigInt(flags);
  const b = BigInt(base);
  const l = BigInt(limit);
  return (
    ((b & 0xff00_0000n) << 32n) |
    ((f & 0x0000_f0ffn) << 40n) |
    ((l & 0x000f_0000n) << 32n) |
    ((b & 0x00ff_ffffn) << 16n) |
    (l & 0x0000_ffffn)
  );
}

function bit(entry: bigint, n: bigint): number {
  return Number((entry >> n) & 1n);
}

/** The kvm_segment a descriptor loads (its hidden part), for the selector of table index `index`. */
export function segmentFromGdt(entry: bigint, index: number): Segment {
  const base = ((entry >> 16n) & 0x00ff_ffffn) | ((entry >> 32n) & 0xff00_0000n);
  const rawLimit = Number(((entry >> 32n) & 0x000f_0000n) | (entry & 0x0000_ffffn));
  const g = bit(entry, 55n);
  const present = bit(entry, 47n);
  return {
    base,
    // With G=1 the limit counts 4 KiB pages: the byte limit is (limit << 12) | 0xfff.
    limit: g === 1 ? rawLimit * 0x1000 + 0xfff : rawLimit,
    selector: index * 8,
    type: Number((entry >> 40n) & 0xfn),
    present,
    dpl: Number((entry >> 45n) & 3n),
    db: bit(entry, 54n),
    s: bit(entry, 44n),
    l: bit(entry, 53n),
    g,
    avl: bit(entry, 52n),
    unusable: present === 1 ? 0 : 1,
  };
}

/** The boot GDT: null, flat 32-bit code, flat data, TSS. */
export function bootGdt(): bigint[] {
  return [
    gdtEntry(0, 0, 0), // null
    gdtEntry(GDT_FLAGS_CODE32, 0, 0xfffff), // CS 0x08: flat 4 GiB
    gdtEntry(GDT_FLAGS_DATA, 0, 0xfffff), // DS/ES/FS/GS/SS 0x10: flat 4 GiB
    gdtEntry(GDT_FLAGS_TSS, 0, 0xfffff), // TR 0x18
  ];
}

/** Segments (kvm_segment form) matching the boot GDT. */
export interface BootSegments {
  code: Segment;
  data: Segment;
  tss: Segment;
  gdt: DTable;
  idt: DTable;
}

export function bootSegments(): BootSegments {
  const g = bootGdt();
  return {
    code: segmentFromGdt(g[1]!, 1),
    data: segmentFromGdt(g[2]!, 2),
    tss: segmentFromGdt(g[3]!, 3),
    gdt: { base: BigInt(BOOT_GDT_START), limit: BOOT_GDT_MAX_ENTRIES * 8 - 1 },
    idt: { base: BigInt(BOOT_IDT_START), limit: 8 - 1 },
  };
}

/** Write the boot GDT at BOOT_GDT_START and an empty (all-zero) one-entry IDT at BOOT_IDT_START. */
export function writeBootGdt(mem: GuestMemory): void {
  const g = bootGdt();
  if (g.length > BOOT_GDT_MAX_ENTRIES) throw new Error('boot GDT has more entries than BOOT_GDT_MAX_ENTRIES');
  g.forEach((e, i) => mem.writeU64(BOOT_GDT_START + i * 8, e));
  mem.writeU64(BOOT_IDT_START, 0n);
}

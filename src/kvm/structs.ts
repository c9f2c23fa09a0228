// Encoders/decoders between the plain types in types.ts and the exact kernel layouts the addon passes
// as byte buffers. Layouts: include/uapi/asm-x86/kvm.h (Linux 6.1), all little-endian.
// Sizes are also static_assert-ed in native/kvm_ioctls.cc.

import type { CpuidEntry, DTable, Regs, Segment, Sregs } from './types.js';

/** sizeof(struct kvm_regs) */
export const KVM_REGS_SIZE = 144;
/** sizeof(struct kvm_sregs) */
export const KVM_SREGS_SIZE = 312;
/** sizeof(struct kvm_segment) */
export const KVM_SEGMENT_SIZE = 24;
/** sizeof(struct kvm_dtable) */
export const KVM_DTABLE_SIZE = 16;
/** sizeof(struct kvm_cpuid_entry2) */
export const KVM_CPUID_ENTRY2_SIZE = 40;
/** sizeof(struct kvm_lapic_state): KVM_APIC_REG_SIZE 0x400 */
export const KVM_LAPIC_STATE_SIZE = 1024;

/** A buffer whose length does not match the kernel struct it should hold. */
export class StructSizeError extends Error {
  override name = 'StructSizeError';
  constructor(struct: string, expected: string, got: number) {
    super(`${struct}: expected ${expected} bytes, got ${got}`);
  }
}

/** A field value that does not fit the kernel field's width. */
export class StructFieldRangeError extends RangeError {
  override name = 'StructFieldRangeError';
  constructor(field: string, value: number | bigint, bits: number) {
    super(`${field} = ${value} does not fit in an unsigned ${bits}-bit field`);
  }
}

const U64_LIMIT = 1n << 64n;

function checkU64(field: string, v: bigint): bigint {
  if (typeof v !== 'bigint' || v < 0n || v >= U64_LIMIT) throw new StructFieldRangeError(field, v, 64);
  return v;
}
function checkUint(field: string, v: number, bits: 8 | 16 | 32): number {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) throw new StructFieldRangeError(field, v, bits);
  return v;
}
function viewOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

// ---- struct kvm_regs: 18 x __u64 in this order.
/** Field order of struct kvm_regs; the byte offset of field i is 8*i (rip at 128, rflags at 136). */
export const REGS_FIELDS = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
  'rip', 'rflags',
] as const satisfies readonly (keyof Regs)[];

export function encodeRegs(r: Regs): Uint8Array {
  const out = new Uint8Array(KVM_REGS_SIZE);
  const dv = viewOf(out);
  REGS_FIELDS.forEach((f, i) => dv.setBigUint64(8 * i, checkU64(`regs.${f}`, r[f]), true));
  return out;
}

export function decodeRegs(b: Uint8Array): Regs {
  if (b.byteLength !== KVM_REGS_SIZE) throw new StructSizeError('struct kvm_regs', String(KVM_REGS_SIZE), b.byteLength);
  const dv = viewOf(b);
  const r = {} as Record<(typeof REGS_FIELDS)[number], bigint>;
  REGS_FIELDS.forEach((f, i) => {
    r[f] = dv.getBigUint64(8 * i, true);
  });
  return r;
}

// ---- struct kvm_segment (24 bytes)
export const SEG_BASE = 0; //      __u64 base
export const SEG_LIMIT = 8; //     __u32 limit
export const SEG_SELECTOR = 12; // __u16 selector
export const SEG_TYPE = 14; //     __u8 type
export const SEG_PRESENT = 15; //  __u8 present
export const SEG_DPL = 16; //      __u8 dpl
export const SEG_DB = 17; //       __u8 db
export const SEG_S = 18; //        __u8 s
export const SEG_L = 19; //        __u8 l
export const SEG_G = 20; //        __u8 g
export const SEG_AVL = 21; //      __u8 avl
export const SEG_UNUSABLE = 22; // __u8 unusable; 23: __u8 padding

const SEG_U8_FIELDS = [
  ['type', SEG_TYPE], ['present', SEG_PRESENT], ['dpl', SEG_DPL], ['db', SEG_DB], ['s', SEG_S],
  ['l', SEG_L], ['g', SEG_G], ['avl', SEG_AVL], ['unusable', SEG_UNUSABLE],
] as const satisfies readonly (readonly [keyof Segment, number])[];

function writeSegment(dv: DataView, off: number, name: string, s: Segment): void {
  dv.setBigUint64(off + SEG_BASE, checkU64(`${name}.base`, s.base), true);
  dv.setUint32(off + SEG_LIMIT, checkUint(`${name}.limit`, s.limit, 32), true);
  dv.setUint16(off + SEG_SELECTOR, checkUint(`${name}.selector`, s.selector, 16), true);
  for (const [f, o] of SEG_U8_FIELDS) dv.setUint8(off + o, checkUint(`${name}.${f}`, s[f], 8));
}

function readSegment(dv: DataView, off: number): Segment {
  const s: Segment = {
    base: dv.getBigUint64(off + SEG_BASE, true),
    limit: dv.getUint32(off + SEG_LIMIT, true),
    selector: dv.getUint16(off + SEG_SELECTOR, true),
    type: 0, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0,
  };
  for (const [f, o] of SEG_U8_FIELDS) s[f] = dv.getUint8(off + o);
  return s;
}

// ---- struct kvm_dtable (16 bytes): __u64 base @0, __u16 limit @8, __u16 padding[3]
function writeDTable(dv: DataView, off: number, name: string, t: DTable): void {
  dv.setBigUint64(off, checkU64(`${name}.base`, t.base), true);
  dv.setUint16(off + 8, checkUint(`${name}.limit`, t.limit, 16), true);
}
function readDTable(dv: DataView, off: number): DTable {
  return { base: dv.getBigUint64(off, true), limit: dv.getUint16(off + 8, true) };
}

// ---- struct kvm_sregs (312 bytes)
export const SREGS_CS = 0; //    struct kvm_segment cs, ds, es, fs, gs, ss, tr, ldt: 24 bytes each
export const SREGS_DS = 24;
export const SREGS_ES = 48;
export const SREGS_FS = 72;
export const SREGS_GS = 96;
export const SREGS_SS = 120;
export const SREGS_TR = 144;
export const SREGS_LDT = 168;
export const SREGS_GDT = 192; //  struct kvm_dtable gdt
export const SREGS_IDT = 208; //  struct kvm_dtable idt
export const SREGS_CR0 = 224; //  __u64 cr0
export const SREGS_CR2 = 232; //  __u64 cr2
export const SREGS_CR3 = 240; //  __u64 cr3
export const SREGS_CR4 = 248; //  __u64 cr4
export const SREGS_CR8 = 256; //  __u64 cr8
export const SREGS_EFER = 264; // __u64 efer
export const SREGS_APIC_BASE = 272; // __u64 apic_base
export const SREGS_INTERRUPT_BITMAP = 280; // __u64 interrupt_bitmap[(KVM_NR_INTERRUPTS 256 + 63) / 64]

const SREGS_SEGMENTS = [
  ['cs', SREGS_CS], ['ds', SREGS_DS], ['es', SREGS_ES], ['fs', SREGS_FS], ['gs', SREGS_GS],
  ['ss', SREGS_SS], ['tr', SREGS_TR], ['ldt', SREGS_LDT],
] as const satisfies readonly (readonly [keyof Sregs, number])[];

const SREGS_U64 = [
  ['cr0', SREGS_CR0], ['cr2', SREGS_CR2], ['cr3', SREGS_CR3], ['cr4', SREGS_CR4], ['cr8', SREGS_CR8],
  ['efer', SREGS_EFER], ['apicBase', SREGS_APIC_BASE],
] as const satisfies readonly (readonly [keyof Sregs, number])[];

export function encodeSregs(s: Sregs): Uint8Array {
  const out = new Uint8Array(KVM_SREGS_SIZE);
  const dv = viewOf(out);
  for (const [f, o] of SREGS_SEGMENTS) writeSegment(dv, o, `sregs.${f}`, s[f]);
  writeDTable(dv, SREGS_GDT, 'sregs.gdt', s.gdt);
  writeDTable(dv, SREGS_IDT, 'sregs.idt', s.idt);
  for (const [f, o] of SREGS_U64) dv.setBigUint64(o, checkU64(`sregs.${f}`, s[f]), true);
  if (s.interruptBitmap.length !== 4) throw new StructSizeError('sregs.interruptBitmap', '4 words', s.interruptBitmap.length);
  s.interruptBitmap.forEach((w, i) => dv.setBigUint64(SREGS_INTERRUPT_BITMAP + 8 * i, checkU64(`sregs.interruptBitmap[${i}]`, w), true));
  return out;
}

export function decodeSregs(b: Uint8Array): Sregs {
  if (b.byteLength !== KVM_SREGS_SIZE) throw new StructSizeError('struct kvm_sregs', String(KVM_SREGS_SIZE), b.byteLength);
  const dv = viewOf(b);
  const bm = (i: number): bigint => dv.getBigUint64(SREGS_INTERRUPT_BITMAP + 8 * i, true);
  return {
    cs: readSegment(dv, SREGS_CS), ds: readSegment(dv, SREGS_DS), es: readSegment(dv, SREGS_ES),
    fs: readSegment(dv, SREGS_FS), gs: readSegment(dv, SREGS_GS), ss: readSegment(dv, SREGS_SS),
    tr: readSegment(dv, SREGS_TR), ldt: readSegment(dv, SREGS_LDT),
    gdt: readDTable(dv, SREGS_GDT), idt: readDTable(dv, SREGS_IDT),
    cr0: dv.getBigUint64(SREGS_CR0, true), cr2: dv.getBigUint64(SREGS_CR2, true),
    cr3: dv.getBigUint64(SREGS_CR3, true), cr4: dv.getBigUint64(SREGS_CR4, true),
    cr8: dv.getBigUint64(SREGS_CR8, true), efer: dv.getBigUint64(SREGS_EFER, true),
    apicBase: dv.getBigUint64(SREGS_APIC_BASE, true),
    interruptBitmap: [bm(0), bm(1), bm(2), bm(3)],
  };
}

// ---- struct kvm_cpuid_entry2 (40 bytes): function @0, index @4, flags @8, eax @12, ebx @16,
// ecx @20, edx @24 (all __u32), __u32 padding[3] @28.
const CPUID_FIELDS = ['function', 'index', 'flags', 'eax', 'ebx', 'ecx', 'edx'] as const satisfies readonly (keyof CpuidEntry)[];

/** KVM_CPUID_FLAG_SIGNIFCANT_INDEX (sic, the header's spelling): `index` selects a sub-leaf. */
export const KVM_CPUID_FLAG_SIGNIFICANT_INDEX = 1;

export function encodeCpuidEntries(entries: readonly CpuidEntry[]): Uint8Array {
  const out = new Uint8Array(entries.length * KVM_CPUID_ENTRY2_SIZE);
  const dv = viewOf(out);
  entries.forEach((e, i) => {
    CPUID_FIELDS.forEach((f, j) => dv.setUint32(i * KVM_CPUID_ENTRY2_SIZE + 4 * j, checkUint(`cpuid[${i}].${f}`, e[f], 32), true));
  });
  return out;
}

export function decodeCpuidEntries(b: Uint8Array): CpuidEntry[] {
  if (b.byteLength % KVM_CPUID_ENTRY2_SIZE !== 0) {
    throw new StructSizeError('struct kvm_cpuid_entry2[]', `a multiple of ${KVM_CPUID_ENTRY2_SIZE}`, b.byteLength);
  }
  const dv = viewOf(b);
  const out: CpuidEntry[] = [];
  for (let off = 0; off < b.byteLength; off += KVM_CPUID_ENTRY2_SIZE) {
    const e = { function: 0, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
    CPUID_FIELDS.forEach((f, j) => {
      e[f] = dv.getUint32(off + 4 * j, true);
    });
    out.push(e);
  }
  return out;
}

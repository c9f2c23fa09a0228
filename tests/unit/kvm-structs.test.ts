// Encoders/decoders of the KVM structs and the kvm_run exit decoder, against the kernel layouts
// (include/uapi/asm-x86/kvm.h, include/uapi/linux/kvm.h). No /dev/kvm needed.
import t from 'tap';

import {
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_IO_IN,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_MMIO,
  KVM_EXIT_SHUTDOWN,
  KVM_EXIT_SYSTEM_EVENT,
  KVM_SYSTEM_EVENT_RESET,
  KvmRunLayoutError,
  RUN_IMMEDIATE_EXIT,
  RUN_MMIO_DATA,
  decodeExit,
  ioData,
  setImmediateExit,
  writeMmioReadData,
} from '../../src/kvm/run.js';
import {
  KVM_CPUID_ENTRY2_SIZE,
  KVM_REGS_SIZE,
  KVM_SREGS_SIZE,
  StructFieldRangeError,
  StructSizeError,
  decodeCpuidEntries,
  decodeRegs,
  decodeSregs,
  encodeCpuidEntries,
  encodeRegs,
  encodeSregs,
} from '../../src/kvm/structs.js';
import type { Regs, Segment, Sregs } from '../../src/kvm/types.js';

const PAGE = 4096;

function sampleRegs(): Regs {
  const names = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'] as const;
  const r = {} as Regs;
  names.forEach((n, i) => {
    r[n] = 0x1111_0000_0000_0000n * BigInt(i % 15 + 1) + BigInt(i);
  });
  return r;
}

function seg(i: number): Segment {
  return {
    base: 0x1000n * BigInt(i + 1), limit: 0xfffff - i, selector: 8 * (i + 1), type: 11 - (i % 4),
    present: 1, dpl: i % 4, db: i % 2, s: 1, l: (i + 1) % 2, g: 1, avl: i % 2, unusable: 0,
  };
}

function sampleSregs(): Sregs {
  return {
    cs: seg(0), ds: seg(1), es: seg(2), fs: seg(3), gs: seg(4), ss: seg(5), tr: seg(6), ldt: seg(7),
    gdt: { base: 0x500n, limit: 0x27 }, idt: { base: 0x9000n, limit: 0xfff },
    cr0: 0x8000_0011n, cr2: 0xdead_beefn, cr3: 0x9000n, cr4: 0x20n, cr8: 3n, efer: 0x500n,
    apicBase: 0xfee0_0900n, interruptBitmap: [1n, 0n, 1n << 63n, 5n],
  };
}

t.test('kvm_regs round trip and offsets', async (t) => {
  const r = sampleRegs();
  const b = encodeRegs(r);
  t.equal(b.byteLength, KVM_REGS_SIZE);
  t.same(decodeRegs(b), r);
  const dv = new DataView(b.buffer);
  t.equal(dv.getBigUint64(0, true), r.rax, 'rax at 0');
  t.equal(dv.getBigUint64(64, true), r.r8, 'r8 at 64');
  t.equal(dv.getBigUint64(128, true), r.rip, 'rip at 128');
  t.equal(dv.getBigUint64(136, true), r.rflags, 'rflags at 136');
  t.throws(() => decodeRegs(new Uint8Array(143)), StructSizeError);
  t.throws(() => encodeRegs({ ...r, rip: -1n }), StructFieldRangeError);
  t.throws(() => encodeRegs({ ...r, rax: 1n << 64n }), StructFieldRangeError);
});

t.test('kvm_sregs round trip and offsets', async (t) => {
  const s = sampleSregs();
  const b = encodeSregs(s);
  t.equal(b.byteLength, KVM_SREGS_SIZE);
  t.same(decodeSregs(b), s);
  const dv = new DataView(b.buffer);
  // struct kvm_segment: base @0, limit @8, selector @12, type @14, present @15 ... l @19, g @20
  t.equal(dv.getBigUint64(0, true), s.cs.base, 'cs.base at 0');
  t.equal(dv.getUint32(8, true), s.cs.limit, 'cs.limit at 8');
  t.equal(dv.getUint16(12, true), s.cs.selector, 'cs.selector at 12');
  t.equal(dv.getUint8(14), s.cs.type, 'cs.type at 14');
  t.equal(dv.getUint8(19), s.cs.l, 'cs.l at 19');
  t.equal(dv.getUint16(24 + 12, true), s.ds.selector, 'ds.selector at 36');
  t.equal(dv.getUint16(144 + 12, true), s.tr.selector, 'tr segment at 144');
  t.equal(dv.getBigUint64(192, true), s.gdt.base, 'gdt.base at 192');
  t.equal(dv.getUint16(200, true), s.gdt.limit, 'gdt.limit at 200');
  t.equal(dv.getBigUint64(208, true), s.idt.base, 'idt.base at 208');
  t.equal(dv.getBigUint64(224, true), s.cr0, 'cr0 at 224');
  t.equal(dv.getBigUint64(240, true), s.cr3, 'cr3 at 240');
  t.equal(dv.getBigUint64(264, true), s.efer, 'efer at 264');
  t.equal(dv.getBigUint64(272, true), s.apicBase, 'apic_base at 272');
  t.equal(dv.getBigUint64(280 + 16, true), 1n << 63n, 'interrupt_bitmap[2] at 296');
  t.throws(() => decodeSregs(new Uint8Array(313)), StructSizeError);
  t.throws(() => encodeSregs({ ...s, cs: { ...s.cs, selector: 0x10000 } }), StructFieldRangeError);
  t.throws(() => encodeSregs({ ...s, gdt: { base: 0n, limit: 1.5 } }), StructFieldRangeError);
});

t.test('kvm_cpuid_entry2 array round trip and offsets', async (t) => {
  const entries = [
    { function: 0, index: 0, flags: 0, eax: 0xd, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 },
    { function: 7, index: 1, flags: 1, eax: 1, ebx: 2, ecx: 3, edx: 0xffff_ffff },
  ];
  const b = encodeCpuidEntries(entries);
  t.equal(b.byteLength, 2 * KVM_CPUID_ENTRY2_SIZE);
  t.same(decodeCpuidEntries(b), entries);
  const dv = new DataView(b.buffer);
  t.equal(dv.getUint32(40, true), 7, 'entry 1 function at 40');
  t.equal(dv.getUint32(40 + 4, true), 1, 'index at +4');
  t.equal(dv.getUint32(40 + 8, true), 1, 'flags at +8');
  t.equal(dv.getUint32(40 + 24, true), 0xffff_ffff, 'edx at +24');
  t.equal(dv.getUint32(40 + 28, true), 0, 'padding zeroed');
  t.throws(() => decodeCpuidEntries(new Uint8Array(41)), StructSizeError);
  t.throws(() => encodeCpuidEntries([{ ...entries[0]!, eax: 2 ** 32 }]), StructFieldRangeError);
  t.same(decodeCpuidEntries(new Uint8Array(0)), []);
});

function page(reason: number): { dv: DataView; bytes: Uint8Array } {
  const bytes = new Uint8Array(3 * PAGE);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(8, reason, true);
  return { dv, bytes };
}

t.test('decodeExit: port I/O', async (t) => {
  const { dv, bytes } = page(KVM_EXIT_IO);
  dv.setUint8(32, KVM_EXIT_IO_OUT);
  dv.setUint8(33, 1);
  dv.setUint16(34, 0xe9, true);
  dv.setUint32(36, 1, true);
  dv.setBigUint64(40, 4096n, true);
  bytes[4096] = 0x42;
  const out = decodeExit(dv);
  t.same(out, { kind: 'io-out', port: 0xe9, size: 1, count: 1, dataOffset: 4096 });
  if (out.kind !== 'io-out') throw new Error('unreachable');
  t.same([...ioData(dv, out)], [0x42]);

  dv.setUint8(32, KVM_EXIT_IO_IN);
  dv.setUint8(33, 4);
  dv.setUint16(34, 0x3f8, true);
  dv.setUint32(36, 2, true);
  const inp = decodeExit(dv);
  t.same(inp, { kind: 'io-in', port: 0x3f8, size: 4, count: 2, dataOffset: 4096 });
  if (inp.kind !== 'io-in') throw new Error('unreachable');
  ioData(dv, inp).set([1, 2, 3, 4, 5, 6, 7, 8]);
  t.equal(dv.getUint32(4100, true), 0x08070605, 'ioData is a live view into the page');
});

t.test('decodeExit: io data_offset bounds', async (t) => {
  const { dv } = page(KVM_EXIT_IO);
  dv.setUint8(32, KVM_EXIT_IO_OUT);
  dv.setUint8(33, 4);
  dv.setUint16(34, 0x80, true);
  dv.setUint32(36, 2, true);
  dv.setBigUint64(40, BigInt(3 * PAGE - 8), true);
  t.equal(decodeExit(dv).kind, 'io-out', 'data ending exactly at the page end is fine');
  dv.setBigUint64(40, BigInt(3 * PAGE - 7), true);
  t.throws(() => decodeExit(dv), KvmRunLayoutError, 'one byte past the page');
  dv.setBigUint64(40, (1n << 64n) - 4n, true);
  t.throws(() => decodeExit(dv), KvmRunLayoutError, 'huge offset');
  dv.setBigUint64(40, 0n, true);
  t.throws(() => decodeExit(dv), KvmRunLayoutError, 'offset inside the header');
  dv.setBigUint64(40, 4096n, true);
  dv.setUint32(36, 0x4000_0000, true);
  t.throws(() => decodeExit(dv), KvmRunLayoutError, 'count overflowing the page');
  dv.setUint32(36, 1, true);
  dv.setUint8(33, 3);
  t.throws(() => decodeExit(dv), KvmRunLayoutError, 'size 3');
  dv.setUint8(33, 1);
  dv.setUint8(32, 2);
  t.throws(() => decodeExit(dv), KvmRunLayoutError, 'direction 2');
  t.throws(
    () => ioData(dv, { kind: 'io-out', port: 0, size: 4, count: 1, dataOffset: 3 * PAGE - 2 }),
    KvmRunLayoutError,
    'ioData rechecks a hand-made exit',
  );
  t.throws(() => decodeExit(new DataView(new ArrayBuffer(64))), KvmRunLayoutError, 'view smaller than the page header');
});

t.test('decodeExit: MMIO', async (t) => {
  const { dv, bytes } = page(KVM_EXIT_MMIO);
  dv.setBigUint64(32, 0xd000_0050n, true);
  dv.setUint32(48, 4, true);
  dv.setUint8(52, 0);
  t.same(decodeExit(dv), { kind: 'mmio-read', addr: 0xd000_0050, len: 4 });
  writeMmioReadData(dv, new Uint8Array([9, 8, 7, 6]));
  t.same([...bytes.subarray(RUN_MMIO_DATA, RUN_MMIO_DATA + 4)], [9, 8, 7, 6]);
  t.throws(() => writeMmioReadData(dv, new Uint8Array(9)), RangeError);

  dv.setUint8(52, 1);
  bytes.set([1, 2, 3, 4, 5, 6, 7, 8], RUN_MMIO_DATA);
  dv.setUint32(48, 2, true);
  const w = decodeExit(dv);
  t.same(w, { kind: 'mmio-write', addr: 0xd000_0050, len: 2, data: new Uint8Array([1, 2]) });
  bytes[RUN_MMIO_DATA] = 0xff;
  if (w.kind !== 'mmio-write') throw new Error('unreachable');
  t.equal(w.data[0], 1, 'mmio write data is a copy');
  dv.setUint32(48, 9, true);
  t.throws(() => decodeExit(dv), KvmRunLayoutError, 'len 9');
  dv.setUint32(48, 4, true);
  dv.setBigUint64(32, 1n << 60n, true);
  t.throws(() => decodeExit(dv), KvmRunLayoutError, 'phys_addr beyond 2^53');
});

t.test('decodeExit: the other kinds', async (t) => {
  t.same(decodeExit(page(KVM_EXIT_HLT).dv), { kind: 'hlt' });
  t.same(decodeExit(page(KVM_EXIT_SHUTDOWN).dv), { kind: 'shutdown' });
  t.same(decodeExit(page(KVM_EXIT_INTR).dv), { kind: 'intr' });

  const se = page(KVM_EXIT_SYSTEM_EVENT).dv;
  se.setUint32(32, KVM_SYSTEM_EVENT_RESET, true);
  se.setUint32(36, 1, true);
  se.setBigUint64(40, 7n, true);
  t.same(decodeExit(se), { kind: 'system-event', type: KVM_SYSTEM_EVENT_RESET, data: [7n] });
  se.setUint32(36, 1000, true);
  const clamped = decodeExit(se);
  t.equal(clamped.kind === 'system-event' ? clamped.data.length : -1, 16, 'ndata clamped to 16 words');

  const fe = page(KVM_EXIT_FAIL_ENTRY).dv;
  fe.setBigUint64(32, 0x8000_0021n, true);
  fe.setUint32(40, 1, true);
  t.same(decodeExit(fe), { kind: 'fail-entry', reason: 0x8000_0021n, cpu: 1 });

  const ie = page(KVM_EXIT_INTERNAL_ERROR).dv;
  ie.setUint32(32, 1, true);
  ie.setUint32(36, 2, true);
  ie.setBigUint64(40, 0xaan, true);
  ie.setBigUint64(48, 0xbbn, true);
  t.same(decodeExit(ie), { kind: 'internal-error', suberror: 1, data: [0xaan, 0xbbn] });

  const un = page(29).dv;
  un.setBigUint64(32, 0x30n, true);
  t.same(decodeExit(un), { kind: 'unknown', reason: 29, hardwareExitReason: 0x30n });
});

t.test('setImmediateExit', async (t) => {
  const { dv, bytes } = page(0);
  setImmediateExit(dv, true);
  t.equal(bytes[RUN_IMMEDIATE_EXIT], 1);
  setImmediateExit(dv, false);
  t.equal(bytes[RUN_IMMEDIATE_EXIT], 0);
});

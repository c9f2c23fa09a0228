import t from 'tap';
import type { CpuidEntry, Sregs, Segment } from '../../src/kvm/types.js';
import { filterCpuid, InvalidTopology, ECX_HYPERVISOR, EDX_HTT } from '../../src/arch/x86_64/cpuid.js';
import { bootMsrs, MSR_IA32_MISC_ENABLE, MSR_MTRR_DEF_TYPE, MSR_LSTAR } from '../../src/arch/x86_64/msrs.js';
import { setLint, APIC_LVT0, APIC_LVT1 } from '../../src/arch/x86_64/lapic.js';
import { pvhBootRegs, pvhBootSregs } from '../../src/arch/x86_64/regs.js';
import { bootGdt, gdtEntry, segmentFromGdt, writeBootGdt } from '../../src/arch/x86_64/gdt.js';
import { BOOT_GDT_START, BOOT_IDT_START } from '../../src/arch/x86_64/layout.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';

const supported: CpuidEntry[] = [
  { function: 0, index: 0, flags: 0, eax: 0x1f, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 },
  { function: 1, index: 0, flags: 0, eax: 0x906ea, ebx: 0xff_ff_08_00, ecx: 0x7ffa3203, edx: 0x0f8bfbff & ~EDX_HTT },
  { function: 4, index: 0, flags: 1, eax: 0x1c00_4121, ebx: 0x01c0003f, ecx: 0x3f, edx: 0 }, // L1d
  { function: 4, index: 3, flags: 1, eax: 0x1c00_4163, ebx: 0x03c0003f, ecx: 0x3fff, edx: 6 }, // L3
  { function: 4, index: 4, flags: 1, eax: 0, ebx: 0, ecx: 0, edx: 0 }, // end
  { function: 0xb, index: 0, flags: 1, eax: 1, ebx: 2, ecx: 0x100, edx: 7 },
  { function: 0xb, index: 1, flags: 1, eax: 4, ebx: 8, ecx: 0x201, edx: 7 },
  { function: 0x1f, index: 0, flags: 1, eax: 1, ebx: 2, ecx: 0x100, edx: 7 },
  { function: 0x4000_0000, index: 0, flags: 0, eax: 0x4000_0001, ebx: 0x4b4d564b, ecx: 0x564b4d56, edx: 0x4d },
  { function: 0x4000_0001, index: 0, flags: 0, eax: 0x01007afb, ebx: 0, ecx: 0, edx: 0 },
];

t.test('filterCpuid sets per-vCPU topology and leaves other leaves alone', async (t) => {
  const before = JSON.stringify(supported);
  const out = filterCpuid(supported, { vcpuId: 2, nVcpus: 4 });
  t.equal(JSON.stringify(supported), before, 'input not mutated');
  const leaf = (fn: number, idx = 0) => out.filter((e) => e.function === fn && e.index === idx);
  const l1 = leaf(1)[0]!;
  t.equal(l1.ebx >>> 24, 2, 'EBX[31:24] = APIC id');
  t.equal((l1.ebx >>> 16) & 0xff, 4, 'EBX[23:16] = logical processor count');
  t.equal(l1.ebx & 0xffff, 0x0800, 'EBX[15:0] kept (CLFLUSH size)');
  t.ok(l1.edx & EDX_HTT, 'HTT set for > 1 vCPU');
  t.ok((l1.ecx & ECX_HYPERVISOR) >>> 0, 'hypervisor bit');
  t.ok(l1.ecx >= 0 && l1.edx >= 0, 'registers stay unsigned');
  // leaf 4
  t.equal(leaf(4, 0)[0]!.eax >>> 26, 3, 'L1d: cores per package - 1');
  t.equal((leaf(4, 0)[0]!.eax >>> 14) & 0xfff, 0, 'L1d: not shared (1 thread per core)');
  t.equal((leaf(4, 3)[0]!.eax >>> 14) & 0xfff, 3, 'L3: shared by all 4');
  t.equal(leaf(4, 0)[0]!.eax & 0x3fff, 0x0121, 'cache type/level bits kept');
  // leaf 0xb: SMT level 1 thread, core level n cores, terminator; EDX = x2APIC id
  const b = out.filter((e) => e.function === 0xb);
  t.same(b.map((e) => [e.index, e.eax, e.ebx, e.ecx, e.edx]), [
    [0, 0, 1, 0x100, 2],
    [1, 2, 4, 0x201, 2],
    [2, 0, 0, 2, 2],
  ]);
  t.ok(b.every((e) => e.flags & 1), 'significant-index flag');
  t.equal(out.filter((e) => e.function === 0x1f).length, 3, 'leaf 0x1f regenerated too');
  t.same(leaf(0x4000_0000)[0], supported[8], 'KVM signature leaf as given');
  t.same(leaf(0x4000_0001)[0], supported[9], 'KVM features leaf as given');
  t.same(leaf(0)[0], supported[0]);
});

t.test('filterCpuid for one vCPU', async (t) => {
  const out = filterCpuid(supported, { vcpuId: 0, nVcpus: 1 });
  const l1 = out.find((e) => e.function === 1)!;
  t.equal(l1.edx & EDX_HTT, 0, 'no HTT for 1 vCPU');
  t.equal(l1.ebx >>> 24, 0);
  t.equal(out.find((e) => e.function === 0xb && e.index === 1)!.eax, 0, 'no core id bits');
  t.equal(out.find((e) => e.function === 4)!.eax >>> 26, 0);
  t.notOk(filterCpuid(supported.filter((e) => e.function !== 0xb), { vcpuId: 0, nVcpus: 1 }).some((e) => e.function === 0xb),
    'no leaf 0xb added when KVM does not offer it');
});

t.test('filterCpuid topology checks', async (t) => {
  t.throws(() => filterCpuid(supported, { vcpuId: 4, nVcpus: 4 }), InvalidTopology);
  t.throws(() => filterCpuid(supported, { vcpuId: 0, nVcpus: 0 }), InvalidTopology);
  t.throws(() => filterCpuid(supported, { vcpuId: 0, nVcpus: 255 }), InvalidTopology);
  t.equal(filterCpuid(supported, { vcpuId: 200, nVcpus: 254 }).find((e) => e.function === 4)!.eax >>> 26, 63, 'EAX[31:26] saturates');
});

t.test('boot MSRs', async (t) => {
  const msrs = bootMsrs();
  const get = (i: number) => msrs.find((m) => m.index === i)?.data;
  t.equal(msrs.length, 11);
  t.equal(get(MSR_IA32_MISC_ENABLE), 1n, 'fast strings');
  t.equal(get(MSR_MTRR_DEF_TYPE), (1n << 11n) | 6n, 'MTRRs enabled, default WB');
  t.equal(get(MSR_LSTAR), 0n);
  t.equal(get(0x10), 0n, 'TSC');
  t.equal(new Set(msrs.map((m) => m.index)).size, msrs.length, 'no duplicates');
});

t.test('setLint: LINT0 ExtINT, LINT1 NMI, other bits kept, input unchanged', async (t) => {
  const lapic = new Uint8Array(1024);
  const dv = new DataView(lapic.buffer);
  dv.setUint32(APIC_LVT0, 0x0001_0700, true); // masked, some delivery mode
  dv.setUint32(APIC_LVT1, 0x0001_0000, true);
  dv.setUint32(0x20, 0x0100_0000, true); // APIC id register, untouched
  const out = setLint(lapic);
  const odv = new DataView(out.buffer, out.byteOffset);
  t.equal(odv.getUint32(APIC_LVT0, true), 0x0001_0700, 'ExtINT = 7 << 8, mask bit kept');
  t.equal(odv.getUint32(APIC_LVT1, true), 0x0001_0400, 'NMI = 4 << 8');
  t.equal(odv.getUint32(0x20, true), 0x0100_0000);
  dv.setUint32(APIC_LVT0, 0, true);
  t.equal(new DataView(setLint(lapic).buffer).getUint32(APIC_LVT0, true), 0x700);
  t.equal(dv.getUint32(APIC_LVT1, true), 0x0001_0000, 'input unchanged');
  t.throws(() => setLint(new Uint8Array(16)), RangeError);
});

t.test('GDT descriptors and their kvm_segment form', async (t) => {
  t.equal(gdtEntry(0xc09b, 0, 0xfffff), 0x00cf_9b00_0000_ffffn);
  t.equal(gdtEntry(0xc093, 0, 0xfffff), 0x00cf_9300_0000_ffffn);
  t.equal(gdtEntry(0x808b, 0, 0xfffff), 0x008f_8b00_0000_ffffn);
  t.equal(gdtEntry(0xc093, 0x1234_5678, 0xfffff), 0x12cf_9334_5678_ffffn, 'base bits split');
  const code = segmentFromGdt(gdtEntry(0xc09b, 0, 0xfffff), 1);
  const want: Segment = { base: 0n, limit: 0xffff_ffff, selector: 8, type: 0xb, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 };
  t.same(code, want);
  const tss = segmentFromGdt(gdtEntry(0x808b, 0, 0xfffff), 3);
  t.match(tss, { selector: 0x18, type: 0xb, s: 0, present: 1, db: 0, g: 1 });
  t.equal(segmentFromGdt(0n, 0).unusable, 1, 'null descriptor unusable');
  const m = GuestMemory.anonymous([{ base: 0, size: 0x1000 }]);
  m.fill(BOOT_IDT_START, 8, 0xff);
  writeBootGdt(m);
  t.same([0, 1, 2, 3].map((i) => m.readU64(BOOT_GDT_START + i * 8)), bootGdt());
  t.equal(m.readU64(BOOT_IDT_START), 0n, 'empty IDT');
});

function seg(): Segment {
  return { base: 5n, limit: 0xffff, selector: 0xf000, type: 3, present: 1, dpl: 3, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0 };
}

t.test('PVH entry registers', async (t) => {
  const r = pvhBootRegs(0x1000000, 0x6000);
  t.equal(r.rip, 0x1000000n);
  t.equal(r.rbx, 0x6000n);
  t.equal(r.rflags, 2n);
  t.equal(r.rsp, 0n);
  t.equal(Object.values(r).filter((v) => v !== 0n).length, 3, 'everything else 0');
  t.throws(() => pvhBootRegs(2 ** 32, 0x6000), RangeError);

  const base: Sregs = {
    cs: seg(), ds: seg(), es: seg(), fs: seg(), gs: seg(), ss: seg(), tr: seg(), ldt: seg(),
    gdt: { base: 0n, limit: 0xffff }, idt: { base: 0n, limit: 0xffff },
    cr0: 0x6000_0010n, cr2: 0n, cr3: 0x1000n, cr4: 0x20n, cr8: 0n, efer: 0x500n, apicBase: 0xfee0_0900n,
    interruptBitmap: [0n, 0n, 0n, 0n],
  };
  const s = pvhBootSregs(base);
  t.equal(s.cr0, 0x11n, 'CR0 = PE | ET, PG clear');
  t.equal(s.cr4, 0n);
  t.equal(s.cr3, 0n);
  t.equal(s.efer, 0n);
  t.equal(s.apicBase, 0xfee0_0900n, 'apic base kept');
  t.match(s.cs, { selector: 8, base: 0n, limit: 0xffff_ffff, db: 1, l: 0, type: 0xb, s: 1, present: 1, g: 1 });
  for (const k of ['ds', 'es', 'fs', 'gs', 'ss'] as const) t.match(s[k], { selector: 0x10, base: 0n, limit: 0xffff_ffff, type: 3, db: 1 }, k);
  t.match(s.tr, { selector: 0x18, type: 0xb, s: 0, present: 1 });
  t.same(s.gdt, { base: BigInt(BOOT_GDT_START), limit: 31 });
  t.same(s.idt, { base: BigInt(BOOT_IDT_START), limit: 7 });
  t.equal(base.cr0, 0x6000_0010n, 'base not mutated');
  t.equal(base.cs.selector, 0xf000);
});

import t from 'tap';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { InvalidCpuCount, mpChecksum, mpTableSize, writeMpTable } from '../../src/arch/x86_64/mptable.js';
import { IOAPIC_START, LAPIC_START, MPTABLE_START } from '../../src/arch/x86_64/layout.js';

const sum = (b: Uint8Array): number => b.reduce((s, x) => (s + x) & 0xff, 0);
const str = (b: Uint8Array): string => String.fromCharCode(...b);

t.test('mpChecksum makes the bytes sum to 0', async (t) => {
  const b = new Uint8Array([1, 2, 3, 250, 0]);
  b[4] = mpChecksum(b);
  t.equal(sum(b), 0);
  t.equal(mpChecksum(new Uint8Array(4)), 0);
});

for (const n of [1, 2, 4, 254]) {
  t.test(`MP table for ${String(n)} vCPUs (mpspec_def.h)`, async (t) => {
    const m = GuestMemory.anonymous([{ base: 0, size: 0x100000 }]);
    const size = writeMpTable(m, n);
    t.equal(size, mpTableSize(n));
    // struct mpf_intel
    const mpf = m.read(MPTABLE_START, 16);
    t.equal(str(mpf.subarray(0, 4)), '_MP_');
    t.equal(sum(mpf), 0, 'floating pointer checksum');
    t.equal(mpf[8], 1, 'length = 1 paragraph');
    t.equal(mpf[9], 4, 'MP spec 1.4');
    const physptr = m.readU32(MPTABLE_START + 4);
    t.equal(physptr, MPTABLE_START + 16);
    // struct mpc_table
    const len = m.readU16(physptr + 4);
    t.equal(len, size - 16);
    const table = m.read(physptr, len);
    t.equal(str(table.subarray(0, 4)), 'PCMP');
    t.equal(sum(table), 0, 'config table checksum over length bytes');
    t.equal(m.readU32(physptr + 36), LAPIC_START);
    const count = m.readU16(physptr + 34);
    // walk the entries by type
    let off = physptr + 44;
    const cpus: { apicid: number; flags: number }[] = [];
    const types: number[] = [];
    let ioapic: { id: number; addr: number } | undefined;
    const intsrc: number[][] = [];
    const lint: number[][] = [];
    while (off < physptr + len) {
      const type = m.readU8(off);
      types.push(type);
      if (type === 0) {
        cpus.push({ apicid: m.readU8(off + 1), flags: m.readU8(off + 3) });
        off += 20;
      } else {
        if (type === 2) ioapic = { id: m.readU8(off + 1), addr: m.readU32(off + 4) };
        if (type === 3) intsrc.push([...m.read(off, 8)]);
        if (type === 4) lint.push([...m.read(off, 8)]);
        off += 8;
      }
    }
    t.equal(off, physptr + len, 'entries fill the table exactly');
    t.equal(count, types.length, 'entry count');
    t.equal(cpus.length, n, 'one processor entry per vCPU');
    t.same(cpus.map((c) => c.apicid), Array.from({ length: n }, (_, i) => i), 'APIC ids 0..n-1');
    t.equal(cpus[0]!.flags, 3, 'BSP: enabled | bootprocessor');
    t.ok(cpus.slice(1).every((c) => c.flags === 1), 'APs: enabled only');
    t.equal(types.filter((x) => x === 1).length, 1, 'one bus');
    t.same(ioapic, { id: n, addr: IOAPIC_START }, 'IOAPIC id n at 0xfec00000');
    t.equal(intsrc.length, 16, 'ISA irqs 0..15');
    t.same(intsrc[4], [3, 0, 0, 0, 0, 4, n, 4], 'irq 4 -> IOAPIC pin 4');
    t.same(lint, [
      [4, 3, 0, 0, 0, 0, 0, 0], // ExtINT -> LINT0 of APIC 0
      [4, 1, 0, 0, 0, 0, 0xff, 1], // NMI -> LINT1 of all APICs
    ]);
  });
}

t.test('vCPU counts outside 1..254 are rejected', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0, size: 0x100000 }]);
  for (const n of [0, -1, 255, 1.5]) t.throws(() => writeMpTable(m, n), InvalidCpuCount, String(n));
  t.throws(() => writeMpTable(m, 0), /between 1 and 254/);
});

t.test('the table needs guest memory at 0x9fc00', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0, size: 0x9fc00 }]);
  t.throws(() => writeMpTable(m, 1));
});

import t from 'tap';
import { e820ForMemSize, e820Map, E820_RAM, E820_RESERVED, RamInMmioGap } from '../../src/arch/x86_64/e820.js';
import { InvalidMemorySize, ramRegions } from '../../src/arch/x86_64/layout.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

t.test('ramRegions splits around the MMIO gap', async (t) => {
  t.same(ramRegions(256 * MiB), [{ base: 0, size: 256 * MiB }]);
  t.same(ramRegions(3 * GiB), [{ base: 0, size: 3 * GiB }], 'exactly 3 GiB: no high region');
  t.same(ramRegions(3 * GiB + 4096), [
    { base: 0, size: 3 * GiB },
    { base: 4 * GiB, size: 4096 },
  ]);
  t.same(ramRegions(8 * GiB), [
    { base: 0, size: 3 * GiB },
    { base: 4 * GiB, size: 5 * GiB },
  ]);
  t.throws(() => ramRegions(MiB), InvalidMemorySize, 'too small');
  t.throws(() => ramRegions(256 * MiB + 1), InvalidMemorySize, 'not page-aligned');
  t.throws(() => ramRegions(2 ** 47), InvalidMemorySize, 'too large');
  t.throws(() => ramRegions(Number.NaN), InvalidMemorySize);
});

t.test('e820 for small RAM: low RAM, reserved EBDA..1 MiB, RAM from 1 MiB', async (t) => {
  t.same(e820ForMemSize(128 * MiB), [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x60400, type: E820_RESERVED },
    { addr: 0x100000, size: 127 * MiB, type: E820_RAM },
  ]);
});

t.test('e820 for > 3 GiB RAM leaves the MMIO gap out', async (t) => {
  const map = e820ForMemSize(6 * GiB);
  t.same(map, [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x60400, type: E820_RESERVED },
    { addr: 0x100000, size: 3 * GiB - 0x100000, type: E820_RAM },
    { addr: 4 * GiB, size: 3 * GiB, type: E820_RAM },
  ]);
  const ram = map.filter((e) => e.type === E820_RAM).reduce((s, e) => s + e.size, 0);
  t.equal(ram, 6 * GiB - 0x100000 + 0x9fc00, 'all RAM but the reserved EBDA..1 MiB window is usable');
  t.notOk(map.some((e) => e.addr < 4 * GiB && e.addr + e.size > 3 * GiB), 'nothing in [3 GiB, 4 GiB)');
});

t.test('e820Map rejects RAM in the gap', async (t) => {
  t.throws(() => e820Map([{ base: 0, size: 3 * GiB + 4096 }]), RamInMmioGap);
  t.throws(() => e820Map([{ base: 0xd000_0000, size: 4096 }]), RamInMmioGap);
});

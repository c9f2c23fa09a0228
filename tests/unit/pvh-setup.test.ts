import t from 'tap';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { setupPvhBoot } from '../../src/boot/setup.js';
import { encodeCmdline, writeCmdline } from '../../src/boot/cmdline.js';
import { loadInitrd, lowRamEnd, planInitrd } from '../../src/boot/initrd.js';
import { writeStartInfo, XEN_HVM_START_MAGIC_VALUE } from '../../src/boot/start-info.js';
import { InitrdTooLarge, InvalidCmdline, NoPvhNote } from '../../src/boot/errors.js';
import { e820Map, E820_RAM, E820_RESERVED } from '../../src/arch/x86_64/e820.js';
import {
  BOOT_GDT_START,
  CMDLINE_START,
  MEMMAP_START,
  MODLIST_START,
  MPTABLE_START,
  PVH_INFO_START,
} from '../../src/arch/x86_64/layout.js';
import { InvalidCpuCount } from '../../src/arch/x86_64/mptable.js';
import { buildElf, pattern, pvhNote } from '../helpers/elf-builder.js';

const MiB = 1024 * 1024;

/** Read struct hvm_start_info and its tables back from guest memory (xen/interface/hvm/start_info.h). */
function readStartInfo(m: GuestMemory, addr: number) {
  const nrModules = m.readU32(addr + 12);
  const memmapEntries = m.readU32(addr + 48);
  const modlist = Number(m.readU64(addr + 16));
  const memmapPaddr = Number(m.readU64(addr + 40));
  return {
    magic: m.readU32(addr),
    version: m.readU32(addr + 4),
    flags: m.readU32(addr + 8),
    nrModules,
    modlistPaddr: modlist,
    cmdlinePaddr: Number(m.readU64(addr + 24)),
    rsdpPaddr: Number(m.readU64(addr + 32)),
    memmapPaddr,
    memmapEntries,
    reserved: m.readU32(addr + 52),
    modules: Array.from({ length: nrModules }, (_, i) => ({
      paddr: Number(m.readU64(modlist + i * 32)),
      size: Number(m.readU64(modlist + i * 32 + 8)),
      cmdline: Number(m.readU64(modlist + i * 32 + 16)),
    })),
    memmap: Array.from({ length: memmapEntries }, (_, i) => ({
      addr: Number(m.readU64(memmapPaddr + i * 24)),
      size: Number(m.readU64(memmapPaddr + i * 24 + 8)),
      type: m.readU32(memmapPaddr + i * 24 + 16),
      reserved: m.readU32(memmapPaddr + i * 24 + 20),
    })),
  };
}

function readCString(m: GuestMemory, addr: number): string {
  let s = '';
  for (let a = addr; ; a++) {
    const b = m.readU8(a);
    if (b === 0) return s;
    s += String.fromCharCode(b);
  }
}

const kernel = (): Uint8Array =>
  buildElf({
    segments: [
      { paddr: 0x100000, data: pattern(0x1000), memsz: 0x2000 },
      { paddr: 0x400000, data: pattern(0x100), memsz: 0x10000 },
    ],
    notes: [pvhNote(0x100200)],
  });

t.test('setupPvhBoot writes kernel, cmdline, initrd, start_info + memmap, MP table and GDT', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0, size: 16 * MiB }]);
  const initrd = pattern(5000, 42);
  const r = setupPvhBoot(m, { kernel: kernel(), initrd, cmdline: 'console=ttyS0 reboot=k panic=1', nVcpus: 2 });
  t.equal(r.entry, 0x100200);
  t.equal(r.startInfo, PVH_INFO_START);
  t.equal(r.kernelEnd, 0x410000);
  // initrd: page aligned, at the top of RAM, contents copied
  t.same(r.initrd, { addr: 16 * MiB - 0x2000, size: 5000 });
  t.same(m.read(16 * MiB - 0x2000, 5000), initrd);

  const si = readStartInfo(m, r.startInfo);
  t.equal(si.magic, XEN_HVM_START_MAGIC_VALUE);
  t.equal(si.version, 1);
  t.equal(si.flags, 0);
  t.equal(si.rsdpPaddr, 0);
  t.equal(si.reserved, 0);
  t.equal(si.cmdlinePaddr, CMDLINE_START);
  t.equal(readCString(m, si.cmdlinePaddr), 'console=ttyS0 reboot=k panic=1');
  t.equal(si.nrModules, 1);
  t.equal(si.modlistPaddr, MODLIST_START);
  t.same(si.modules, [{ paddr: 16 * MiB - 0x2000, size: 5000, cmdline: 0 }]);
  t.equal(si.memmapPaddr, MEMMAP_START);
  t.same(si.memmap, [
    { addr: 0, size: 0x9fc00, type: E820_RAM, reserved: 0 },
    { addr: 0x9fc00, size: 0x100000 - 0x9fc00, type: E820_RESERVED, reserved: 0 },
    { addr: 0x100000, size: 15 * MiB, type: E820_RAM, reserved: 0 },
  ]);
  t.equal(m.read(MPTABLE_START, 4).toString(), [0x5f, 0x4d, 0x50, 0x5f].toString(), 'MP floating pointer "_MP_"');
  t.equal(m.readU64(BOOT_GDT_START + 8), 0x00cf_9b00_0000_ffffn, 'GDT code32 descriptor');
  t.same(m.read(0x100000, 0x1000), pattern(0x1000), 'kernel text');
});

t.test('setupPvhBoot without an initrd: no modules, modlist_paddr 0', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0, size: 8 * MiB }]);
  const r = setupPvhBoot(m, { kernel: kernel(), cmdline: '', nVcpus: 1 });
  t.equal(r.initrd, undefined);
  const si = readStartInfo(m, r.startInfo);
  t.equal(si.nrModules, 0);
  t.equal(si.modlistPaddr, 0);
  t.equal(readCString(m, CMDLINE_START), '');
});

t.test('setupPvhBoot validates before writing anything', async (t) => {
  const bad = [
    [{ kernel: kernel(), cmdline: 'a\nb', nVcpus: 1 }, InvalidCmdline],
    [{ kernel: kernel(), cmdline: 'x', nVcpus: 0 }, InvalidCpuCount],
    [{ kernel: kernel(), cmdline: 'x', nVcpus: 255 }, InvalidCpuCount],
    [{ kernel: buildElf({ segments: [{ paddr: 0x100000, data: pattern(16) }] }), cmdline: 'x', nVcpus: 1 }, NoPvhNote],
    [{ kernel: kernel(), initrd: new Uint8Array(7 * MiB), cmdline: 'x', nVcpus: 1 }, InitrdTooLarge],
  ] as const;
  for (const [opts, err] of bad) {
    const m = GuestMemory.anonymous([{ base: 0, size: 8 * MiB }]);
    t.throws(() => setupPvhBoot(m, opts), err, err.name);
    t.ok(m.read(0, 8 * MiB).every((b) => b === 0), `${err.name}: guest memory untouched`);
  }
});

t.test('start_info with RAM above 4 GiB (sparse twin)', async (t) => {
  // 8 MiB "low RAM" plus one page above the gap stands in for a > 3 GiB layout.
  const m = GuestMemory.anonymous([{ base: 0, size: 8 * MiB }, { base: 0x1_0000_0000, size: 0x1000 }]);
  const r = setupPvhBoot(m, { kernel: kernel(), initrd: pattern(100), cmdline: 'x', nVcpus: 1 });
  const si = readStartInfo(m, r.startInfo);
  t.same(si.memmap.map((e) => [e.addr, e.size, e.type]), [
    [0, 0x9fc00, 1],
    [0x9fc00, 0x60400, 2],
    [0x100000, 7 * MiB, 1],
    [0x1_0000_0000, 0x1000, 1],
  ]);
  t.equal(r.initrd?.addr, 8 * MiB - 0x1000, 'initrd below the gap, not in high RAM');
});

t.test('command line checks', async (t) => {
  t.same([...encodeCmdline('ab')], [0x61, 0x62, 0], 'NUL-terminated');
  t.equal(encodeCmdline('x'.repeat(4095)).length, 4096, '4095 chars + NUL fit');
  t.throws(() => encodeCmdline('x'.repeat(4096)), InvalidCmdline, '4096 chars + NUL do not');
  t.throws(() => encodeCmdline('a\0b'), /0x0 at position 1/);
  t.throws(() => encodeCmdline('a\tb'), InvalidCmdline);
  t.throws(() => encodeCmdline('caf\u00e9'), /printable ASCII/);
  t.throws(() => encodeCmdline('\u007f'), InvalidCmdline);
  const m = GuestMemory.anonymous([{ base: 0, size: 1 * MiB }]);
  t.same(writeCmdline(m, 'root=/dev/vda'), { addr: CMDLINE_START, size: 14 });
  t.equal(readCString(m, CMDLINE_START), 'root=/dev/vda');
});

t.test('initrd placement', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0, size: 4 * MiB }]);
  t.equal(lowRamEnd(m), 4 * MiB);
  t.equal(planInitrd(m, 0x1000, 0x200000), 4 * MiB - 0x1000, 'exact page');
  t.equal(planInitrd(m, 0x1001, 0x200000), 4 * MiB - 0x2000, 'rounded down to a page');
  t.equal(planInitrd(m, 2 * MiB, 2 * MiB), 2 * MiB, 'may touch the kernel end');
  t.throws(() => planInitrd(m, 2 * MiB + 1, 2 * MiB), InitrdTooLarge, 'would overlap the kernel');
  t.throws(() => planInitrd(m, 0, 2 * MiB), /empty/);
  const r = loadInitrd(m, pattern(10), 0x200000);
  t.same(m.read(r.addr, 10), pattern(10));
});

t.test('writeStartInfo limits', async (t) => {
  const m = GuestMemory.anonymous([{ base: 0, size: 1 * MiB }]);
  const memmap = e820Map([{ base: 0, size: 1 * MiB }]);
  t.throws(() => writeStartInfo(m, { cmdlinePaddr: CMDLINE_START, modules: [], memmap: [] }), RangeError);
  const many = Array.from({ length: 200 }, () => ({ paddr: 0, size: 1 }));
  t.throws(() => writeStartInfo(m, { cmdlinePaddr: CMDLINE_START, modules: many, memmap }), RangeError);
});

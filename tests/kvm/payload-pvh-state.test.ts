// The PVH entry state our loader + VMM hand a guest, as seen from inside it (tests/payloads/pvh-state.S).
// PVH: include/xen/interface/hvm/start_info.h; entry state: arch/x86/platform/pvh/head.S.
import t from 'tap';
import { e820ForMemSize } from '../../src/arch/x86_64/e820.js';
import { CMDLINE_START, MEMMAP_START, PVH_INFO_START } from '../../src/arch/x86_64/layout.js';
import { describeRun, EXIT_OK, kvmSkipReason, runPayload } from './payload-harness.js';

const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
const CMDLINE = 'hello pvh';
const MEMORY_MIB = 128;

/** Reads the payload's report (order documented at the top of pvh-state.S). */
function decode(values: readonly number[]) {
  let i = 0;
  const next = (): number => {
    if (i >= values.length) throw new Error(`pvh-state report ended after ${String(values.length)} values`);
    return values[i++]!;
  };
  const u64 = (): number => next() + next() * 2 ** 32;
  const ebx = next();
  const magic = next();
  const version = next();
  const flags = next();
  const nrModules = next();
  const cmdlinePaddr = u64();
  const memmapPaddr = u64();
  const memmapEntries = next();
  const memmap: { addr: number; size: number; type: number }[] = [];
  for (let e = 0; e < Math.min(memmapEntries, 32); e++) memmap.push({ addr: u64(), size: u64(), type: next() });
  const cr0 = next();
  const eflags = next();
  const cs = next();
  const ds = next();
  const ss = next();
  const es = next();
  const cmdlineHead = next();
  return { ebx, magic, version, flags, nrModules, cmdlinePaddr, memmapPaddr, memmapEntries, memmap, cr0, eflags, cs, ds, ss, es, cmdlineHead, extra: values.length - i };
}

const skip = kvmSkipReason();
if (skip !== undefined) {
  t.plan(0, skip);
} else {
  t.test('pvh-state: start_info, memmap, registers and command line at the PVH entry', async (t) => {
    const run = await runPayload('pvh-state', { cmdline: CMDLINE, memoryMiB: MEMORY_MIB });
    t.same(run.exit, { kind: 'debug-exit', status: EXIT_OK }, `payload ran to its end: ${describeRun(run)}`);
    const s = decode(run.vm.testValues);
    t.equal(s.extra, 0, 'no values beyond the documented report');
    t.equal(s.ebx, PVH_INFO_START, 'ebx = physical address of hvm_start_info (layout PVH_INFO_START)');
    t.equal(s.magic, XEN_HVM_START_MAGIC_VALUE, 'start_info.magic = XEN_HVM_START_MAGIC_VALUE');
    t.ok(s.version >= 1, `start_info.version >= 1 (memmap fields exist from version 1), got ${String(s.version)}`);
    t.equal(s.nrModules, 0, 'no initrd: nr_modules = 0');
    t.equal(s.cmdlinePaddr, CMDLINE_START, 'cmdline_paddr = layout CMDLINE_START');
    t.equal(s.memmapPaddr, MEMMAP_START, 'memmap_paddr = layout MEMMAP_START');
    const expected = e820ForMemSize(MEMORY_MIB * 1024 * 1024);
    t.equal(s.memmapEntries, expected.length, 'memmap_entries matches the e820 map');
    t.same(s.memmap, expected.map((e) => ({ addr: e.addr, size: e.size, type: e.type })), 'memmap entries: low RAM, reserved EBDA..1 MiB, RAM from 1 MiB');
    t.ok(s.memmap.some((e) => e.type === 2 && e.addr <= 0x9fc00 && e.addr + e.size > 0x9fc00), 'the EBDA (0x9fc00) is reserved');
    t.equal(s.cr0 & 1, 1, 'CR0.PE set: protected mode');
    t.equal(s.cr0 >>> 31, 0, 'CR0.PG clear: paging off');
    t.equal(s.eflags & 0x200, 0, 'EFLAGS.IF clear');
    t.equal(s.eflags & 0x2, 0x2, 'EFLAGS reserved bit 1 set');
    t.not(s.cs, 0, 'CS is a real selector');
    t.equal(s.cs & 3, 0, 'CS RPL 0');
    t.not(s.ds, 0, 'DS is a real selector');
    t.equal(s.ds, s.ss, 'DS = SS (flat data)');
    t.equal(s.ds, s.es, 'DS = ES (flat data)');
    const head = Buffer.alloc(4);
    head.writeUInt32LE(s.cmdlineHead >>> 0);
    t.equal(head.toString('latin1'), CMDLINE.slice(0, 4), 'the command line at cmdline_paddr starts with the one we passed');
  });
}

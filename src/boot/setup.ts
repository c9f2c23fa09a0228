// Everything the guest needs in memory for a PVH direct boot: kernel, command line, initrd, start_info with
// the memmap, MP table and boot GDT. Takes (mem, options) only; never a VM object.
import type { GuestMemory } from '../memory/guest-memory.js';
import { e820Map } from '../arch/x86_64/e820.js';
import { writeBootGdt } from '../arch/x86_64/gdt.js';
import { CMDLINE_START, HIMEM_START } from '../arch/x86_64/layout.js';
import { checkCpuCount, writeMpTable } from '../arch/x86_64/mptable.js';
import { encodeCmdline } from './cmdline.js';
import { planInitrd } from './initrd.js';
import { planKernel, writeKernel } from './loader.js';
import { writeStartInfo, type PvhModule } from './start-info.js';

export interface PvhBootOptions {
  /** ELF64 vmlinux built with CONFIG_PVH=y */
  kernel: Uint8Array;
  /** initramfs image, placed at the top of low RAM */
  initrd?: Uint8Array;
  cmdline: string;
  nVcpus: number;
}

export interface PvhBootSetup {
  /** PVH 32-bit entry: the BSP's rip */
  entry: number;
  /** hvm_start_info address: the BSP's rbx */
  startInfo: number;
  /** first address after the kernel */
  kernelEnd: number;
  /** where the initrd went, if there is one */
  initrd?: { addr: number; size: number };
}

/** Check all inputs, then write the boot structures. On error nothing has been written. */
export function setupPvhBoot(mem: GuestMemory, opts: PvhBootOptions): PvhBootSetup {
  // Validate everything before the first write.
  checkCpuCount(opts.nVcpus);
  const cmdline = encodeCmdline(opts.cmdline);
  const memmap = e820Map(mem.regions);
  const kernel = planKernel(mem, opts.kernel, { minAddr: HIMEM_START });
  const initrdAddr = opts.initrd !== undefined ? planInitrd(mem, opts.initrd.length, kernel.kernelEnd) : undefined;
  mem.checkRange(CMDLINE_START, cmdline.length);

  writeKernel(mem, opts.kernel, kernel);
  mem.write(CMDLINE_START, cmdline);
  const modules: PvhModule[] = [];
  let initrd: { addr: number; size: number } | undefined;
  if (opts.initrd !== undefined && initrdAddr !== undefined) {
    mem.write(initrdAddr, opts.initrd);
    initrd = { addr: initrdAddr, size: opts.initrd.length };
    modules.push({ paddr: initrdAddr, size: opts.initrd.length });
  }
  const startInfo = writeStartInfo(mem, { cmdlinePaddr: CMDLINE_START, modules, memmap });
  writeMpTable(mem, opts.nVcpus);
  writeBootGdt(mem);
  const out: PvhBootSetup = { entry: kernel.entry, startInfo, kernelEnd: kernel.kernelEnd };
  if (initrd !== undefined) out.initrd = initrd;
  return out;
}

// Load an ELF64 vmlinux with a PVH entry note into guest memory. Everything is checked before the first
// byte is written: a bad image leaves guest memory untouched.
import type { GuestMemory } from '../memory/guest-memory.js';
import { HIMEM_START } from '../arch/x86_64/layout.js';
import { parseElf, type ElfSegment } from './elf.js';
import { InvalidPvhNote, OverlappingSegments, SegmentOutsideRam } from './errors.js';
import { findPvhEntry } from './pvh.js';

export interface LoadKernelOptions {
  /** lowest guest physical address a segment may use (default HIMEM_START) */
  minAddr?: number;
}

export interface KernelPlan {
  /** PVH 32-bit physical entry point */
  entry: number;
  /** first guest physical address after the highest segment */
  kernelEnd: number;
  /** PT_LOAD segments with memsz > 0, sorted by paddr */
  segments: ElfSegment[];
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Parse the image and check every segment against guest memory; writes nothing. */
export function planKernel(mem: GuestMemory, elf: Uint8Array, opts: LoadKernelOptions = {}): KernelPlan {
  const minAddr = opts.minAddr ?? HIMEM_START;
  const image = parseElf(elf);
  const entry = findPvhEntry(elf, image);
  const segments = image.loads.filter((s) => s.memsz > 0).sort((a, b) => a.paddr - b.paddr);
  if (segments.length === 0) throw new SegmentOutsideRam('kernel has no loadable segment with memory size > 0');
  for (const s of segments) {
    const range = `[${hex(s.paddr)}, ${hex(s.paddr + s.memsz)})`;
    if (s.paddr < minAddr) {
      throw new SegmentOutsideRam(
        `kernel segment ${range} starts below ${hex(minAddr)}, where the boot structures live: ` +
          'link the kernel at a higher physical address (CONFIG_PHYSICAL_START)',
      );
    }
    if (!mem.isValidRange(s.paddr, s.memsz)) {
      throw new SegmentOutsideRam(
        `kernel segment ${range} is not inside one guest RAM region (guest memory ends at ${hex(mem.lastAddr + 1)}): ` +
          'give the VM more memory',
      );
    }
  }
  for (let i = 1; i < segments.length; i++) {
    const a = segments[i - 1]!;
    const b = segments[i]!;
    if (b.paddr < a.paddr + a.memsz) {
      throw new OverlappingSegments(
        `kernel segments [${hex(a.paddr)}, ${hex(a.paddr + a.memsz)}) and [${hex(b.paddr)}, ${hex(b.paddr + b.memsz)}) ` +
          'overlap in physical memory: the image is corrupt',
      );
    }
  }
  // PVH: the entry must be code we load, or the vCPU would start in zeroed or foreign memory.
  if (!segments.some((s) => entry >= s.paddr && entry < s.paddr + s.filesz)) {
    throw new InvalidPvhNote(`PVH entry ${hex(entry)} is not inside any loaded segment's file bytes: the image is corrupt`);
  }
  const last = segments[segments.length - 1]!;
  return { entry, kernelEnd: last.paddr + last.memsz, segments };
}

/** Copy a planned kernel's segments into guest memory and zero their bss parts. */
export function writeKernel(mem: GuestMemory, elf: Uint8Array, plan: KernelPlan): void {
  for (const s of plan.segments) {
    // BOUNDS: [paddr, paddr+memsz) checked in planKernel; [offset, offset+filesz) checked in parseElf.
    mem.write(s.paddr, elf.subarray(s.offset, s.offset + s.filesz));
    mem.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
  }
}

/** Load a PVH vmlinux: check it, copy its PT_LOAD segments, zero-fill memsz - filesz. */
export function loadKernel(
  mem: GuestMemory,
  elf: Uint8Array,
  opts: LoadKernelOptions = {},
): { entry: number; kernelEnd: number } {
  const plan = planKernel(mem, elf, opts);
  writeKernel(mem, elf, plan);
  return { entry: plan.entry, kernelEnd: plan.kernelEnd };
}

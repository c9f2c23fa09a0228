// The guest's e820 memory map, handed over as the PVH memmap (xen/interface/hvm/start_info.h).
// Types from arch/x86/include/asm/e820/types.h; the PVH XEN_HVM_MEMMAP_TYPE_* values are the same numbers.
import {
  EBDA_START,
  HIMEM_START,
  MMIO_GAP_END,
  MMIO_GAP_START,
  ramRegions,
  type RamRegion,
} from './layout.js';

/** Usable RAM (E820_TYPE_RAM / XEN_HVM_MEMMAP_TYPE_RAM). */
export const E820_RAM = 1;
/** Reserved (E820_TYPE_RESERVED / XEN_HVM_MEMMAP_TYPE_RESERVED). */
export const E820_RESERVED = 2;

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

/** A RAM region lies inside the 32-bit MMIO gap, where the guest expects devices. */
export class RamInMmioGap extends RangeError {
  override readonly name = 'RamInMmioGap';
}

/**
 * The memory map for RAM `regions` (sorted or not): low RAM [0, EBDA_START) usable, the EBDA up to
 * HIMEM_START reserved (it holds the MP table; the legacy VGA/BIOS hole above 640 KiB is never RAM to the
 * guest), everything from HIMEM_START up usable. Regions inside the MMIO gap are rejected.
 */
export function e820Map(regions: readonly RamRegion[]): E820Entry[] {
  const out: E820Entry[] = [];
  const push = (addr: number, end: number, type: number): void => {
    if (end > addr) out.push({ addr, size: end - addr, type });
  };
  for (const r of [...regions].sort((a, b) => a.base - b.base)) {
    const end = r.base + r.size;
    if (r.base < MMIO_GAP_END && end > MMIO_GAP_START) {
      throw new RamInMmioGap(
        `RAM region [0x${r.base.toString(16)}, 0x${end.toString(16)}) overlaps the 32-bit MMIO gap ` +
          `[0x${MMIO_GAP_START.toString(16)}, 0x${MMIO_GAP_END.toString(16)}): lay RAM out with ramRegions()`,
      );
    }
    push(r.base, Math.min(end, EBDA_START), E820_RAM);
    push(Math.max(r.base, EBDA_START), Math.min(end, HIMEM_START), E820_RESERVED);
    push(Math.max(r.base, HIMEM_START), end, E820_RAM);
  }
  return out;
}

/** The memory map for `memBytes` of RAM laid out by ramRegions(). */
export function e820ForMemSize(memBytes: number): E820Entry[] {
  return e820Map(ramRegions(memBytes));
}

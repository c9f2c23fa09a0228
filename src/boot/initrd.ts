// Initrd placement: page-aligned at the top of RAM below the 32-bit MMIO gap, above the kernel.
// The guest learns where from the PVH module list (hvm_modlist_entry 0).
import type { GuestMemory } from '../memory/guest-memory.js';
import { MMIO_GAP_START, PAGE_SIZE } from '../arch/x86_64/layout.js';
import { InitrdTooLarge } from './errors.js';

const hex = (n: number): string => `0x${n.toString(16)}`;

/** End of the RAM below the MMIO gap (exclusive): the highest region end at or below MMIO_GAP_START. */
export function lowRamEnd(mem: GuestMemory): number {
  let top = 0;
  for (const r of mem.regions) {
    if (r.base < MMIO_GAP_START) top = Math.max(top, Math.min(r.base + r.size, MMIO_GAP_START));
  }
  return top;
}

/** Where an initrd of `size` bytes goes; throws InitrdTooLarge if it would overlap [.., kernelEnd). */
export function planInitrd(mem: GuestMemory, size: number, kernelEnd: number): number {
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new InitrdTooLarge(`initrd is empty: pass an initrd file with contents, or none`);
  }
  const top = lowRamEnd(mem);
  const addr = Math.floor((top - size) / PAGE_SIZE) * PAGE_SIZE;
  if (addr < kernelEnd) {
    throw new InitrdTooLarge(
      `initrd of ${String(size)} bytes does not fit between the kernel end ${hex(kernelEnd)} and the top of low RAM ` +
        `${hex(top)}: give the VM more memory or use a smaller initrd`,
    );
  }
  if (!mem.isValidRange(addr, size)) {
    throw new InitrdTooLarge(`initrd range [${hex(addr)}, +${String(size)}) is not inside one guest RAM region`);
  }
  return addr;
}

/** Place and copy the initrd; returns its guest address and size. */
export function loadInitrd(mem: GuestMemory, initrd: Uint8Array, kernelEnd: number): { addr: number; size: number } {
  const addr = planInitrd(mem, initrd.length, kernelEnd);
  mem.write(addr, initrd);
  return { addr, size: initrd.length };
}

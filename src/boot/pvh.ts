// Find the Xen PVH entry point: the ELF note "Xen" / XEN_ELFNOTE_PHYS32_ENTRY
// (include/xen/interface/elfnote.h; emitted by arch/x86/platform/pvh/head.S with a 64-bit desc on x86-64).
import type { ElfImage } from './elf.js';
import { InvalidPvhNote, NoPvhNote } from './errors.js';

/** include/xen/interface/elfnote.h */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const NOTE_HEADER_SIZE = 12; // Elf64_Nhdr: n_namesz, n_descsz, n_type (u32 each)
const XEN_NAME = [0x58, 0x65, 0x6e, 0x00]; // "Xen\0"

function align4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

/**
 * The 32-bit physical PVH entry from the first Xen PHYS32_ENTRY note in any PT_NOTE segment.
 * Notes are walked with 4-byte alignment; every size is checked against the segment. Throws NoPvhNote
 * when there is none and InvalidPvhNote for a malformed note.
 */
export function findPvhEntry(bytes: Uint8Array, elf: ElfImage): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const seg of elf.notes) {
    const start = seg.offset; // parseElf checked offset + filesz <= file length
    const end = seg.offset + seg.filesz;
    let pos = start;
    while (end - pos >= NOTE_HEADER_SIZE) {
      const namesz = dv.getUint32(pos, true);
      const descsz = dv.getUint32(pos + 4, true);
      const type = dv.getUint32(pos + 8, true);
      const nameOff = pos + NOTE_HEADER_SIZE;
      const descOff = nameOff + align4(namesz);
      const next = descOff + align4(descsz);
      if (nameOff + namesz > end || descOff + descsz > end) {
        throw new InvalidPvhNote(
          `ELF note at file offset ${String(pos)} (namesz ${String(namesz)}, descsz ${String(descsz)}) runs past the ` +
            `end of its PT_NOTE segment at ${String(end)}: the kernel image is corrupt`,
        );
      }
      const isXen = namesz === XEN_NAME.length && XEN_NAME.every((b, i) => bytes[nameOff + i] === b);
      if (isXen && type === XEN_ELFNOTE_PHYS32_ENTRY) {
        let entry: number;
        if (descsz === 4) entry = dv.getUint32(descOff, true);
        else if (descsz === 8) {
          const v = dv.getBigUint64(descOff, true);
          if (v > 0xffff_ffffn) {
            throw new InvalidPvhNote(`PVH entry 0x${v.toString(16)} is not a 32-bit physical address`);
          }
          entry = Number(v);
        } else {
          throw new InvalidPvhNote(`PVH entry note has a ${String(descsz)}-byte desc; expected 4 or 8 bytes`);
        }
        return entry;
      }
      pos = next;
    }
  }
  throw new NoPvhNote();
}

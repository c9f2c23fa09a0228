// ELF64 parsing for the kernel image (vmlinux): header checks and program headers.
// Layouts: include/uapi/linux/elf.h (Elf64_Ehdr, Elf64_Phdr); System V gABI.
import { InvalidElf, TruncatedElf } from './errors.js';

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;
export const ET_EXEC = 2;
export const EM_X86_64 = 62;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const ELF64_EHDR_SIZE = 64;
export const ELF64_PHDR_SIZE = 56;

/**
 * One Elf64_Phdr. File offsets, physical addresses and sizes are safe integers (checked); p_vaddr and
 * p_align stay bigint: a vmlinux links at upper-half virtual addresses (0xffffffff8...), which PVH never uses.
 */
export interface ElfSegment {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  paddr: number;
  filesz: number;
  memsz: number;
  align: bigint;
}

export interface ElfImage {
  /** e_entry (an upper-half virtual address for vmlinux; PVH boot uses the note's physical entry instead) */
  entry: bigint;
  segments: ElfSegment[];
  /** PT_LOAD segments, in file order */
  loads: ElfSegment[];
  /** PT_NOTE segments, in file order */
  notes: ElfSegment[];
}

function u64(dv: DataView, off: number, what: string): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidElf(`ELF ${what} 0x${v.toString(16)} is too large to be a usable offset or address`);
  }
  return Number(v);
}

/**
 * Check the ELF64 header (the first 64 bytes) names a little-endian x86-64 executable. Enough to tell a
 * vmlinux from a bzImage or a stray file before anything else reads the whole image.
 */
export function checkElfHeader(bytes: Uint8Array): void {
  if (bytes.length < ELF64_EHDR_SIZE) {
    throw new TruncatedElf(`kernel image is ${String(bytes.length)} bytes, shorter than an ELF64 header (64): is it a vmlinux?`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // elf.h e_ident: EI_MAG0..3, EI_CLASS, EI_DATA, EI_VERSION
  if (!ELF_MAGIC.every((b, i) => bytes[i] === b)) {
    throw new InvalidElf('kernel image is not an ELF file (bad magic): pass the uncompressed vmlinux, not a bzImage');
  }
  if (bytes[4] !== ELFCLASS64) throw new InvalidElf(`ELF class ${String(bytes[4])} is not ELFCLASS64: use a 64-bit kernel`);
  if (bytes[5] !== ELFDATA2LSB) throw new InvalidElf(`ELF data encoding ${String(bytes[5])} is not little-endian`);
  if (bytes[6] !== EV_CURRENT) throw new InvalidElf(`ELF version ${String(bytes[6])} is not EV_CURRENT (1)`);
  const type = dv.getUint16(16, true);
  if (type !== ET_EXEC) throw new InvalidElf(`ELF type ${String(type)} is not ET_EXEC (2): the kernel must be an executable`);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_X86_64) throw new InvalidElf(`ELF machine ${String(machine)} is not EM_X86_64 (62): use an x86-64 kernel`);
}

/** Parse and check an ELF64 x86-64 executable. Every offset/size is checked against the file length. */
export function parseElf(bytes: Uint8Array): ElfImage {
  checkElfHeader(bytes);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entry = dv.getBigUint64(24, true);
  const phoff = u64(dv, 32, 'e_phoff');
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  if (phnum === 0) throw new InvalidElf('ELF has no program headers: nothing to load');
  if (phentsize !== ELF64_PHDR_SIZE) {
    throw new InvalidElf(`ELF e_phentsize ${String(phentsize)} is not sizeof(Elf64_Phdr) (56)`);
  }
  if (phoff + phnum * ELF64_PHDR_SIZE > bytes.length) {
    throw new TruncatedElf(
      `ELF program header table [${String(phoff)}, +${String(phnum * ELF64_PHDR_SIZE)}) runs past the end of the ` +
        `${String(bytes.length)}-byte file: the image is truncated`,
    );
  }
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * ELF64_PHDR_SIZE;
    const seg: ElfSegment = {
      type: dv.getUint32(p, true),
      flags: dv.getUint32(p + 4, true),
      offset: u64(dv, p + 8, `segment ${String(i)} p_offset`),
      vaddr: dv.getBigUint64(p + 16, true),
      paddr: u64(dv, p + 24, `segment ${String(i)} p_paddr`),
      filesz: u64(dv, p + 32, `segment ${String(i)} p_filesz`),
      memsz: u64(dv, p + 40, `segment ${String(i)} p_memsz`),
      align: dv.getBigUint64(p + 48, true),
    };
    if (seg.type === PT_LOAD || seg.type === PT_NOTE) {
      // gABI: p_filesz <= p_memsz for loadable segments; file bytes must be in the file.
      if (seg.type === PT_LOAD && seg.filesz > seg.memsz) {
        throw new InvalidElf(`ELF segment ${String(i)}: p_filesz ${String(seg.filesz)} > p_memsz ${String(seg.memsz)}`);
      }
      if (seg.offset + seg.filesz > bytes.length) {
        throw new TruncatedElf(
          `ELF segment ${String(i)} file bytes [${String(seg.offset)}, +${String(seg.filesz)}) run past the end of the ` +
            `${String(bytes.length)}-byte file: the image is truncated`,
        );
      }
    }
    segments.push(seg);
  }
  return {
    entry,
    segments,
    loads: segments.filter((s) => s.type === PT_LOAD),
    notes: segments.filter((s) => s.type === PT_NOTE),
  };
}

// A tiny ELF64 builder for loader tests: header + program headers + PT_LOAD data + an optional PT_NOTE.
// Layouts: include/uapi/linux/elf.h. Fields can be overridden to build malformed images.

import { concatBytes } from '../support/bytes.js';

export const PT_LOAD = 1;
export const PT_NOTE = 4;

export interface SegmentSpec {
  paddr: number;
  /** file bytes */
  data: Uint8Array;
  /** defaults to data.length */
  memsz?: number;
  vaddr?: bigint;
  /** defaults to PT_LOAD */
  type?: number;
}

export interface NoteSpec {
  name: string;
  type: number;
  desc: Uint8Array;
  /** override n_namesz (default: name length + NUL) */
  namesz?: number;
  /** override n_descsz (default: desc length) */
  descsz?: number;
}

export interface ElfSpec {
  segments: SegmentSpec[];
  notes?: NoteSpec[];
  entry?: bigint;
  /** e_ident overrides */
  elfClass?: number;
  dataEncoding?: number;
  type?: number;
  machine?: number;
  phentsize?: number;
  /** override the PT_NOTE p_filesz */
  noteFilesz?: number;
  /** override the program header table offset */
  phoff?: number;
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Encode notes (Elf64_Nhdr + name + desc, each padded to 4 bytes). */
export function encodeNotes(notes: readonly NoteSpec[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const n of notes) {
    const name = new TextEncoder().encode(n.name + '\0');
    const buf = new Uint8Array(12 + align(name.length, 4) + align(n.desc.length, 4));
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, n.namesz ?? name.length, true);
    dv.setUint32(4, n.descsz ?? n.desc.length, true);
    dv.setUint32(8, n.type, true);
    buf.set(name, 12);
    buf.set(n.desc, 12 + align(name.length, 4));
    parts.push(buf);
  }
  return concatBytes(parts);
}

/** The Xen PHYS32_ENTRY note with a 4- or 8-byte desc. */
export function pvhNote(entry: number, descBytes: 4 | 8 = 8): NoteSpec {
  const desc = new Uint8Array(descBytes);
  const dv = new DataView(desc.buffer);
  if (descBytes === 4) dv.setUint32(0, entry, true);
  else dv.setBigUint64(0, BigInt(entry), true);
  return { name: 'Xen', type: 18, desc };
}

/** Build an ELF64 image: header, program headers (segments then one PT_NOTE if notes), note bytes, segment bytes. */
export function buildElf(spec: ElfSpec): Uint8Array {
  const noteBytes = spec.notes !== undefined ? encodeNotes(spec.notes) : undefined;
  const phnum = spec.segments.length + (noteBytes !== undefined ? 1 : 0);
  const phoff = 64;
  let off = align(phoff + phnum * 56, 16);
  const noteOff = off;
  if (noteBytes !== undefined) off = align(off + noteBytes.length, 16);
  const segOffs: number[] = [];
  for (const s of spec.segments) {
    segOffs.push(off);
    off = align(off + s.data.length, 16);
  }
  const buf = new Uint8Array(off);
  const dv = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, spec.elfClass ?? 2, spec.dataEncoding ?? 1, 1], 0);
  dv.setUint16(16, spec.type ?? 2, true); // ET_EXEC
  dv.setUint16(18, spec.machine ?? 62, true); // EM_X86_64
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, spec.entry ?? 0xffff_ffff_8100_0000n, true); // vmlinux: an upper-half virtual address
  dv.setBigUint64(32, BigInt(spec.phoff ?? phoff), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, spec.phentsize ?? 56, true);
  dv.setUint16(56, phnum, true);
  const phdr = (i: number, type: number, offset: number, paddr: number, vaddr: bigint, filesz: number, memsz: number): void => {
    const p = phoff + i * 56;
    dv.setUint32(p, type, true);
    dv.setUint32(p + 4, 5, true); // PF_R | PF_X
    dv.setBigUint64(p + 8, BigInt(offset), true);
    dv.setBigUint64(p + 16, vaddr, true);
    dv.setBigUint64(p + 24, BigInt(paddr), true);
    dv.setBigUint64(p + 32, BigInt(filesz), true);
    dv.setBigUint64(p + 40, BigInt(memsz), true);
    dv.setBigUint64(p + 48, 16n, true);
  };
  spec.segments.forEach((s, i) => {
    phdr(i, s.type ?? PT_LOAD, segOffs[i]!, s.paddr, s.vaddr ?? 0xffff_ffff_8000_0000n + BigInt(s.paddr), s.data.length, s.memsz ?? s.data.length);
    buf.set(s.data, segOffs[i]);
  });
  if (noteBytes !== undefined) {
    phdr(spec.segments.length, PT_NOTE, noteOff, 0, 0n, spec.noteFilesz ?? noteBytes.length, 0);
    buf.set(noteBytes, noteOff);
  }
  return buf;
}

/** Bytes 0..n-1 with a recognisable pattern. */
export function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

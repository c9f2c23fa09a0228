// FUSE reply structs (fuse.h), encoded little-endian into a DataView: fuse_attr, fuse_entry_out,
// fuse_attr_out, fuse_open_out, fuse_kstatfs, fuse_init_out, fuse_out_header; and the linux_dirent64 records
// getdents64 returns (include/linux/dirent.h), decoded for READDIR.

import { ATTR_OUT_SIZE, ATTR_SIZE, ENTRY_OUT_SIZE, OUT_HEADER_SIZE } from './abi.js';
import type { FsStat, FsStatfs } from './backend.js';

/** Cache timeouts for entry_out / attr_out (seconds; virtiofsd: none 0, auto 1, always 86400). */
export interface Timeouts {
  entry: number;
  attr: number;
}

const TWO_32 = 0x1_0000_0000;
/**
 * A u64 field from a number, as BigInt.asUintN(64, BigInt(Math.trunc(n))) would give it (two's complement
 * below 0: times before 1970), without a BigInt per field: ToUint32 (>>> 0) takes an integer modulo 2^32.
 */
function setU64(v: DataView, off: number, n: number): void {
  const t = Math.trunc(n);
  v.setUint32(off, t >>> 0, true);
  v.setUint32(off + 4, Math.floor(t / TWO_32) >>> 0, true);
}
const u32 = (n: number): number => (n > 0xffff_ffff ? 0xffff_ffff : n < 0 ? 0 : n >>> 0);

/** fuse.h: struct fuse_attr (88 bytes) from a host stat. */
export function putAttr(v: DataView, off: number, st: FsStat): void {
  v.setBigUint64(off, st.ino, true);
  setU64(v, off + 8, st.size);
  setU64(v, off + 16, st.blocks);
  setU64(v, off + 24, st.atimeSec);
  setU64(v, off + 32, st.mtimeSec);
  setU64(v, off + 40, st.ctimeSec);
  v.setUint32(off + 48, u32(st.atimeNsec), true);
  v.setUint32(off + 52, u32(st.mtimeNsec), true);
  v.setUint32(off + 56, u32(st.ctimeNsec), true);
  v.setUint32(off + 60, u32(st.mode), true);
  v.setUint32(off + 64, u32(st.nlink), true);
  v.setUint32(off + 68, u32(st.uid), true);
  v.setUint32(off + 72, u32(st.gid), true);
  // new_encode_dev: glibc's dev_t agrees with it in the low 32 bits for majors < 4096 and minors < 2^20
  v.setUint32(off + 76, Math.trunc(st.rdev) >>> 0, true);
  v.setUint32(off + 80, u32(st.blksize), true);
  v.setUint32(off + 84, 0, true); // flags
}

/** fuse.h: struct fuse_entry_out (128 bytes). nodeid 0 with a zeroed attr is a "no entry" placeholder. */
export function putEntry(v: DataView, off: number, nodeid: number, st: FsStat | undefined, t: Timeouts): void {
  setU64(v, off, nodeid);
  setU64(v, off + 8, 0); // generation
  setU64(v, off + 16, t.entry);
  setU64(v, off + 24, t.attr);
  v.setUint32(off + 32, 0, true);
  v.setUint32(off + 36, 0, true);
  if (st !== undefined) putAttr(v, off + 40, st);
  else new Uint8Array(v.buffer, v.byteOffset + off + 40, ATTR_SIZE).fill(0);
}

/** fuse.h: struct fuse_attr_out (104 bytes). */
export function putAttrOut(v: DataView, off: number, st: FsStat, t: Timeouts): void {
  setU64(v, off, t.attr);
  v.setUint32(off + 8, 0, true);
  v.setUint32(off + 12, 0, true);
  putAttr(v, off + 16, st);
}

/** fuse.h: struct fuse_open_out (16 bytes). */
export function putOpen(v: DataView, off: number, fh: number, openFlags: number): void {
  setU64(v, off, fh);
  v.setUint32(off + 8, openFlags, true);
  v.setUint32(off + 12, 0, true);
}

/** fuse.h: struct fuse_kstatfs (80 bytes). */
export function putStatfs(v: DataView, off: number, s: FsStatfs): void {
  setU64(v, off, s.blocks);
  setU64(v, off + 8, s.bfree);
  setU64(v, off + 16, s.bavail);
  setU64(v, off + 24, s.files);
  setU64(v, off + 32, s.ffree);
  v.setUint32(off + 40, u32(s.bsize), true);
  v.setUint32(off + 44, u32(s.namelen), true);
  v.setUint32(off + 48, u32(s.frsize), true);
  // padding + spare[6] stay zero
}

/** fuse.h: struct fuse_out_header (16 bytes): len, error (negative errno or 0), unique. */
export function putOutHeader(v: DataView, off: number, len: number, error: number, unique: bigint): void {
  v.setUint32(off, len, true);
  v.setInt32(off + 4, error, true);
  v.setBigUint64(off + 8, unique, true);
}

export const ENTRY_REPLY = ENTRY_OUT_SIZE;
export const ATTR_REPLY = ATTR_OUT_SIZE;
export const HEADER = OUT_HEADER_SIZE;

/** One struct linux_dirent64 record (include/linux/dirent.h). */
export interface HostDirent {
  ino: bigint;
  /** d_off: the offset to seek to for the entry after this one */
  off: bigint;
  type: number;
  name: Uint8Array;
}

/**
 * Decode the linux_dirent64 records getdents64 wrote into buf[0, n): {u64 d_ino, s64 d_off, u16 d_reclen,
 * u8 d_type, char d_name[] NUL-terminated}. A record that does not fit ends the walk (the kernel never
 * writes one).
 */
export function* hostDirents(buf: Uint8Array, n: number): Generator<HostDirent> {
  const v = new DataView(buf.buffer, buf.byteOffset, n);
  let pos = 0;
  while (pos + 19 < n) {
    const reclen = v.getUint16(pos + 16, true);
    if (reclen < 20 || pos + reclen > n) return;
    const nameStart = pos + 19;
    let end = buf.indexOf(0, nameStart);
    if (end < 0 || end > pos + reclen) end = pos + reclen;
    yield { ino: v.getBigUint64(pos, true), off: v.getBigInt64(pos + 8, true), type: v.getUint8(pos + 18), name: buf.subarray(nameStart, end) };
    pos += reclen;
  }
}

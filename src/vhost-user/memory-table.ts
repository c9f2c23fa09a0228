// The guest memory a vhost-user front-end shares (SET_MEM_TABLE, vhost-user.rst "Memory regions
// description"): each region's fd is mmapped MAP_SHARED and becomes one GuestMemory region at its
// guest_phys_addr, so the device code sees the same checked GuestMemory as in the in-process VMM.
// Descriptor addresses are guest physical; the vring addresses of SET_VRING_ADDR are the front-end's
// USER addresses, translated here through each region's userspace_addr.
//
// A MAP_SHARED mapping whose file shrinks under it raises SIGBUS on the next touch of the lost pages, which
// would kill this process (guest memory is read by plain JS views, where no fault can be caught). The front
// end owns the file, so before mapping a region:
// - a file that supports seals (memfd, tmpfs, hugetlbfs: F_GET_SEALS works) must carry F_SEAL_SHRINK: it is
//   added when missing, and a file that cannot take it (F_SEAL_SEAL set without F_SEAL_SHRINK: a memfd made
//   without MFD_ALLOW_SEALING, any file opened on tmpfs or hugetlbfs) is refused. QEMU's
//   memory-backend-memfd seals its memfd with GROW|SHRINK|SEAL (seal=on, the default), so it maps as is.
// - a file that does not support seals (a plain file on a disk file system) must cover the region when
//   SET_MEM_TABLE arrives (fstat). Residual risk, accepted: such a front end can still truncate its file
//   later and kill the back-end; only a sealed memfd rules that out. (Catching SIGBUS instead would need a
//   process-wide handler that remaps the lost pages, racing V8 and every other thread: not done.)

import { fstatSync } from 'node:fs';
import { GuestMemory, type MemoryRegion } from '../memory/guest-memory.js';
import { hex } from '../memory/guest-address.js';
import type { NativeMapping } from '../kvm/native.js';
import type { MemRegionDesc } from './codec.js';

/** fcntl.h, fcntl(2) "File Sealing" */
const F_SEAL_SEAL = 0x1;
const F_SEAL_SHRINK = 0x2;
/** sys/mman.h */
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const PAGE = 4096;
/** GuestMemory keeps guest addresses below 2^52 (JS numbers stay exact). */
const MAX_GPA = 2 ** 52;
/** Largest region we map (the addon's own limit is 2^46). */
const MAX_REGION = 2 ** 46;

/** The request named a memory layout we cannot or will not map. */
export class InvalidMemoryTable extends Error {
  override readonly name = 'InvalidMemoryTable';
}

/** A vring address the memory table does not cover. */
export class UntranslatableAddress extends Error {
  override readonly name = 'UntranslatableAddress';
}

export interface MapperIo {
  fdGetSeals(fd: number): number;
  fdAddSeals(fd: number, seals: number): void;
  mmapFd(fd: number, size: number, prot: number, flags: number, offset: number): NativeMapping;
  munmap(addr: bigint): void;
  close(fd: number): void;
}

interface Mapped {
  gpa: number;
  size: number;
  uva: bigint;
  mapping: NativeMapping;
  /** where the region starts inside the mapping */
  delta: number;
}

/** errno name of an addon error (NativeError.code), if any */
function codeOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

/**
 * Make sure the front end cannot shrink a sealable file under our mapping (see the file comment). Returns
 * with F_SEAL_SHRINK on the file, or when the file does not support seals at all (EINVAL).
 */
function requireShrinkSeal(fd: number, where: string, io: MapperIo): void {
  let seals: number;
  try {
    seals = io.fdGetSeals(fd);
  } catch (e) {
    if (codeOf(e) === 'EINVAL') return; // no seals on this file system: the fstat check alone
    throw new InvalidMemoryTable(`${where}: F_GET_SEALS on its fd failed: ${(e as Error).message}`);
  }
  if ((seals & F_SEAL_SHRINK) !== 0) return;
  const remedy = 'share guest RAM through a memfd the back-end can seal (QEMU: -object memory-backend-memfd,share=on with seal=on, the default)';
  if ((seals & F_SEAL_SEAL) !== 0) {
    throw new InvalidMemoryTable(`${where}: the front end could shrink its file under the mapping and it cannot be sealed (F_SEAL_SEAL is set without F_SEAL_SHRINK): ${remedy}`);
  }
  try {
    io.fdAddSeals(fd, F_SEAL_SHRINK); // the seal is on the file: the front end can no longer shrink it either
  } catch (e) {
    throw new InvalidMemoryTable(`${where}: F_SEAL_SHRINK could not be added to its fd (${(e as Error).message}): ${remedy}`);
  }
}

export class MemoryTable {
  private constructor(
    readonly mem: GuestMemory,
    private readonly regions: readonly Mapped[],
    private readonly io: MapperIo,
  ) {}

  /**
   * Map every region (the fds are closed in every case: a MAP_SHARED mapping keeps the memory alive).
   * Throws InvalidMemoryTable for a region outside our limits, overlapping regions or a failed mmap.
   */
  static map(descs: readonly MemRegionDesc[], fds: readonly number[], io: MapperIo): MemoryTable {
    const mapped: Mapped[] = [];
    try {
      if (descs.length !== fds.length) throw new InvalidMemoryTable(`${descs.length} regions but ${fds.length} fds`);
      for (let i = 0; i < descs.length; i++) {
        const d = descs[i]!;
        const where = `region ${i} (guest ${hex(d.guestPhysAddr)}, ${d.memorySize} bytes)`;
        if (d.memorySize === 0n || d.memorySize > BigInt(MAX_REGION)) {
          throw new InvalidMemoryTable(`${where}: size must be 1..2^46 bytes`);
        }
        if (d.guestPhysAddr + d.memorySize > BigInt(MAX_GPA)) throw new InvalidMemoryTable(`${where}: ends past guest address 2^52`);
        if (d.userspaceAddr + d.memorySize > 1n << 64n) throw new InvalidMemoryTable(`${where}: user address range wraps past 2^64`);
        if (d.mmapOffset + d.memorySize > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidMemoryTable(`${where}: mmap offset is too large`);
        const gpa = Number(d.guestPhysAddr);
        const size = Number(d.memorySize);
        const off = Number(d.mmapOffset);
        // map from the page holding mmap_offset (mmap(2) needs a page-aligned file offset)
        const pageOff = off - (off % PAGE);
        const delta = off - pageOff;
        // seal first: once F_SEAL_SHRINK holds, the size fstat reports can only grow
        requireShrinkSeal(fds[i]!, where, io);
        // A MAP_SHARED mapping may run past the end of its file, and touching that part raises SIGBUS, which
        // would kill this process: the region must lie inside the file (rust-vmm: MappingPastEof).
        const st = fstatSync(fds[i]!);
        const fileSize = st.size;
        if (st.isFile() && off + size > fileSize) {
          throw new InvalidMemoryTable(`${where}: mmap offset + size (${off + size}) runs past the end of its ${fileSize}-byte file`);
        }
        let mapping: NativeMapping;
        try {
          mapping = io.mmapFd(fds[i]!, delta + size, PROT_READ | PROT_WRITE, MAP_SHARED, pageOff);
        } catch (e) {
          throw new InvalidMemoryTable(`${where}: mmap of the region's fd failed: ${(e as Error).message}`);
        }
        mapped.push({ gpa, size, uva: d.userspaceAddr, mapping, delta });
      }
      // overlapping user ranges would make translation ambiguous (guest ranges: GuestMemory checks them)
      const byUva = [...mapped].sort((a, b) => (a.uva < b.uva ? -1 : a.uva > b.uva ? 1 : 0));
      for (let i = 1; i < byUva.length; i++) {
        if (byUva[i - 1]!.uva + BigInt(byUva[i - 1]!.size) > byUva[i]!.uva) {
          throw new InvalidMemoryTable(`regions overlap in the front-end's address space at ${hex(byUva[i]!.uva)}`);
        }
      }
      const regions: MemoryRegion[] = mapped.map((m) => ({ base: m.gpa, size: m.size, buffer: m.mapping.buffer, offset: m.delta }));
      let mem: GuestMemory;
      try {
        mem = new GuestMemory(regions);
      } catch (e) {
        throw new InvalidMemoryTable(`guest memory regions rejected: ${(e as Error).message}`);
      }
      return new MemoryTable(mem, mapped, io);
    } catch (e) {
      for (const m of mapped) io.munmap(m.mapping.addr);
      throw e;
    } finally {
      for (const fd of fds) io.close(fd);
    }
  }

  /** Number of regions. */
  get size(): number {
    return this.regions.length;
  }

  /**
   * The guest physical address of front-end user address `uva` with `len` bytes behind it in the same
   * region (vhost-user.rst "vring address description": a user address unless IOMMU_PLATFORM).
   */
  translate(uva: bigint, len: number, what: string): number {
    for (const r of this.regions) {
      if (uva >= r.uva && uva - r.uva < BigInt(r.size)) {
        const off = Number(uva - r.uva);
        if (off + len > r.size) {
          throw new UntranslatableAddress(`${what} at user address ${hex(uva)} runs ${len} bytes past the end of its memory region`);
        }
        return r.gpa + off;
      }
    }
    throw new UntranslatableAddress(`${what} at user address ${hex(uva)} is in no region of the memory table`);
  }

  /** Unmap every region. Nothing may touch `mem` (or views of it) afterwards. */
  unmap(): void {
    for (const r of this.regions) this.io.munmap(r.mapping.addr);
  }
}

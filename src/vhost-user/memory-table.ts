// The guest memory a vhost-user front-end shares (SET_MEM_TABLE, vhost-user.rst "Memory regions
// description"): each region's fd is mmapped MAP_SHARED and becomes one GuestMemory region at its
// guest_phys_addr, so the device code sees the same checked GuestMemory as in the in-process VMM.
// Descriptor addresses are guest physical; the vring addresses of SET_VRING_ADDR are the front-end's
// USER addresses, translated here through each region's userspace_addr.

import { fstatSync } from 'node:fs';
import { GuestMemory, type MemoryRegion } from '../memory/guest-memory.js';
import { hex } from '../memory/guest-address.js';
import type { NativeMapping } from '../kvm/native.js';
import type { MemRegionDesc } from './codec.js';

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

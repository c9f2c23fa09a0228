// PVH boot information: struct hvm_start_info, hvm_modlist_entry[] and hvm_memmap_table_entry[]
// (include/xen/interface/hvm/start_info.h). The guest gets the start_info address in %ebx.
import type { GuestMemory } from '../memory/guest-memory.js';
import type { E820Entry } from '../arch/x86_64/e820.js';
import { MEMMAP_MAX_ENTRIES, MEMMAP_START, MODLIST_START, PVH_INFO_START } from '../arch/x86_64/layout.js';

/** PVH: XEN_HVM_START_MAGIC_VALUE ("xEn3" with the 0x80 bit of the "E" set). */
export const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
/** Version 1: the memmap fields are present. */
export const HVM_START_INFO_VERSION = 1;
/** sizeof(struct hvm_start_info) */
export const HVM_START_INFO_SIZE = 56;
/** sizeof(struct hvm_modlist_entry) */
export const HVM_MODLIST_ENTRY_SIZE = 32;
/** sizeof(struct hvm_memmap_table_entry) */
export const HVM_MEMMAP_ENTRY_SIZE = 24;
/** Module entries that fit between MODLIST_START and MEMMAP_START. */
export const MODLIST_MAX_ENTRIES = Math.floor((MEMMAP_START - MODLIST_START) / HVM_MODLIST_ENTRY_SIZE);

export interface PvhModule {
  paddr: number;
  size: number;
  /** physical address of the module's command line, 0 for none */
  cmdlinePaddr?: number;
}

export interface StartInfo {
  cmdlinePaddr: number;
  modules: readonly PvhModule[];
  memmap: readonly E820Entry[];
}

/** Write start_info at PVH_INFO_START, the module list at MODLIST_START, the memmap at MEMMAP_START. */
export function writeStartInfo(mem: GuestMemory, info: StartInfo): number {
  if (info.modules.length > MODLIST_MAX_ENTRIES) {
    throw new RangeError(`${String(info.modules.length)} PVH modules do not fit; at most ${String(MODLIST_MAX_ENTRIES)}`);
  }
  if (info.memmap.length === 0 || info.memmap.length > MEMMAP_MAX_ENTRIES) {
    throw new RangeError(`PVH memmap needs 1..${String(MEMMAP_MAX_ENTRIES)} entries, got ${String(info.memmap.length)}`);
  }
  // struct hvm_modlist_entry { u64 paddr; u64 size; u64 cmdline_paddr; u64 reserved; }
  const mods = new Uint8Array(info.modules.length * HVM_MODLIST_ENTRY_SIZE);
  const mdv = new DataView(mods.buffer);
  info.modules.forEach((m, i) => {
    const o = i * HVM_MODLIST_ENTRY_SIZE;
    mdv.setBigUint64(o, BigInt(m.paddr), true);
    mdv.setBigUint64(o + 8, BigInt(m.size), true);
    mdv.setBigUint64(o + 16, BigInt(m.cmdlinePaddr ?? 0), true);
    mdv.setBigUint64(o + 24, 0n, true);
  });
  // struct hvm_memmap_table_entry { u64 addr; u64 size; u32 type; u32 reserved; }
  const map = new Uint8Array(info.memmap.length * HVM_MEMMAP_ENTRY_SIZE);
  const edv = new DataView(map.buffer);
  info.memmap.forEach((e, i) => {
    const o = i * HVM_MEMMAP_ENTRY_SIZE;
    edv.setBigUint64(o, BigInt(e.addr), true);
    edv.setBigUint64(o + 8, BigInt(e.size), true);
    edv.setUint32(o + 16, e.type, true);
    edv.setUint32(o + 20, 0, true); // reserved: must be zero for version 1
  });
  // struct hvm_start_info
  const si = new Uint8Array(HVM_START_INFO_SIZE);
  const sdv = new DataView(si.buffer);
  sdv.setUint32(0, XEN_HVM_START_MAGIC_VALUE, true); // magic
  sdv.setUint32(4, HVM_START_INFO_VERSION, true); // version
  sdv.setUint32(8, 0, true); // flags: no SIF_* (not privileged, not the initial domain)
  sdv.setUint32(12, info.modules.length, true); // nr_modules
  sdv.setBigUint64(16, info.modules.length > 0 ? BigInt(MODLIST_START) : 0n, true); // modlist_paddr
  sdv.setBigUint64(24, BigInt(info.cmdlinePaddr), true); // cmdline_paddr
  sdv.setBigUint64(32, 0n, true); // rsdp_paddr: no ACPI
  sdv.setBigUint64(40, BigInt(MEMMAP_START), true); // memmap_paddr
  sdv.setUint32(48, info.memmap.length, true); // memmap_entries
  sdv.setUint32(52, 0, true); // reserved

  mem.write(PVH_INFO_START, si);
  if (mods.length > 0) mem.write(MODLIST_START, mods);
  mem.write(MEMMAP_START, map);
  return PVH_INFO_START;
}

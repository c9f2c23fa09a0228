// Guest physical memory layout and I/O ports of the x86-64 microVM (Firecracker arch/x86_64/layout.rs style).
// Every magic address the VMM or the boot code puts in the guest is named here, once.

/** Guest page size. */
export const PAGE_SIZE = 0x1000;

// ---- Low memory: boot structures written by src/boot (all below the EBDA) ----

/** Boot GDT (null, code32, data, TSS) loaded before the PVH entry. */
export const BOOT_GDT_START = 0x500;
/** Number of 8-byte entries in the boot GDT. */
export const BOOT_GDT_MAX_ENTRIES = 4;
/** Empty boot IDT (one zero entry), right after the GDT; the guest installs its own. */
export const BOOT_IDT_START = 0x520;
/** PVH `struct hvm_start_info`, whose address the guest gets in %ebx. */
export const PVH_INFO_START = 0x6000;
/** PVH `struct hvm_modlist_entry` array (the initrd is module 0). */
export const MODLIST_START = 0x6040;
/** PVH `struct hvm_memmap_table_entry` array (the e820 map). */
export const MEMMAP_START = 0x7000;
/** Most memmap entries that fit between MEMMAP_START and CMDLINE_START. */
export const MEMMAP_MAX_ENTRIES = 128;
/** Kernel command line, NUL-terminated. */
export const CMDLINE_START = 0x20000;
/** Most bytes of the command line, its NUL included. */
export const CMDLINE_MAX_SIZE = 4096;
/** Extended BIOS Data Area: the last 1 KiB below 640 KiB; reserved in the e820 map up to HIMEM_START. */
export const EBDA_START = 0x9fc00;
/** MP floating pointer + configuration table, in the EBDA where Linux's scan finds it. */
export const MPTABLE_START = 0x9fc00;
/** Start of "high" memory (1 MiB): the kernel is loaded at or above it. */
export const HIMEM_START = 0x10_0000;

// ---- The 32-bit MMIO gap: no RAM between 3 GiB and 4 GiB ----

/** First address of the 32-bit MMIO gap; RAM below it ends here at most. */
export const MMIO_GAP_START = 0xc000_0000;
/** First address after the MMIO gap; RAM above 4 GiB continues here. */
export const MMIO_GAP_END = 0x1_0000_0000;
/** Size of the MMIO gap (1 GiB). */
export const MMIO_GAP_SIZE = MMIO_GAP_END - MMIO_GAP_START;
/** Where RAM beyond MMIO_GAP_START bytes continues. */
export const RAM_64BIT_START = MMIO_GAP_END;
/** First virtio-mmio device window; devices follow one VIRTIO_MMIO_SLOT_SIZE apart. */
export const VIRTIO_MMIO_START = 0xd000_0000;
/** Bytes reserved per virtio-mmio device (one page; the register block is 0x200 bytes). */
export const VIRTIO_MMIO_SLOT_SIZE = 0x1000;
/** IOAPIC registers (MP table IOAPIC entry address). */
export const IOAPIC_START = 0xfec0_0000;
/** Local APIC registers (MP table lapic address). */
export const LAPIC_START = 0xfee0_0000;
/** Identity-map page KVM needs on Intel (KVM_SET_IDENTITY_MAP_ADDR), one page below the TSS. */
export const IDENTITY_MAP_ADDR = 0xfffb_c000;
/** Three pages KVM needs for the real-mode TSS on Intel (KVM_SET_TSS_ADDR). */
export const KVM_TSS_ADDR = 0xfffb_d000;

// ---- Limits ----

/** Smallest guest RAM we lay out: the low structures plus at least 1 MiB above HIMEM_START. */
export const MIN_MEM_BYTES = 2 * 1024 * 1024;
/** Largest guest RAM we lay out (64 TiB): keeps every address well inside 2^52. */
export const MAX_MEM_BYTES = 2 ** 46;

// ---- Legacy I/O ports ----

/** COM1 16550 UART base; registers at 0x3f8..0x3ff. */
export const COM1_PORT = 0x3f8;
/** Number of COM1 UART registers. */
export const COM1_PORT_COUNT = 8;
/** COM1 interrupt line (ISA IRQ 4). */
export const COM1_IRQ = 4;
/** i8042 keyboard controller data port. */
export const I8042_DATA_PORT = 0x60;
/** i8042 command/status port; writing I8042_CMD_RESET here resets the machine. */
export const I8042_COMMAND_PORT = 0x64;
/** i8042 "pulse reset line" command. */
export const I8042_CMD_RESET = 0xfe;
/** Boot timer port: the guest writes BOOT_TIMER_MAGIC here and the VMM timestamps it. */
export const BOOT_TIMER_PORT = 0x440;
/** Byte the guest writes to BOOT_TIMER_PORT. */
export const BOOT_TIMER_MAGIC = 123;
/** Debug console: each byte written is text. */
export const DEBUGCON_PORT = 0xe9;
/** Test value port: each 32-bit `out dx, eax` value is recorded in order. */
export const TEST_VALUE_PORT = 0xea;
/** Debug exit port: a u8/u32 written here stops the VM with that status. */
export const DEBUG_EXIT_PORT = 0xf4;

/** Guest RAM region: [base, base+size). */
export interface RamRegion {
  base: number;
  size: number;
}

/** A RAM size that ramRegions cannot lay out. */
export class InvalidMemorySize extends RangeError {
  override readonly name = 'InvalidMemorySize';
}

/**
 * Split `memBytes` of RAM around the MMIO gap: [0, min(mem, 3 GiB)) and, for more than 3 GiB,
 * the rest from 4 GiB up. memBytes must be a multiple of PAGE_SIZE in [MIN_MEM_BYTES, MAX_MEM_BYTES].
 */
export function ramRegions(memBytes: number): RamRegion[] {
  if (!Number.isSafeInteger(memBytes) || memBytes < MIN_MEM_BYTES || memBytes > MAX_MEM_BYTES) {
    throw new InvalidMemorySize(
      `guest memory size ${String(memBytes)} must be an integer number of bytes between ` +
        `${String(MIN_MEM_BYTES)} (2 MiB) and 2^46 (64 TiB)`,
    );
  }
  if (memBytes % PAGE_SIZE !== 0) {
    throw new InvalidMemorySize(`guest memory size ${String(memBytes)} must be a multiple of ${String(PAGE_SIZE)} bytes`);
  }
  if (memBytes <= MMIO_GAP_START) return [{ base: 0, size: memBytes }];
  return [
    { base: 0, size: MMIO_GAP_START },
    { base: RAM_64BIT_START, size: memBytes - MMIO_GAP_START },
  ];
}

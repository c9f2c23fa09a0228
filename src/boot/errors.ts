// Named errors of the kernel loader. Messages say what is wrong with the input and what to do.

/** The file is not an ELF64 little-endian x86-64 executable, or a header field is unusable. */
export class InvalidElf extends Error {
  override readonly name: string = 'InvalidElf';
}

/** A header, program header table or segment runs past the end of the file. */
export class TruncatedElf extends InvalidElf {
  override readonly name: string = 'TruncatedElf';
}

/** A loadable segment is not inside guest RAM or lies below the lowest load address. */
export class SegmentOutsideRam extends Error {
  override readonly name = 'SegmentOutsideRam';
}

/** Two loadable segments claim the same guest physical bytes. */
export class OverlappingSegments extends Error {
  override readonly name = 'OverlappingSegments';
}

/** The kernel carries no Xen PVH entry note. */
export class NoPvhNote extends Error {
  override readonly name = 'NoPvhNote';
  constructor() {
    super('kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): build it with CONFIG_PVH=y');
  }
}

/** A note is malformed (sizes run past its segment) or the PVH note's entry is unusable. */
export class InvalidPvhNote extends InvalidElf {
  override readonly name: string = 'InvalidPvhNote';
}

/** The kernel command line cannot be handed to the guest. */
export class InvalidCmdline extends Error {
  override readonly name = 'InvalidCmdline';
}

/** The initrd does not fit between the kernel and the top of RAM below the MMIO gap. */
export class InitrdTooLarge extends Error {
  override readonly name = 'InitrdTooLarge';
}

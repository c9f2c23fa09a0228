// A minimal PVH ELF kernel file (one `hlt` at 1 MiB) for tests that need a kernel path that passes the
// hypervisor's checks but never runs a real guest (fake QEMU, stop-before-start, quirks on the command line).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildElf, pvhNote } from './elf-builder.js';

const ENTRY = 0x10_0000;
const HLT = 0xf4;

/** Write the kernel into a fresh temp directory; returns its path and a function that removes it. */
export function tinyKernelFile(): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-tiny-kernel-'));
  const path = join(dir, 'vmlinux');
  writeFileSync(path, buildElf({ segments: [{ paddr: ENTRY, data: Uint8Array.of(HLT) }], notes: [pvhNote(ENTRY)] }));
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

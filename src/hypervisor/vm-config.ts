// The checks every backend makes on a VmConfig before it does any work: the VM's shape, and that the kernel
// and initrd exist and the kernel is an ELF64 x86-64 image (both backends boot a PVH vmlinux directly).
// Cheap: the kernel's first 64 bytes are read, nothing more.

import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { checkElfHeader, ELF64_EHDR_SIZE } from '../boot/elf.js';
import { checkVmShape } from '../contract/vm-shape.js';
import type { VmConfig } from './interface.js';

const KERNEL_HINT = 'build one with `npm run --silent guest:kernel` or pass --kernel PATH';
const INITRD_HINT = 'build one with `npm run --silent guest:initrd`';

function readHead(path: string, n: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = new Uint8Array(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** Throw a one-line error naming what is wrong with the config and what to do. */
export function checkVmConfig(c: Pick<VmConfig, 'kernelPath' | 'initrdPath' | 'vcpus' | 'memoryMiB'>): void {
  if (!existsSync(c.kernelPath)) throw new Error(`kernel not found: ${c.kernelPath} (${KERNEL_HINT})`);
  if (c.initrdPath !== undefined && !existsSync(c.initrdPath)) throw new Error(`initrd not found: ${c.initrdPath} (${INITRD_HINT})`);
  checkVmShape(c.vcpus, c.memoryMiB);
  checkElfHeader(readHead(c.kernelPath, ELF64_EHDR_SIZE));
}

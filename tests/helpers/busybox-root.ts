// A root file system for a guest that boots from a shared host directory (virtio-fs `root=TAG
// rootfstype=virtiofs`): the host's static busybox (Debian busybox-static) as /bin/busybox, /bin/sh a symlink
// to it, an /sbin/init shell script the test writes, and the mount points the kernel and the script use. With a
// root given on the command line (and no initramfs) the kernel runs /sbin/init, not /init (init/main.c
// kernel_init: ramdisk_execute_command is dropped once prepare_namespace() mounted the root).

import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const HOST_BUSYBOX = '/bin/busybox';
/** the init the kernel finds on a mounted root (init/main.c: the first of /sbin/init, /etc/init, /bin/init, /bin/sh) */
export const ROOT_INIT = '/sbin/init';

const PT_INTERP = 3; // ELF: a program header naming the dynamic loader

/** Whether an ELF64 file asks for a dynamic loader (a PT_INTERP program header). */
function hasInterpreter(elf: Buffer): boolean {
  // ELF64 header: e_phoff u64 at 0x20, e_phentsize u16 at 0x36, e_phnum u16 at 0x38 (include/uapi/linux/elf.h)
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return true; // not ELF64: treat as unusable
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > elf.length) return true;
    if (elf.readUInt32LE(at) === PT_INTERP) return true;
  }
  return false;
}

/** Why a busybox root cannot be built here (the test skips with it), or false. */
export function busyboxRootSkip(busybox = HOST_BUSYBOX): string | false {
  if (!existsSync(busybox)) return `${busybox} not found: apt-get install busybox-static`;
  if (hasInterpreter(readFileSync(busybox))) return `${busybox} is not a static ELF64 binary: apt-get install busybox-static`;
  return false;
}

/**
 * Fill `root` (an existing empty directory) with busybox, /bin/sh -> busybox, /sbin/init = `initScript`
 * (mode 0755; it should start with `#!/bin/sh`) and the directories dev, proc, sys, tmp.
 */
export function makeBusyboxRoot(root: string, initScript: string, busybox = HOST_BUSYBOX): void {
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp']) mkdirSync(join(root, d));
  copyFileSync(busybox, join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  symlinkSync('busybox', join(root, 'bin', 'sh'));
  writeFileSync(join(root, ROOT_INIT), initScript);
  chmodSync(join(root, ROOT_INIT), 0o755);
}

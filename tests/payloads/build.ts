// Builds the freestanding guest payloads in tests/payloads/*.S (GNU as + ld, binutils) into ELF64
// images carrying a Xen PVH note, cached under os.tmpdir() keyed by the hash of their sources.
// A few payloads (C_PAYLOADS) add freestanding C compiled by gcc: the virtio drivers that run in guest ring 3.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** The payloads this folder holds (one `<name>.S` each). */
export const PAYLOAD_NAMES = [
  'pvh-state',
  'uart',
  'reset',
  'boot-timer',
  'ring3',
  'ring3-prot32',
  'smp',
  'bench',
  'virtio-mmio',
  'virtio-drv-blk',
  'virtio-drv-rng',
  'virtio-drv-vsock',
  'virtio-drv-net',
] as const;
export type PayloadName = (typeof PAYLOAD_NAMES)[number];

/**
 * Payloads built from an assembly entry plus freestanding C (instead of `<name>.S` alone). The C runs in
 * 64-bit ring 3 (virtio-drv-entry.S), so: no red zone is needed but harmless to drop, no SSE (the entry does
 * not enable it), no PIC, no stack protector, no unwind tables, and zero-initialised data in .data so the
 * image stays one file-backed PT_LOAD segment (link.ld has no .bss).
 */
const C_PAYLOADS: Partial<Record<PayloadName, { asm: string; c: string[] }>> = {
  'virtio-drv-blk': { asm: 'virtio-drv-entry.S', c: ['virtio-drv-lib.c', 'virtio-drv-blk.c'] },
  'virtio-drv-rng': { asm: 'virtio-drv-entry.S', c: ['virtio-drv-lib.c', 'virtio-drv-rng.c'] },
  'virtio-drv-vsock': { asm: 'virtio-drv-entry.S', c: ['virtio-drv-lib.c', 'virtio-drv-vsock.c'] },
  'virtio-drv-net': { asm: 'virtio-drv-entry.S', c: ['virtio-drv-lib.c', 'virtio-drv-net.c'] },
};

const CFLAGS = [
  '-m64', '-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', '-ffreestanding', '-nostdlib', '-fno-pic', '-fno-pie',
  '-mno-red-zone', '-mgeneral-regs-only', '-fno-stack-protector', '-fno-asynchronous-unwind-tables', '-fno-unwind-tables',
  '-fcf-protection=none', '-fno-zero-initialized-in-bss', '-fno-common', '-fno-builtin',
];

/** binutils (`as`/`ld`) is not installed. */
export class BinutilsMissing extends Error {
  constructor(tool: string) {
    super(`'${tool}' was not found on PATH: the guest payloads need GNU binutils (install binutils, e.g. apt-get install binutils)`);
    this.name = 'BinutilsMissing';
  }
}

/** gcc is not installed (only the C payloads need it). */
export class CCompilerMissing extends Error {
  constructor() {
    super(`'gcc' was not found on PATH: the ring-3 virtio driver payloads (virtio-drv-*.c) need a C compiler (apt-get install gcc)`);
    this.name = 'CCompilerMissing';
  }
}

/** Assembling or linking a payload failed; the message carries the tool's stderr. */
export class PayloadBuildFailed extends Error {
  constructor(name: string, step: string, detail: string) {
    super(`building payload '${name}' failed at ${step}:\n${detail}`);
    this.name = 'PayloadBuildFailed';
  }
}

/** Asked for a payload this folder does not have. */
export class UnknownPayload extends Error {
  constructor(name: string) {
    super(`unknown payload '${name}': expected one of ${PAYLOAD_NAMES.join(', ')}`);
    this.name = 'UnknownPayload';
  }
}

/** The folder holding the .S sources: next to this file when run from source, else found from the repo root. */
export function payloadSourceDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [here, resolve(here, '../../../tests/payloads')];
  for (const dir of candidates) {
    if (existsSync(join(dir, 'link.ld')) && existsSync(join(dir, 'common.inc'))) return dir;
  }
  throw new Error(`payload sources (link.ld, common.inc) not found in ${candidates.join(' or ')}: run from the kata-ts repository`);
}

function cacheDir(): string {
  return join(tmpdir(), 'kata-ts-payloads');
}

async function run(name: string, step: string, tool: string, args: string[]): Promise<void> {
  try {
    await execFileAsync(tool, args, { maxBuffer: 4 * 1024 * 1024 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw tool === 'gcc' ? new CCompilerMissing() : new BinutilsMissing(tool);
    throw new PayloadBuildFailed(name, step, e.stderr ?? e.message);
  }
}

/** Hash of everything a payload's image depends on: every .S/.inc/.c/.h in the folder and the linker script. */
async function sourceHash(dir: string, name: string): Promise<string> {
  const h = createHash('sha256');
  h.update(`payload:${name}\n`);
  const files = (await readdir(dir)).filter((f) => /\.(S|inc|ld|c|h)$/.test(f)).sort();
  for (const f of files) {
    h.update(`${f}\n`);
    h.update(await readFile(join(dir, f)));
  }
  return h.digest('hex').slice(0, 16);
}

function isPayloadName(name: string): name is PayloadName {
  return (PAYLOAD_NAMES as readonly string[]).includes(name);
}

/** Builds (or finds in the cache) a payload and returns the path of its ELF image; UnknownPayload for a name not in PAYLOAD_NAMES. */
export async function buildPayloadFile(name: string): Promise<string> {
  if (!isPayloadName(name)) throw new UnknownPayload(name);
  const dir = payloadSourceDir();
  const hash = await sourceHash(dir, name);
  const out = join(cacheDir(), `${name}-${hash}.elf`);
  if (existsSync(out)) return out;

  await mkdir(cacheDir(), { recursive: true });
  const work = join(cacheDir(), `${name}-${hash}.${process.pid}.${Date.now()}`);
  await mkdir(work, { recursive: true });
  try {
    const obj = join(work, `${name}.o`);
    const elf = join(work, `${name}.elf`);
    const c = C_PAYLOADS[name];
    const objs = [obj];
    await run(name, 'as', 'as', ['--64', '-I', dir, '-o', obj, join(dir, c ? c.asm : `${name}.S`)]);
    for (const src of c?.c ?? []) {
      const o = join(work, `c-${src.replace(/\.c$/, '')}.o`);
      await run(name, `gcc ${src}`, 'gcc', [...CFLAGS, '-I', dir, '-c', '-o', o, join(dir, src)]);
      objs.push(o);
    }
    await run(name, 'ld', 'ld', ['-m', 'elf_x86_64', '-nostdlib', '--build-id=none', '-z', 'noexecstack',
      '-z', 'max-page-size=0x1000', '-T', join(dir, 'link.ld'), '-o', elf, ...objs]);
    await rename(elf, out); // atomic within the cache dir: concurrent builders agree on the result
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return out;
}

/** Builds (or finds in the cache) a payload and returns its ELF bytes. */
export async function buildPayload(name: string): Promise<Uint8Array> {
  const path = await buildPayloadFile(name);
  return new Uint8Array(await readFile(path));
}

// `node dist/tests/payloads/build.js [name...]` builds payloads and prints their paths.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const names = process.argv.length > 2 ? process.argv.slice(2) : [...PAYLOAD_NAMES];
  for (const n of names) {
    buildPayloadFile(n).then((p) => console.log(`${n}\t${p}`), (e: Error) => {
      console.error(e.message);
      process.exitCode = 1;
    });
  }
}

// Shared pieces of the OCI end-to-end tests (tests/e2e/oci-*.test.ts): drive `kata-ts` (dist/bundle/kata-ts.js, the bundle users run)
// and Debian's `runc` with the same arguments on the same busybox bundle (guest/make-bundle.sh), each with its
// own temporary --root, so that every behaviour can be compared between the two.

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { guestArtifact } from './guest-artifacts.js';

const here = dirname(fileURLToPath(import.meta.url));
/** the repository root (this file runs from dist/tests/helpers) */
export const repoRoot = existsSync(join(here, '../../../package.json')) ? resolve(here, '../../..') : resolve(here, '../..');
/** The CLI as users run it: the bundle (npm run build:ts), whose sandbox and relay processes start from the bundle too. */
export const cliPath = join(repoRoot, 'dist', 'bundle', 'kata-ts.js');

export type Runtime = 'kata' | 'runc';
export const RUNTIMES: readonly Runtime[] = ['kata', 'runc'];

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let skipMemo: string | false | undefined;
/**
 * Why the end-to-end tests cannot run here, or false. Also builds (or finds cached) the full kernel and the agent
 * initrd, so that the first `kata-ts create` does not spend a test's time budget on it.
 */
export function e2eSkipReason(): string | false {
  if (skipMemo !== undefined) return skipMemo;
  const why = ((): string | false => {
    if (process.getuid?.() !== 0) return 'needs root (VMs, namespaces, /run state)';
    if (!existsSync(cliPath)) return `${cliPath} missing: npm run build:ts`;
    if (spawnSync('runc', ['--version']).status !== 0) return 'runc not found (guest/install-deps.sh)';
    if (spawnSync('mkfs.ext4', ['-V']).status !== 0) return 'mkfs.ext4 not found (apt-get install e2fsprogs)';
    if (spawnSync('busybox', ['true']).status !== 0) return 'busybox not found (apt-get install busybox-static)';
    const kvm = existsSync('/dev/kvm');
    const qemu = spawnSync('qemu-system-x86_64', ['-device', 'help'], { encoding: 'utf8' });
    if (!kvm && qemu.status !== 0) return 'neither /dev/kvm nor qemu-system-x86_64 is available';
    // built here when the cache lacks them (tens of minutes for a kernel, with progress): never a skip
    guestArtifact('guest:kernel');
    guestArtifact('guest:initrd');
    return false;
  })();
  skipMemo = why;
  return why;
}

/** A temporary directory with one --root per runtime and a place for bundles and logs. */
export class Workdir {
  readonly dir: string;
  readonly roots: Record<Runtime, string>;
  readonly log: string;
  constructor(prefix = 'kata-ts-e2e-') {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
    this.roots = { kata: join(this.dir, 'kata-root'), runc: join(this.dir, 'runc-root') };
    this.log = join(this.dir, 'kata-ts.log');
  }
  /** guest/make-bundle.sh DIR ARGS..., then `edit` the parsed config.json */
  bundle(name: string, args: string[], edit?: (spec: Record<string, unknown>) => void): string {
    const r = spawnSync('bash', [join(repoRoot, 'guest/make-bundle.sh'), join(this.dir, name), ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`make-bundle.sh failed: ${r.stderr}`);
    const b = r.stdout.trim().split('\n').pop()!;
    if (edit) {
      const file = join(b, 'config.json');
      const spec = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      edit(spec);
      writeFileSync(file, JSON.stringify(spec, null, 2));
    }
    return b;
  }
  /** the kata-ts runtime log (everything the runtime wrote with --log), for failure diagnostics */
  logTail(n = 4000): string {
    return existsSync(this.log) ? readFileSync(this.log, 'utf8').slice(-n) : '(no log)';
  }
  /** entries left under a runtime's --root (absent root = nothing left) */
  leftovers(rt: Runtime): string[] {
    const root = this.roots[rt];
    return existsSync(root) ? readdirSync(root) : [];
  }
  /** A file to use as a container's stdout/stderr (pipes would be held open by detached sandbox processes). */
  outFile(name: string): { path: string; fd: number; read: () => string; close: () => void } {
    const path = join(this.dir, name);
    const fd = openSync(path, 'w+');
    return { path, fd, read: () => readFileSync(path, 'utf8'), close: () => closeSync(fd) };
  }
  cleanup(): void {
    // Best effort: remove what a failed test may have left running, then the files.
    for (const rt of RUNTIMES) {
      if (!existsSync(this.roots[rt])) continue;
      for (const id of readdirSync(this.roots[rt])) spawnSync(...cmd(this, rt, ['delete', '--force', id]), { stdio: 'ignore', timeout: 60_000 });
    }
    for (const pid of pidsMentioning(this.dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Workdir removed when the test ends; the kata-ts log tail is printed when the test failed. */
export function workdir(t: Test): Workdir {
  const w = new Workdir();
  t.teardown(() => {
    if (!t.passing()) t.comment(`kata-ts log tail:\n${w.logTail()}`);
    w.cleanup();
  });
  return w;
}

/** The argv of `kata-ts` or `runc` with the workdir's --root (and --log for kata-ts) before ARGS. */
export function cmd(w: Workdir, rt: Runtime, args: string[]): [string, string[]] {
  if (rt === 'runc') return ['runc', ['--root', w.roots.runc, ...args]];
  return [process.execPath, [cliPath, '--root', w.roots.kata, '--log', w.log, ...args]];
}

export interface CliOpts {
  input?: string;
  /** fds or 'ignore' for stdout/stderr; default: pipes that are collected */
  stdout?: number | 'ignore';
  stderr?: number | 'ignore';
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs a CLI to completion. With detached children holding its pipes, pass files as stdout/stderr. */
export function cli(w: Workdir, rt: Runtime, args: string[], o: CliOpts = {}): Promise<Result> {
  return started(w, rt, args, o).done;
}

/** Starts a CLI; `done` resolves when it exits (or is killed after timeoutMs, default 120 s). */
export function started(w: Workdir, rt: Runtime, args: string[], o: CliOpts = {}): { pid: number; done: Promise<Result> } {
  const [file, argv] = cmd(w, rt, args);
  const child = spawn(file, argv, {
    stdio: [o.input !== undefined ? 'pipe' : 'ignore', o.stdout ?? 'pipe', o.stderr ?? 'pipe'],
    env: o.env ?? process.env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  if (o.input !== undefined) child.stdin!.end(o.input);
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
  const done = new Promise<Result>((resolvePromise, reject) => {
    child.once('error', reject);
    // 'exit', not 'close': a detached sandbox process may keep inherited pipes open after the CLI exited
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // let already-buffered output arrive
      setTimeout(() => resolvePromise({ code, signal, stdout, stderr }), 50);
    });
  });
  return { pid: child.pid ?? -1, done };
}

export interface StateJson {
  ociVersion: string;
  id: string;
  status: string;
  pid: number;
  bundle: string;
  annotations?: Record<string, string>;
}

export async function stateOf(w: Workdir, rt: Runtime, id: string): Promise<StateJson | undefined> {
  const r = await cli(w, rt, ['state', id]);
  if (r.code !== 0) return undefined;
  return JSON.parse(r.stdout) as StateJson;
}

/** Polls `state` until the status is `want` (or the container is gone when want is 'gone'); returns the last status. */
export async function waitStatus(w: Workdir, rt: Runtime, id: string, want: string, timeoutMs = 60_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const s = await stateOf(w, rt, id);
    last = s?.status ?? 'gone';
    if (last === want || Date.now() > end) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Polls until `read()` contains `text`. */
export async function waitText(read: () => string, text: string, timeoutMs = 60_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (read().includes(text)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return read().includes(text);
}

/** Host processes whose command line mentions `text` (e.g. the workdir: QEMU, backends, sandbox processes). */
export function pidsMentioning(text: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (argv.includes(text)) out.push(Number(e));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** True when `text` is exactly one `kata-ts: ...` line. */
export function isOneErrorLine(text: string): boolean {
  return /^kata-ts: [^\n]+\n$/.test(text);
}

export function ensureDir(p: string): string {
  mkdirSync(p, { recursive: true });
  return p;
}

// The state store under the runtime root (default /run/kata-ts), one directory per container id:
//   <root>/<id>/state.json      the container's record (ContainerRecord) — every CLI call reads it
//   <root>/<sid>/sandbox.json   the sandbox's record (SandboxRecord), in the directory of the sandbox's first container
//   <root>/<sid>/control.sock   the sandbox process's control socket (control.ts)
//   <root>/<sid>/disk-<n>.img   the rootfs block images attached to the VM
//   <root>/<sid>/console.log    the guest console, a bounded ring with console.log.1 (console-ring.ts)
//   <root>/<sid>/sandbox.log    the sandbox process's log (unless --log names another file)
// Files are replaced atomically (write a temp file, rename) and checked field by field when read (validate.ts).
// Every file is 0600 and every directory 0700 whatever the umask (private-files.ts): the state names pids that
// `delete` signals, and the disks hold the containers' file systems.
// Liveness of recorded pids is checked against the process start time in /proc/<pid>/stat (field 22) so a
// reused pid is not mistaken for ours (process-identity.ts).

import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isValidId } from './container-id.js';
import { makePrivateDir, makePrivateDirs, writePrivate } from './private-files.js';
import { processStart } from './process-identity.js';
import { array, int, InvalidJson, nonEmptyString, object, oneOf, optional, parseJson, record, string, type Check } from './validate.js';

export { isValidId } from './container-id.js';
export { processStart } from './process-identity.js';

export const OCI_VERSION = '1.0.2';
export const DEFAULT_ROOT = '/run/kata-ts';

export type ContainerStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

export interface ProcessRef {
  pid: number;
  /** /proc/<pid>/stat starttime (clock ticks since boot), 0 when unknown */
  start: number;
}

export interface ContainerRecord {
  ociVersion: string;
  id: string;
  status: ContainerStatus;
  /** host pid of the container's stdio relay (stdio-relay-main.ts; exits when the container's init exits); 0 until known */
  pid: number;
  pidStart: number;
  bundle: string;
  annotations?: Record<string, string>;
  sandboxId: string;
  created: string;
  /** exit code once stopped */
  exitCode?: number;
  /** block slot of this container's rootfs in the sandbox VM */
  slot?: number;
}

export interface SandboxRecord {
  id: string;
  /** the detached sandbox process (its own process group: QEMU and backends are in it) */
  pid: number;
  pidStart: number;
  hypervisor: string;
  /** TMPDIR of the sandbox process (QEMU's work dir lives there) */
  tmpDir: string;
  created: string;
  /** the host cgroup directories its processes joined (linux.cgroupsPath; host/cgroup.ts), removed with it */
  cgroups?: string[];
}

const count = int(0);

export const containerRecord: Check<ContainerRecord> = object({
  ociVersion: string,
  id: nonEmptyString,
  status: oneOf('creating', 'created', 'running', 'paused', 'stopped'),
  pid: count,
  pidStart: count,
  bundle: string,
  annotations: optional(record(string)),
  sandboxId: nonEmptyString,
  created: string,
  exitCode: optional(int(0, 255)),
  slot: optional(count),
});

export const sandboxRecord: Check<SandboxRecord> = object({
  id: nonEmptyString,
  pid: int(1),
  pidStart: count,
  hypervisor: string,
  tmpDir: string,
  created: string,
  cgroups: optional(array(string)),
});

/** A state file that exists but does not hold a valid record; the message names the file and the field. */
export class BadStateFile extends Error {
  constructor(readonly path: string, detail: string) {
    super(detail);
    this.name = 'BadStateFile';
  }
}

export function containerDir(root: string, id: string): string {
  return join(root, id);
}
export function statePath(root: string, id: string): string {
  return join(root, id, 'state.json');
}
export function sandboxPath(root: string, sid: string): string {
  return join(root, sid, 'sandbox.json');
}
export function controlSocketPath(root: string, sid: string): string {
  return join(root, sid, 'control.sock');
}

function writeAtomic(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writePrivate(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, path);
}

/** The checked record in `path`; undefined when the file does not exist; BadStateFile when it is malformed. */
function loadJson<T>(path: string, c: Check<T>, what: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw new BadStateFile(path, `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    return parseJson(text, c, `${what} ${path}`);
  } catch (e) {
    if (e instanceof InvalidJson) throw new BadStateFile(path, e.message);
    throw e;
  }
}

/** Lenient: a missing, unreadable or malformed file reads as absent (listing, liveness, cleanup). */
function readLenient<T>(read: () => T | undefined): T | undefined {
  try {
    return read();
  } catch (e) {
    if (e instanceof BadStateFile) return undefined; // delete removes such a directory
    throw e;
  }
}

/**
 * The container's record; undefined when it has none. Throws BadStateFile (naming the file and the bad field)
 * when state.json is malformed or belongs to another id.
 */
export function loadContainer(root: string, id: string): ContainerRecord | undefined {
  const path = statePath(root, id);
  const r = loadJson(path, containerRecord, 'state file');
  if (r && r.id !== id) throw new BadStateFile(path, `state file ${path}: field id is ${JSON.stringify(r.id)}, not ${JSON.stringify(id)}`);
  return r;
}

/** The container's record, or undefined when it has none or a malformed one (never trusted). */
export function readContainer(root: string, id: string): ContainerRecord | undefined {
  return readLenient(() => loadContainer(root, id));
}

export function writeContainer(root: string, rec: ContainerRecord): void {
  makePrivateDirs(containerDir(root, rec.id));
  writeAtomic(statePath(root, rec.id), rec);
}

/** The sandbox's record; undefined when it has none; BadStateFile when sandbox.json is malformed. */
export function loadSandbox(root: string, sid: string): SandboxRecord | undefined {
  return loadJson(sandboxPath(root, sid), sandboxRecord, 'sandbox file');
}

/** The sandbox's record, or undefined when it has none or a malformed one. */
export function readSandbox(root: string, sid: string): SandboxRecord | undefined {
  return readLenient(() => loadSandbox(root, sid));
}

export function writeSandbox(root: string, rec: SandboxRecord): void {
  makePrivateDirs(containerDir(root, rec.id));
  writeAtomic(sandboxPath(root, rec.id), rec);
}

/**
 * Claims <root>/<id> for a new container: fails (false) when the directory exists already. mkdir is the lock:
 * two concurrent `create`s of one id cannot both win. The root is made 0700 when this creates it; an existing
 * root keeps its mode (its container directories are 0700 either way).
 */
export function claimId(root: string, id: string): boolean {
  makePrivateDirs(root);
  try {
    return makePrivateDir(containerDir(root, id), true);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** Ids with a directory under root (state.json may be missing for a half-created or crashed container). */
export function listIds(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && isValidId(d.name))
    .map((d) => d.name)
    .sort();
}

export function removeDir(root: string, id: string): void {
  rmSync(containerDir(root, id), { recursive: true, force: true });
}

/**
 * The process recorded as (pid, start) still runs (start 0: any process with that pid). For what a reader reports
 * only: a signal goes through process-identity.ts, which never accepts an unknown start.
 */
export function isAlive(pid: number, start: number): boolean {
  const s = processStart(pid);
  return s !== undefined && (start === 0 || s === start);
}

/** The status a reader should report: a running/created container whose stdio relay or sandbox is gone has stopped. */
export function effectiveStatus(rec: ContainerRecord, sandboxAlive: boolean): ContainerStatus {
  if (rec.status === 'stopped') return 'stopped';
  if (!sandboxAlive) return 'stopped';
  if ((rec.status === 'running' || rec.status === 'paused') && rec.pid > 0 && !isAlive(rec.pid, rec.pidStart)) return 'stopped';
  return rec.status;
}

export function sandboxAlive(root: string, sid: string): boolean {
  const sb = readSandbox(root, sid);
  return sb !== undefined && isAlive(sb.pid, sb.pidStart);
}

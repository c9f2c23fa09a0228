// The runtime API the OCI command line (src/cli/oci.ts) calls: create, start, state, kill, remove (delete), run,
// exec, ps, list. It holds the client side of each command: checks against the state store (state.ts), the
// bundle (bundle.ts) and the configuration (config.ts); spawning the detached sandbox process (sandbox-main.ts,
// which runs a Sandbox) for a new sandbox and a stdio relay (stdio-relay-main.ts) per process; one call per
// command to the sandbox over its control socket (control.ts); and crash recovery (reaping what a dead
// sandbox process left).
// Lifecycle per the OCI runtime spec (runtime.md): create → created, start → running, the process exits →
// stopped, delete removes it. The first container creates the sandbox; containers annotated
// io.kubernetes.cri.sandbox-id=<first id> join it. state.pid is the pid of the container's stdio relay, a host
// process that forwards the container's stdio and exits with its exit code when it stops.
// Every signal to a recorded host process (the sandbox process, its process group, a relay) goes through
// process-identity.ts, which checks the recorded start time first. A `create` given an AbortSignal (the CLI
// aborts it on SIGINT/SIGTERM/SIGHUP) tears down what it started; `delete --force` of a container still
// `creating` tears it down at once instead of asking a sandbox that may never answer.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { removeCgroups } from '../host/cgroup.js';
import { mountNamespace } from '../host/mounts.js';
import { openPty, sendConsole } from '../host/pty.js';
import { findExecutable } from '../hypervisor/parent-death.js';
import { guestImages } from './guest-images.js';
import { parseJson } from './validate.js';
import { hooksCheck, runHooks, type HookState, type Hooks } from './hooks.js';
import { appendLogRecord } from './log-record.js';
import { applyAnnotations, ConfigError, loadConfig, type HypervisorSection, type RuntimeConfig } from './config.js';
import { checkContainerId } from './container-id.js';
import { call, execResult, psResult, type ControlRequest } from './control.js';
import type { ProcessStatus } from '../agent/index.js';
import { readBundle, type Bundle, type OciProcess } from './bundle.js';
import { guestSpec, netnsPrefix, networkNamespacePath, readPodNetwork } from './pod-network.js';
import { RuntimeError } from './errors.js';
import { launchFromConfig } from './launch.js';
import { FILE_MODE, openPrivate, writePrivate } from './private-files.js';
import { processStart, signalGroup, signalProcess, type ProcessRef } from './process-identity.js';
import {
  claimId,
  containerDir,
  controlSocketPath,
  DEFAULT_ROOT,
  effectiveStatus,
  isAlive,
  listIds,
  loadContainer,
  OCI_VERSION,
  readContainer,
  readSandbox,
  removeDir,
  sandboxAlive,
  statePath,
  writeContainer,
  BadStateFile,
  type ContainerRecord,
  type ContainerStatus,
} from './state.js';
import { entryUrl } from '../contract/entry-point.js';

export { RuntimeError, type RuntimeErrorCode } from './errors.js';

export interface RuntimeOptions {
  /** state root; default /run/kata-ts */
  root: string;
  /** --config or KATA_TS_CONFIG */
  config?: string;
  hypervisor?: 'inproc' | 'qemu' | 'auto';
  log?: string;
  logFormat?: 'text' | 'json';
}

export interface OciState {
  ociVersion: string;
  id: string;
  status: ContainerStatus;
  pid: number;
  bundle: string;
  annotations?: Record<string, string>;
}

export interface StdioFds {
  stdin: number;
  stdout: number;
  stderr: number;
}

/** Annotation naming the sandbox a container joins (CRI; Kata reads the same). */
export const SANDBOX_ID_ANNOTATION = 'io.kubernetes.cri.sandbox-id';

const SANDBOX_MAIN = fileURLToPath(entryUrl('sandbox-main', new URL('./sandbox-main.js', import.meta.url)));
const RELAY_MAIN = fileURLToPath(entryUrl('stdio-relay-main', new URL('./stdio-relay-main.js', import.meta.url)));

function rootOf(o: RuntimeOptions): string {
  return o.root || DEFAULT_ROOT;
}

const checkId = checkContainerId;

function config(o: RuntimeOptions): RuntimeConfig {
  try {
    return loadConfig({ config: o.config });
  } catch (e) {
    if (e instanceof ConfigError) throw new RuntimeError('INVALID', `bad configuration: ${e.message}`);
    throw e;
  }
}

function mustRead(o: RuntimeOptions, id: string): ContainerRecord {
  checkId(id);
  let r: ContainerRecord | undefined;
  try {
    r = loadContainer(rootOf(o), id);
  } catch (e) {
    if (e instanceof BadStateFile) throw new RuntimeError('INVALID', `${e.message}: remove the container with \`kata-ts delete --force ${id}\``);
    throw e;
  }
  if (!r) throw new RuntimeError('NOT_FOUND', `container '${id}' does not exist: see \`kata-ts list\``);
  return r;
}

function ctl(o: RuntimeOptions, rec: ContainerRecord): string {
  return controlSocketPath(rootOf(o), rec.sandboxId);
}

/** `create` of `id` was interrupted (a signal to the CLI; `signal.reason` names it). */
function interrupted(id: string, signal: AbortSignal): RuntimeError {
  const why = typeof signal.reason === 'string' ? signal.reason : 'aborted';
  return new RuntimeError('INTERNAL', `create of '${id}' was interrupted (${why}): what it had started is removed; create it again`);
}

/** The first line a child writes on its readiness pipe; 'error ...' on a timeout, an early exit or an abort. */
function readLineFrom(r: Readable, timeoutMs: number, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const timer = setTimeout(() => finish(`error no answer within ${timeoutMs} ms`), timeoutMs);
    const onAbort = (): void => finish('error interrupted');
    const finish = (v: string): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      r.off('data', onData);
      r.off('end', onEnd);
      r.destroy();
      resolve(v);
    };
    const onData = (b: Buffer): void => {
      buf += b.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(buf.slice(0, nl));
    };
    const onEnd = (): void => finish(buf ? buf : 'error exited before it was ready');
    r.on('data', onData);
    r.on('end', onEnd);
    r.on('error', () => finish('error readiness pipe failed'));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** `p`, or a rejection with `err()` as soon as `signal` aborts (p goes on: the caller tears down what it started). */
function unlessAborted<T>(p: Promise<T>, signal: AbortSignal | undefined, err: () => Error): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(err());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(err());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/**
 * Kill what a dead (or hung) sandbox left: the sandbox process and its process group (QEMU, backends), each only
 * while the recorded start time says it is still ours (process-identity.ts), then its temp dir.
 */
function reapSandbox(root: string, sid: string): void {
  const sb = readSandbox(root, sid);
  if (!sb) return;
  const leader: ProcessRef = { pid: sb.pid, start: sb.pidStart };
  signalProcess(leader, 'SIGKILL');
  // the sandbox process was started detached: its pid is the process group id of everything it spawned
  signalGroup(leader, 'SIGKILL');
  // only a directory we made (mkdtemp 'kata-ts-sb-'): sandbox.json is not trusted to name anything else
  if (/\/kata-ts-sb-[A-Za-z0-9]{6}$/.test(sb.tmpDir)) rmSync(sb.tmpDir, { recursive: true, force: true });
  // its host cgroup (linux.cgroupsPath): removable once the killed processes have left it
  if (sb.cgroups) {
    let left = removeCgroups(sb.cgroups);
    for (let i = 0; i < 50 && left.length > 0; i++) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      left = removeCgroups(left);
    }
  }
}

async function waitGone(pid: number, start: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid, start)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !isAlive(pid, start);
}

/** util-linux unshare(1), which starts the sandbox process in a private mount namespace (that needs root). */
function unshareBinary(): string {
  if ((process.getuid?.() ?? 0) !== 0) {
    throw new RuntimeError('INVALID', 'shared_fs = "virtio-fs" needs root (the sandbox bind-mounts container rootfs in a mount namespace of its own): run as root or set shared_fs = "none" in configuration.toml');
  }
  const p = findExecutable('unshare');
  if (!p) throw new RuntimeError('INVALID', 'unshare(1) is not on PATH: install util-linux, or set shared_fs = "none" in configuration.toml');
  return p;
}

async function spawnSandbox(
  o: RuntimeOptions,
  root: string,
  sid: string,
  cfg: RuntimeConfig,
  hvSection: HypervisorSection,
  b: Bundle,
  signal: AbortSignal | undefined,
): Promise<void> {
  const cgroupsPath = b.cgroupsPath;
  // a pod network namespace (podman, CNI): the sandbox runs in it and the VM takes over its interface
  const netns = networkNamespacePath(b.spec);
  const network = netns !== undefined ? readPodNetwork(netns) : undefined;
  const choice = o.hypervisor ?? cfg.runtime.hypervisor;
  const { kernel, initrd } = await guestImages(hvSection, cfg.source, signal);
  // the virtio-fs share's bind mounts live in the sandbox's own mount namespace and vanish with it (shared-fs.ts)
  const nsPrefix = [...(hvSection.shared_fs === 'virtio-fs' ? [unshareBinary(), '--mount', '--propagation', 'private'] : []), ...(netns !== undefined ? netnsPrefix(netns) : [])];
  const tmp = mkdtempSync(join(tmpdir(), 'kata-ts-sb-'));
  const launch = launchFromConfig(cfg, { root, sid, hypervisor: choice, hv: hvSection, kernel, initrd, tmpDir: tmp, logFormat: o.logFormat ?? 'text', launcherMountNs: mountNamespace(), ...(cgroupsPath ? { cgroupsPath } : {}), ...(network ? { network } : {}) });

  // sandbox.log is private like the rest of the state; a --log file of the caller's is created 0600 and
  // otherwise keeps its mode
  const logFd = o.log !== undefined ? openSync(o.log, 'a', FILE_MODE) : openPrivate(join(containerDir(root, sid), 'sandbox.log'), 'a');
  let child: ChildProcess;
  try {
    const argv = [...nsPrefix, process.execPath, SANDBOX_MAIN, JSON.stringify(launch)];
    child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', logFd, logFd, 'pipe'], env: { ...process.env, TMPDIR: tmp } });
  } finally {
    closeSync(logFd);
  }
  // our child, not yet reaped: its pid and start time are its own (detached: its pid is also its process group)
  const leader: ProcessRef = { pid: child.pid ?? 0, start: child.pid !== undefined ? (processStart(child.pid) ?? 0) : 0 };
  const answer = await readLineFrom(child.stdio[3] as Readable, launch.dialTimeoutMs + 60_000, signal);
  child.unref();
  if (answer !== 'ready') {
    signalGroup(leader, 'SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
    if (signal?.aborted) throw interrupted(sid, signal);
    throw new RuntimeError('INTERNAL', `the sandbox VM did not start: ${answer.replace(/^error /, '')}`);
  }
}

interface RelayOptions {
  sock: string;
  id: string;
  exec: string;
  tty: boolean;
  stdio: StdioFds;
  detached: boolean;
  /** make the tty on its stdio its controlling terminal (a console-socket pty; detached only) */
  ctty?: boolean;
  /** with `detached`: still let the caller wait for its exit (exec --console-socket without --detach) */
  keepRef?: boolean;
  signal?: AbortSignal | undefined;
}

/** Starts the stdio relay of one process (stdio-relay-main.ts); resolves once its streams are bound. */
async function spawnRelay(s: RelayOptions): Promise<ChildProcess> {
  return relayReady(launchRelay(s, s.exec || '-'), s);
}

function launchRelay(s: Omit<RelayOptions, 'exec'>, execArg: string): ChildProcess {
  return spawn(process.execPath, [RELAY_MAIN, s.sock, s.id, execArg, s.tty ? '1' : '0', '1', s.ctty ? '1' : '0'], {
    detached: s.detached,
    // fd 3 is a socket pair (both ways): "go EXEC" to a pre-started relay, its "ready" back
    stdio: [s.stdio.stdin, s.stdio.stdout, s.stdio.stderr, 'pipe'],
  });
}

/**
 * A relay started before its process exists (create, exec): node's start-up (about a tenth of a second) overlaps
 * the sandbox's work instead of following it. It waits for `go(exec)`; `cancel()` (or this process exiting, which
 * closes its socket) ends it unused.
 */
interface PendingRelay {
  go(exec: string): Promise<ChildProcess>;
  /** kills it and waits for its exit, so no relay outlives a failed command */
  cancel(): Promise<void>;
}

function prestartRelay(s: Omit<RelayOptions, 'exec'>): PendingRelay {
  const child = launchRelay(s, '?');
  child.on('error', () => undefined); // reported by relayReady as a closed readiness socket
  return {
    go: (exec) => {
      (child.stdio[3] as Socket).write(`go ${exec || '-'}\n`);
      return relayReady(child, s);
    },
    cancel: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL'); // Node signals a child only until it has reaped it: never a reused pid
      await Promise.race([gone, new Promise<void>((resolve) => setTimeout(resolve, 5000).unref())]);
    },
  };
}

async function relayReady(child: ChildProcess, s: Omit<RelayOptions, 'exec'>): Promise<ChildProcess> {
  const answer = await readLineFrom(child.stdio[3] as Readable, 60_000, s.signal);
  if (answer !== 'ready') {
    child.kill('SIGKILL'); // Node signals a child only until it has reaped it: never a reused pid
    if (s.signal?.aborted) throw interrupted(s.id, s.signal);
    throw new RuntimeError('INTERNAL', `the stdio relay of ${s.id} failed: ${answer.replace(/^error /, '')}`);
  }
  if (s.detached && s.keepRef !== true) child.unref();
  return child;
}

/**
 * create/exec --console-socket: a host pty whose master goes to the caller's socket and whose slave is the stdio of
 * the process's relay, which forwards it to the guest pty (and the slave's size, control op `resize`). The relay
 * runs in its own session with that pty as its controlling terminal; `wait` keeps it referenced for the caller.
 */
async function consoleRelay(sock: string, id: string, exec: string, consoleSocket: string, o: { signal?: AbortSignal | undefined; wait?: boolean } = {}): Promise<ChildProcess> {
  const pty = openPty();
  try {
    try {
      sendConsole(consoleSocket, pty.master, pty.name);
    } catch (e) {
      throw new RuntimeError('INVALID', `cannot hand the terminal to --console-socket ${consoleSocket}: ${(e as Error).message}`);
    }
    return await spawnRelay({
      sock,
      id,
      exec,
      tty: true,
      ctty: true,
      stdio: { stdin: pty.slave, stdout: pty.slave, stderr: pty.slave },
      detached: true,
      keepRef: o.wait === true,
      signal: o.signal,
    });
  } finally {
    closeSync(pty.master);
    closeSync(pty.slave);
  }
}

/** What `create` and `run` take besides the id. */
export interface CreateArgs {
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  stdio: StdioFds;
  /** aborting it (the CLI does on SIGINT/SIGTERM/SIGHUP) interrupts `create`, which removes what it started */
  signal?: AbortSignal;
}

async function createInternal(o: RuntimeOptions, id: string, a: CreateArgs, detached: boolean): Promise<ChildProcess> {
  checkId(id);
  const root = rootOf(o);
  const cfg = config(o);
  const b = readBundle(a.bundle);
  if (b.terminal && a.consoleSocket === undefined && detached) {
    // runc's rule: a detached container's terminal is handed to the caller, who must say where
    throw new RuntimeError('INVALID', `${b.dir}/config.json sets process.terminal true: pass --console-socket SOCKET to receive the pty master (as with runc), or set it to false`);
  }
  const joinId = b.annotations[SANDBOX_ID_ANNOTATION];
  const joining = joinId !== undefined && joinId !== id;
  let hvSection: HypervisorSection | undefined;
  if (joining) {
    checkId(joinId);
    if (!sandboxAlive(root, joinId)) throw new RuntimeError('NOT_FOUND', `sandbox '${joinId}' (annotation ${SANDBOX_ID_ANNOTATION}) is not running: create its first container before this one`);
  } else {
    const section = (o.hypervisor ?? cfg.runtime.hypervisor) === 'inproc' ? cfg.hypervisor.inproc : cfg.hypervisor.qemu;
    try {
      hvSection = applyAnnotations(section, cfg, b.annotations);
    } catch (e) {
      throw new RuntimeError('INVALID', (e as Error).message);
    }
  }
  if (readContainer(root, id) !== undefined || !claimId(root, id)) {
    throw new RuntimeError('EXISTS', `container '${id}' already exists: delete it first (kata-ts delete ${id}) or pick another id`);
  }
  const sid = joining ? joinId : id;
  const rec: ContainerRecord = {
    ociVersion: OCI_VERSION,
    id,
    status: 'creating',
    pid: 0,
    pidStart: 0,
    bundle: b.dir,
    annotations: b.annotations,
    sandboxId: sid,
    created: new Date().toISOString(),
  };
  const signal = a.signal;
  const sock = controlSocketPath(root, sid);
  const toConsole = b.terminal && a.consoleSocket !== undefined;
  let pending: PendingRelay | undefined;
  try {
    writeContainer(root, rec);
    saveHooks(root, id, b.hooks);
    signal?.throwIfAborted();
    if (!joining) await spawnSandbox(o, root, sid, cfg, hvSection!, b, signal);
    // the init's stdio relay starts now and waits: its start-up overlaps creating the container in the guest (started
    // before the sandbox instead, it slowed the sandbox's own start on a 2-core machine more than it saved)
    if (!toConsole) pending = prestartRelay({ sock, id, tty: b.terminal, stdio: a.stdio, detached, signal });
    const req: ControlRequest = { op: 'create', id, bundle: b.dir, rootfs: b.rootfs, spec: guestSpec(b.spec), annotations: b.annotations };
    // an own sandbox is killed at once on an interruption; a joined one runs other containers, so its create
    // request is let finish and then undone below (a container it added later would come back)
    await (joining ? call(sock, req, 120_000) : unlessAborted(call(sock, req, 120_000), signal, () => interrupted(id, signal!)));
    signal?.throwIfAborted();
    // a terminal goes to --console-socket; `run` (not detached) gives the caller's own terminal, as runc run does
    const relay = toConsole ? await consoleRelay(sock, id, '', a.consoleSocket!, { signal }) : await pending!.go('');
    pending = undefined;
    signal?.throwIfAborted();
    // the container exists in the guest: the create-time hooks, with its state (a failure undoes the create)
    const hookState: HookState = { ociVersion: OCI_VERSION, id, status: 'creating', pid: relay.pid ?? 0, bundle: b.dir, annotations: b.annotations };
    for (const kind of ['prestart', 'createRuntime', 'createContainer'] as const) await runHooks(b.hooks, kind, hookState);
    if (a.pidFile) writePrivate(a.pidFile, String(relay.pid));
    return relay;
  } catch (e) {
    await pending?.cancel();
    if (joining) {
      await call(controlSocketPath(root, sid), { op: 'delete', id, force: true }, 30_000).catch(() => undefined);
    } else {
      reapSandbox(root, sid);
    }
    removeDir(root, id);
    if (signal?.aborted) throw interrupted(id, signal);
    throw e instanceof RuntimeError ? e : new RuntimeError('INTERNAL', (e as Error).message);
  }
}

export async function create(o: RuntimeOptions, id: string, a: CreateArgs): Promise<void> {
  await createInternal(o, id, a, true);
}

export async function start(o: RuntimeOptions, id: string): Promise<void> {
  const rec = mustRead(o, id);
  const st = effectiveStatus(rec, sandboxAlive(rootOf(o), rec.sandboxId));
  if (st !== 'created') throw new RuntimeError('STATE', `container '${id}' is ${st}, not created: only a created container can be started`);
  const hooks = loadHooks(rootOf(o), id);
  const before = toOci(rec, true);
  await runHooks(hooks, 'startContainer', before);
  await call(ctl(o, rec), { op: 'start', id }, 120_000);
  // runc hands poststart the state it read before starting (status created)
  await warnOnFailure(o, runHooks(hooks, 'poststart', before));
}

/** config.json's hooks as create read them, kept for start and delete (the bundle may change meanwhile). */
function hooksPath(root: string, id: string): string {
  return join(containerDir(root, id), 'hooks.json');
}

function saveHooks(root: string, id: string, hooks: Hooks | undefined): void {
  if (hooks && Object.values(hooks).some((l) => l.length > 0)) writePrivate(hooksPath(root, id), JSON.stringify(hooks));
}

function loadHooks(root: string, id: string): Hooks | undefined {
  let text: string;
  try {
    text = readFileSync(hooksPath(root, id), 'utf8');
  } catch {
    return undefined; // none
  }
  try {
    return parseJson(text, hooksCheck, hooksPath(root, id));
  } catch (e) {
    throw new RuntimeError('INVALID', `${(e as Error).message}: remove the container with \`kata-ts delete --force ${id}\``);
  }
}

/** A hook whose failure runtime-spec makes a warning (poststart, poststop): logged to --log, not thrown. */
async function warnOnFailure(o: RuntimeOptions, p: Promise<void>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (o.log !== undefined) appendLogRecord(o.log, o.logFormat ?? 'text', 'error', `warning: ${(e as Error).message}`);
  }
}

/** Synchronous work behind the async API: a throw becomes a rejection, as from an async function. */
function later<T>(fn: () => T): Promise<T> {
  return new Promise((resolve) => resolve(fn()));
}

export function state(o: RuntimeOptions, id: string): Promise<OciState> {
  return later(() => {
    const rec = mustRead(o, id);
    return toOci(rec, sandboxAlive(rootOf(o), rec.sandboxId));
  });
}

function toOci(rec: ContainerRecord, alive: boolean): OciState {
  const s: OciState = { ociVersion: rec.ociVersion, id: rec.id, status: effectiveStatus(rec, alive), pid: rec.pid, bundle: rec.bundle };
  if (rec.annotations && Object.keys(rec.annotations).length) s.annotations = rec.annotations;
  return s;
}

export async function kill(o: RuntimeOptions, id: string, signal: number, all?: boolean): Promise<void> {
  const rec = mustRead(o, id);
  // signal(7): 1..64 (SIGRTMAX)
  if (!Number.isInteger(signal) || signal < 1 || signal > 64) throw new RuntimeError('INVALID', `invalid signal ${signal}: use a number 1..64 or a name such as TERM`);
  const st = effectiveStatus(rec, sandboxAlive(rootOf(o), rec.sandboxId));
  if (st === 'creating') throw new RuntimeError('STATE', `container '${id}' is still being created: only a created or running container can be signalled; remove it with \`kata-ts delete --force ${id}\``);
  if (st !== 'created' && st !== 'running' && st !== 'paused') throw new RuntimeError('STATE', `container '${id}' is ${st}: only a created, running or paused container can be signalled`);
  await call(ctl(o, rec), { op: 'kill', id, signal, all: all ?? false }, 30_000);
}

/** `pause`: freeze every process of a running container (the guest's cgroup freezer, runc pause in the VM). */
export async function pause(o: RuntimeOptions, id: string): Promise<void> {
  const rec = mustRead(o, id);
  const st = effectiveStatus(rec, sandboxAlive(rootOf(o), rec.sandboxId));
  if (st !== 'running') throw new RuntimeError('STATE', `container '${id}' is ${st}: only a running container can be paused`);
  await call(ctl(o, rec), { op: 'pause', id }, 30_000);
}

/** `resume`: thaw a paused container. */
export async function resume(o: RuntimeOptions, id: string): Promise<void> {
  const rec = mustRead(o, id);
  const st = effectiveStatus(rec, sandboxAlive(rootOf(o), rec.sandboxId));
  if (st !== 'paused') throw new RuntimeError('STATE', `container '${id}' is ${st}, not paused: nothing to resume`);
  await call(ctl(o, rec), { op: 'resume', id }, 30_000);
}

/** `delete` */
export async function remove(o: RuntimeOptions, id: string, force?: boolean): Promise<void> {
  await deleteContainer(o, id, force);
}

/**
 * Which way `delete` went: 'leftover' (a directory without a record, removed), 'reaped' (the sandbox process was
 * gone: what it left was killed), 'sandbox' (the live sandbox deleted it, and exited after its last container),
 * 'creating' (a container still being created, torn down at once: no call to a sandbox that may never answer,
 * no wait for it to exit).
 */
export type DeletePath = 'leftover' | 'reaped' | 'sandbox' | 'creating';

/** `delete`, saying which way it went (tests observe it). */
export async function deleteContainer(o: RuntimeOptions, id: string, force?: boolean): Promise<DeletePath> {
  checkId(id);
  const root = rootOf(o);
  const rec = readContainer(root, id);
  if (!rec) {
    // a directory without a state: a create that crashed half-way; removing it is all delete can do
    if (listIds(root).includes(id)) {
      reapSandbox(root, id);
      removeDir(root, id);
      return 'leftover';
    }
    throw new RuntimeError('NOT_FOUND', `container '${id}' does not exist: see \`kata-ts list\``);
  }
  // read now: the sandbox process removes the container's directory as it deletes it
  let hooks: Hooks | undefined;
  try {
    hooks = loadHooks(root, id);
  } catch {
    hooks = undefined; // a damaged hooks.json must not stop delete
  }
  const sid = rec.sandboxId;
  const sb = readSandbox(root, sid);
  const alive = sb !== undefined && isAlive(sb.pid, sb.pidStart);
  const st = effectiveStatus(rec, alive);
  if (st === 'creating') {
    if (!force) throw new RuntimeError('STATE', `container '${id}' is still being created: wait for its create to finish, or remove it now with \`kata-ts delete --force ${id}\``);
    await removeCreating(root, rec, alive);
    return 'creating';
  }
  if (!force && st !== 'stopped' && st !== 'created') {
    throw new RuntimeError('STATE', `container '${id}' is ${st}: stop it first (kata-ts kill ${id} KILL) or use delete --force`);
  }
  if (alive) {
    try {
      await call(controlSocketPath(root, sid), { op: 'delete', id, force: force ?? false }, 60_000);
    } catch (e) {
      if (!(e instanceof RuntimeError) || e.code !== 'NOT_FOUND') {
        if (!force) throw e;
      }
    }
    // the sandbox process exits after its last container: wait so the VM is really gone when we return
    const others = listIds(root).some((other) => other !== id && readContainer(root, other)?.sandboxId === sid);
    if (!others && !(await waitGone(sb.pid, sb.pidStart, 30_000))) reapSandbox(root, sid);
  } else {
    // crash recovery: the sandbox process is gone; kill what it left (QEMU, backends) and its files
    reapSandbox(root, sid);
  }
  signalProcess({ pid: rec.pid, start: rec.pidStart }, 'SIGKILL'); // the stdio relay, if it is still itself

  if (id === sid && sandboxAlive(root, sid)) rmSync(statePath(root, sid), { force: true }); // others still run in it
  else removeDir(root, id);
  // the sandbox's directory: remove once neither its process nor a container record needs it
  if (sid !== id && readContainer(root, sid) === undefined && (!readSandbox(root, sid) || !sandboxAlive(root, sid))) {
    reapSandbox(root, sid);
    removeDir(root, sid);
  }
  await warnOnFailure(o, runHooks(hooks, 'poststop', { ...toOci(rec, false), status: 'stopped' }));
  return alive ? 'sandbox' : 'reaped';
}

/**
 * `delete --force` of a container still `creating` (its create was interrupted, or is still running): its own
 * sandbox is killed at once (it may be booting, with no control socket yet); a sandbox it was joining runs other
 * containers, so that one is only asked to drop it if it has it, without waiting for anything to exit.
 */
async function removeCreating(root: string, rec: ContainerRecord, sandboxRuns: boolean): Promise<void> {
  signalProcess({ pid: rec.pid, start: rec.pidStart }, 'SIGKILL');
  if (rec.id === rec.sandboxId) {
    reapSandbox(root, rec.id);
  } else if (sandboxRuns) {
    await call(controlSocketPath(root, rec.sandboxId), { op: 'delete', id: rec.id, force: true }, 10_000).catch(() => undefined);
  }
  removeDir(root, rec.id);
}

/** create + start + wait + delete; resolves with the container's exit code. `a.signal` interrupts the create step. */
export async function run(o: RuntimeOptions, id: string, a: { bundle: string; stdio: StdioFds; signal?: AbortSignal }): Promise<number> {
  const relay = await createInternal(o, id, a, false);
  const exited = new Promise<number>((resolve) => relay.once('exit', (code, sig) => resolve(code ?? (sig ? 128 + signalNumber(sig) : 255))));
  try {
    await start(o, id);
  } catch (e) {
    await remove(o, id, true).catch(() => undefined);
    throw e;
  }
  const code = await exited;
  await remove(o, id, true);
  return code;
}

function signalNumber(sig: NodeJS.Signals): number {
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13 };
  return table[sig] ?? 0;
}

export async function exec(
  o: RuntimeOptions,
  id: string,
  a: { args: string[]; tty: boolean; env?: string[]; cwd?: string; stdio: StdioFds; detach?: boolean; pidFile?: string; consoleSocket?: string },
): Promise<number> {
  if (a.args.length === 0) throw new RuntimeError('INVALID', 'exec needs a command: kata-ts exec ID CMD [ARGS...]');
  // runc's rules: a detached terminal goes to the caller's socket, and a socket is only for a terminal
  if (a.detach && a.tty && a.consoleSocket === undefined) throw new RuntimeError('INVALID', 'exec --detach --tty: pass --console-socket SOCKET to receive the pty master (as with runc), or drop --tty');
  if (a.consoleSocket !== undefined && !a.tty) throw new RuntimeError('INVALID', 'exec --console-socket is for a terminal: add --tty (or process.terminal in --process), or drop --console-socket');
  const rec = mustRead(o, id);
  const st = effectiveStatus(rec, sandboxAlive(rootOf(o), rec.sandboxId));
  if (st !== 'running') throw new RuntimeError('STATE', `container '${id}' is ${st}: exec needs a running container`);
  let base: OciProcess = {};
  try {
    base = readBundle(rec.bundle).process;
  } catch {
    // the bundle may be gone after create; use defaults
  }
  const proc: Record<string, unknown> = {
    terminal: a.tty,
    args: a.args,
    env: a.env ?? base.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    cwd: a.cwd ?? base.cwd ?? '/',
    user: base.user ?? { uid: 0, gid: 0 },
  };
  const sock = ctl(o, rec);
  // the relay starts while the guest starts the process (see prestartRelay)
  const pending = a.consoleSocket === undefined ? prestartRelay({ sock, id, tty: a.tty, stdio: a.stdio, detached: a.detach === true }) : undefined;
  let r: { exec: string };
  try {
    r = await call(sock, { op: 'exec', id, process: proc }, 60_000, execResult);
  } catch (e) {
    await pending?.cancel();
    throw e;
  }
  // --detach (containerd's runc shim: exec --detach --pid-file P): the process's stdio relay runs on without
  // us and exits with the process's status; its pid is the one to wait for, as create's is
  const relay = pending ? await pending.go(r.exec) : await consoleRelay(sock, id, r.exec, a.consoleSocket!, { wait: a.detach !== true });
  if (a.pidFile) writePrivate(a.pidFile, String(relay.pid));
  if (a.detach) return 0;
  return new Promise<number>((resolve) => relay.once('exit', (code, sig) => resolve(code ?? (sig ? 128 + signalNumber(sig) : 255))));
}

/** The container's processes, as the guest agent lists them (guest pids); none once its sandbox has gone. */
export async function ps(o: RuntimeOptions, id: string): Promise<ProcessStatus[]> {
  const rec = mustRead(o, id);
  if (!sandboxAlive(rootOf(o), rec.sandboxId)) return [];
  return call(ctl(o, rec), { op: 'ps', id }, 30_000, psResult);
}

export function list(o: RuntimeOptions): Promise<OciState[]> {
  return later(() => {
    const root = rootOf(o);
    const out: OciState[] = [];
    for (const id of listIds(root)) {
      const rec = readContainer(root, id);
      if (rec) out.push(toOci(rec, sandboxAlive(root, rec.sandboxId)));
    }
    return out;
  });
}

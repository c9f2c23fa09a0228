// `containerd-shim-kata-ts-v2 ... start` (containerd 1.6 runtime/v2/binary.go Start, runc's manager.Start):
// run in the new container's bundle directory, it finds the shim of the container's pod (the socket named by
// address.ts socketAddress; CRI's sandbox-id annotation groups a pod's containers) or launches it, writes the
// bundle's `address` file and prints the address. containerd reads stdout until every holder closes it, so the
// long-lived shim gets none of this process's stdio: it runs detached (its own session and process group, which
// QEMU and its helpers join), under `unshare --mount --propagation private` so that the rootfs and virtio-fs
// mounts it makes live and die with it, with stdout/stderr to its log file, and says "ready" on fd 3 once its
// socket listens.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { mountNamespace } from '../host/mounts.js';
import { findExecutable } from '../hypervisor/parent-death.js';
import { bundleAnnotations, groupOf, socketAddress, socketPath, SOCKET_DIR } from './address.js';
import { serveArgs, type ShimFlags } from './flags.js';
import { entryUrl } from '../contract/entry-point.js';

const MAIN = fileURLToPath(entryUrl('shim', new URL('./main.js', import.meta.url)));
/** env: the mount namespace `start` ran in (the sandbox's launcherMountNs: the shim's must differ, shared-fs.ts) */
export const PARENT_MNTNS_ENV = 'KATA_TS_SHIM_PARENT_MNTNS';

const READY_TIMEOUT_MS = 30_000;

/** Whether something accepts connections on the unix socket `path`. */
export function canConnect(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const timer = setTimeout(() => done(false), timeoutMs);
    const done = (v: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Writes `file` atomically (containerd's WriteAddress: a dot-file renamed into place). */
export function writeAtomic(file: string, data: string): void {
  const tmp = join(file, '..', `.${file.split('/').pop() ?? 'tmp'}`);
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, file);
}

/** Where the long-lived shim logs: $KATA_TS_SHIM_LOG_DIR/<ns>-<group>.log when set, else <bundle>/shim.log. */
export function shimLogPath(bundle: string, ns: string, group: string): string {
  const dir = process.env['KATA_TS_SHIM_LOG_DIR'];
  return dir ? join(dir, `${ns}-${group}.log`) : join(bundle, 'shim.log');
}

function firstLine(r: Readable, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const timer = setTimeout(() => finish(`error the shim did not listen within ${timeoutMs} ms`), timeoutMs);
    const finish = (v: string): void => {
      clearTimeout(timer);
      r.destroy();
      resolve(v);
    };
    r.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(buf.slice(0, nl));
    });
    r.on('end', () => finish(buf || 'error the shim exited before it listened'));
    r.on('error', () => finish('error readiness pipe failed'));
  });
}

/** The `start` action; resolves with the address to print. */
export async function startShim(f: ShimFlags): Promise<string> {
  const bundle = process.cwd();
  const annotations = bundleAnnotations(bundle);
  const group = groupOf(f.id, annotations);
  const address = socketAddress(f.address, f.namespace, group);
  const path = socketPath(address);
  if (existsSync(path)) {
    if (await canConnect(path)) {
      // a later container of the pod: its shim runs already
      writeAtomic(join(bundle, 'address'), address);
      return address;
    }
    rmSync(path, { force: true }); // a dead shim's socket
  }
  mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o711 });
  const logFd = openSync(shimLogPath(bundle, f.namespace, group), 'a', 0o600);
  const unshare = process.getuid?.() === 0 ? findExecutable('unshare') : undefined;
  const argv = [...(unshare ? [unshare, '--mount', '--propagation', 'private'] : []), process.execPath, MAIN, ...serveArgs(f)];
  let child;
  try {
    const env = { ...process.env, [PARENT_MNTNS_ENV]: mountNamespace() };
    child = spawn(argv[0]!, argv.slice(1), { cwd: bundle, detached: true, stdio: ['ignore', logFd, logFd, 'pipe'], env });
  } finally {
    closeSync(logFd);
  }
  const answer = await firstLine(child.stdio[3] as Readable, READY_TIMEOUT_MS);
  if (answer !== 'ready') {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // gone
    }
    throw new Error(`the kata-ts shim did not start: ${answer.replace(/^error /, '')}`);
  }
  child.unref();
  writeAtomic(join(bundle, 'address'), address);
  return address;
}

/** The pid in <bundle>/shim.pid, if any. */
export function readShimPid(bundle: string): number | undefined {
  try {
    const n = Number(readFileSync(join(bundle, 'shim.pid'), 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

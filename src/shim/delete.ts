// `containerd-shim-kata-ts-v2 ... -bundle DIR delete`: containerd runs it when a shim died (or its start failed)
// to clean up what the shim left (runtime/v2/binary.go Delete, shim.go cleanupAfterDeadShim). It kills the dead
// shim's process group (QEMU and helpers) when the recorded start times say the processes are still its own,
// removes its socket, its sandbox's state under the shim root (sandbox.json, console.log, disks, the share
// directory) and temp dir, and unmounts <bundle>/rootfs if this namespace has it mounted; then it prints a
// DeleteResponse (protobuf) with exit status 137 (SIGKILL) on stdout. A live shim (its socket answers) is
// left alone: only this container's leftovers go.

import { readFileSync, rmdirSync, rmSync } from 'node:fs';
import { mountsBeneath } from '../host/mounts.js';
import { signalGroup, signalProcess } from '../runtime/process-identity.js';
import { containerDir, readSandbox } from '../runtime/state.js';
import { bundleAnnotations, groupOf, shimRoot, socketAddress, socketPath } from './address.js';
import type { ShimFlags } from './flags.js';
import { codec, timestamp } from './proto.js';
import { canConnect, readShimPid, shimLogPath } from './start.js';
import { unmountRootfs } from './rootfs.js';

/** Whether /proc/<pid>/cmdline is a kata-ts shim (so a pid from a file is not some reused pid). */
function isShimProcess(pid: number): boolean {
  try {
    return /containerd-shim-kata-ts-v2|\/shim\/main\.js/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return false;
  }
}

/** Removes a state directory unless something is mounted beneath it in this namespace (never rm -r through a mount). */
function removeStateDir(dir: string, warn: (m: string) => void): void {
  const mounted = mountsBeneath(dir);
  if (mounted.length) return warn(`${dir} is not removed: still mounted at ${mounted.join(', ')}`);
  rmSync(dir, { recursive: true, force: true });
}

export async function deleteShim(f: ShimFlags, warn: (m: string) => void): Promise<Uint8Array> {
  const bundle = f.bundle || process.cwd();
  const annotations = bundleAnnotations(bundle);
  const group = groupOf(f.id, annotations);
  const address = socketAddress(f.address, f.namespace, group);
  const path = socketPath(address);
  const root = shimRoot(f.address, f.namespace);
  const shimPid = readShimPid(bundle);
  if (!(await canConnect(path))) {
    const sb = readSandbox(root, group);
    if (sb) {
      const leader = { pid: sb.pid, start: sb.pidStart };
      signalProcess(leader, 'SIGKILL');
      signalGroup(leader, 'SIGKILL'); // the shim ran detached: its pid is the group of QEMU and helpers
      if (/\/kata-ts-sb-[A-Za-z0-9]{6}$/.test(sb.tmpDir)) rmSync(sb.tmpDir, { recursive: true, force: true });
    } else if (shimPid !== undefined && isShimProcess(shimPid)) {
      try {
        process.kill(-shimPid, 'SIGKILL'); // a shim that died (or hung) before its VM booted
      } catch {
        // gone
      }
    }
    rmSync(path, { force: true });
    removeStateDir(containerDir(root, group), warn);
    if (!process.env['KATA_TS_SHIM_LOG_DIR']) rmSync(shimLogPath(bundle, f.namespace, group), { force: true });
  }
  if (group !== f.id) removeStateDir(containerDir(root, f.id), warn);
  try {
    rmdirSync(root); // once no sandbox is left in it
  } catch {
    // not empty, or never made
  }
  const left = unmountRootfs(bundle);
  if (left.length) warn(`still mounted: ${left.join(', ')}`);
  return codec('containerd.task.v2.DeleteResponse').encode({ pid: shimPid ?? 0, exit_status: 137, exited_at: timestamp(new Date()) });
}

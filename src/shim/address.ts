// Where a shim lives: its ttRPC socket (containerd 1.6 runtime/v2/shim/util_unix.go SocketAddress: a socket under
// /run/containerd/s named by the sha256 of <containerd address>/<namespace>/<group>, so that the containers of
// one pod (group = the io.kubernetes.cri.sandbox-id annotation) find the same shim), and the kata-ts state root of
// its sandboxes (one per containerd address and namespace).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** containerd's shim socket directory (defaults.DefaultStateDir + "/s"; containerd 1.6 hard-codes it) */
export const SOCKET_DIR = '/run/containerd/s';
/** where the shims keep their sandboxes' state (sandbox.json, console.log, the virtio-fs share, disks) */
export const SHIM_STATE_DIR = '/run/kata-ts/shim';

/** CRI annotations naming the pod a container belongs to (containerd's runc shim groups by the same). */
export const GROUP_ANNOTATIONS = ['io.kubernetes.cri.sandbox-id', 'io.kubernetes.cri-o.SandboxID'] as const;

/** unix:///run/containerd/s/<sha256 hex of join(containerdAddress, ns, group)> */
export function socketAddress(containerdAddress: string, ns: string, group: string): string {
  const d = createHash('sha256').update(join(containerdAddress, ns, group)).digest('hex');
  return `unix://${SOCKET_DIR}/${d}`;
}

/** The filesystem path of a unix:// address. */
export function socketPath(address: string): string {
  return address.replace(/^unix:\/\//, '');
}

/** The state root of the sandboxes of one containerd (address) and namespace. */
export function shimRoot(containerdAddress: string, ns: string): string {
  return join(SHIM_STATE_DIR, createHash('sha256').update(`${containerdAddress}\0${ns}`).digest('hex').slice(0, 16));
}

/** The annotations of a bundle's config.json ({} when it has none or cannot be read). */
export function bundleAnnotations(bundle: string): Record<string, string> {
  try {
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { annotations?: unknown };
    const a = spec.annotations;
    if (typeof a !== 'object' || a === null) return {};
    return Object.fromEntries(Object.entries(a).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

/** The sandbox (group) a container belongs to: its CRI sandbox-id annotation, else its own id. */
export function groupOf(id: string, annotations: Record<string, string>): string {
  for (const k of GROUP_ANNOTATIONS) {
    const v = annotations[k];
    if (v) return v;
  }
  return id;
}

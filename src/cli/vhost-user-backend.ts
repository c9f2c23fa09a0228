// `kata-ts vhost-user-backend`: serve one virtio device (blk, vsock, rng or fs) to a vhost-user front-end
// such as QEMU (`-chardev socket,id=c0,path=SOCK -device vhost-user-blk-device,chardev=c0`). Same device
// option names as `kata-ts boot`. Runs until SIGINT/SIGTERM; the front-end may reconnect.

import { existsSync, statSync } from 'node:fs';
import type { DeviceSpec } from '../contract/device-spec.js';
import { loadVhostUserServer } from '../hypervisor/vhost-user.js';
import { parseDiskArg } from './disk-arg.js';

/** virtio 1.2 §5.11.4: the tag is up to 36 bytes (UTF-8, NUL-padded when shorter) */
const FS_TAG_MAX = 36;
const DEFAULT_FS_TAG = 'kata-ts';

export interface VhostUserBackendCliOptions {
  device: string;
  socket: string;
  /** `PATH` or `PATH:ro` (blk) */
  disk?: string;
  /** guest CID (vsock); `--cid` is accepted as an alias */
  vsockCid?: number;
  cid?: number;
  vsockUds?: string;
  /** virtio-fs: the host directory to share, its mount tag and whether it is exported read-only */
  sharedDir?: string;
  tag?: string;
  readonly?: boolean;
  /** virtio-fs cache policy (virtiofsd's -o cache=): none, auto (default) or always */
  cache?: string;
  /** virtio-fs extended attributes (default on; `--no-xattr` answers the xattr requests ENOSYS, as virtiofsd's no_xattr) */
  xattr?: boolean;
  /** print metrics as JSON on stderr when stopping */
  json?: boolean;
}

/** The DeviceSpec the options describe; errors say which option is missing or wrong. */
export function vhostUserSpec(o: VhostUserBackendCliOptions): DeviceSpec {
  switch (o.device) {
    case 'blk': {
      if (o.disk === undefined) throw new Error('--device blk needs --disk PATH[:ro] (a raw disk image)');
      return { kind: 'blk', ...parseDiskArg(o.disk) };
    }
    case 'vsock': {
      const cid = o.vsockCid ?? o.cid;
      if (cid === undefined) throw new Error('--device vsock needs --vsock-cid N (the guest CID, 3 or more)');
      return { kind: 'vsock', cid, ...(o.vsockUds !== undefined ? { udsPath: o.vsockUds } : {}) };
    }
    case 'rng':
      return { kind: 'rng' };
    case 'fs': {
      if (o.sharedDir === undefined) throw new Error('--device fs needs --shared-dir DIR (the host directory the guest mounts)');
      if (!existsSync(o.sharedDir) || !statSync(o.sharedDir).isDirectory()) {
        throw new Error(`--shared-dir ${o.sharedDir} is not a directory: create it or name an existing one`);
      }
      const tag = o.tag ?? DEFAULT_FS_TAG;
      if (tag === '' || Buffer.byteLength(tag) > FS_TAG_MAX) throw new Error(`--tag must be 1 to ${String(FS_TAG_MAX)} bytes (got '${tag.slice(0, 64)}')`);
      const cache = o.cache ?? 'auto';
      if (cache !== 'none' && cache !== 'auto' && cache !== 'always') throw new Error(`--cache must be none, auto or always (got '${cache.slice(0, 64)}')`);
      return { kind: 'fs', sharedDir: o.sharedDir, tag, readOnly: o.readonly === true, cache, xattr: o.xattr !== false };
    }
    default:
      throw new Error(`--device ${o.device}: expected blk, vsock, rng or fs`);
  }
}

export async function vhostUserBackendCommand(o: VhostUserBackendCliOptions): Promise<number> {
  const spec = vhostUserSpec(o);
  const startVhostUserBackend = await loadVhostUserServer();
  const backend = await startVhostUserBackend({
    spec,
    socketPath: o.socket,
    log: (level, msg) => process.stderr.write(`kata-ts: ${level}: ${msg}\n`),
  });
  process.stderr.write(`kata-ts: serving virtio-${spec.kind} over vhost-user on ${o.socket}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  const metrics = backend.metrics();
  await backend.close();
  if (o.json) process.stderr.write(`${JSON.stringify(metrics)}\n`);
  return 0;
}

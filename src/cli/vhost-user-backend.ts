// `kata-ts vhost-user-backend`: serve one virtio device (blk, vsock or rng) to a vhost-user front-end
// such as QEMU (`-chardev socket,id=c0,path=SOCK -device vhost-user-blk-device,chardev=c0`). Same device
// option names as `kata-ts boot`. Runs until SIGINT/SIGTERM; the front-end may reconnect.

import type { DeviceSpec } from '../contract/device-spec.js';
import { loadVhostUserServer } from '../hypervisor/vhost-user.js';
import { parseDiskArg } from './disk-arg.js';

export interface VhostUserBackendCliOptions {
  device: string;
  socket: string;
  /** `PATH` or `PATH:ro` (blk) */
  disk?: string;
  /** guest CID (vsock); `--cid` is accepted as an alias */
  vsockCid?: number;
  cid?: number;
  vsockUds?: string;
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
    default:
      throw new Error(`--device ${o.device}: expected blk, vsock or rng`);
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

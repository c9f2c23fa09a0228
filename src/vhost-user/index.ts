// The vhost-user back-end as the rest of kata-ts uses it (the qemu Hypervisor backend, `kata-ts
// vhost-user-backend`): one device from a DeviceSpec, served on a unix socket path. The device code and the
// queue code are those of the in-process VMM; only the transport differs.

import { loadNative, type NativeAddon } from '../kvm/native.js';
import { createDevice } from '../virtio/registry.js';
import type { VirtioDevice } from '../virtio/device.js';
import { InProcessVsockHost, type VsockHost } from '../virtio/vsock-host/host.js';
import { serveHybridVsock, type HybridVsockServer } from '../virtio/vsock-host/hybrid.js';
import { VsockDevice } from '../virtio/vsock/device.js';
import { VhostUserServer, type ServerIo } from './server.js';
import type { VhostLog } from './session.js';
import type { DeviceSpec } from '../contract/device-spec.js';

export { VhostUserServer } from './server.js';
export { VhostUserSession, ringProfile } from './session.js';
export * from './protocol.js';

export interface VhostUserBackendOptions {
  spec: DeviceSpec;
  socketPath: string;
  /** log lines (default: none) */
  log?: VhostLog;
  /** the addon (tests inject it; default: the built one) */
  native?: NativeAddon;
}

export interface VhostUserBackend {
  readonly socketPath: string;
  readonly server: VhostUserServer;
  /** stop serving, reset the device, release its backend (image file, vsock host), remove the socket */
  close(): Promise<void>;
  /** server, session (`session.*`) and device (`device.*`) counters */
  metrics(): Record<string, number>;
  /** for vsock: the host side (connect()/listen() streams to the guest), in this process */
  vsock?: VsockHost;
}

export class UnsupportedVhostUserDevice extends Error {
  override readonly name = 'UnsupportedVhostUserDevice';
}

/** Serve one device over vhost-user on `socketPath` (on this thread's event loop). */
export async function startVhostUserBackend(o: VhostUserBackendOptions): Promise<VhostUserBackend> {
  const native = o.native ?? loadNative();
  const io: ServerIo = native;
  let device: VirtioDevice;
  let vsock: InProcessVsockHost | undefined;
  let hybrid: HybridVsockServer | undefined;
  switch (o.spec.kind) {
    case 'vsock':
      vsock = new InProcessVsockHost();
      device = new VsockDevice({ cid: o.spec.cid }, vsock.backend);
      if (o.spec.udsPath !== undefined) hybrid = await serveHybridVsock(vsock, o.spec.udsPath);
      break;
    case 'blk':
    case 'rng':
    case 'fs':
    case 'net':
      device = createDevice(o.spec);
      break;
    default:
      throw new UnsupportedVhostUserDevice(`vhost-user serves blk, vsock, rng, fs and net devices, not '${o.spec.kind}'`);
  }
  let server: VhostUserServer;
  try {
    server = VhostUserServer.listen(o.socketPath, device, io, o.log);
  } catch (e) {
    await hybrid?.close();
    vsock?.close();
    releaseDevice(device);
    throw e;
  }
  let closed = false;
  return {
    socketPath: o.socketPath,
    server,
    ...(vsock !== undefined ? { vsock } : {}),
    metrics: () => server.metrics(),
    async close() {
      if (closed) return;
      closed = true;
      server.close();
      await hybrid?.close();
      vsock?.close();
      releaseDevice(device);
    },
  };
}

/** Devices that hold host resources expose close() (BlockDevice: the image fd). */
function releaseDevice(d: VirtioDevice): void {
  const c = (d as VirtioDevice & { close?: () => void }).close;
  if (typeof c === 'function') c.call(d);
}

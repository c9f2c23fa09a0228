// The door to the vhost-user device server (src/vhost-user) for everything above the hypervisor layer: the
// qemu backend attaches its devices through it, and `kata-ts vhost-user-backend` serves one device with it.
// The server is loaded on first use: a VM without devices, and every other command, starts without it.

import type { DeviceSpec } from '../contract/device-spec.js';
import type { VsockPort } from '../contract/vsock-port.js';

/** A running vhost-user backend serving one device. */
export interface VhostUserBackendHandle {
  close(): Promise<void>;
  metrics(): Record<string, number>;
  /** the host side of a vsock device */
  vsock?: VsockPort;
}

export interface VhostUserBackendRequest {
  spec: DeviceSpec;
  /** unix socket to listen on; the front end (QEMU) connects to it */
  socketPath: string;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export type StartVhostUserBackend = (o: VhostUserBackendRequest) => Promise<VhostUserBackendHandle>;

/** src/vhost-user's startVhostUserBackend, loaded lazily. */
export async function loadVhostUserServer(): Promise<StartVhostUserBackend> {
  const { startVhostUserBackend } = await import('../vhost-user/index.js');
  return startVhostUserBackend;
}

// A virtio device described as plain data (structured-cloneable: a spec travels to a device worker thread
// or to a vhost-user backend process). Callers above the hypervisor name devices only by spec; the device
// classes that a spec turns into live in src/virtio (registry.ts) and are never seen above the VMM.

export type DeviceSpec =
  | { kind: 'rng' }
  | { kind: 'blk'; path: string; readOnly: boolean; id?: string }
  | { kind: 'vsock'; cid: number; udsPath?: string }
  | { kind: 'net'; tap: string; mac?: string }
  /** a host directory shared over virtio-fs; the guest mounts it with `mount -t virtiofs TAG DIR` */
  | { kind: 'fs'; sharedDir: string; tag: string; readOnly?: boolean; cache?: 'none' | 'auto' | 'always'; xattr?: boolean }
  /** a device class from any ES module (tests, out-of-tree devices): `new (await import(module))[exportName](options)` */
  | { kind: 'module'; module: string; exportName: string; options?: unknown };

export type DeviceKind = DeviceSpec['kind'];

export const DEVICE_KINDS: readonly DeviceKind[] = ['rng', 'blk', 'vsock', 'net', 'fs', 'module'];

export class UnknownDeviceKind extends Error {
  constructor(kind: string) {
    super(`unknown virtio device kind '${kind}': expected ${DEVICE_KINDS.join(', ')}`);
    this.name = 'UnknownDeviceKind';
  }
}

/** A short name for logs and bus entries: "virtio-blk", "virtio-rng", ... */
export function deviceName(spec: DeviceSpec): string {
  return spec.kind === 'module' ? `virtio-${spec.exportName}` : `virtio-${spec.kind}`;
}

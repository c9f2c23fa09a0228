// The device factory: a DeviceSpec (plain data, structured-cloneable: it travels to the device worker) in,
// a VirtioDevice out. Runs on the device's worker thread, so backends (files, taps) are opened there.

import type { MessagePort } from 'node:worker_threads';
import { UnknownDeviceKind, type DeviceSpec } from '../contract/device-spec.js';
import { BlockDevice } from './blk/device.js';
import type { VirtioDevice } from './device.js';
import { FsDevice } from './fs/device.js';
import { TapBackend } from './net/backend.js';
import { NetDevice } from './net/device.js';
import { RngDevice } from './rng/device.js';
import { NullVsockBackend, portVsockBackend } from './vsock/backend.js';
import { VsockDevice } from './vsock/device.js';

/** What the device worker hands a device besides its spec. */
export interface DeviceContext {
  /** the worker's end of a MessageChannel whose other end the VM owner holds (host-side APIs, e.g. vsock streams) */
  hostPort?: MessagePort;
}

export class DeviceNotAvailable extends Error {
  constructor(kind: string, why: string) {
    super(`virtio-${kind} is not available: ${why}`);
    this.name = 'DeviceNotAvailable';
  }
}

/** Build the device a spec describes (built-in kinds only; see instantiateDevice for 'module'). */
export function createDevice(spec: DeviceSpec, ctx: DeviceContext = {}): VirtioDevice {
  switch (spec.kind) {
    case 'rng':
      return new RngDevice();
    case 'blk':
      return new BlockDevice({ path: spec.path, readOnly: spec.readOnly, ...(spec.id !== undefined ? { id: spec.id } : {}) });
    case 'vsock':
      // the host side (VsockHost streams, hybrid unix socket) lives with the VM owner, across ctx.hostPort
      return new VsockDevice({ cid: spec.cid }, ctx.hostPort ? portVsockBackend(ctx.hostPort) : new NullVsockBackend());
    case 'net':
      return new NetDevice(spec.mac !== undefined ? { mac: spec.mac } : {}, TapBackend.open(spec.tap));
    case 'fs':
      return new FsDevice({
        sharedDir: spec.sharedDir,
        tag: spec.tag,
        ...(spec.readOnly !== undefined ? { readOnly: spec.readOnly } : {}),
        ...(spec.cache !== undefined ? { cache: spec.cache } : {}),
        ...(spec.xattr !== undefined ? { xattr: spec.xattr } : {}),
      });
    case 'module':
      throw new DeviceNotAvailable(spec.kind, "'module' devices load asynchronously: use instantiateDevice()");
    default:
      throw new UnknownDeviceKind((spec as { kind: string }).kind);
  }
}

type DeviceClass = new (options: unknown, ctx: DeviceContext) => VirtioDevice;

/** Any spec, 'module' included. */
export async function instantiateDevice(spec: DeviceSpec, ctx: DeviceContext = {}): Promise<VirtioDevice> {
  if (spec.kind !== 'module') return createDevice(spec, ctx);
  const mod = (await import(spec.module)) as Record<string, unknown>;
  const cls = mod[spec.exportName];
  if (typeof cls !== 'function') {
    throw new DeviceNotAvailable('module', `${spec.module} has no export '${spec.exportName}' that is a class`);
  }
  return new (cls as DeviceClass)(spec.options, ctx);
}

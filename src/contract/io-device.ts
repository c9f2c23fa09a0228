// What a device on a vCPU's I/O bus implements (port I/O or MMIO). Accesses arrive with the offset from the
// device's base and a view of the kvm_run data bytes (length 1, 2 or 4 for port I/O; up to 8 for MMIO).
// The legacy devices (src/vmm/devices) and the virtio-mmio transport (src/virtio/mmio) both implement it.

import type { VmExitReason } from './exit-reason.js';

export interface IoDevice {
  read(offset: number, data: Uint8Array): void;
  /** Returns a stop reason when the write ends the VM (reset, debug exit). */
  write(offset: number, data: Uint8Array): VmExitReason | undefined;
}

/** Little-endian value of an access of 1..8 bytes (numbers beyond 2^53 are not used by these devices). */
export function accessValue(data: Uint8Array): number {
  let v = 0;
  for (let i = Math.min(data.length, 4) - 1; i >= 0; i--) v = v * 256 + data[i]!;
  return v;
}

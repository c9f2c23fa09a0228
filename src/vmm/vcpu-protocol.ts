// Messages from the VM owner to a pooled vCPU worker thread.

import type { MessagePort } from 'node:worker_threads';
import type { VirtioMmioSlot } from './device-manager.js';

export interface VcpuRunRequest {
  type: 'run';
  vcpuId: number;
  vcpuFd: number;
  /** the kvm_run page mapping, wrapped by the worker */
  runAddr: bigint;
  runSize: number;
  /** Int32 control words (events.ts Control) */
  control: SharedArrayBuffer;
  serial: SharedArrayBuffer;
  serialIrqFd: number;
  debugPorts: boolean;
  /** virtio-mmio transports to map on the MMIO bus (src/vmm/device-manager.ts) */
  virtio: VirtioMmioSlot[];
  /** where the worker posts VcpuEvents for this VM */
  port: MessagePort;
}

/** Posted on the worker's parentPort. */
export type PoolMessage = { type: 'idle' };

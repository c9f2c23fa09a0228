// Messages from the VM owner to a pooled vCPU worker thread.

import type { MessagePort } from 'node:worker_threads';

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
  /** where the worker posts VcpuEvents for this VM */
  port: MessagePort;
}

/** Posted on the worker's parentPort. */
export type PoolMessage = { type: 'idle' };

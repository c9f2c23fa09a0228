// Messages between the VM owner (src/vmm/device-manager.ts) and a device worker (device-worker.ts).

import type { MessagePort } from 'node:worker_threads';
import type { DeviceSpec } from '../../contract/device-spec.js';

/** One guest RAM region: a live addon mapping (wrapped by the worker), or a SharedArrayBuffer in tests. */
export interface WorkerRegion {
  base: number;
  size: number;
  /** start of the addon mapping behind the region (native.wrapMapping) */
  addr?: bigint;
  /** test memory instead of a mapping */
  buffer?: SharedArrayBuffer;
}

/** workerData of a device worker. */
export interface DeviceWorkerInit {
  spec: DeviceSpec;
  regions: WorkerRegion[];
  /** the TransportState SharedArrayBuffer */
  state: SharedArrayBuffer;
  /** eventfd the vCPUs write on status/config changes */
  controlFd: number;
  /** eventfd registered as the device's irqfd */
  irqFd: number;
  /** the worker's end of the host channel (DeviceContext.hostPort); transferred */
  hostPort?: MessagePort;
}

/** Owner -> worker. */
export type DeviceWorkerCommand =
  /** the queue eventfds (ioeventfds on QueueNotify with datamatch = index), one per queue, in order */
  | { type: 'start'; queueFds: number[] }
  /** unwatch every fd, reset the device, answer 'stopped' */
  | { type: 'stop' }
  /** answer 'metrics' */
  | { type: 'metrics' };

/** Worker -> owner. */
export type DeviceWorkerEvent =
  | { type: 'ready'; queues: number; deviceType: number }
  | { type: 'failed'; message: string }
  | { type: 'log'; level: 'warn' | 'error'; message: string }
  | { type: 'metrics'; device: Record<string, number>; transport: Record<string, number> }
  | { type: 'stopped' };

// Entry point of a pooled vCPU worker thread. It idles until the owner hands it a vCPU, runs that vCPU
// until it stops, then waits for the next one, so a warm process starts a VM without starting a thread.

import { parentPort } from 'node:worker_threads';
import { loadNative } from '../kvm/native.js';
import type { VcpuEvent } from './events.js';
import { runVcpu } from './vcpu-loop.js';
import type { PoolMessage, VcpuRunRequest } from './vcpu-protocol.js';

const native = loadNative();
if (!parentPort) throw new Error('vcpu-worker must run as a worker thread');
const parent = parentPort;

parent.on('message', (msg: VcpuRunRequest) => {
  if (msg.type !== 'run') return;
  try {
    runVcpu(native, msg);
  } catch (e) {
    // the loop could not even start (e.g. the run page could not be wrapped): tell the owner, never hang it
    const post = (ev: VcpuEvent): void => msg.port.postMessage(ev);
    post({ type: 'stop-request', vcpuId: msg.vcpuId, reason: { kind: 'error', message: (e as Error).message, vcpu: msg.vcpuId } });
    post({ type: 'stopped', vcpuId: msg.vcpuId, exits: 0 });
  }
  // the owner gives this worker back to its pool when it sees 'stopped'
});
parent.postMessage({ type: 'idle' } satisfies PoolMessage);

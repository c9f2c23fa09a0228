// Messages between the VM owner (main thread) and its vCPU workers.

import type { VmExitReason } from '../contract/exit-reason.js';

/** Posted by a vCPU worker to its VM's port. */
export type VcpuEvent =
  | { type: 'ready'; vcpuId: number; thread: bigint }
  | { type: 'console'; bytes: Uint8Array }
  | { type: 'debugcon'; bytes: Uint8Array }
  | { type: 'test-value'; value: number }
  | { type: 'boot-timer'; monotonicNs: bigint; processCpuUs: number }
  | { type: 'stop-request'; vcpuId: number; reason: VmExitReason }
  | { type: 'paused'; vcpuId: number }
  | { type: 'stopped'; vcpuId: number; exits: number };

/** Control word values in the per-vCPU control SharedArrayBuffer (index CONTROL_STATE). */
export const enum Control {
  Idle = 0,
  Run = 1,
  Pause = 2,
  Stop = 3,
}
export const CONTROL_STATE = 0;
/** Int32 slots in a control SharedArrayBuffer. */
export const CONTROL_WORDS = 4;
/**
 * BigInt64 slot (bytes 8..15) where the worker publishes its pthread handle before it first looks at the
 * control word. The owner stores the control word, then reads this slot: either it sees the thread (and
 * signals it) or the worker has yet to read the control word (and will see the new value). Atomics are
 * sequentially consistent, so no kick is lost.
 */
export const CONTROL_THREAD_SLOT = 1;

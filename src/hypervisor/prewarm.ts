// Start the in-process backend's vCPU worker threads ahead of need. A Node worker costs tens of ms to start,
// more than the rest of VM creation, so a latency-sensitive caller (`kata-ts boot`) starts them before it
// even parses its arguments; they go to the pool the inproc backend takes its vCPU threads from.
// Kept apart from inproc.ts so that calling it loads only the pool, not the VMM.

import { defaultVcpuPool } from '../vmm/vcpu-pool.js';

export function prewarmVcpuThreads(count: number): void {
  defaultVcpuPool.prewarm(count).catch(() => undefined);
}

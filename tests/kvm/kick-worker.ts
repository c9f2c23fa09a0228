// Worker for kvm-kick.test.ts: runs one vCPU (created by the main thread) until KVM_RUN returns,
// the way src/vmm's vCPU workers do: install the kick handler, report pthread_self, then run.
import { parentPort, workerData } from 'node:worker_threads';

import { loadNative } from '../../src/kvm/native.js';
import { VcpuFd } from '../../src/kvm/vcpu-fd.js';

interface KickWorkerData {
  vcpuFd: number;
  mmapSize: number;
  signo: number;
}

const data = workerData as KickWorkerData;
const native = loadNative();
native.installKickHandler(data.signo);
const vcpu = VcpuFd.fromFd(data.vcpuFd, data.mmapSize, native);
parentPort?.postMessage({ type: 'ready', thread: native.threadSelf() });
const rc = vcpu.run();
parentPort?.postMessage({ type: 'returned', rc, rip: vcpu.getRegs().rip });

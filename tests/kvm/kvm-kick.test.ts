// DESIGN decision 4: a vCPU thread blocked in KVM_RUN is kicked by a real-time signal whose no-op
// handler the addon installed without SA_RESTART, so KVM_RUN returns EINTR. The guest spins forever
// (`jmp $`), so only the kick can bring the worker back.
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';

import { Kvm, kvmAvailable } from '../../src/kvm/kvm.js';
import { loadNative } from '../../src/kvm/native.js';
import { setImmediateExit } from '../../src/kvm/run.js';

const EINTR = 4;
const CODE_ADDR = 0x1000;

interface Returned {
  type: 'returned';
  rc: number;
  rip: bigint;
}

const avail = kvmAvailable();
if (!avail.ok) {
  t.plan(0, `KVM unavailable: ${avail.reason}`);
} else {
  t.test('a signal kick interrupts KVM_RUN on a worker thread', async (t) => {
    const native = loadNative();
    const kvm = Kvm.open(native);
    const vm = kvm.createVm();
    const mem = native.mmapAnonymous(1 << 20, false);
    new Uint8Array(mem.buffer).set([0xeb, 0xfe], CODE_ADDR); // jmp $
    vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, size: 1 << 20, userspaceAddr: mem.addr });
    const vcpu = vm.createVcpu(0);
    const sregs = vcpu.getSregs();
    vcpu.setSregs({ ...sregs, cs: { ...sregs.cs, base: 0n, selector: 0 } });
    vcpu.setRegs({ ...vcpu.getRegs(), rip: BigInt(CODE_ADDR), rflags: 2n });
    const run = vcpu.runView();
    const signo = native.sigrtmin() + 2;

    const worker = new Worker(new URL('./kick-worker.js', import.meta.url), {
      workerData: { vcpuFd: vcpu.fd, mmapSize: vcpu.mmapSize, signo },
    });
    t.teardown(async () => {
      await worker.terminate();
      vcpu.close();
      vm.close();
      native.munmap(mem.addr);
      kvm.close();
    });
    let thread: bigint | undefined;
    let returned: Returned | undefined;
    let failure: unknown;
    worker.on('message', (m: { type: 'ready'; thread: bigint } | Returned) => {
      if (m.type === 'ready') thread = m.thread;
      else returned = m;
    });
    worker.on('error', (e) => {
      failure = e;
    });
    while (thread === undefined && failure === undefined) await sleep(10);
    t.equal(failure, undefined, 'the worker started');
    if (thread === undefined) return;

    // Signal only (no immediate_exit): re-send until KVM_RUN returns, since a kick that lands before
    // the worker enters KVM_RUN is consumed by the no-op handler.
    let kicks = 0;
    while (returned === undefined && kicks < 100) {
      await sleep(50);
      native.threadKill(thread, signo);
      kicks++;
    }
    if (returned === undefined) {
      // Unstick the worker so the process can end, and fail.
      setImmediateExit(run, true);
      native.threadKill(thread, signo);
      while (returned === undefined) await sleep(10);
      t.fail(`100 signal kicks did not interrupt KVM_RUN`);
      return;
    }
    t.equal(returned.rc, EINTR, 'KVM_RUN returned EINTR');
    t.equal(returned.rip, BigInt(CODE_ADDR), 'the guest was still spinning on its jmp $');
    t.ok(kicks >= 1, `interrupted after ${kicks} kick(s)`);
  });
}

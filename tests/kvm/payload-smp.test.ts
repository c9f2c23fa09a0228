// The BSP wakes the second vCPU with INIT + SIPI through the in-kernel LAPIC (tests/payloads/smp.S).
import t from 'tap';
import { describeRun, EXIT_OK, exceptionIn, kvmSkipReason, runPayload } from './payload-harness.js';

const AP_TAG = 0x41500000;
const BSP_TAG = 0x42530000;
const EXIT_NO_AP = 0x20;

const skip = kvmSkipReason();
if (skip !== undefined) {
  t.plan(0, skip);
} else {
  t.test('smp: INIT + SIPI starts vCPU 1 in a real-mode trampoline', async (t) => {
    const run = await runPayload('smp', { vcpus: 2 });
    const exc = exceptionIn(run.vm.testValues);
    t.equal(exc, undefined, `no CPU exception on the BSP (${exc ? `vector ${String(exc.vector)} at 0x${exc.eip.toString(16)}` : 'none'})`);
    t.not(run.exit.kind === 'debug-exit' ? run.exit.status : -1, EXIT_NO_AP, 'the AP set its flag before the BSP gave up');
    t.same(run.exit, { kind: 'debug-exit', status: EXIT_OK }, `BSP ended the VM: ${describeRun(run)}`);
    const ap = run.vm.testValues.filter((v) => (v & 0xffff0000) === AP_TAG).map((v) => v & 0xffff);
    const bsp = run.vm.testValues.filter((v) => (v & 0xffff0000) === BSP_TAG).map((v) => v & 0xffff);
    t.same(bsp, [0], 'the BSP reported APIC id 0');
    t.same(ap, [1], 'the AP reported APIC id 1');
  });
}

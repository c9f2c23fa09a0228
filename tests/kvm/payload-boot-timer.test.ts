// The first write of the magic byte 123 to port 0x440 is timestamped (tests/payloads/boot-timer.S).
import t from 'tap';
import { describeRun, EXIT_OK, kvmSkipReason, runPayload } from './payload-harness.js';

const skip = kvmSkipReason();
if (skip !== undefined) {
  t.plan(0, skip);
} else {
  t.test('boot-timer: the VMM records the boot-timer write', async (t) => {
    const before = process.hrtime.bigint();
    const run = await runPayload('boot-timer');
    t.same(run.exit, { kind: 'debug-exit', status: EXIT_OK }, `payload ended: ${describeRun(run)}`);
    const bt = run.vm.bootTimer;
    t.ok(bt, 'bootTimer is defined after the guest wrote 123 to 0x440');
    if (bt === undefined) return;
    t.ok(bt.sinceCreateNs > 0n, 'sinceCreateNs > 0');
    t.ok(bt.monotonicNs > before, 'monotonicNs is on the host CLOCK_MONOTONIC, after the test started');
    t.ok(bt.monotonicNs < process.hrtime.bigint(), 'monotonicNs is not in the future');
    t.comment(`boot timer: ${(Number(bt.sinceCreateNs) / 1e6).toFixed(3)} ms since createVm, process CPU ${String(bt.processCpuUs)} us`);
  });
}

// The boot benchmark's guest (tests/payloads/bench.S): "B\n" on COM1 and a boot-timer write, then exit.
import t from 'tap';
import { describeRun, EXIT_OK, kvmSkipReason, runPayload } from './payload-harness.js';

const skip = kvmSkipReason();
if (skip !== undefined) {
  t.plan(0, skip);
} else {
  t.test('bench: console byte and boot timer', async (t) => {
    const before = process.hrtime.bigint();
    const run = await runPayload('bench');
    const after = process.hrtime.bigint();
    t.same(run.exit, { kind: 'debug-exit', status: EXIT_OK }, `payload ended: ${describeRun(run)}`);
    t.equal(run.vm.consoleText, 'B\n', 'raw THR writes reach the console without UART setup');
    const bt = run.vm.bootTimer;
    t.ok(bt !== undefined, 'boot timer recorded');
    if (bt) {
      // the write happened during this run, on the same CLOCK_MONOTONIC the test reads, after VM creation began
      t.ok(bt.monotonicNs > before && bt.monotonicNs < after, 'the boot-timer timestamp falls inside the run');
      t.ok(bt.sinceCreateNs > 0n && bt.sinceCreateNs < after - before, 'time since createVm() is positive and within the run');
      t.ok(bt.processCpuUs > 0, 'the process CPU time at the write is recorded');
    }
  });
}

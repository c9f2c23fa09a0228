// The boot benchmark's guest (tests/payloads/bench.S): "B\n" on COM1 and a boot-timer write, then exit.
import t from 'tap';
import { describeRun, EXIT_OK, kvmSkipReason, runPayload } from './payload-harness.js';

const skip = kvmSkipReason();
if (skip !== undefined) {
  t.plan(0, skip);
} else {
  t.test('bench: console byte and boot timer', async (t) => {
    const run = await runPayload('bench');
    t.same(run.exit, { kind: 'debug-exit', status: EXIT_OK }, `payload ended: ${describeRun(run)}`);
    t.equal(run.vm.consoleText, 'B\n', 'raw THR writes reach the console without UART setup');
    t.ok(run.vm.bootTimer !== undefined, 'boot timer recorded');
  });
}

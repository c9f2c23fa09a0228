// i8042 command 0xFE on port 0x64 resets the machine: the VM ends with a 'reset' exit (tests/payloads/reset.S).
import t from 'tap';
import { describeRun, kvmSkipReason, runPayload } from './payload-harness.js';

const skip = kvmSkipReason();
if (skip !== undefined) {
  t.plan(0, skip);
} else {
  t.test('reset: i8042 0xFE ends the VM with a reset exit', async (t) => {
    const run = await runPayload('reset');
    t.same(run.exit, { kind: 'reset' }, `exit kind is reset (a debug-exit 0x7f means the write was ignored): ${describeRun(run)}`);
  });
}

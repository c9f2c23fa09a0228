// A guest programs the 8250 and prints through COM1, polling LSR.THRE (tests/payloads/uart.S).
import t from 'tap';
import { describeRun, EXIT_OK, kvmSkipReason, runPayload } from './payload-harness.js';

const skip = kvmSkipReason();
if (skip !== undefined) {
  t.plan(0, skip);
} else {
  t.test('uart: polled THR output reaches the console sink', async (t) => {
    const chunks: Uint8Array[] = [];
    const run = await runPayload('uart', { console: (b) => chunks.push(Uint8Array.from(b)) });
    t.same(run.exit, { kind: 'debug-exit', status: EXIT_OK }, `LSR.THRE came up and the payload ended: ${describeRun(run)}`);
    t.equal(run.vm.consoleText, 'Hello from the UART\n', 'consoleText holds exactly the message');
    t.equal(Buffer.concat(chunks).toString('latin1'), 'Hello from the UART\n', 'the console callback got the same bytes');
  });
}

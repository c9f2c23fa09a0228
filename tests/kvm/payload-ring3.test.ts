// Ring 0 -> ring 3 via iret with a TSS, a tight loop in ring 3, I/O from ring 3 with IOPL=3
// (tests/payloads/ring3.S; ring3-paging.S is the same with 32-bit PSE paging on).
import t from 'tap';
import { describeRun, EXIT_OK, exceptionIn, kvmSkipReason, runPayload } from './payload-harness.js';

const LOOP_DONE_MARKER = 0x600df00d;

const skip = kvmSkipReason();
if (skip !== undefined) {
  t.plan(0, skip);
} else {
  for (const name of ['ring3', 'ring3-paging'] as const) {
    t.test(`${name}: runs a loop in ring 3 and reports from there`, async (t) => {
      const run = await runPayload(name);
      const exc = exceptionIn(run.vm.testValues);
      t.equal(exc, undefined, `no CPU exception (${exc ? `vector ${String(exc.vector)} at eip 0x${exc.eip.toString(16)}` : 'none'})`);
      t.same(run.exit, { kind: 'debug-exit', status: EXIT_OK }, `exit from ring 3: ${describeRun(run)}`);
      const [cpl, marker, iterations, tscLo, tscHi] = run.vm.testValues;
      t.equal(cpl, 3, 'the loop ran at CPL 3');
      t.equal(marker, LOOP_DONE_MARKER, 'the loop-done marker arrived');
      if (iterations !== undefined && tscLo !== undefined && tscHi !== undefined) {
        const tsc = tscLo + tscHi * 2 ** 32;
        // Informational only: never asserted.
        t.comment(`${name}: ${String(iterations)} iterations, ${String(tsc)} TSC ticks (${(tsc / iterations).toFixed(2)} ticks/iter), ` +
          `whole VM ${run.wallMs.toFixed(1)} ms => >= ${(iterations / (run.wallMs / 1e3) / 1e6).toFixed(1)} M iter/s`);
      }
    });
  }
}

// Ring 0 -> ring 3 with a TSS, a tight loop in ring 3, I/O from ring 3 with IOPL=3.
// tests/payloads/ring3.S does it in long mode (works on the software KVM kvm_pvm and on hardware);
// ring3-prot32.S in 32-bit protected mode with paging off, which kvm_pvm cannot run (see its header),
// so that variant runs only where KVM is hardware virtualization.
import t from 'tap';
import { existsSync } from 'node:fs';
import { describeRun, EXIT_OK, exceptionIn, kvmSkipReason, runPayload } from './payload-harness.js';

const LOOP_DONE_MARKER = 0x600df00d;
const softwareKvm = existsSync('/sys/module/kvm_pvm');

const skip = kvmSkipReason();
if (skip !== undefined) {
  t.plan(0, skip);
} else {
  for (const name of ['ring3', 'ring3-prot32'] as const) {
    const skipVariant = name === 'ring3-prot32' && softwareKvm
      ? 'kvm_pvm cannot run 32-bit ring 3 (paging off: emulation error; 32-bit/PAE paging: #GP on CR0.PG)'
      : false;
    t.test(`${name}: runs a loop in ring 3 and reports from there`, { skip: skipVariant }, async (t) => {
      const run = await runPayload(name);
      const exc = exceptionIn(run.vm.testValues);
      t.equal(exc, undefined, `no CPU exception (${exc ? `vector ${String(exc.vector)} at 0x${exc.eip.toString(16)}` : 'none'})`);
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

import t from 'tap';
import { classify } from '../../src/host/check.js';
import { applyQuirks, loadQuirksProfile } from '../../src/host/quirks.js';
import { exitStatus } from '../../src/cli/boot.js';

t.test('the pvm profile is named and applied once', async (t) => {
  const p = loadQuirksProfile('pvm');
  t.ok(p.cmdline.includes('noxsave'));
  const once = applyQuirks('console=ttyS0', p);
  t.equal(applyQuirks(once, p), once, 'idempotent');
  t.ok(once.startsWith('console=ttyS0 '));
  t.throws(() => loadQuirksProfile('no-such-profile'), /missing or malformed.*known: pvm; or use --quirks auto\|none/);
});

t.test('classification: module wins, then measured ring-0 speed', async (t) => {
  t.equal(classify(true, undefined), 'software');
  t.equal(classify(false, { iterations: 1, elapsedMs: 1, iterationsPerSecond: 1e6 }), 'software');
  t.equal(classify(false, { iterations: 1, elapsedMs: 1, iterationsPerSecond: 1e9 }), 'hardware');
  t.equal(classify(false, undefined), 'hardware');
});

t.test('exit status follows the guest', async (t) => {
  t.equal(exitStatus({ kind: 'debug-exit', status: 3 }), 3);
  t.equal(exitStatus({ kind: 'reset' }), 0);
  t.equal(exitStatus({ kind: 'stopped' }), 124);
  t.equal(exitStatus({ kind: 'error', message: 'x', vcpu: 0 }), 1);
});

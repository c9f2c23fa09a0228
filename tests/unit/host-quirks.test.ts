import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  t.throws(() => loadQuirksProfile('no-such-profile'), /is missing in .*known: pvm; or use --quirks auto\|none/);
});

t.test('a malformed quirks file is reported by name, not cast', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-quirks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  t.throws(() => loadQuirksProfile('pvm', file('bad.json', '{')), /host-quirks file .*bad.json is unreadable or not JSON/);
  t.throws(() => loadQuirksProfile('pvm', file('null.json', 'null')), /must hold an object of named profiles/);
  t.throws(() => loadQuirksProfile('pvm', file('args.json', '{"pvm":{"cmdline":"noxsave"}}')), /'pvm' is malformed .*cmdline must be an array of strings/);
  t.throws(() => loadQuirksProfile('pvm', file('desc.json', '{"pvm":{"cmdline":[],"description":3}}')), /description must be a string/);
  t.same(loadQuirksProfile('pvm', file('ok.json', '{"pvm":{"cmdline":["a=1"]}}')), { name: 'pvm', description: '', cmdline: ['a=1'] });
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

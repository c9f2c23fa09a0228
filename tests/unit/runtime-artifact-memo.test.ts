// The memo of resolved guest artifacts (src/runtime/artifact-memo.ts): it answers only while nothing a build
// script reads has changed; any change under guest/ or kernel-config/, or to the artifact, makes it miss.

import { mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ArtifactMemo, inputFingerprint } from '../../src/runtime/artifact-memo.js';

function rig(t: Test): { pkg: string; cache: string; artifact: string } {
  const d = mkdtempSync(join(tmpdir(), 'kata-ts-memo-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  const pkg = join(d, 'pkg');
  mkdirSync(join(pkg, 'guest', 'agent'), { recursive: true });
  mkdirSync(join(pkg, 'kernel-config'), { recursive: true });
  writeFileSync(join(pkg, 'guest', 'agent', 'main.cc'), 'int main() {}\n');
  writeFileSync(join(pkg, 'kernel-config', 'base.config'), 'CONFIG_X=y\n');
  const artifact = join(d, 'cache', 'kernel', 'full-1', 'vmlinux');
  mkdirSync(join(d, 'cache', 'kernel', 'full-1'), { recursive: true });
  writeFileSync(artifact, 'ELF');
  return { pkg, cache: join(d, 'cache'), artifact };
}

t.test('a saved memo answers until an input or the artifact changes', async (t) => {
  const { pkg, cache, artifact } = rig(t);
  const memo = new ArtifactMemo(pkg, ['kernel-config/build.sh', 'full'], cache);
  t.equal(memo.lookup(), undefined, 'nothing saved yet');
  memo.save(artifact, memo.fingerprint());
  t.equal(memo.lookup(), artifact, 'hit');
  t.equal(statSync(join(cache, 'resolved')).mode & 0o777, 0o700, 'the memo directory is private');
  t.equal(new ArtifactMemo(pkg, ['guest/build-agent-initrd.sh'], cache).lookup(), undefined, 'another script has its own memo');

  writeFileSync(join(pkg, 'guest', 'agent', 'main.cc'), 'int main() { return 1; }\n');
  t.equal(memo.lookup(), undefined, 'an edited input misses');
  memo.save(artifact, memo.fingerprint());
  t.equal(memo.lookup(), artifact);
  writeFileSync(join(pkg, 'kernel-config', 'extra.config'), '');
  t.equal(memo.lookup(), undefined, 'a new input file misses');
  memo.save(artifact, memo.fingerprint());
  rmSync(join(pkg, 'kernel-config', 'extra.config'));
  t.equal(memo.lookup(), undefined, 'a removed input file misses');
  memo.save(artifact, memo.fingerprint());
  const old = new Date(Date.now() - 60_000);
  utimesSync(join(pkg, 'guest', 'agent', 'main.cc'), old, old);
  t.equal(memo.lookup(), undefined, 'a touched input misses');
  memo.save(artifact, memo.fingerprint());
  writeFileSync(artifact, 'ELF2');
  t.equal(memo.lookup(), undefined, 'a rewritten artifact misses');
  memo.save(artifact, memo.fingerprint());
  rmSync(artifact);
  t.equal(memo.lookup(), undefined, 'a removed artifact misses');
});

t.test('a fingerprint taken before the script ran never makes a stale hit', async (t) => {
  const { pkg, cache, artifact } = rig(t);
  const memo = new ArtifactMemo(pkg, ['x'], cache);
  const before = memo.fingerprint();
  writeFileSync(join(pkg, 'guest', 'new.sh'), 'echo\n'); // changed while the "script" ran
  memo.save(artifact, before);
  t.equal(memo.lookup(), undefined);
});

t.test('the dpkg database is an input', async (t) => {
  const { pkg } = rig(t);
  const status = join(pkg, 'status');
  writeFileSync(status, 'a');
  const a = inputFingerprint(pkg, status);
  const later = new Date(Date.now() + 5_000);
  utimesSync(status, later, later);
  t.not(inputFingerprint(pkg, status), a, 'a package install changes the fingerprint');
  t.equal(inputFingerprint(pkg, status), inputFingerprint(pkg, status), 'stable otherwise');
});

// Bad input through the OCI command line: malformed config.json, missing rootfs, unknown id, duplicate id,
// bad configuration.toml (wrong type, unknown key, syntax error; by --config and by KATA_TS_CONFIG). Each must
// give one clear `kata-ts: ...` line on stderr, a non-zero exit status, and leave nothing in the --root dir
// (a temporary one per test, never /run/kata-ts). runc gets the same bundles where it has an equivalent.

import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { cli, e2eSkipReason, isOneErrorLine, pidsMentioning, waitStatus, workdir } from '../helpers/oci-harness.js';

const skip = e2eSkipReason();
const TIMEOUT = 300_000;

t.test('malformed config.json and missing rootfs', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bad = w.bundle('bad-json', ['true']);
  writeFileSync(join(bad, 'config.json'), '{"ociVersion": "1.0.2", "process": {');
  const noRoot = w.bundle('no-rootfs', ['true']);
  rmSync(join(noRoot, 'rootfs'), { recursive: true });
  const noConfig = w.bundle('no-config', ['true']);
  rmSync(join(noConfig, 'config.json'));
  for (const [what, bundle, word] of [['malformed config.json', bad, /config\.json/], ['missing rootfs', noRoot, /rootfs/], ['missing config.json', noConfig, /config\.json/]] as const) {
    for (const verb of ['create', 'run']) {
      const r = await cli(w, 'kata', [verb, '--bundle', bundle, 'c1']);
      t.not(r.code, 0, `${what}: ${verb} fails`);
      t.ok(isOneErrorLine(r.stderr), `${what}: one line: ${JSON.stringify(r.stderr)}`);
      t.match(r.stderr, word, `${what}: says what is wrong`);
      t.same(w.leftovers('kata'), [], `${what}: nothing left under --root`);
    }
    const runc = await cli(w, 'runc', ['create', '--bundle', bundle, 'c1']);
    t.not(runc.code, 0, `${what}: runc fails too`);
    await cli(w, 'runc', ['delete', '--force', 'c1']);
  }
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

t.test('unknown id', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  for (const args of [['state', 'nope'], ['start', 'nope'], ['kill', 'nope'], ['kill', 'nope', 'KILL'], ['delete', 'nope'], ['ps', 'nope'], ['exec', 'nope', 'true']]) {
    const r = await cli(w, 'kata', args);
    t.not(r.code, 0, `kata-ts ${args.join(' ')} fails`);
    t.ok(isOneErrorLine(r.stderr), `one line: ${JSON.stringify(r.stderr)}`);
    t.match(r.stderr, /nope/, 'names the id');
    const runc = await cli(w, 'runc', args);
    t.not(runc.code, 0, `runc ${args.join(' ')} fails too`);
  }
  for (const rt of ['kata', 'runc'] as const) {
    const r = await cli(w, rt, ['delete', '--force', 'nope']);
    t.equal(r.code, 0, `${rt}: delete --force of an unknown id succeeds`);
  }
  const l = await cli(w, 'kata', ['list', '-q']);
  t.equal(l.code, 0, 'list with an empty root');
  t.equal(l.stdout, '');
  t.same(w.leftovers('kata'), []);
});

t.test('duplicate id', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bundle = w.bundle('bundle', ['sleep', '1000']);
  const codes: Record<string, unknown[]> = {};
  for (const rt of ['kata', 'runc'] as const) {
    const first = await cli(w, rt, ['create', '--bundle', bundle, 'dup'], { stdout: 'ignore', stderr: 'ignore' });
    t.equal(first.code, 0, `${rt} first create`);
    const second = await cli(w, rt, ['create', '--bundle', bundle, 'dup']);
    t.not(second.code, 0, `${rt} second create fails`);
    if (rt === 'kata') {
      t.ok(isOneErrorLine(second.stderr), `one line: ${JSON.stringify(second.stderr)}`);
      t.match(second.stderr, /dup/, 'names the id');
    }
    const st = await waitStatus(w, rt, 'dup', 'created', 1000);
    t.equal(st, 'created', `${rt}: the first container is untouched`);
    t.equal((await cli(w, rt, ['delete', '--force', 'dup'])).code, 0);
    t.same(w.leftovers(rt), [], `${rt}: nothing left under --root`);
    codes[rt] = [first.code, second.code === 0, st];
  }
  t.same(codes['kata'], codes['runc'], 'kata-ts and runc agree');
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

t.test('bad configuration.toml', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bundle = w.bundle('bundle', ['true']);
  const cases: [string, string, RegExp][] = [
    ['wrong type', '[hypervisor.qemu]\ndefault_vcpus = "two"\n', /:2\b/],
    ['unknown key', '[runtime]\nhypervisor = "auto"\nno_such_key = 1\n', /:3\b.*no_such_key|no_such_key.*:3\b/],
    ['syntax error', '[hypervisor.qemu\ndefault_vcpus = 1\n', /:1\b/],
    ['bad hypervisor name', '[runtime]\nhypervisor = "xen"\n', /:2\b/],
  ];
  for (const [what, text, line] of cases) {
    const file = join(w.dir, `${what.replace(/ /g, '-')}.toml`);
    writeFileSync(file, text);
    for (const how of ['--config', 'KATA_TS_CONFIG'] as const) {
      const r =
        how === '--config'
          ? await cli(w, 'kata', ['--config', file, 'run', '--bundle', bundle, 'cfg'])
          : await cli(w, 'kata', ['run', '--bundle', bundle, 'cfg'], { env: { ...process.env, KATA_TS_CONFIG: file } });
      t.not(r.code, 0, `${what} (${how}): fails`);
      t.ok(isOneErrorLine(r.stderr), `${what} (${how}): one line: ${JSON.stringify(r.stderr)}`);
      t.ok(r.stderr.includes(file), `${what} (${how}): names the file`);
      t.match(r.stderr, line, `${what} (${how}): names the line`);
      t.same(w.leftovers('kata'), [], `${what} (${how}): nothing left under --root`);
    }
  }
  const missing = await cli(w, 'kata', ['--config', join(w.dir, 'absent.toml'), 'run', '--bundle', bundle, 'cfg']);
  t.not(missing.code, 0, '--config of a missing file fails');
  t.ok(isOneErrorLine(missing.stderr), missing.stderr);
  t.same(w.leftovers('kata'), []);
});

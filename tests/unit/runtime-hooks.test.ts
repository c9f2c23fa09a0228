// OCI hooks (src/runtime/hooks.ts): the checked shape, argv[0], exactly the hook's environment, the state on
// stdin, the timeout, and a failure that names the hook and its last stderr line.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { hooksCheck, runHooks, type HookState } from '../../src/runtime/hooks.js';
import { validate } from '../../src/runtime/validate.js';

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-hooks-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const state: HookState = { ociVersion: '1.0.2', id: 'c1', status: 'creating', pid: 42, bundle: '/b', annotations: { a: 'b' } };

t.test('the shape is checked', async (t) => {
  t.same(validate({ prestart: [{ path: '/bin/true', args: ['true'], env: ['A=1'], timeout: 5 }] }, hooksCheck, 'hooks'), { prestart: [{ path: '/bin/true', args: ['true'], env: ['A=1'], timeout: 5 }] });
  t.throws(() => validate({ prestart: [{ path: 'true' }] }, hooksCheck, 'hooks'), /prestart\[0\]\.path must be an absolute path/);
  t.throws(() => validate({ poststop: [{ path: '/x', timeout: 0 }] }, hooksCheck, 'hooks'), /timeout/);
  t.throws(() => validate({ prestart: {} }, hooksCheck, 'hooks'), /prestart/);
});

t.test('argv, environment and stdin are what the hook asked for', async (t) => {
  const out = join(dir, 'out');
  await runHooks({ prestart: [{ path: '/bin/sh', args: ['my-hook', '-c', `{ echo "$0"; env | sort; cat; } > ${out}`], env: ['ONLY=this', 'PATH=/usr/bin:/bin'] }] }, 'prestart', state);
  const lines = readFileSync(out, 'utf8').split('\n');
  t.equal(lines[0], 'my-hook', 'args[0] is argv[0]');
  t.ok(lines.includes('ONLY=this') && !lines.some((l) => l.startsWith('HOME=')), 'exactly the hook env');
  t.same(JSON.parse(lines.find((l) => l.startsWith('{'))!), state, 'the state on stdin');
  await runHooks({ poststop: [{ path: '/bin/true' }] }, 'prestart', state);
  t.pass('hooks of another kind do not run');
});

t.test('failures: exit status with the last stderr line, a missing binary, a timeout', async (t) => {
  await t.rejects(runHooks({ createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', 'echo one >&2; echo two >&2; exit 4'] }] }, 'createRuntime', state), { message: 'createRuntime hook /bin/sh failed (exit status 4): two' });
  await t.rejects(runHooks({ prestart: [{ path: '/nonexistent/hook' }] }, 'prestart', state), { message: /prestart hook \/nonexistent\/hook cannot run: .*ENOENT/ });
  await t.rejects(runHooks({ poststart: [{ path: '/bin/sleep', args: ['sleep', '30'], timeout: 1 }] }, 'poststart', state), { message: /timed out after 1 s/ });
  const ran = join(dir, 'second');
  await t.rejects(runHooks({ prestart: [{ path: '/bin/false' }, { path: '/bin/sh', args: ['sh', '-c', `touch ${ran}`] }] }, 'prestart', state));
  t.throws(() => readFileSync(ran), 'the hooks after a failed one do not run');
});

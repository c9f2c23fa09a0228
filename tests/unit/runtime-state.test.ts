// The runtime state store (src/runtime/state.ts): id rules, the mkdir claim that makes duplicate ids fail,
// atomic records, listing, and pid liveness with the /proc start time (a reused pid is not ours).

import { spawnSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  claimId,
  effectiveStatus,
  isAlive,
  isValidId,
  listIds,
  processStart,
  readContainer,
  readSandbox,
  removeDir,
  statePath,
  writeContainer,
  writeSandbox,
  type ContainerRecord,
} from '../../src/runtime/state.js';

const root = mkdtempSync(join(tmpdir(), 'kata-ts-state-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

const rec = (id: string, over: Partial<ContainerRecord> = {}): ContainerRecord => ({
  ociVersion: '1.0.2', id, status: 'created', pid: 0, pidStart: 0, bundle: '/b', sandboxId: id, created: 'now', ...over,
});

t.test('ids: [A-Za-z0-9_.-], 1..64, no leading dot, no path tricks', async (t) => {
  for (const ok of ['a', 'c1', 'my_container-1.2', 'x'.repeat(64)]) t.ok(isValidId(ok), ok);
  for (const bad of ['', '.', '..', '.hidden', 'a/b', '../etc', 'x'.repeat(65), 'sp ace', 'ü']) t.notOk(isValidId(bad), JSON.stringify(bad));
});

t.test('claimId: the first claim wins, a second one fails', async (t) => {
  t.ok(claimId(root, 'dup'));
  t.notOk(claimId(root, 'dup'));
  removeDir(root, 'dup');
  t.ok(claimId(root, 'dup'), 'free again after removal');
  removeDir(root, 'dup');
});

t.test('records round-trip and are written atomically', async (t) => {
  writeContainer(root, rec('c1', { status: 'running', pid: 42, annotations: { a: 'b' } }));
  t.match(readContainer(root, 'c1'), { id: 'c1', status: 'running', pid: 42, annotations: { a: 'b' } });
  t.same(readdirSync(join(root, 'c1')), ['state.json'], 'no temp file left behind');
  writeSandbox(root, { id: 'c1', pid: 7, pidStart: 1, hypervisor: 'qemu', tmpDir: '/tmp/x', created: 'now' });
  t.equal(readSandbox(root, 'c1')?.pid, 7);
  t.equal(readContainer(root, 'nope'), undefined, 'unknown id');
  writeFileSync(statePath(root, 'c1'), '{torn');
  t.equal(readContainer(root, 'c1'), undefined, 'a torn file reads as absent');
  writeFileSync(statePath(root, 'c1'), JSON.stringify(rec('other')));
  t.equal(readContainer(root, 'c1'), undefined, 'a record for another id is not trusted');
  removeDir(root, 'c1');
  t.notOk(existsSync(join(root, 'c1')));
});

t.test('under umask 000 the root and claimed directories are 0700, records 0600, a stale temp file too (issue 14 item 1)', async (t) => {
  const old = process.umask(0);
  t.teardown(() => process.umask(old));
  const r = join(root, 'private', 'state');
  t.ok(claimId(r, 'p1'));
  for (const d of [join(root, 'private'), r, join(r, 'p1')]) t.equal((statSync(d).mode & 0o777).toString(8), '700', d);
  // a temp file left by an earlier writer with this pid, world-readable: the rewrite makes it private
  writeFileSync(`${statePath(r, 'p1')}.${process.pid}.tmp`, 'stale', { mode: 0o666 });
  writeContainer(r, rec('p1'));
  writeSandbox(r, { id: 'p1', pid: 7, pidStart: 1, hypervisor: 'qemu', tmpDir: '/tmp/x', created: 'now' });
  for (const f of ['state.json', 'sandbox.json']) t.equal((statSync(join(r, 'p1', f)).mode & 0o777).toString(8), '600', f);
  writeContainer(r, rec('p2')); // a directory the record write makes itself
  t.equal((statSync(join(r, 'p2')).mode & 0o777).toString(8), '700');
});

t.test('listIds lists valid directory names only, sorted', async (t) => {
  const r2 = mkdtempSync(join(tmpdir(), 'kata-ts-state-list-'));
  t.teardown(() => rmSync(r2, { recursive: true, force: true }));
  for (const d of ['b', 'a', '.x']) mkdirSync(join(r2, d));
  writeFileSync(join(r2, 'file'), '');
  t.same(listIds(r2), ['a', 'b']);
  t.same(listIds(join(r2, 'missing')), [], 'a missing root lists nothing');
});

t.test('pid liveness uses the /proc start time', async (t) => {
  const me = processStart(process.pid);
  t.ok(me !== undefined && me > 0, `own start time ${me}`);
  t.ok(isAlive(process.pid, me!));
  t.notOk(isAlive(process.pid, me! + 1), 'same pid, other start time: not ours');
  t.ok(isAlive(process.pid, 0), 'start 0 = any process with that pid');
  const r = spawnSync('true');
  t.notOk(isAlive(r.pid, 0), 'an exited child is not alive');
  t.notOk(isAlive(0, 0));
  t.notOk(isAlive(-1, 0));
  const c = spawn('sh', ['-c', 'exit 0']);
  const exited = new Promise((res) => c.once('exit', res));
  await exited;
  t.notOk(isAlive(c.pid!, 0), 'an exited child is not alive');
});

t.test('effectiveStatus: a dead sandbox or a dead stdio relay means stopped', async (t) => {
  const start = processStart(process.pid)!;
  t.equal(effectiveStatus(rec('x', { status: 'running', pid: process.pid, pidStart: start }), true), 'running');
  t.equal(effectiveStatus(rec('x', { status: 'running', pid: process.pid, pidStart: start }), false), 'stopped');
  t.equal(effectiveStatus(rec('x', { status: 'running', pid: process.pid, pidStart: start + 1 }), true), 'stopped');
  t.equal(effectiveStatus(rec('x', { status: 'created' }), true), 'created');
  t.equal(effectiveStatus(rec('x', { status: 'stopped' }), true), 'stopped');
});

// Bad input through the runtime API (src/runtime/api.ts), no VM needed: malformed config.json, a missing
// rootfs, a bad configuration.toml, bad and unknown ids, a duplicate id. Each is a RuntimeError with a
// one-line message, and nothing is left under the state root.

import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import * as api from '../../src/runtime/api.js';
import { RuntimeError } from '../../src/runtime/api.js';
import { writeContainer } from '../../src/runtime/state.js';

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-api-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, 'root');
const good = join(dir, 'good');
mkdirSync(join(good, 'rootfs'), { recursive: true });
const spec = { ociVersion: '1.0.2', process: { terminal: false, args: ['true'], cwd: '/' }, root: { path: 'rootfs' } };
writeFileSync(join(good, 'config.json'), JSON.stringify(spec));
const stdio = { stdin: 0, stdout: 1, stderr: 2 };
// a config that would fail anything reaching the VM (no such kernel), so a bug that gets that far fails fast
const cfg = join(dir, 'c.toml');
writeFileSync(cfg, '[hypervisor.qemu]\nkernel = "/nonexistent/vmlinux"\ninitrd = "/nonexistent/initrd"\n');
const o: api.RuntimeOptions = { root, config: cfg };

function bundle(name: string, edit: (d: string) => void): string {
  const d = join(dir, name);
  cpSync(good, d, { recursive: true });
  edit(d);
  return d;
}

async function rejects(t: Test, p: Promise<unknown>, code: string, msg: RegExp): Promise<void> {
  try {
    await p;
    t.fail('expected a RuntimeError');
  } catch (e) {
    t.ok(e instanceof RuntimeError, `a RuntimeError (${(e as Error).message})`);
    t.equal((e as RuntimeError).code, code);
    t.match((e as Error).message, msg);
    t.notMatch((e as Error).message, /\n/, 'one line');
  }
}

const left = (): string[] => (existsSync(root) ? readdirSync(root) : []);

t.test('malformed config.json', async (t) => {
  const b = bundle('malformed', (d) => writeFileSync(join(d, 'config.json'), '{"process": '));
  await rejects(t, api.create(o, 'm1', { bundle: b, stdio }), 'INVALID', /config\.json is not valid JSON/);
  await rejects(t, api.run(o, 'm1', { bundle: b, stdio }), 'INVALID', /not valid JSON/);
  t.same(left(), []);
});

t.test('config.json without process.args or root.path', async (t) => {
  const b1 = bundle('noargs', (d) => writeFileSync(join(d, 'config.json'), JSON.stringify({ ...spec, process: { cwd: '/' } })));
  await rejects(t, api.create(o, 'n1', { bundle: b1, stdio }), 'INVALID', /process\.args must be a non-empty array/);
  const b2 = bundle('noroot', (d) => writeFileSync(join(d, 'config.json'), JSON.stringify({ ...spec, root: {} })));
  await rejects(t, api.create(o, 'n2', { bundle: b2, stdio }), 'INVALID', /root\.path is missing/);
  await rejects(t, api.create(o, 'n3', { bundle: join(dir, 'nowhere'), stdio }), 'INVALID', /has no config\.json/);
  t.same(left(), []);
});

t.test('missing rootfs', async (t) => {
  const b = bundle('norootfs', (d) => rmSync(join(d, 'rootfs'), { recursive: true }));
  await rejects(t, api.create(o, 'r1', { bundle: b, stdio }), 'INVALID', /root filesystem .*rootfs does not exist/);
  t.same(left(), []);
});

t.test('bad configuration.toml: file and line', async (t) => {
  const bad = join(dir, 'bad.toml');
  writeFileSync(bad, '[runtime]\nhypervisor = "qemu"\nspare_block_devices = "many"\n');
  await rejects(t, api.create({ root, config: bad }, 'c1', { bundle: good, stdio }), 'INVALID', new RegExp(`${bad.replace(/[.]/g, '\\.')}:3: .*spare_block_devices must be an integer`));
  const prev = process.env['KATA_TS_CONFIG'];
  process.env['KATA_TS_CONFIG'] = bad;
  t.teardown(() => (prev === undefined ? delete process.env['KATA_TS_CONFIG'] : (process.env['KATA_TS_CONFIG'] = prev)));
  await rejects(t, api.run({ root }, 'c2', { bundle: good, stdio }), 'INVALID', /bad\.toml:3:/);
  t.same(left(), []);
});

t.test('terminal: true without console-socket support is refused up front', async (t) => {
  const b = bundle('tty', (d) => writeFileSync(join(d, 'config.json'), JSON.stringify({ ...spec, process: { ...spec.process, terminal: true } })));
  await rejects(t, api.create(o, 't1', { bundle: b, stdio }), 'INVALID', /process\.terminal/);
  t.same(left(), []);
});

t.test('bad and unknown ids', async (t) => {
  await rejects(t, api.create(o, '../x', { bundle: good, stdio }), 'INVALID', /invalid container id/);
  await rejects(t, api.state(o, 'nope'), 'NOT_FOUND', /does not exist/);
  await rejects(t, api.start(o, 'nope'), 'NOT_FOUND', /does not exist/);
  await rejects(t, api.kill(o, 'nope', 15), 'NOT_FOUND', /does not exist/);
  await rejects(t, api.remove(o, 'nope'), 'NOT_FOUND', /does not exist/);
  await rejects(t, api.ps(o, 'nope'), 'NOT_FOUND', /does not exist/);
  await rejects(t, api.exec(o, 'nope', { args: ['true'], tty: false, stdio }), 'NOT_FOUND', /does not exist/);
  await rejects(t, api.exec(o, 'nope', { args: ['sh'], tty: true, detach: true, stdio }), 'INVALID', /exec --detach --tty: pass --console-socket SOCKET/);
  await rejects(t, api.exec(o, 'nope', { args: ['sh'], tty: false, consoleSocket: '/tmp/s', stdio }), 'INVALID', /--console-socket is for a terminal: add --tty/);
  t.same(await api.list(o), []);
  t.same(left(), []);
});

t.test('a duplicate id fails and leaves the existing container alone', async (t) => {
  writeContainer(root, { ociVersion: '1.0.2', id: 'dup', status: 'stopped', pid: 0, pidStart: 0, bundle: good, sandboxId: 'dup', created: 'x' });
  const before = readFileSync(join(root, 'dup', 'state.json'), 'utf8');
  await rejects(t, api.create(o, 'dup', { bundle: good, stdio }), 'EXISTS', /already exists/);
  t.equal(readFileSync(join(root, 'dup', 'state.json'), 'utf8'), before, 'state untouched');
  t.match(await api.state(o, 'dup'), { id: 'dup', status: 'stopped' });
  t.match(await api.list(o), [{ id: 'dup' }]);
  await rejects(t, api.start(o, 'dup'), 'STATE', /stopped, not created/);
  await rejects(t, api.kill(o, 'dup', 99), 'INVALID', /invalid signal 99/);
  await api.remove(o, 'dup');
  t.same(left(), [], 'delete of a stopped container removes its directory');
});

t.test('joining a sandbox that does not run', async (t) => {
  const b = bundle('join', (d) => writeFileSync(join(d, 'config.json'), JSON.stringify({ ...spec, annotations: { 'io.kubernetes.cri.sandbox-id': 'ghost' } })));
  await rejects(t, api.create(o, 'j1', { bundle: b, stdio }), 'NOT_FOUND', /sandbox 'ghost' .* is not running/);
  t.same(left(), []);
});

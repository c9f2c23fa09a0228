// The JSON checks of the runtime (src/runtime/validate.ts) and every schema built on them: state.json and
// sandbox.json records (state.ts), control requests and replies (control.ts), the sandbox launch settings
// (launch.ts), a bundle's config.json (bundle.ts) and the CLI's --process file and bundle env (cli/oci.ts).
// Each bad input is refused with one line that names the file or message and the bad field.

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { bundleEnv, registerOciCommands } from '../../src/cli/oci.js';
import * as api from '../../src/runtime/api.js';
import { readBundle } from '../../src/runtime/bundle.js';
import { checkResult, execResult, exitResult, parseReply, parseRequest } from '../../src/runtime/control.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { parseLaunch, type SandboxLaunch } from '../../src/runtime/launch.js';
import { BadStateFile, loadContainer, loadSandbox, readContainer, readSandbox, sandboxPath, statePath, writeContainer, type ContainerRecord } from '../../src/runtime/state.js';
import { Command } from 'commander';
import { anyObject, array, boolean, int, InvalidField, InvalidJson, literal, nonEmptyString, object, oneOf, optional, parseJson, record, string, tagged } from '../../src/runtime/validate.js';

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-validate-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** `fn` throws an error of class `cls` whose one-line message matches `msg`. */
function throwsLine(t: Test, fn: () => unknown, cls: new (...a: never[]) => Error, msg: RegExp, what = msg.source): void {
  try {
    fn();
    t.fail(`${what}: expected a ${cls.name}`);
  } catch (e) {
    t.ok(e instanceof cls, `${what}: a ${cls.name} (${(e as Error).name})`);
    t.match((e as Error).message, msg, what);
    t.notMatch((e as Error).message, /\n/, `${what}: one line`);
  }
}

t.test('primitives name the field and what it must be', async (t) => {
  const shape = object({
    name: nonEmptyString,
    n: int(1, 10),
    flag: optional(boolean),
    kind: oneOf('a', 'b'),
    tags: optional(array(string, { nonEmpty: true })),
    labels: optional(record(string)),
    nested: optional(object({ deep: array(int()) })),
  });
  const good = { name: 'x', n: 3, kind: 'a', extra: 'dropped' };
  t.same(shape(good, ''), { name: 'x', n: 3, kind: 'a' }, 'unknown fields are dropped, absent optional ones stay absent');
  const bad: [unknown, string, RegExp][] = [
    [{ ...good, name: undefined }, 'name', /^field name is missing$/],
    [{ ...good, name: '' }, 'name', /^field name must be a non-empty string \(got ""\)$/],
    [{ ...good, n: 11 }, 'n', /must be an integer in 1\.\.10 \(got number 11\)/],
    [{ ...good, n: 1.5 }, 'n', /must be an integer in 1\.\.10 \(got number 1\.5\)/],
    [{ ...good, n: '3' }, 'n', /\(got "3"\)/],
    [{ ...good, flag: 'yes' }, 'flag', /must be a boolean/],
    [{ ...good, kind: 'c' }, 'kind', /must be one of 'a', 'b' \(got "c"\)/],
    [{ ...good, tags: [] }, 'tags', /must be a non-empty array of strings \(got an array\)/],
    [{ ...good, tags: ['ok', 7] }, 'tags[1]', /field tags\[1\] must be a string \(got number 7\)/],
    [{ ...good, labels: { 'io.k8s/x': 1 } }, 'labels["io.k8s/x"]', /field labels\["io\.k8s\/x"\] must be a string/],
    [{ ...good, nested: { deep: [1, null] } }, 'nested.deep[1]', /field nested\.deep\[1\] must be an integer \(got null\)/],
    [[], '', /^the value must be an object \(got an array\)$/],
  ];
  for (const [v, path, msg] of bad) {
    try {
      shape(v, '');
      t.fail(`${path}: accepted`);
    } catch (e) {
      t.ok(e instanceof InvalidField, `${path}: InvalidField`);
      t.equal((e as InvalidField).path, path, `the path is ${path}`);
      t.match((e as Error).message, msg);
    }
  }
  throwsLine(t, () => string(5, 'f'), InvalidField, /^field f must be a string \(got number 5\)$/);
  throwsLine(t, () => int()('x'.repeat(100), 'f'), InvalidField, /\(got "x{40}\.\.\."\)$/, 'a long bad value is cut short');
  throwsLine(t, () => anyObject(null, 'spec'), InvalidField, /^field spec must be an object \(got null\)$/);
  const u = tagged('op', { a: object({ op: literal('a'), x: int() }), b: object({ op: literal('b') }) });
  t.same(u({ op: 'a', x: 1 }, ''), { op: 'a', x: 1 });
  throwsLine(t, () => u({ op: 'z' }, ''), InvalidField, /field op must be one of 'a', 'b'/);
  throwsLine(t, () => u({ op: 'a' }, ''), InvalidField, /field x is missing/);
});

t.test('parseJson names the input: not JSON, or the bad field', async (t) => {
  const c = object({ a: int() });
  t.same(parseJson('{"a":1}', c, 'thing'), { a: 1 });
  throwsLine(t, () => parseJson('{"a":', c, 'thing /x.json'), InvalidJson, /^thing \/x\.json: not valid JSON \(/);
  throwsLine(t, () => parseJson('{"a":"1"}', c, 'thing /x.json'), InvalidJson, /^thing \/x\.json: field a must be an integer \(got "1"\)$/);
  try {
    parseJson('{"a":true}', c, 'w');
  } catch (e) {
    t.equal((e as InvalidJson).field?.path, 'a', 'the failing field travels with the error');
  }
});

t.test('state.json and sandbox.json: malformed records are named; lenient readers treat them as absent', async (t) => {
  const root = join(dir, 'state');
  const rec: ContainerRecord = { ociVersion: '1.0.2', id: 'c1', status: 'running', pid: 42, pidStart: 7, bundle: '/b', sandboxId: 'c1', created: 'now', slot: 0 };
  writeContainer(root, rec);
  t.same(loadContainer(root, 'c1'), rec);
  t.equal(loadContainer(root, 'absent'), undefined, 'no file: no record, no error');
  const bad: [unknown, RegExp][] = [
    [{ ...rec, status: 'frozen' }, /field status must be one of 'creating', 'created', 'running', 'paused', 'stopped' \(got "frozen"\)/],
    [{ ...rec, pid: -1 }, /field pid must be an integer >= 0 \(got number -1\)/],
    [{ ...rec, sandboxId: undefined }, /field sandboxId is missing/],
    [{ ...rec, exitCode: 300 }, /field exitCode must be an integer in 0\.\.255/],
    [{ ...rec, annotations: { a: 1 } }, /field annotations\.a must be a string/],
    [{ ...rec, id: 'other' }, /field id is "other", not "c1"/],
  ];
  for (const [v, msg] of bad) {
    writeFileSync(statePath(root, 'c1'), JSON.stringify(v));
    throwsLine(t, () => loadContainer(root, 'c1'), BadStateFile, new RegExp(`^state file ${statePath(root, 'c1')}: ${msg.source}`), msg.source);
    t.equal(readContainer(root, 'c1'), undefined, `${msg.source}: readContainer treats it as absent`);
  }
  writeFileSync(statePath(root, 'c1'), '{torn');
  throwsLine(t, () => loadContainer(root, 'c1'), BadStateFile, /state\.json: not valid JSON/);

  writeFileSync(sandboxPath(root, 'c1'), JSON.stringify({ id: 'c1', pid: 0, pidStart: 0, hypervisor: 'qemu', tmpDir: '/tmp/x', created: 'now' }));
  throwsLine(t, () => loadSandbox(root, 'c1'), BadStateFile, /^sandbox file .*sandbox\.json: field pid must be an integer >= 1 \(got number 0\)$/);
  t.equal(readSandbox(root, 'c1'), undefined, 'a malformed sandbox.json reads as no sandbox');
});

t.test('the runtime API: a malformed state.json is a one-line error naming it; delete --force removes it', async (t) => {
  const root = join(dir, 'api-root');
  const o: api.RuntimeOptions = { root };
  mkdirSync(join(root, 'bad'), { recursive: true });
  writeFileSync(statePath(root, 'bad'), JSON.stringify({ ociVersion: '1.0.2', id: 'bad', status: 'zombie', pid: 0, pidStart: 0, bundle: '/b', sandboxId: 'bad', created: 'now' }));
  for (const call of [() => api.state(o, 'bad'), () => api.start(o, 'bad'), () => api.kill(o, 'bad', 15)]) {
    try {
      await call();
      t.fail('accepted a malformed state.json');
    } catch (e) {
      t.ok(e instanceof RuntimeError);
      t.equal((e as RuntimeError).code, 'INVALID');
      t.match((e as Error).message, /^state file .*\/bad\/state\.json: field status must be one of .* \(got "zombie"\): remove the container with `kata-ts delete --force bad`$/);
    }
  }
  t.same(await api.list(o), [], 'list skips it');
  await api.remove(o, 'bad', true);
  t.equal(loadContainer(root, 'bad'), undefined, 'delete --force removed it');
});

t.test('control requests (read by the sandbox) and replies (read by the CLI and the relay)', async (t) => {
  t.match(parseRequest('{"op":"kill","id":"c1","signal":9,"all":false}'), { op: 'kill', signal: 9 });
  const badReq: [string, RegExp][] = [
    ['', /^malformed control request: not valid JSON/],
    ['{"id":"c1"}', /field op is missing/],
    ['{"op":"relay","id":"c1","exec":"","pid":0}', /field pid must be an integer >= 1/],
    ['{"op":"attach","id":"c1","exec":"","stream":"tty"}', /field stream must be one of 'stdin', 'stdout', 'stderr'/],
    ['{"op":"exec","id":"c1","process":"sh"}', /field process must be an object \(got "sh"\)/],
    ['{"op":"create","id":"c1","bundle":"/b","rootfs":"/r","spec":{},"annotations":[]}', /field annotations must be an object of strings \(got an array\)/],
  ];
  for (const [line, msg] of badReq) {
    try {
      parseRequest(line);
      t.fail(`accepted ${line}`);
    } catch (e) {
      t.ok(e instanceof RuntimeError && e.code === 'INVALID', `${line}: INVALID`);
      t.match((e as Error).message, msg);
    }
  }
  t.same(parseReply('{"ok":true,"result":{"exec":"e1"}}'), { ok: true, result: { exec: 'e1' } });
  t.same(parseReply('{"ok":false,"code":"STATE","message":"no"}'), { ok: false, code: 'STATE', message: 'no' });
  const badReply: [string, RegExp][] = [
    ['garbage', /^malformed reply from the sandbox process to 'start': not valid JSON/],
    ['{"result":1}', /field ok is missing/],
    ['{"ok":false,"code":"WEIRD","message":"x"}', /field code must be one of 'NOT_FOUND'/],
    ['{"ok":false,"code":"STATE"}', /field message is missing/],
  ];
  for (const [line, msg] of badReply) {
    try {
      parseReply(line, "'start'");
      t.fail(`accepted ${line}`);
    } catch (e) {
      t.ok(e instanceof RuntimeError && e.code === 'INTERNAL', `${line}: INTERNAL`);
      t.match((e as Error).message, msg);
    }
  }
  t.same(checkResult({ exec: 'e1' }, execResult, "'exec'"), { exec: 'e1' });
  t.throws(() => checkResult(undefined, execResult, "'exec'"), { message: /to 'exec': field result is missing/ });
  t.throws(() => checkResult({ exitCode: 256 }, exitResult, "'wait'"), { message: /field result\.exitCode must be an integer in 0\.\.255/ });
});

t.test('sandbox launch settings', async (t) => {
  const good: SandboxLaunch = {
    root: '/run/kata-ts', sid: 'c1', hypervisor: 'auto', qemuPath: 'qemu-system-x86_64', kernel: '/k', initrd: '/i', cmdline: 'console=ttyS0',
    vcpus: 1, memoryMiB: 512, sharedFs: 'none', slots: 4, slotSizeMiB: 256, consoleLogMaxMiB: 1, dialTimeoutMs: 60_000, requestTimeoutMs: 60_000, logFormat: 'text', tmpDir: '/tmp/kata-ts-sb-x',
  };
  t.same(parseLaunch(JSON.stringify(good)), good);
  throwsLine(t, () => parseLaunch(''), InvalidJson, /^sandbox launch settings: not valid JSON/);
  throwsLine(t, () => parseLaunch(JSON.stringify({ ...good, hypervisor: 'kvm' })), InvalidJson, /^sandbox launch settings: field hypervisor must be one of 'inproc', 'qemu', 'auto' \(got "kvm"\)$/);
  throwsLine(t, () => parseLaunch(JSON.stringify({ ...good, slots: 27 })), InvalidJson, /field slots must be an integer in 0\.\.26/);
  throwsLine(t, () => parseLaunch(JSON.stringify({ ...good, sharedFs: 'virtiofs' })), InvalidJson, /field sharedFs must be one of 'virtio-fs', 'none'/);
  throwsLine(t, () => parseLaunch(JSON.stringify({ ...good, kernel: undefined })), InvalidJson, /field kernel is missing/);
  throwsLine(t, () => parseLaunch(JSON.stringify({ ...good, consoleLogMaxMiB: 0 })), InvalidJson, /field consoleLogMaxMiB must be an integer in 1\.\.1024/);
});

t.test("a bundle's config.json: the fields the host reads are checked", async (t) => {
  const b = join(dir, 'bundle');
  mkdirSync(join(b, 'rootfs'), { recursive: true });
  const base = { ociVersion: '1.0.2', process: { args: ['sh'], env: ['A=b'], cwd: '/', user: { uid: 0, gid: 0, umask: 18 } }, root: { path: 'rootfs' } };
  const write = (spec: unknown): void => writeFileSync(join(b, 'config.json'), JSON.stringify(spec));
  write(base);
  const ok = readBundle(b);
  t.same(ok.process.user, { uid: 0, gid: 0, umask: 18 }, 'process.user passes through whole (the agent reads the rest)');
  t.same(ok.spec, base, 'the spec is kept as written');
  const bad: [unknown, RegExp][] = [
    [{ ...base, process: { ...base.process, env: 'A=b' } }, /config\.json: process\.env must be an array of strings \(got "A=b"\)$/],
    [{ ...base, process: { ...base.process, cwd: 5 } }, /process\.cwd must be a string/],
    [{ ...base, process: { ...base.process, terminal: 'no' } }, /process\.terminal must be a boolean/],
    [{ ...base, process: { ...base.process, user: { uid: -1, gid: 0 } } }, /process\.user\.uid must be an integer in 0\.\.4294967295/],
    [{ ...base, process: { ...base.process, args: [] } }, /process\.args must be a non-empty array of strings$/],
    [{ ...base, root: { path: 'rootfs', readonly: 'yes' } }, /root\.readonly must be a boolean/],
    [{ ...base, annotations: { a: 1 } }, /annotations\.a must be a string/],
    [{ ...base, root: {} }, /root\.path is missing: name the bundle's root filesystem directory/],
    [{ ...base, process: undefined }, /process is missing: the container needs process\.args/],
  ];
  for (const [spec, msg] of bad) {
    write(spec);
    throwsLine(t, () => readBundle(b), RuntimeError, msg);
  }
});

t.test('a rootfs that is a symlink, or leaves the bundle through one, is refused (issue 14 item 7)', async (t) => {
  const b = join(dir, 'bundle-links');
  const host = join(dir, 'host-dir');
  mkdirSync(join(b, 'sub'), { recursive: true });
  mkdirSync(host, { recursive: true });
  writeFileSync(join(host, 'secret'), 'host data');
  const spec = (path: string): void =>
    writeFileSync(join(b, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', process: { args: ['sh'] }, root: { path } }));
  symlinkSync(host, join(b, 'rootfs'));
  spec('rootfs');
  throwsLine(t, () => readBundle(b), RuntimeError, /root filesystem .*rootfs is a symbolic link: point root\.path .* at the directory itself/);
  symlinkSync(dirname(host), join(b, 'sub', 'up'));
  spec('sub/up/host-dir');
  throwsLine(t, () => readBundle(b), RuntimeError, /resolves outside the bundle .* through a symbolic link/);
  mkdirSync(join(b, 'real-rootfs'));
  spec('real-rootfs');
  t.equal(readBundle(b).rootfs, join(b, 'real-rootfs'), 'a plain directory inside the bundle is accepted');
  spec(host);
  t.equal(readBundle(b).rootfs, host, 'an absolute root.path naming a real directory is accepted (runtime-spec allows it)');
});

/** `kata-ts exec --process FILE c1` against a runtime that must not be reached; the stderr line. */
async function execProcessFile(file: string): Promise<string> {
  let err = '';
  const program = new Command().name('kata-ts').exitOverride();
  registerOciCommands(program, {
    runtime: () => Promise.reject(new Error('the runtime was reached')),
    stdout: () => undefined,
    stderr: (s) => (err += s),
    stdio: { stdin: 0, stdout: 1, stderr: 2 },
    setExitCode: () => undefined,
    forwardSignals: false,
    env: {},
  });
  await program.parseAsync(['exec', '--process', file, 'c1'], { from: 'user' });
  return err;
}

t.test('the CLI: --process files and the bundle env for exec --env', async (t) => {
  const pf = join(dir, 'process.json');
  const cases: [unknown, RegExp][] = [
    [{ args: [] }, /"args" must be a non-empty array of strings$/],
    [{ args: ['sh'], env: ['A=1', 2] }, /"env\[1\]" must be a string \(got number 2\)$/],
    [{ args: ['sh'], cwd: 1 }, /"cwd" must be a string \(got number 1\)$/],
    [{ args: ['sh'], terminal: 'yes' }, /"terminal" must be a boolean \(got "yes"\)$/],
    [[], /"args" must be a non-empty array of strings$/],
  ];
  for (const [v, msg] of cases) {
    writeFileSync(pf, JSON.stringify(v));
    const err = await execProcessFile(pf);
    t.match(err.trimEnd(), new RegExp(`^kata-ts: --process ${pf}: ${msg.source}`), JSON.stringify(v));
    t.match(err, /^[^\n]*\n$/, 'one line');
  }

  const b = join(dir, 'envbundle');
  mkdirSync(b, { recursive: true });
  writeFileSync(join(b, 'config.json'), JSON.stringify({ process: { env: ['PATH=/bin'] } }));
  t.same(bundleEnv(b), ['PATH=/bin']);
  writeFileSync(join(b, 'config.json'), JSON.stringify({ process: {} }));
  t.same(bundleEnv(b), [], 'no env: nothing to add to');
  writeFileSync(join(b, 'config.json'), JSON.stringify({ process: { env: ['A=1', 2] } }));
  throwsLine(t, () => bundleEnv(b), Error, /config\.json: field process\.env\[1\] must be a string \(got number 2\): fix the bundle's config\.json or pass --process$/);
  writeFileSync(join(b, 'config.json'), '{');
  throwsLine(t, () => bundleEnv(b), Error, /config\.json: not valid JSON/);
});

// The OCI command line's parsing and output (src/cli/oci.ts) against a recording fake runtime: global options,
// runc's flag names, signal names and numbers, `delete --force` of a missing container, exec pass-through,
// the one-line `kata-ts:` errors and exit statuses.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import t from 'tap';
import { RuntimeError } from '../../src/runtime/api.js';
import { DEFAULT_ENV, bundleEnv, errorLine, formatList, formatPs, parseSignal, registerOciCommands, runtimeOptions, useOneLineErrors } from '../../src/cli/oci.js';
import type { OciRuntime, OciState } from '../../src/cli/oci.js';

interface Call {
  fn: string;
  args: unknown[];
}

const sample: OciState = { ociVersion: '1.0.2', id: 'c1', status: 'running', pid: 4242, bundle: '/b', annotations: { a: 'b' } };

function fakeRuntime(calls: Call[], fail?: RuntimeError): OciRuntime {
  const rec =
    <R>(fn: string, r: R) =>
    async (...args: unknown[]): Promise<R> => {
      calls.push({ fn, args });
      if (fail) throw fail;
      return r;
    };
  return {
    create: rec('create', undefined),
    start: rec('start', undefined),
    state: rec('state', sample),
    kill: rec('kill', undefined),
    remove: rec('remove', undefined),
    run: rec('run', 7),
    exec: rec('exec', 3),
    ps: rec('ps', [proc(1, 0, 'sh -c sleep'), proc(12, 1, 'sleep 100')]),
    list: rec('list', [sample]),
    pause: rec('pause', undefined),
    resume: rec('resume', undefined),
  };
}

function proc(pid: number, ppid: number, cmd: string) {
  return { pid, ppid, uid: 0, start_time: Math.floor(Date.now() / 1000) - 10, cpu_millis: 0, tty: '', cmd };
}

async function cli(argv: string[], opts: { fail?: RuntimeError; env?: NodeJS.ProcessEnv } = {}) {
  const calls: Call[] = [];
  let out = '';
  let err = '';
  let code: number | undefined;
  const program = new Command().name('kata-ts').exitOverride();
  registerOciCommands(program, {
    runtime: async () => fakeRuntime(calls, opts.fail),
    stdout: (s) => (out += s),
    stderr: (s) => (err += s),
    stdio: { stdin: 10, stdout: 11, stderr: 12 },
    setExitCode: (c) => (code = c),
    forwardSignals: false,
    env: opts.env ?? {},
  });
  useOneLineErrors(program);
  for (const c of [program, ...program.commands]) c.configureOutput({ writeErr: (s) => (err += s), writeOut: (s) => (out += s) });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    code = (e as { exitCode?: number }).exitCode ?? 1; // commander's exitOverride
  }
  return { calls, out, err, code };
}

t.test('global options reach the runtime; create takes runc flags', async (t) => {
  const r = await cli(['--root', '/tmp/kr', '--log', 'l.log', '--log-format', 'json', '--hypervisor', 'qemu', '--config', 'c.toml',
    'create', '--bundle', '/bun', '--pid-file', 'p.pid', '--console-socket', '/s.sock', '--no-pivot', 'c1']);
  t.equal(r.code, 0);
  t.equal(r.err, '');
  t.same(r.calls, [{
    fn: 'create',
    args: [
      { root: '/tmp/kr', config: resolve('c.toml'), hypervisor: 'qemu', log: resolve('l.log'), logFormat: 'json' },
      'c1',
      { bundle: '/bun', pidFile: resolve('p.pid'), consoleSocket: '/s.sock', stdio: { stdin: 10, stdout: 11, stderr: 12 } },
    ],
  }]);
  const d = await cli(['create', '-b', 'rel', 'c2']);
  t.same(d.calls[0]!.args[0], { root: '/run/kata-ts' }, 'default root, nothing else set');
  t.same(d.calls[0]!.args[2], { bundle: resolve('rel'), stdio: { stdin: 10, stdout: 11, stderr: 12 } }, 'bundle made absolute');
  const e = await cli(['create', 'c3'], { env: { KATA_TS_CONFIG: '/etc/x.toml' } });
  t.equal((e.calls[0]!.args[0] as { config?: string }).config, '/etc/x.toml', 'KATA_TS_CONFIG used without --config');
  const f = await cli(['--config', '/a.toml', 'create', 'c3'], { env: { KATA_TS_CONFIG: '/etc/x.toml' } });
  t.equal((f.calls[0]!.args[0] as { config?: string }).config, '/a.toml', '--config wins over KATA_TS_CONFIG');
});

t.test('state prints the state JSON; list and ps formats', async (t) => {
  const s = await cli(['state', 'c1']);
  t.same(JSON.parse(s.out), sample);
  const l = await cli(['list']);
  t.match(l.out, /^ID\s+PID\s+STATUS\s+BUNDLE\nc1\s+4242\s+running\s+\/b\n$/);
  t.same(JSON.parse((await cli(['list', '-f', 'json'])).out), [sample]);
  t.equal((await cli(['list', '-q'])).out, 'c1\n');
  t.match((await cli(['ps', 'c1'])).out, /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD\nroot\s+1\s+0\s+0\s+\d\d:\d\d\s+\?\s+00:00:00\s+sh -c sleep\nroot\s+12\s+1\s+.*sleep 100\n$/);
  t.equal((await cli(['ps', '--format', 'json', 'c1'])).out, '[1,12]\n', 'json: the pids, as runc prints them');
  t.equal((await cli(['ps', 'c1', '-ef'])).out.split('\n').length, 4, 'ps -ef is the default table');
  const bad = await cli(['ps', 'c1', '-o', 'pid']);
  t.equal(bad.code, 1);
  t.match(bad.err, /^kata-ts: ps options -o pid are not supported: the table has the columns of ps -ef/);
});

t.test('formatPs: the columns of ps -ef', async (t) => {
  const now = new Date(2026, 11, 5, 12, 0, 0).getTime();
  const start = new Date(2026, 11, 5, 10, 7, 0).getTime() / 1000;
  const out = formatPs([{ pid: 7, ppid: 1, uid: 1000, start_time: start, cpu_millis: 3_723_000 + 86_400_000, tty: 'pts/0', cmd: 'top -b' }], now);
  t.equal(out, 'UID   PID  PPID  C   STIME  TTY    TIME        CMD\n1000  7    1     99  10:07  pts/0  1-01:02:03  top -b\n');
  const old = formatPs([{ pid: 7, ppid: 1, uid: 0, start_time: new Date(2026, 10, 3, 9, 0).getTime() / 1000, cpu_millis: 0, tty: '', cmd: '[sh]' }], now);
  t.match(old, /\nroot\s+7\s+1\s+0\s+Nov03\s+\?\s+00:00:00\s+\[sh\]\n$/, 'a start before today shows the date');
});

t.test('kill: default SIGTERM, names and numbers like runc, --all', async (t) => {
  for (const [arg, sig] of [[undefined, constants.signals.SIGTERM], ['KILL', 9], ['SIGKILL', 9], ['kill', 9], ['9', 9], ['hup', 1], ['USR1', constants.signals.SIGUSR1], ['64', 64]] as const) {
    const r = await cli(['kill', 'c1', ...(arg !== undefined ? [arg] : [])]);
    t.equal(r.code, 0, `kill ${arg ?? '(default)'}`);
    t.same(r.calls[0]!.args.slice(1), ['c1', sig, false]);
  }
  const a = await cli(['kill', '--all', 'c1', 'TERM']);
  t.same(a.calls[0]!.args.slice(1), ['c1', 15, true]);
  for (const bad of ['0', '65', 'NOPE', 'SIG']) {
    const r = await cli(['kill', 'c1', bad]);
    t.equal(r.code, 1, `kill ${bad} fails`);
    t.equal(r.calls.length, 0, 'runtime not called');
    t.match(r.err, /^kata-ts: .*signal/);
  }
});

t.test('delete and --force; NOT_FOUND is success only with --force (runc)', async (t) => {
  t.same((await cli(['delete', 'c1'])).calls[0]!.args.slice(1), ['c1', false]);
  t.same((await cli(['delete', '-f', 'c1'])).calls[0]!.args.slice(1), ['c1', true]);
  const nf = new RuntimeError('NOT_FOUND', 'container "c1" does not exist');
  const plain = await cli(['delete', 'c1'], { fail: nf });
  t.equal(plain.code, 1);
  t.equal(plain.err, 'kata-ts: container "c1" does not exist\n');
  const forced = await cli(['delete', '--force', 'c1'], { fail: nf });
  t.equal(forced.code, 0);
  t.equal(forced.err, '');
  const other = await cli(['delete', '--force', 'c1'], { fail: new RuntimeError('INTERNAL', 'boom') });
  t.equal(other.code, 1, 'other errors still fail with --force');
});

t.test('run exits with the container code; --detach is create + start', async (t) => {
  const r = await cli(['run', '--bundle', '/bun', 'c1']);
  t.equal(r.code, 7);
  t.same(r.calls.map((c) => c.fn), ['run']);
  t.same(r.calls[0]!.args[2], { bundle: '/bun', stdio: { stdin: 10, stdout: 11, stderr: 12 } });
  const d = await cli(['run', '-d', '-b', '/bun', '--pid-file', '/p', 'c1']);
  t.equal(d.code, 0);
  t.same(d.calls.map((c) => c.fn), ['create', 'start']);
  t.same(d.calls[0]!.args[2], { bundle: '/bun', pidFile: '/p', stdio: { stdin: 10, stdout: 11, stderr: 12 } });
  const bad = await cli(['run', '--pid-file', '/p', 'c1']);
  t.equal(bad.code, 1);
  t.match(bad.err, /^kata-ts: .*--detach/);
});

t.test('exec: command options pass through; -t, --env, --cwd, --process', async (t) => {
  const r = await cli(['exec', '-t', '-e', 'A=1', '--cwd', '/tmp', 'c1', 'sh', '-c', 'echo $A', '--tty']);
  t.equal(r.code, 3, 'exit code of the process');
  t.same(r.calls.map((c) => c.fn), ['state', 'exec'], '--env reads the bundle env first');
  t.same(r.calls[1]!.args.slice(1), ['c1', { args: ['sh', '-c', 'echo $A', '--tty'], tty: true, env: [...DEFAULT_ENV, 'A=1'], cwd: '/tmp', stdio: { stdin: 10, stdout: 11, stderr: 12 } }]);
  const plain = await cli(['exec', 'c1', 'ls', '-l']);
  t.same(plain.calls[0]!.args[2], { args: ['ls', '-l'], tty: false, stdio: { stdin: 10, stdout: 11, stderr: 12 } });
  const none = await cli(['exec', 'c1']);
  t.equal(none.code, 1);
  t.match(none.err, /^kata-ts: exec needs a command/);
  t.equal((await cli(['exec', '-e', 'NOEQUALS', 'c1', 'true'])).code, 1, 'bad --env');

  const dir = mkdtempSync(join(tmpdir(), 'kta-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pf = join(dir, 'process.json');
  writeFileSync(pf, JSON.stringify({ args: ['top'], env: ['X=y'], cwd: '/', terminal: true }));
  const p = await cli(['exec', '--process', pf, 'c1']);
  t.same(p.calls[0]!.args[2], { args: ['top'], tty: true, env: ['X=y'], cwd: '/', stdio: { stdin: 10, stdout: 11, stderr: 12 } });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ process: { env: ['PATH=/bin', 'HOME=/root'] } }));
  t.same(bundleEnv(dir), ['PATH=/bin', 'HOME=/root'], 'bundle env read from config.json');
  t.same(bundleEnv(join(dir, 'absent')), DEFAULT_ENV, 'default env when config.json is gone');
  const pe = await cli(['exec', '-p', pf, '-e', 'Z=1', 'c1']);
  t.same(pe.calls.map((c) => c.fn), ['exec'], 'with --process the base env is the file\'s');
  t.same((pe.calls[0]!.args[2] as { env: string[] }).env, ['X=y', 'Z=1']);
  writeFileSync(pf, '{"args": []}');
  const pb = await cli(['exec', '--process', pf, 'c1']);
  t.equal(pb.code, 1);
  t.match(pb.err, /^kata-ts: --process .*"args" must be a non-empty array/);
  writeFileSync(pf, '{oops');
  t.match((await cli(['exec', '-p', pf, 'c1'])).err, /^kata-ts: cannot read --process/);
});

t.test('every failure is one kata-ts: line with a non-zero status', async (t) => {
  const cases: [string[], RegExp][] = [
    [['state'], /missing required argument/],
    [['state', 'a/b'], /invalid container id "a\/b": use 1\.\.64 characters of \[A-Za-z0-9_.-\], not starting with '\.'/],
    [['delete', 'a+b'], /invalid container id "a\+b"/],
    [['kill', `${'x'.repeat(64)}${'y'.repeat(2000)}`], new RegExp(`invalid container id "${'x'.repeat(64)}\\.\\.\\.":`)],
    [['state', 'a', 'b'], /too many arguments/],
    [['--log-format', 'xml', 'list'], /Allowed choices are text, json/],
    [['--hypervisor', 'kvm', 'list'], /Allowed choices are inproc, qemu, auto/],
    [['create', '--bogus', 'c1'], /unknown option '--bogus'/],
  ];
  for (const [argv, re] of cases) {
    const r = await cli(argv);
    t.not(r.code, 0, argv.join(' '));
    t.match(r.err, re);
    t.match(r.err, /^kata-ts: [^\n]+\n$/, 'exactly one line');
    t.equal(r.calls.length, 0);
  }
  const rt = await cli(['start', 'c1'], { fail: new Error('container "c1" is running, not created:\n  nothing to start') as RuntimeError });
  t.equal(rt.code, 1);
  t.equal(rt.err, 'kata-ts: container "c1" is running, not created:; nothing to start\n', 'multi-line messages folded');
});

t.test('helpers', async (t) => {
  t.equal(parseSignal('TERM'), 15);
  t.throws(() => parseSignal('-1'));
  t.equal(errorLine(new Error('error: x\n')), 'x');
  t.equal(errorLine('plain'), 'plain');
  const eacces = Object.assign(new Error("EACCES: permission denied, mkdir '/run/kata-ts'"), { code: 'EACCES' });
  t.match(errorLine(eacces), /permission denied.*: run as root, or pass --root DIR/, 'a permission error says what to do');
  t.same(runtimeOptions({ root: 'rel' }, {}), { root: resolve('rel') });
  t.equal(formatList([]), 'ID  PID  STATUS  BUNDLE\n');
});

t.test("a failed command's error also goes to --log, in runc's JSON record when --log-format json", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-clilog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'log.json');
  const fail = new RuntimeError('NOT_FOUND', 'container "nope" does not exist');
  const r = await cli(['--root', dir, '--log', log, '--log-format', 'json', 'state', 'nope'], { fail });
  t.equal(r.code, 1);
  t.match(r.err, /^kata-ts: container "nope" does not exist/);
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  t.equal(lines.length, 1, 'one record');
  const rec = JSON.parse(lines[0]!) as { level: string; msg: string; time: string };
  t.equal(rec.level, 'error');
  t.match(rec.msg, /^container "nope" does not exist/);
  t.ok(!Number.isNaN(Date.parse(rec.time)), 'time is a date');
  const text = join(dir, 'log.txt');
  await cli(['--root', dir, '--log', text, 'state', 'nope'], { fail });
  t.match(readFileSync(text, 'utf8'), /^\d{4}-\d\d-\d\dT[\d:.]+Z error container "nope" does not exist/, 'text format: one line');
  const ok = join(dir, 'ok.json');
  await cli(['--root', dir, '--log', ok, '--log-format', 'json', 'state', 'c1']);
  t.throws(() => readFileSync(ok), 'a command that succeeds writes no error record');
});

t.test('pause and resume reach the runtime with the id', async (t) => {
  const p = await cli(['pause', 'c1']);
  t.equal(p.code, 0);
  t.same(p.calls.map((c) => [c.fn, c.args[1]]), [['pause', 'c1']]);
  const r = await cli(['resume', 'c1']);
  t.same(r.calls.map((c) => [c.fn, c.args[1]]), [['resume', 'c1']]);
  const bad = await cli(['pause', '../x']);
  t.equal(bad.code, 1);
  t.match(bad.err, /^kata-ts: invalid container id/);
  t.same(bad.calls, [], 'a bad id never reaches the runtime');
});

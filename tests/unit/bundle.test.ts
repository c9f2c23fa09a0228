// The bundle users run (tools/bundle.ts, built by npm run build:ts): one self-contained file per entry point,
// and the bundled code still finds what it reads beside its modules (the addon, .proto files, the default
// configuration.toml, the host-quirks file, the package root). The e2e tests drive the bundled CLI and shim, and
// oci-lifecycle checks that their sandbox process and stdio relay start from the bundle.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { isBundled } from '../../src/contract/entry-point.js';
import { packageRoot } from '../../src/host/package-root.js';

const dir = join(packageRoot(), 'dist', 'bundle');
const ENTRIES = ['kata-ts', 'shim', 'sandbox-main', 'stdio-relay-main', 'vcpu-worker', 'device-worker'];

t.test('one self-contained body per entry point, started by a launcher; the commands are executable', async (t) => {
  t.same(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')), { type: 'commonjs' }, 'the launchers are CommonJS');
  for (const name of ENTRIES) {
    const text = readFileSync(join(dir, `${name}.body.cjs`), 'utf8');
    // esbuild writes imports and requires of other files as "./x.js": a body that needs one is not self-contained
    t.notMatch(text, /(?:from|import\(|require\()\s*["']\.\.?\//, `${name}.body.cjs loads no other file of the tree`);
    t.match(readFileSync(join(dir, `${name}.js`), 'utf8'), `const BODY = "${name}.body.cjs";`, `${name}.js launches ${name}.body.cjs`);
  }
  for (const name of ['kata-ts', 'shim']) {
    const st = statSync(join(dir, `${name}.js`));
    t.equal(st.mode & 0o111, 0o111, `${name}.js is executable`);
    t.ok(readFileSync(join(dir, `${name}.js`), 'utf8').startsWith('#!/usr/bin/env node\n'), `${name}.js starts with its #! line`);
  }
  const pj = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { bin: Record<string, string> };
  t.same(pj.bin, { 'kata-ts': 'dist/bundle/kata-ts.js', 'containerd-shim-kata-ts-v2': 'dist/bundle/shim.js' }, 'package.json bin names the bundle');
});

t.test('the bundled CLI finds its files: the addon, the quirks file, the default configuration', async (t) => {
  const run = (args: string[]) => spawnSync(process.execPath, [join(dir, 'kata-ts.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
  t.equal(run(['--version']).stdout.trim(), (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version);
  const check = run(['check', '--json', '--no-probe']);
  t.ok(check.status === 0 || check.status === 1, `check ran (${check.stderr})`);
  const report = JSON.parse(check.stdout) as { kvm?: { path?: unknown } };
  t.equal(report.kvm?.path, '/dev/kvm', 'check printed its JSON report (the addon loaded from build/Release)');
  // `state` of a missing container loads the runtime (configuration.toml, validation) and says what to do
  const st = run(['--root', join(packageRoot(), 'dist', 'no-such-root'), 'state', 'nope']);
  t.equal(st.status, 1);
  t.match(st.stderr, /^kata-ts: container 'nope' does not exist: see `kata-ts list`\n$/);
});

t.test("the launcher's V8 code cache: used when newer than the body, remade when stale or rejected, never trusted blindly", async (t) => {
  const cache = join(dir, 'kata-ts.body.cjs.v8cache');
  const version = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  const run = (mode = 'report') => {
    const r = spawnSync(process.execPath, [join(dir, 'kata-ts.js'), '--version'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, KATA_TS_CODE_CACHE: mode } });
    t.equal(r.stdout.trim(), version, `--version answers (${mode})`);
    return r.stderr.trim();
  };
  t.ok(existsSync(cache), 'the build made the CLI\'s code cache');
  t.equal(run(), 'kata-ts code cache: used');
  // a cache older than the body is never read (V8 itself checks only its version, flags and the source length)
  const old = new Date(statSync(join(dir, 'kata-ts.body.cjs')).mtimeMs - 60_000);
  utimesSync(cache, old, old);
  t.equal(run(), 'kata-ts code cache: none, written', 'a stale cache is ignored and made again');
  t.equal(run(), 'kata-ts code cache: used');
  writeFileSync(cache, Buffer.alloc(4096, 0xa5));
  t.equal(run(), 'kata-ts code cache: rejected, written', 'V8 rejects a damaged cache; the launcher makes a new one');
  t.equal(run(), 'kata-ts code cache: used');
  t.equal(run('off'), '', 'KATA_TS_CODE_CACHE=off: no cache read or written, nothing reported');
  t.same(readdirSync(dir).filter((f) => f.includes('.v8cache.')), [], 'no temporary cache file is left behind');
});

t.test("the launcher on a body of its own: #! line, __filename, import() of a module the body does not bundle, with and without the cache", async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'kata-ts-launcher-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  writeFileSync(join(d, 'package.json'), '{"type":"commonjs"}\n');
  const launcher = readFileSync(join(packageRoot(), 'tools', 'bundle-launcher.cjs'), 'utf8');
  writeFileSync(join(d, 'x.js'), launcher.replace("const BODY = 'BODY';", 'const BODY = "x.body.cjs";'));
  writeFileSync(join(d, 'dev.mjs'), 'export const answer = 42;\n');
  writeFileSync(
    join(d, 'x.body.cjs'),
    // as the build writes a computed import(): a call of the launcher's own import()
    "#!/usr/bin/env node\n__kataTsImport(require('node:url').pathToFileURL(require('node:path').join(__dirname, 'dev.mjs')).href).then((m) => console.log(m.answer, require('node:path').basename(__filename), process.argv.slice(2).join(',')));\n",
  );
  const run = () => spawnSync(process.execPath, [join(d, 'x.js'), 'a', 'b'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, KATA_TS_CODE_CACHE: 'report' } });
  const first = run();
  t.equal(first.stdout, '42 x.body.cjs a,b\n', `the body ran with its own __filename and the arguments, and import() loaded an ES module: ${first.stderr}`);
  t.equal(first.stderr, 'kata-ts code cache: none, written\n');
  t.ok(existsSync(join(d, 'x.body.cjs.v8cache')));
  const second = run();
  t.equal(second.stdout, first.stdout);
  t.equal(second.stderr, 'kata-ts code cache: used\n', 'no warning either');
});

t.test('the bundles keep no import() of their own, and the device worker imports a device class through the launcher', async (t) => {
  for (const name of ENTRIES) t.notMatch(readFileSync(join(dir, `${name}.body.cjs`), 'utf8'), /[^\w$.]import\(/, `${name}.body.cjs`);
  t.match(readFileSync(join(dir, 'device-worker.body.cjs'), 'utf8'), /__kataTsImport\(spec\.module\)/, "the registry's import(spec.module) calls the launcher's");
});

t.test('modules imported from dist/src are not bundled', async (t) => {
  t.equal(isBundled(), false);
});

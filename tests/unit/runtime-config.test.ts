// configuration.toml loading (src/runtime/config.ts): the package default parses, a partial file is laid over
// the defaults, syntax errors / unknown keys / wrong types are reported as file:line, precedence is
// --config > KATA_TS_CONFIG > /etc/kata-ts > package default, annotation overrides honour the allow-list.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { applyAnnotations, builtinConfig, ConfigError, configPath, findKeyLine, loadConfig, PACKAGE_CONFIG, parseConfig } from '../../src/runtime/config.js';

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-cfg-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

t.test('the package default file parses and matches the built-in defaults', async (t) => {
  const c = loadConfig({ config: PACKAGE_CONFIG });
  t.equal(c.source, PACKAGE_CONFIG);
  const b = builtinConfig();
  t.same({ ...c, source: '' }, { ...b, source: '' }, 'configuration.default.toml = builtinConfig()');
});

t.test('a partial file overrides only what it names', async (t) => {
  const c = parseConfig('[hypervisor.qemu]\ndefault_memory = 1024\nkernel = "/k/vmlinux"\n\n[runtime]\nhypervisor = "qemu"\n', 'x.toml');
  t.equal(c.hypervisor.qemu.default_memory, 1024);
  t.equal(c.hypervisor.qemu.kernel, '/k/vmlinux');
  t.equal(c.hypervisor.qemu.default_vcpus, 1, 'untouched key keeps its default');
  t.equal(c.hypervisor.inproc.default_memory, 512, 'other section untouched');
  t.equal(c.runtime.hypervisor, 'qemu');
});

t.test('syntax errors carry the file and line', async (t) => {
  const text = '[agent]\ndial_timeout = 5\n\n[runtime\nhypervisor = "qemu"\n';
  let err: unknown;
  try {
    parseConfig(text, 'bad.toml');
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError, 'a ConfigError');
  t.equal((err as ConfigError).line, 4);
  t.match((err as Error).message, /^bad\.toml:4: invalid TOML/);
});

t.test('unknown keys and sections are reported with their line', async (t) => {
  const text = '# c\n[hypervisor.qemu]\nkernel = "/k"\nkernal_params = "x"\n';
  t.throws(() => parseConfig(text, 'u.toml'), { message: /^u\.toml:4: unknown key 'kernal_params' in \[hypervisor\.qemu\]/ });
  t.throws(() => parseConfig('[agent]\ndial_timeout = 3\n[bogus]\nx = 1\n', 'u.toml'), { message: /^u\.toml:3: unknown section \[bogus\]/ });
  t.throws(() => parseConfig('\n[hypervisor.firecracker]\npath = "x"\n', 'u.toml'), { message: /^u\.toml:2: unknown section \[hypervisor\.firecracker\]/ });
  t.throws(() => parseConfig('top = 1\n', 'u.toml'), { message: /^u\.toml:1: unknown top-level key 'top'/ });
});

t.test('wrong types and out-of-range values are reported with their line', async (t) => {
  t.throws(() => parseConfig('[hypervisor.qemu]\n\ndefault_vcpus = "two"\n', 'w.toml'), { message: /^w\.toml:3: \[hypervisor\.qemu\] default_vcpus must be an integer \(got string\)/ });
  t.throws(() => parseConfig('[hypervisor.inproc]\ndefault_memory = 1.5\n', 'w.toml'), { message: /^w\.toml:2: .*must be an integer/ });
  t.throws(() => parseConfig('[hypervisor.inproc]\ndefault_memory = 8\n', 'w.toml'), { message: /^w\.toml:2: .*must be in 64\.\.65536 \(got 8\)/ });
  t.throws(() => parseConfig('[runtime]\nhypervisor = "xen"\n', 'w.toml'), { message: /^w\.toml:2: .*must be one of inproc, qemu, auto/ });
  t.throws(() => parseConfig('[runtime]\nx=1\nenable_annotations = ["kernel"]\n', 'w.toml'), { message: /^w\.toml:2: unknown key 'x'/ });
  t.throws(() => parseConfig('[runtime]\nenable_annotations = ["kernel"]\n', 'w.toml'), { message: /^w\.toml:2: .*'kernel' cannot be overridden/ });
  t.throws(() => parseConfig('[hypervisor.qemu]\nkernel = 3\n', 'w.toml'), { message: /^w\.toml:2: .*kernel must be a string \(got integer\)/ });
});

t.test('console_log_max_mib bounds the console ring: 1..1024 MiB, default 1 (issue 14 item 6)', async (t) => {
  t.equal(builtinConfig().hypervisor.qemu.console_log_max_mib, 1);
  t.equal(parseConfig('[hypervisor.qemu]\nconsole_log_max_mib = 8\n', 'w.toml').hypervisor.qemu.console_log_max_mib, 8);
  t.throws(() => parseConfig('[hypervisor.qemu]\nconsole_log_max_mib = 0\n', 'w.toml'), { message: /^w\.toml:2: \[hypervisor\.qemu\] console_log_max_mib must be in 1\.\.1024 \(got 0\)/ });
  t.throws(() => parseConfig('[hypervisor.inproc]\n\nconsole_log_max_mib = "1M"\n', 'w.toml'), { message: /^w\.toml:3: .*console_log_max_mib must be an integer \(got string\)/ });
});

t.test('findKeyLine handles dotted keys and section headers', async (t) => {
  const text = '[a]\nx = 1\n[ b . c ]\ny = 2\n';
  t.equal(findKeyLine(text, 'a', 'x'), 2);
  t.equal(findKeyLine(text, 'b.c', 'y'), 4);
  t.equal(findKeyLine(text, 'b.c', undefined), 3);
  t.equal(findKeyLine(text, 'a', 'nope'), 1, 'falls back to the section header');
  t.equal(findKeyLine(text, 'zz', 'nope'), undefined);
});

t.test('precedence: --config, then KATA_TS_CONFIG, then /etc/kata-ts, then the package default', async (t) => {
  const sys = file('system.toml', '[hypervisor.qemu]\ndefault_vcpus = 2\n');
  const envf = file('env.toml', '[hypervisor.qemu]\ndefault_vcpus = 3\n');
  const cli = file('cli.toml', '[hypervisor.qemu]\ndefault_vcpus = 4\n');
  const pkg = file('pkg.toml', '[hypervisor.qemu]\ndefault_vcpus = 5\n');
  const missing = join(dir, 'none.toml');
  t.equal(loadConfig({ config: cli, env: { KATA_TS_CONFIG: envf }, systemPath: sys, packagePath: pkg }).hypervisor.qemu.default_vcpus, 4);
  t.equal(loadConfig({ env: { KATA_TS_CONFIG: envf }, systemPath: sys, packagePath: pkg }).hypervisor.qemu.default_vcpus, 3);
  t.equal(loadConfig({ env: {}, systemPath: sys, packagePath: pkg }).hypervisor.qemu.default_vcpus, 2);
  t.equal(loadConfig({ env: {}, systemPath: missing, packagePath: pkg }).hypervisor.qemu.default_vcpus, 5);
  t.equal(loadConfig({ env: {}, systemPath: missing, packagePath: missing }).source, 'built-in');
  t.same(configPath({ env: {}, systemPath: sys, packagePath: pkg }), { path: sys, explicit: false });
  t.throws(() => loadConfig({ config: missing, env: {} }), { message: /none\.toml: cannot read the configuration file \(ENOENT\)/ }, 'a missing --config file is an error, not a fallback');
});

t.test('annotations override only allow-listed keys, with range checks', async (t) => {
  const cfg = builtinConfig();
  const hv = cfg.hypervisor.qemu;
  const p = 'io.katacontainers.config.hypervisor.';
  const r = applyAnnotations(hv, cfg, { [`${p}default_memory`]: '1024', [`${p}kernel_params`]: 'quiet', other: 'x' });
  t.equal(r.default_memory, 1024);
  t.equal(r.kernel_params, 'quiet');
  t.equal(hv.default_memory, 512, 'the input section is not changed');
  t.throws(() => applyAnnotations(hv, cfg, { [`${p}default_vcpus`]: '0' }), { message: /must be an integer in 1\.\.64/ });
  t.throws(() => applyAnnotations(hv, cfg, { [`${p}kernel`]: '/evil' }), { message: /overriding 'kernel' is not enabled/ });
  const strict = parseConfig('[runtime]\nenable_annotations = []\n', 's.toml');
  t.throws(() => applyAnnotations(hv, strict, { [`${p}default_memory`]: '1024' }), { message: /not enabled: add it to \[runtime\] enable_annotations in s\.toml/ });
});

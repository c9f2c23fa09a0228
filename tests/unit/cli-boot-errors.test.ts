// `kata-ts boot` with bad input: one clear line on stderr, a non-zero exit, nothing else.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../src/host/package-root.js';

const CLI = join(packageRoot(), 'dist/bundle/kata-ts.js');

function boot(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, 'boot', '--quirks', 'none', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr.trim(), stdout: r.stdout };
}

t.test('a missing kernel names the file and how to build one', async (t) => {
  const r = boot('--kernel', '/nonexistent/vmlinux');
  t.equal(r.status, 1);
  t.equal(r.stderr.split('\n').length, 1, 'one line');
  t.match(r.stderr, /^kata-ts: kernel not found: \/nonexistent\/vmlinux \(build one with `npm run --silent guest:kernel`/);
});

t.test('a kernel that is not an ELF says to pass the uncompressed vmlinux', async (t) => {
  const f = join(tmpdir(), `kata-ts-not-elf-${process.pid}`);
  writeFileSync(f, 'MZ' + 'x'.repeat(200)); // bzImage-like: not an ELF
  const r = boot('--kernel', f);
  t.equal(r.status, 1);
  t.match(r.stderr, /kata-ts: .*not an ELF.*vmlinux/);
});

t.test('bad numbers are refused by name', async (t) => {
  const f = join(tmpdir(), `kata-ts-not-elf-${process.pid}`);
  t.match(boot('--kernel', f, '--vcpus', '0').stderr, /--vcpus must be an integer from 1 to 254/);
  t.match(boot('--kernel', f, '--memory', 'abc').stderr, /--memory/);
  t.not(boot('--kernel', f, '--memory', 'abc').status, 0);
});

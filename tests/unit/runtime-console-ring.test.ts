// The guest console's bounded log (src/runtime/console-ring.ts, issue 14 item 6): under a flood, console.log and
// console.log.1 each stay within the bound, nothing else is written, the newest bytes are at the end of
// console.log, a single write larger than the bound keeps its tail, and the files are 0600 under any umask.
// The sandbox's own console path (fake hypervisor → Sandbox → the ring) is in tests/runtime/sandbox-fake.test.ts.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConsoleRing } from '../../src/runtime/console-ring.js';

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-ring-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('a flood stays within two files of maxBytes; the newest output is last', async (t) => {
  const path = join(dir, 'flood', 'console.log');
  mkdirSync(join(dir, 'flood'));
  const max = 4096;
  const errors: Error[] = [];
  const ring = new ConsoleRing(path, max, (e) => errors.push(e));
  let written = 0;
  let line = 0;
  while (written < 100 * max) {
    const b = Buffer.from(`line ${line++} ${'x'.repeat(line % 200)}\n`);
    ring.write(b);
    written += b.length;
  }
  const last = `line ${line - 1} `;
  t.same(readdirSync(join(dir, 'flood')).sort(), ['console.log', 'console.log.1'], 'two files, no more');
  t.ok(statSync(path).size <= max, `console.log ${statSync(path).size} <= ${max}`);
  t.ok(statSync(ring.previousPath).size <= max, `console.log.1 ${statSync(ring.previousPath).size} <= ${max}`);
  t.ok(statSync(ring.previousPath).size > max / 2, 'the older half is kept, not emptied');
  t.ok(readFileSync(path, 'utf8').includes(last), 'the newest line is in console.log');
  t.ok(readFileSync(path, 'utf8').endsWith('\n'), 'whole writes: a write is never split across the two files');
  t.same(errors, []);
  ring.close();
  ring.write(Buffer.from('after close'));
  t.notOk(readFileSync(path, 'utf8').includes('after close'), 'nothing is written after close');
});

t.test('one write larger than the bound keeps its last maxBytes', async (t) => {
  const path = join(dir, 'big.log');
  const ring = new ConsoleRing(path, 100, () => undefined);
  ring.write(Buffer.from('head'));
  const big = Buffer.from(`${'a'.repeat(1000)}${'z'.repeat(100)}`);
  ring.write(big);
  t.equal(readFileSync(path, 'utf8'), 'z'.repeat(100));
  t.equal(readFileSync(`${path}.1`, 'utf8'), 'head');
  ring.close();
  t.throws(() => new ConsoleRing(join(dir, 'zero.log'), 0, () => undefined), RangeError);
});

t.test('the files are 0600 even under umask 000', async (t) => {
  const old = process.umask(0);
  t.teardown(() => process.umask(old));
  const path = join(dir, 'mode.log');
  const ring = new ConsoleRing(path, 10, () => undefined);
  ring.write(Buffer.from('0123456789'));
  ring.write(Buffer.from('abc')); // rotates
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(statSync(`${path}.1`).mode & 0o777, 0o600);
  ring.close();
});

t.test('a write that fails stops the log, once, without throwing', async (t) => {
  const path = join(dir, 'gone', 'console.log');
  mkdirSync(join(dir, 'gone'));
  const errors: Error[] = [];
  const ring = new ConsoleRing(path, 4, (e) => errors.push(e));
  rmSync(join(dir, 'gone'), { recursive: true });
  ring.write(Buffer.from('1234'));
  ring.write(Buffer.from('5678')); // rotation: rename into a removed directory fails
  ring.write(Buffer.from('9'));
  t.equal(errors.length, 1, 'one error reported');
});

// Sandbox process logs (src/runtime/log.ts): pino JSON lines for --log-format json, one readable line for text.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createLogger } from '../../src/runtime/log.js';

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-log-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('json: pino records with level, time, sandbox and fields', async (t) => {
  const p = join(dir, 'j.log');
  const fd = openSync(p, 'w');
  const l = createLogger('json', 'sb1', fd);
  l.info('VM started', { hypervisor: 'qemu' });
  l.error('agent gone');
  closeSync(fd);
  const lines = readFileSync(p, 'utf8').trim().split('\n').map((x) => JSON.parse(x) as Record<string, unknown>);
  t.equal(lines.length, 2);
  t.match(lines[0], { level: 30, sandbox: 'sb1', msg: 'VM started', hypervisor: 'qemu', pid: process.pid });
  t.type(lines[0]!['time'], 'number');
  t.match(lines[1], { level: 50, msg: 'agent gone' });
});

t.test('text: one line per record', async (t) => {
  const p = join(dir, 't.log');
  const fd = openSync(p, 'w');
  const l = createLogger('text', 'sb2', fd);
  l.info('container created', { id: 'c1' });
  l.error('oops');
  closeSync(fd);
  const lines = readFileSync(p, 'utf8').trim().split('\n');
  t.equal(lines.length, 2);
  t.match(lines[0], /^\d{4}-\d\d-\d\dT[\d:.]+Z info sandbox=sb2 container created \{"id":"c1"\}$/);
  t.match(lines[1], /Z error sandbox=sb2 oops$/);
});

// Sandbox process logs (src/runtime/log.ts): pino JSON lines for --log-format json, one readable line for text.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { logRecord } from '../../src/runtime/log-record.js';
import { createLogger } from '../../src/runtime/log.js';

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-log-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test("json: runc's record shape (string level, msg, RFC 3339 time) with sandbox and fields", async (t) => {
  const p = join(dir, 'j.log');
  const fd = openSync(p, 'w');
  const l = createLogger('json', 'sb1', fd);
  l.info('VM started', { hypervisor: 'qemu' });
  l.error('agent gone');
  closeSync(fd);
  const lines = readFileSync(p, 'utf8').trim().split('\n').map((x) => JSON.parse(x) as Record<string, unknown>);
  t.equal(lines.length, 2);
  t.match(lines[0], { level: 'info', sandbox: 'sb1', msg: 'VM started', hypervisor: 'qemu', pid: process.pid });
  t.match(lines[0]!['time'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'time is RFC 3339 (go-runc parses it as time.Time)');
  t.ok(!Number.isNaN(Date.parse(lines[0]!['time'] as string)));
  t.match(lines[1], { level: 'error', msg: 'agent gone' });
});

t.test('logRecord: what the CLI appends to --log for a failed command', async (t) => {
  const now = new Date('2026-12-05T12:00:00.000Z');
  t.same(JSON.parse(logRecord('json', 'error', 'container "x" does not exist', now)), { level: 'error', msg: 'container "x" does not exist', time: '2026-12-05T12:00:00.000Z' });
  t.ok(logRecord('json', 'error', 'a\nb', now).endsWith('}\n'), 'one line, even for a message with a newline');
  t.equal(logRecord('text', 'error', 'oops', now), '2026-12-05T12:00:00.000Z error oops\n');
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

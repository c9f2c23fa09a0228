// The QMP codec (line framing, message classes, limits) and the client against a fake QMP server socket.
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  classifyQmp,
  encodeQmpCommand,
  MAX_QMP_LINE,
  QmpClient,
  QmpCommandError,
  QmpConnectionClosed,
  QmpDecoder,
  QmpProtocolError,
  type QmpMessage,
} from '../../src/hypervisor/qmp.js';

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}\r\n';

t.test('decoder: framing across chunks, CRLF, blank lines', async (t) => {
  const d = new QmpDecoder();
  t.same(d.push(GREETING.slice(0, 10)), [], 'nothing until the line ends');
  const [g] = d.push(GREETING.slice(10));
  t.match(g, { type: 'greeting', version: { qemu: { major: 7 } }, capabilities: ['oob'] });
  const msgs = d.push('{"return": {}, "id": 1}\r\n\r\n{"event": "STOP", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}}\n{"error": {"class": "CommandNotFound", "desc": "nope"}, "id": 2}\r\n');
  t.same(msgs, [
    { type: 'return', id: 1, value: {} },
    { type: 'event', event: 'STOP', data: {}, timestamp: { seconds: 1, microseconds: 2 } },
    { type: 'error', id: 2, errorClass: 'CommandNotFound', desc: 'nope' },
  ]);
  t.same(d.push(Buffer.from('{"return": 5}\n')), [{ type: 'return', value: 5 }], 'a return without id; bytes input');
});

t.test('decoder: bad input is a protocol error', async (t) => {
  t.throws(() => new QmpDecoder().push('{"return": \n'), QmpProtocolError, 'not JSON');
  t.throws(() => new QmpDecoder().push('[1,2]\n'), /expected a JSON object/);
  t.throws(() => new QmpDecoder().push('{"hello": 1}\n'), /unrecognised message/);
  t.throws(() => new QmpDecoder().push('x'.repeat(MAX_QMP_LINE + 1)), /exceeds/, 'an endless line is refused, not buffered');
  t.throws(() => classifyQmp(null), QmpProtocolError);
  t.match(classifyQmp({ error: {} }), { type: 'error', errorClass: 'GenericError', desc: '' }, 'malformed error body gets defaults');
  t.match(classifyQmp({ event: 'X', data: 3 }), { type: 'event', event: 'X', data: {} });
});

t.test('encoder', async (t) => {
  t.equal(encodeQmpCommand('stop'), '{"execute":"stop"}\r\n');
  t.equal(encodeQmpCommand('human-monitor-command', { 'command-line': 'info' }, 7), '{"execute":"human-monitor-command","arguments":{"command-line":"info"},"id":7}\r\n');
});

/** A fake QMP server: greets, answers each command from `answer` (by command name), records what it got. */
function fakeQmp(teardown: (fn: () => void) => void, answer: (cmd: { execute: string; id?: number }, sock: Socket) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-qmp-'));
  const path = join(dir, 'qmp.sock');
  const received: string[] = [];
  const server = createServer((sock) => {
    sock.write(GREETING);
    let buf = '';
    sock.on('data', (b) => {
      buf += b.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const cmd = JSON.parse(line) as { execute: string; id?: number };
        received.push(cmd.execute);
        answer(cmd, sock);
      }
    });
  });
  teardown(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const listening = new Promise<void>((r) => server.listen(path, () => r()));
  return { path, received, listening };
}

t.test('client: handshake, commands, errors, events, out-of-order answers', async (t) => {
  const f = fakeQmp((fn) => t.teardown(fn), (cmd, sock) => {
    if (cmd.execute === 'qmp_capabilities' || cmd.execute === 'stop') sock.write(`{"return": {}, "id": ${String(cmd.id)}}\r\n`);
    else if (cmd.execute === 'query-status') {
      // an event first, then the answer
      sock.write('{"timestamp": {"seconds": 1, "microseconds": 0}, "event": "STOP"}\r\n');
      sock.write(`{"return": {"status": "paused", "running": false}, "id": ${String(cmd.id)}}\r\n`);
    } else if (cmd.execute === 'slow') setTimeout(() => sock.write(`{"return": "slow", "id": ${String(cmd.id)}}\r\n`), 50);
    else if (cmd.execute === 'fast') sock.write(`{"return": "fast", "id": ${String(cmd.id)}}\r\n`);
    else sock.write(`{"error": {"class": "CommandNotFound", "desc": "The command ${cmd.execute} has not been found"}, "id": ${String(cmd.id)}}\r\n`);
  });
  await f.listening;
  const client = new QmpClient(createConnection(f.path));
  t.teardown(() => client.close());
  await client.handshake();
  t.match(client.greeting, { version: { qemu: { major: 7, minor: 2 } } });
  t.same(f.received, ['qmp_capabilities'], 'capabilities negotiated first');

  const events: QmpMessage[] = [];
  client.on('event', (e: QmpMessage) => events.push(e));
  t.same(await client.execute('stop'), {});
  t.same(await client.execute('query-status'), { status: 'paused', running: false });
  t.match(events, [{ type: 'event', event: 'STOP' }], 'the event was delivered separately');
  const [slow, fast] = await Promise.all([client.execute('slow'), client.execute('fast')]);
  t.same([slow, fast], ['slow', 'fast'], 'answers are matched by id, not by order');
  const err = await client.execute('bogus').catch((e: unknown) => e);
  t.type(err, QmpCommandError);
  t.match(err, { command: 'bogus', errorClass: 'CommandNotFound', message: /QMP command 'bogus' failed: CommandNotFound/ });
});

t.test('client: the server going away rejects what is pending, and what comes later', async (t) => {
  const f = fakeQmp((fn) => t.teardown(fn), (cmd, sock) => {
    if (cmd.execute === 'qmp_capabilities') sock.write(`{"return": {}, "id": ${String(cmd.id)}}\r\n`);
    else if (cmd.execute === 'quit') sock.destroy(); // QEMU exits without answering
  });
  await f.listening;
  const client = new QmpClient(createConnection(f.path));
  await client.handshake();
  let closed = false;
  client.on('close', () => (closed = true));
  await t.rejects(client.execute('quit'), QmpConnectionClosed);
  t.ok(closed, "'close' was emitted");
  await t.rejects(client.execute('cont'), /QMP connection closed before 'cont'/);
});

t.test('client: garbage from the server is an error event and closes the connection', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-qmp-'));
  const path = join(dir, 'q.sock');
  const server = createServer((s) => s.write('this is not QMP\n'));
  t.teardown(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await new Promise<void>((r) => server.listen(path, () => r()));
  const client = new QmpClient(createConnection(path));
  const error = new Promise((r) => client.once('error', r));
  t.type(await error, QmpProtocolError);
  await t.rejects(client.handshake(), QmpConnectionClosed, 'the handshake fails instead of hanging');
});

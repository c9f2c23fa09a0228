import t from 'tap';
import {
  CallCancelled,
  CallTimeout,
  Code,
  MessageType,
  PeerGone,
  TtrpcClient,
  TtrpcServer,
  TtrpcStatusError,
  FrameDecoder,
  decodeResponse,
  encodeFrame,
  encodeRequest,
  type CallContext,
} from '../../src/agent/ttrpc.js';
import { unixSocketPair } from '../helpers/unix-socket-pair.js';

const enc = (s: string): Uint8Array => Buffer.from(s);
const dec = (b: Uint8Array): string => Buffer.from(b).toString();

function testServer() {
  const seen: CallContext[] = [];
  const protocolErrors: Error[] = [];
  const server = new TtrpcServer({ onProtocolError: (e) => protocolErrors.push(e) });
  server.register('test.Svc', {
    Echo: (p, ctx) => {
      seen.push(ctx);
      return enc(`echo:${dec(p)}`);
    },
    Fail: () => {
      throw new TtrpcStatusError(Code.NOT_FOUND, 'no container "c1"');
    },
    Crash: () => {
      throw new Error('boom');
    },
    Hang: (_p, ctx) =>
      new Promise<Uint8Array>((_resolve, reject) => {
        seen.push(ctx);
        ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
      }),
  });
  return { server, seen, protocolErrors };
}

async function rig(clientOpts: ConstructorParameters<typeof TtrpcClient>[1] = {}) {
  const pair = await unixSocketPair();
  const s = testServer();
  const conn = s.server.serve(pair.server);
  const clientErrors: Error[] = [];
  const client = new TtrpcClient(pair.client, { onProtocolError: (e) => clientErrors.push(e), ...clientOpts });
  return { ...s, pair, conn, client, clientErrors };
}

/** Sends raw bytes to the server and collects the decoded responses. */
async function rawExchange(bytes: Buffer, expect: number) {
  const pair = await unixSocketPair();
  const s = testServer();
  s.server.serve(pair.server);
  const d = new FrameDecoder();
  const got: { id: number; code: number; message: string }[] = [];
  await new Promise<void>((resolve) => {
    pair.client.on('data', (c: Buffer) => {
      for (const ev of d.push(c)) if (ev.kind === 'frame') {
        const r = decodeResponse(ev.frame.payload);
        got.push({ id: ev.frame.streamId, code: r.status?.code ?? 0, message: r.status?.message ?? dec(r.payload) });
      }
      if (got.length >= expect) resolve();
    });
    pair.client.write(bytes);
  });
  pair.close();
  return { got, protocolErrors: s.protocolErrors };
}

t.test('unary calls round trip with metadata and a deadline; stream ids are odd and increasing', async (t) => {
  const r = await rig();
  t.equal(dec(await r.client.call('test.Svc', 'Echo', enc('a'), { metadata: { 'x-k': ['1', '2'] }, timeoutMs: 5000 })), 'echo:a');
  t.equal(dec(await r.client.call('test.Svc', 'Echo', enc('b'), { timeoutMs: 0 })), 'echo:b');
  t.same(r.seen.map((c) => c.streamId), [1, 3]);
  t.same(r.seen[0]!.metadata.get('x-k'), ['1', '2']);
  t.equal(r.seen[0]!.timeoutMs, 5000, 'timeout_nano carried the client timeout');
  t.equal(r.seen[1]!.timeoutMs, undefined, 'no timeout: timeout_nano 0');
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => r.client.call('test.Svc', 'Echo', enc(String(i)))));
  t.same(many.map(dec), Array.from({ length: 20 }, (_, i) => `echo:${i}`), 'concurrent calls matched by stream id');
  t.same(r.clientErrors, []);
  r.pair.close();
});

t.test('status errors: handler status, INTERNAL for a crash, UNIMPLEMENTED for unknown service/method', async (t) => {
  const r = await rig();
  await t.rejects(r.client.call('test.Svc', 'Fail', enc('')), { name: 'TtrpcStatusError', code: Code.NOT_FOUND, codeName: 'NOT_FOUND', details: 'no container "c1"' });
  await t.rejects(r.client.call('test.Svc', 'Crash', enc('')), { code: Code.INTERNAL, details: 'boom' });
  await t.rejects(r.client.call('nope.Svc', 'X', enc('')), { code: Code.UNIMPLEMENTED, details: 'service nope.Svc' });
  await t.rejects(r.client.call('test.Svc', 'Nope', enc('')), { code: Code.UNIMPLEMENTED, details: 'method Nope' });
  t.equal(dec(await r.client.call('test.Svc', 'Echo', enc('still'))), 'echo:still', 'connection survives errors');
  r.pair.close();
});

t.test('client timeout: CallTimeout; the late answer is dropped quietly; the server handler sees its deadline', async (t) => {
  const r = await rig();
  await t.rejects(r.client.call('test.Svc', 'Hang', enc(''), { timeoutMs: 50 }), CallTimeout);
  t.equal(r.seen[0]!.timeoutMs, 50);
  await new Promise((res) => setTimeout(res, 50));
  t.equal(r.seen[0]!.signal.aborted, true, 'server aborted the handler at the deadline');
  t.equal(dec(await r.client.call('test.Svc', 'Echo', enc('after'))), 'echo:after');
  t.same(r.clientErrors, [], 'the DEADLINE_EXCEEDED reply for the abandoned stream is not a protocol error');
  r.pair.close();
});

t.test('cancellation by AbortSignal, before and during the call', async (t) => {
  const r = await rig();
  const pre = new AbortController();
  pre.abort(new Error('user hit ^C'));
  await t.rejects(r.client.call('test.Svc', 'Echo', enc(''), { signal: pre.signal }), { name: 'CallCancelled', message: /user hit \^C/ });
  const ac = new AbortController();
  const p = r.client.call('test.Svc', 'Hang', enc(''), { signal: ac.signal, timeoutMs: 0 });
  setTimeout(() => ac.abort(), 20);
  await t.rejects(p, CallCancelled);
  r.pair.close();
});

t.test('peer gone: pending calls and later calls fail with PeerGone; server handlers are aborted', async (t) => {
  const r = await rig();
  const p = r.client.call('test.Svc', 'Hang', enc(''), { timeoutMs: 0 });
  await new Promise((res) => setTimeout(res, 20));
  r.pair.server.destroy();
  await t.rejects(p, PeerGone);
  await r.conn.closed;
  t.equal(r.seen[0]!.signal.aborted, true);
  t.equal(r.client.closed, true);
  await t.rejects(r.client.call('test.Svc', 'Echo', enc('')), { name: 'PeerGone', message: /reconnect/ });
  r.pair.close();
});

t.test('close() rejects pending calls', async (t) => {
  const r = await rig();
  const p = r.client.call('test.Svc', 'Hang', enc(''));
  r.client.close();
  await t.rejects(p, { name: 'PeerGone', reason: 'client closed' });
  r.pair.close();
});

t.test('server: even stream id and malformed Request get INVALID_ARGUMENT; oversize gets RESOURCE_EXHAUSTED', async (t) => {
  const req = encodeRequest({ service: 'test.Svc', method: 'Echo', payload: enc('x'), timeout_nano: 0, metadata: [] });
  const big = Buffer.alloc(10);
  big.writeUInt32BE((4 << 20) + 1, 0);
  big.writeUInt32BE(7, 4);
  big[8] = 1;
  const r1 = await rawExchange(
    Buffer.concat([
      encodeFrame(2, MessageType.Request, req),
      encodeFrame(3, MessageType.Request, Buffer.of(0x0a, 99)),
      big,
      Buffer.alloc((4 << 20) + 1),
      encodeFrame(9, MessageType.Request, req),
    ]),
    4,
  );
  t.same(r1.got.map((g) => [g.id, g.code]), [
    [2, Code.INVALID_ARGUMENT],
    [3, Code.INVALID_ARGUMENT],
    [7, Code.RESOURCE_EXHAUSTED],
    [9, 0],
  ]);
  t.match(r1.got[0]!.message, /StreamID must be odd/);
  t.equal(r1.got[3]!.message, 'echo:x', 'the connection is still in sync after all that');
  t.same(r1.protocolErrors.map((e) => e.name), ['WrongStreamId', 'MalformedMessage', 'OversizeFrame']);
});

t.test('server: unknown message types and stray responses are ignored (containerd compat) but reported', async (t) => {
  const req = encodeRequest({ service: 'test.Svc', method: 'Echo', payload: enc('y'), timeout_nano: 0, metadata: [] });
  const odd = Buffer.alloc(10);
  odd.writeUInt32BE(0, 0);
  odd.writeUInt32BE(1, 4);
  odd[8] = 0x7f;
  const r = await rawExchange(Buffer.concat([odd, encodeFrame(3, MessageType.Response, Buffer.alloc(0)), encodeFrame(5, MessageType.Request, req)]), 1);
  t.same(r.got, [{ id: 5, code: 0, message: 'echo:y' }]);
  t.same(r.protocolErrors.map((e) => e.name), ['UnknownMessageType', 'WrongStreamId']);
});

t.test('client: a response for a stream nobody asked about is a WrongStreamId protocol error', async (t) => {
  const pair = await unixSocketPair();
  const errs: Error[] = [];
  const client = new TtrpcClient(pair.client, { onProtocolError: (e) => errs.push(e) });
  pair.server.write(encodeFrame(41, MessageType.Response, Buffer.alloc(0)));
  pair.server.on('data', () => pair.server.write(encodeFrame(1, MessageType.Response, Buffer.of(0x12, 1, 0x41))));
  t.equal(dec(await client.call('a', 'b', enc(''))), 'A');
  t.same(errs.map((e) => e.name), ['WrongStreamId']);
  pair.close();
});

t.test('client: the peer ends mid-frame: TruncatedFrame reported, calls fail with PeerGone', async (t) => {
  const pair = await unixSocketPair();
  const errs: Error[] = [];
  const client = new TtrpcClient(pair.client, { onProtocolError: (e) => errs.push(e) });
  pair.server.on('data', () => pair.server.end(encodeFrame(1, MessageType.Response, Buffer.from('abcdef')).subarray(0, 12)));
  await t.rejects(client.call('a', 'b', enc('')), PeerGone);
  t.same(errs.map((e) => e.name), ['TruncatedFrame']);
  pair.close();
});

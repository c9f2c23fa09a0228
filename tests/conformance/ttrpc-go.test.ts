// Conformance against containerd's own ttrpc (Go), in both directions, over unix sockets.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { AgentClient } from '../../src/agent/client.js';
import { ServingStatus } from '../../src/agent/agent-types.js';
import { MessageCodec } from '../../src/agent/proto-codec.js';
import { CallCancelled, CallTimeout, Code, PeerGone, TtrpcClient, TtrpcServer, TtrpcStatusError, type CallContext, type KeyValue } from '../../src/agent/ttrpc.js';
import { buildGoPeer, goCall, goProbeAgentServer, startGoServer } from '../helpers/ttrpc-go-peer.js';
import { agentCodecs } from '../../src/agent/agent-codecs.js';
import { AGENT_SERVICE, HEALTH_SERVICE } from '../../src/agent/agent-types.js';

const build = buildGoPeer();
if (!build.ok) {
  console.log(`# SKIP ttRPC conformance: ${build.reason}`);
  t.plan(0, `skipped: ${build.reason}`);
} else {
  const bin = build.binary;
  const kv = new MessageCodec<KeyValue>('ttrpc.proto', 'ttrpc.KeyValue');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kata-ts-ttrpc-go-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  async function connect(sock: string): Promise<net.Socket> {
    const s = net.connect(sock);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return s;
  }

  t.test('TypeScript client -> Go server', async (t) => {
    const sock = path.join(dir, 'go-server.sock');
    const go = await startGoServer(bin, sock);
    t.teardown(() => go.stop());
    const errors: Error[] = [];
    const client = new TtrpcClient(await connect(sock), { onProtocolError: (e) => errors.push(e) });

    const echo = kv.decode(await client.call('kata_ts.test.Echo', 'Echo', kv.encode({ key: 'k', value: 'hello' }), { metadata: { 'x-test': 'md1' }, timeoutMs: 5000 }));
    t.same(echo, { key: 'k/go', value: 'HELLO;md=md1;deadline=yes' }, 'payload, metadata and timeout_nano reached containerd');
    const noDeadline = kv.decode(await client.call('kata_ts.test.Echo', 'Echo', kv.encode({ key: 'n', value: 'x' }), { timeoutMs: 0 }));
    t.equal(noDeadline.value, 'X;md=;deadline=no', 'timeout 0 sends no deadline');

    await t.rejects(client.call('kata_ts.test.Echo', 'Fail', kv.encode({ key: 'c9', value: '' })), { name: 'TtrpcStatusError', code: Code.NOT_FOUND, details: 'no such thing: c9' });
    await t.rejects(client.call('nope.Svc', 'X', new Uint8Array()), { code: Code.UNIMPLEMENTED, details: 'service nope.Svc' });
    await t.rejects(client.call('kata_ts.test.Echo', 'Nope', new Uint8Array()), { code: Code.UNIMPLEMENTED, details: 'method Nope' });

    const many = await Promise.all(Array.from({ length: 16 }, (_, i) => client.call('kata_ts.test.Echo', 'Echo', kv.encode({ key: `k${i}`, value: `v${i}` }))));
    t.same(many.map((b) => kv.decode(b).key), Array.from({ length: 16 }, (_, i) => `k${i}/go`), 'concurrent calls matched by stream id');

    const big = 'a'.repeat(3 << 20);
    const bigBack = kv.decode(await client.call('kata_ts.test.Echo', 'Echo', kv.encode({ key: 'big', value: big })));
    t.equal(bigBack.value.length, big.length + ';md=;deadline=yes'.length, '3 MiB payload both ways');
    t.equal(bigBack.value.slice(0, 4), 'AAAA');

    const sleep = (value: string): Uint8Array => kv.encode({ key: '', value });
    await t.rejects(client.call('kata_ts.test.Echo', 'Sleep', sleep('300ms'), { timeoutMs: 100 }), CallTimeout);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    await t.rejects(client.call('kata_ts.test.Echo', 'Sleep', sleep('300ms'), { signal: ac.signal, timeoutMs: 0 }), CallCancelled);

    const agent = new AgentClient(await connect(sock));
    t.same(await agent.check(), { status: ServingStatus.SERVING }, 'AgentClient.check against containerd ttrpc');
    agent.close();

    await new Promise((r) => setTimeout(r, 500));
    t.same(errors.map((e) => e.message), [], 'late answers to the two abandoned calls are dropped quietly');
    t.equal(kv.decode(await client.call('kata_ts.test.Echo', 'Echo', kv.encode({ key: 'after', value: '' }))).key, 'after/go');

    const pending = t.rejects(client.call('kata_ts.test.Echo', 'Sleep', sleep('10s'), { timeoutMs: 0 }), PeerGone, 'the Go server dying fails the pending call');
    await new Promise((r) => setTimeout(r, 50));
    await go.stop();
    await pending;
    await t.rejects(client.call('kata_ts.test.Echo', 'Echo', new Uint8Array()), PeerGone);
  });

  t.test('Go client -> TypeScript server', async (t) => {
    const sock = path.join(dir, 'ts-server.sock');
    const seen: CallContext[] = [];
    const protocolErrors: Error[] = [];
    const server = new TtrpcServer({ onProtocolError: (e) => protocolErrors.push(e) });
    server.register('kata_ts.test.Echo', {
      Echo: (p, ctx) => {
        seen.push(ctx);
        const m = kv.decode(p);
        return kv.encode({ key: `${m.key}/ts`, value: `${m.value.toUpperCase()};md=${(ctx.metadata.get('x-test') ?? []).join(',')}` });
      },
      Fail: (p) => {
        throw new TtrpcStatusError(Code.FAILED_PRECONDITION, `container ${kv.decode(p).key} is not running`);
      },
    });
    const listener = net.createServer((c) => server.serve(c));
    await new Promise<void>((r) => listener.listen(sock, r));
    t.teardown(() => listener.close());

    const ok = await goCall(bin, sock, 'kata_ts.test.Echo', 'Echo', kv.encode({ key: 'g', value: 'go' }), { timeoutMs: 4000, metadata: { 'x-test': 'from-go' } });
    t.equal(ok.ok, true);
    if (ok.ok) t.same(kv.decode(ok.payload), { key: 'g/ts', value: 'GO;md=from-go' });
    t.equal(seen[0]!.streamId % 2, 1, 'containerd uses odd stream ids');
    t.ok(seen[0]!.timeoutMs !== undefined && seen[0]!.timeoutMs > 0 && seen[0]!.timeoutMs <= 4000, `Go's deadline arrived as timeout_nano (${seen[0]!.timeoutMs} ms)`);

    t.same(await goCall(bin, sock, 'kata_ts.test.Echo', 'Fail', kv.encode({ key: 'c1', value: '' })), { ok: false, code: Code.FAILED_PRECONDITION, message: 'container c1 is not running' }, 'status reaches Go as a grpc status');
    t.same(await goCall(bin, sock, 'kata_ts.nope', 'X', new Uint8Array()), { ok: false, code: Code.UNIMPLEMENTED, message: 'service kata_ts.nope' });
    t.same(await goCall(bin, sock, 'kata_ts.test.Echo', 'Y', new Uint8Array()), { ok: false, code: Code.UNIMPLEMENTED, message: 'method Y' });
    const big = await goCall(bin, sock, 'kata_ts.test.Echo', 'Echo', kv.encode({ key: 'b', value: 'z'.repeat(1 << 20) }));
    t.equal(big.ok && kv.decode(big.payload).value.length, (1 << 20) + ';md='.length, '1 MiB through the Go client');
    t.same(protocolErrors, [], 'containerd never broke the protocol');
  });

  t.test('the agent-server probe (the hook for the guest agent codec) passes against a TypeScript agent stub', async (t) => {
    const sock = path.join(dir, 'agent-stub.sock');
    const server = new TtrpcServer();
    server.register(HEALTH_SERVICE, { Check: () => agentCodecs.HealthCheckResponse().encode({ status: ServingStatus.SERVING }) });
    server.register(AGENT_SERVICE, {});
    const listener = net.createServer((c) => server.serve(c));
    await new Promise<void>((r) => listener.listen(sock, r));
    t.teardown(() => listener.close());
    const probe = await goProbeAgentServer(bin, sock);
    t.same(probe.check, { ok: true, payload: Buffer.of(0x08, 0x01) }, 'HealthCheckResponse{status: SERVING}');
    t.same(probe.unknownMethod, { ok: false, code: Code.UNIMPLEMENTED, message: 'method NoSuchMethod' });
    t.same(probe.unknownService, { ok: false, code: Code.UNIMPLEMENTED, message: 'service kata_ts.nope.Service' });
  });
}

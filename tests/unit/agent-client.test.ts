// AgentClient against a fake agent (a TtrpcServer speaking agent.proto), and the stdio stream binding.
import t from 'tap';
import { PassThrough } from 'node:stream';
import { AgentClient } from '../../src/agent/client.js';
import { agentCodecs } from '../../src/agent/agent-codecs.js';
import { AGENT_SERVICE, HEALTH_SERVICE, ServingStatus, StreamKind, type CreateContainerRequest, type ExecProcessRequest } from '../../src/agent/agent-types.js';
import { BadStdioPrefix, StdioBindRefused, bindStdioStream, encodeLengthPrefixed, readStdioHeader, writeStdioAck } from '../../src/agent/stdio.js';
import { protoRoot } from '../../src/agent/proto-files.js';
import { Code, MalformedMessage, TtrpcServer, TtrpcStatusError } from '../../src/agent/ttrpc.js';
import { unixSocketPair } from '../helpers/unix-socket-pair.js';
import { AGENT_VECTORS, encodeVectors, jsonable } from '../helpers/agent-vectors.js';
import { MessageCodec } from '../../src/agent/proto-codec.js';

const empty = (): Uint8Array => agentCodecs.Empty().encode({});

async function fakeAgent() {
  const created: CreateContainerRequest[] = [];
  const execs: ExecProcessRequest[] = [];
  const server = new TtrpcServer();
  server.register(HEALTH_SERVICE, { Check: () => agentCodecs.HealthCheckResponse().encode({ status: ServingStatus.SERVING }) });
  server.register(AGENT_SERVICE, {
    CreateContainer: (p) => {
      created.push(agentCodecs.CreateContainerRequest().decode(p));
      return empty();
    },
    ExecProcess: (p) => {
      const req = agentCodecs.ExecProcessRequest().decode(p);
      if (!created.some((c) => c.container_id === req.container_id)) throw new TtrpcStatusError(Code.NOT_FOUND, `container ${req.container_id} not found`);
      execs.push(req);
      return empty();
    },
    WaitProcess: async (p) => {
      const req = agentCodecs.WaitProcessRequest().decode(p);
      await new Promise((r) => setTimeout(r, 30));
      if (req.exec_id === 'liar') return agentCodecs.WaitProcessResponse().encode({ exit_code: 1000, signal: 0 });
      return agentCodecs.WaitProcessResponse().encode(req.exec_id === 'killed' ? { exit_code: 137, signal: 9 } : { exit_code: 3, signal: 0 });
    },
    PauseContainer: (p) => {
      const req = agentCodecs.PauseContainerRequest().decode(p);
      if (req.container_id !== 'c1') throw new TtrpcStatusError(Code.NOT_FOUND, `container ${req.container_id} not found`);
      return empty();
    },
    ResumeContainer: (p) => {
      agentCodecs.ResumeContainerRequest().decode(p);
      throw new TtrpcStatusError(Code.FAILED_PRECONDITION, 'container c1 is not paused');
    },
    StatsContainer: () =>
      agentCodecs.StatsContainerResponse().encode({
        cgroup: { cpu_usage_usec: 2 ** 40, cpu_user_usec: 1, cpu_system_usec: 2, memory_current: 4096, memory_max: 0, pids_current: 3, pids_max: 0 },
      }),
    GetGuestDetails: () =>
      agentCodecs.GuestDetailsResponse().encode({ agent_version: '0.1.0', kernel_release: '6.1.0', mem_total_bytes: 512 << 20, cpus: 2, runc_version: '1.1.5', stdio_port: 1025 }),
    SignalProcess: () => Uint8Array.of(0x0f), // not a valid message: the client must say so
    // a guest answering ListProcesses with what its container id asks for
    ListProcesses: (p) => {
      const id = agentCodecs.ListProcessesRequest().decode(p).container_id;
      const one = { pid: 7, ppid: 1, uid: 0, start_time: 1_700_000_000, cpu_millis: 5, tty: '', cmd: 'sleep 1' };
      const procs =
        id === 'many' ? Array.from({ length: 4097 }, (_, i) => ({ ...one, pid: i + 1 }))
        : id === 'pid0' ? [{ ...one, pid: 0 }]
        : id === 'bigpid' ? [{ ...one, pid: 2 ** 22 + 1 }]
        : id === 'longcmd' ? [{ ...one, cmd: 'x'.repeat(8193) }]
        : id === 'future' ? [{ ...one, start_time: 2 ** 60 }]
        : [one];
      return agentCodecs.ListProcessesResponse().encode({ processes: procs });
    },
  });
  const pair = await unixSocketPair();
  server.serve(pair.server);
  return { client: new AgentClient(pair.client), created, execs, pair };
}

t.test('agent.proto parses and has every service and method of the issue', async (t) => {
  const root = protoRoot('agent.proto');
  const svc = root.lookupService('kata_ts.agent.AgentService');
  t.same(Object.keys(svc.methods).sort(), ['CloseStdin', 'CreateContainer', 'CreateSandbox', 'DestroySandbox', 'ExecProcess', 'GetGuestDetails', 'GetOOMEvent', 'ListProcesses', 'PauseContainer', 'RemoveContainer', 'ResumeContainer', 'SignalProcess', 'StartContainer', 'StatsContainer', 'TtyWinResize', 'UpdateContainer', 'WaitProcess']);
  t.same(Object.keys(root.lookupService('kata_ts.agent.Health').methods), ['Check']);
  // Field numbers are a contract with the guest agent (guest/agent/): pin a few.
  const storage = root.lookupType('kata_ts.agent.Storage');
  t.same(Object.fromEntries(Object.values(storage.fields).map((f) => [f.name, f.id])), { driver: 1, source: 2, mount_point: 3, fstype: 4, options: 5, driver_options: 6 });
  const hdr = root.lookupType('kata_ts.agent.StdioStreamHeader');
  t.same(Object.fromEntries(Object.values(hdr.fields).map((f) => [f.name, f.id])), { container_id: 1, exec_id: 2, kind: 3 });
  const ps = root.lookupType('kata_ts.agent.ProcessStatus');
  t.same(Object.fromEntries(Object.values(ps.fields).map((f) => [f.name, f.id])), { pid: 1, ppid: 2, uid: 3, start_time: 4, cpu_millis: 5, tty: 6, cmd: 7 }, 'ProcessStatus as guest/agent/messages.cc writes it');
  const upd = root.lookupType('kata_ts.agent.UpdateContainerRequest');
  t.same(Object.fromEntries(Object.values(upd.fields).map((f) => [f.name, f.id])), { container_id: 1, resources_json: 2 });
  t.same(Object.fromEntries(Object.values(root.lookupType('kata_ts.agent.OOMEvent').fields).map((f) => [f.name, f.id])), { container_id: 1 });
});

t.test('UpdateContainer and GetOOMEvent: the request reaches the agent; the long poll waits; a bad id from the guest is refused', async (t) => {
  const updates: { container_id: string; resources_json: Uint8Array }[] = [];
  const oom: string[] = [];
  const waiting: (() => void)[] = []; // GetOOMEvent calls the fake agent holds
  const nextWaiting = async (): Promise<() => void> => {
    while (waiting.length === 0) await new Promise((r) => setTimeout(r, 5));
    return waiting.shift()!;
  };
  const server = new TtrpcServer();
  server.register(AGENT_SERVICE, {
    UpdateContainer: (p) => {
      const req = agentCodecs.UpdateContainerRequest().decode(p);
      if (req.container_id !== 'c1') throw new TtrpcStatusError(Code.NOT_FOUND, `container ${req.container_id} not found`);
      updates.push(req);
      return empty();
    },
    GetOOMEvent: async (p) => {
      agentCodecs.GetOOMEventRequest().decode(p);
      await new Promise<void>((r) => waiting.push(r)); // blocks until an "OOM kill"
      return agentCodecs.OOMEvent().encode({ container_id: oom.shift() ?? '' });
    },
  });
  const pair = await unixSocketPair();
  server.serve(pair.server);
  const client = new AgentClient(pair.client, { timeoutMs: 200 });
  await client.updateContainer({ container_id: 'c1', resources_json: Buffer.from('{"memory":{"limit":16777216}}') });
  t.same(JSON.parse(Buffer.from(updates[0]!.resources_json).toString()), { memory: { limit: 16777216 } }, 'resources_json arrives as sent');
  await t.rejects(client.updateContainer({ container_id: 'nope', resources_json: Buffer.from('{}') }), { code: Code.NOT_FOUND });
  // the long poll outlives the client's default 200 ms timeout
  let got: unknown;
  const poll = client.getOomEvent().then((e) => (got = e));
  await new Promise((r) => setTimeout(r, 400));
  t.equal(got, undefined, 'GetOOMEvent is still waiting after twice the default timeout');
  oom.push('c1');
  (await nextWaiting())();
  await poll;
  t.same(got, { container_id: 'c1' }, 'the OOM event names the container');
  for (const bad of ['../etc', '.hidden', 'x'.repeat(65), '']) {
    const p = client.getOomEvent();
    oom.push(bad);
    (await nextWaiting())();
    await t.rejects(p, { name: 'MalformedMessage', message: /container_id/ }, `a guest id ${JSON.stringify(bad.slice(0, 10))} is refused`);
  }
  client.close();
  pair.close();
});

t.test('PauseContainer / ResumeContainer: requests reach the agent, its status codes come back', async (t) => {
  const a = await fakeAgent();
  await t.resolves(a.client.pauseContainer({ container_id: 'c1' }), 'pause of a known container');
  await t.rejects(a.client.pauseContainer({ container_id: 'nope' }), { message: /NOT_FOUND/ }, 'pause of an unknown container');
  await t.rejects(a.client.resumeContainer({ container_id: 'c1' }), { message: /FAILED_PRECONDITION/ }, 'resume of a container that is not paused');
  a.pair.close();
});

t.test('typed calls: request fields reach the agent, responses come back typed', async (t) => {
  const a = await fakeAgent();
  t.same(await a.client.check(), { status: ServingStatus.SERVING });
  const spec = Buffer.from(JSON.stringify({ ociVersion: '1.0.2', process: { args: ['sh'] } }));
  await a.client.createContainer({
    container_id: 'c1',
    oci_spec_json: spec,
    rootfs: '/run/kata-ts/c1/rootfs',
    storages: [{ driver: 'blk', source: '/dev/vda', mount_point: '/run/kata-ts/c1/rootfs', fstype: 'ext4', options: ['ro'] }],
  });
  t.equal(a.created[0]!.container_id, 'c1');
  t.same(JSON.parse(Buffer.from(a.created[0]!.oci_spec_json).toString()), { ociVersion: '1.0.2', process: { args: ['sh'] } });
  t.same(a.created[0]!.storages, [{ driver: 'blk', source: '/dev/vda', mount_point: '/run/kata-ts/c1/rootfs', fstype: 'ext4', options: ['ro'], driver_options: [] }]);
  await a.client.execProcess({ container_id: 'c1', exec_id: 'e1', process_json: Buffer.from('{"args":["ls"]}') });
  t.equal(a.execs[0]!.exec_id, 'e1');
  await t.rejects(a.client.execProcess({ container_id: 'nope', exec_id: 'e2', process_json: Buffer.from('{}') }), { name: 'TtrpcStatusError', codeName: 'NOT_FOUND', message: /AgentService\/ExecProcess: NOT_FOUND \(5\): container nope not found/ });
  t.same(await a.client.waitProcess({ container_id: 'c1', exec_id: 'killed' }), { exit_code: 137, signal: 9 });
  t.same(await a.client.waitProcess({ container_id: 'c1' }), { exit_code: 3, signal: 0 });
  await t.rejects(a.client.waitProcess({ container_id: 'c1', exec_id: 'liar' }), { name: 'MalformedMessage', message: /exit_code 1000/ }, 'guest numbers are range-checked');
  t.same(await a.client.listProcesses({ container_id: 'c1' }), [{ pid: 7, ppid: 1, uid: 0, start_time: 1_700_000_000, cpu_millis: 5, tty: '', cmd: 'sleep 1' }]);
  for (const [id, msg] of [['many', /4097 processes/], ['pid0', /pid 0/], ['bigpid', /pid 4194305/], ['longcmd', /too long/], ['future', /beyond 2\^53/]] as const) {
    await t.rejects(a.client.listProcesses({ container_id: id }), { name: 'MalformedMessage', message: msg }, `ListProcesses: ${id} is refused`);
  }
  const stats = await a.client.statsContainer({ container_id: 'c1' });
  t.equal(stats.cgroup?.cpu_usage_usec, 2 ** 40, 'uint64 beyond 32 bits');
  t.equal(stats.cgroup?.memory_current, 4096);
  t.same(await a.client.getGuestDetails(), { agent_version: '0.1.0', kernel_release: '6.1.0', mem_total_bytes: 512 << 20, cpus: 2, runc_version: '1.1.5', stdio_port: 1025 });
  await t.rejects(a.client.signalProcess({ container_id: 'c1', signal: 15 }), MalformedMessage, 'a garbled response is an error, not a crash');
  await t.rejects(a.client.startContainer({ container_id: 'c1' }), { code: Code.UNIMPLEMENTED, details: 'method StartContainer' });
  a.client.close();
  await t.rejects(a.client.check(), { name: 'PeerGone' });
  a.pair.close();
});

t.test('a request of the wrong shape is refused before it is sent', async (t) => {
  const a = await fakeAgent();
  await t.rejects(a.client.signalProcess({ container_id: 'c1', signal: 'TERM' as unknown as number }), MalformedMessage);
  a.pair.close();
});

t.test('stdio binding: header out, ack back, then raw bytes (the first ones arriving with the ack)', async (t) => {
  const pair = await unixSocketPair();
  const agentSide = (async () => {
    const h = await readStdioHeader(pair.server);
    t.same(h, { container_id: 'c1', exec_id: '', kind: StreamKind.STDOUT });
    pair.server.write(Buffer.concat([encodeLengthPrefixed(agentCodecs.StdioStreamAck().encode({ code: 0, message: '' })), Buffer.from('hello ')]));
    setTimeout(() => pair.server.end('world'), 10);
  })();
  const out = await bindStdioStream(pair.client, { container_id: 'c1', kind: StreamKind.STDOUT }, { timeoutMs: 2000 });
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  out.resume(); // bindStdioStream leaves the stream paused so no byte is lost before handlers attach
  await new Promise((r) => out.once('end', r));
  await agentSide;
  t.equal(text, 'hello world');
  pair.close();
});

t.test('stdio binding refused: StdioBindRefused with the code; a bad prefix is BadStdioPrefix', async (t) => {
  const pair = await unixSocketPair();
  void readStdioHeader(pair.server).then(() => writeStdioAck(pair.server, { code: Code.NOT_FOUND, message: 'no process c9/e1' }));
  await t.rejects(bindStdioStream(pair.client, { container_id: 'c9', exec_id: 'e1', kind: StreamKind.STDIN }), { name: 'StdioBindRefused', codeName: 'NOT_FOUND', message: /no process c9\/e1/ });
  t.type(StdioBindRefused, 'function');
  pair.close();
  const p = new PassThrough();
  const reading = readStdioHeader(p);
  p.write(Buffer.from([0, 1, 0, 0]));
  await t.rejects(reading, BadStdioPrefix, '65536-byte header refused');
  const p2 = new PassThrough();
  const r2 = readStdioHeader(p2);
  p2.end(Buffer.from([0, 0, 0, 9, 1]));
  await t.rejects(r2, { name: 'PeerGone' }, 'connection ended mid-header');
});

t.test('the published test vectors (for the guest codec) decode back to their values', async (t) => {
  const enc = encodeVectors();
  t.equal(enc.length, AGENT_VECTORS.length);
  AGENT_VECTORS.forEach((v, i) => {
    const back = new MessageCodec<object>(v.file, v.message).decode(Buffer.from(enc[i]!.hex, 'hex'));
    t.same(jsonable(back), enc[i]!.value, v.message);
  });
  t.equal(enc.find((e) => e.message === 'kata_ts.agent.HealthCheckResponse')!.hex, '0801');
});

t.test('DestroySandbox: a connection lost before the reply means the VM went down, as asked', async (t) => {
  const server = new TtrpcServer();
  const pair = await unixSocketPair();
  // the agent powers off before its reply crosses vsock: the connection just ends
  server.register(AGENT_SERVICE, {
    DestroySandbox: () => {
      pair.server.destroy();
      return new Promise<Uint8Array>(() => undefined);
    },
    StartContainer: () => {
      pair.server.destroy();
      return new Promise<Uint8Array>(() => undefined);
    },
  });
  server.serve(pair.server);
  const client = new AgentClient(pair.client);
  await t.resolves(client.destroySandbox({ timeoutMs: 5000 }), 'resolves');
  const pair2 = await unixSocketPair();
  const server2 = new TtrpcServer();
  server2.register(AGENT_SERVICE, {
    StartContainer: () => {
      pair2.server.destroy();
      return new Promise<Uint8Array>(() => undefined);
    },
  });
  server2.serve(pair2.server);
  await t.rejects(new AgentClient(pair2.client).startContainer({ container_id: 'c1' }, { timeoutMs: 5000 }), /peer|gone|closed/i, 'any other call still fails');
});

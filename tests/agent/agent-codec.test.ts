// The guest agent's C++ wire codecs (guest/agent/{pb,ttrpc,messages,json}.cc) through guest/agent/tools/codec-tool
// (built with AddressSanitizer + UBSan): protobufjs-made vectors decoded by C++, C++-made responses decoded by
// protobufjs, fuzzed inputs that must end in an error line and never in a crash, and containerd's own Go ttrpc
// in both directions (Go client -> the agent; the C++ codec as client -> the Go server).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { agentCodecs } from '../../src/agent/agent-codecs.js';
import { MessageCodec } from '../../src/agent/proto-codec.js';
import { AGENT_SERVICE, HEALTH_SERVICE } from '../../src/agent/agent-types.js';
import { Code, MessageType, decodeRequest, decodeResponse, encodeFrame, encodeRequest, type KeyValue } from '../../src/agent/ttrpc.js';
import { buildGoPeer, goCall, startGoServer } from '../helpers/ttrpc-go-peer.js';
import { mulberry32 } from '../support/prng.js';

function buildTool(script: string): string {
  const r = spawnSync('bash', [script], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${script} failed:\n${r.stderr}`);
  return r.stdout.trim().split('\n').pop() ?? '';
}

const tool = buildTool('guest/agent/tools/build-codec-tool.sh');

interface DecodeLine {
  ok: boolean;
  value?: Record<string, unknown>;
  error?: string;
}

/** Runs `codec-tool decode <type>` over inputs; every input must produce exactly one JSON line. */
function decode(type: string, inputs: Uint8Array[]): DecodeLine[] {
  const r = spawnSync(tool, ['decode', type], {
    input: inputs.map((b) => Buffer.from(b).toString('hex')).join('\n') + '\n',
    encoding: 'utf8',
    maxBuffer: 256 << 20,
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' },
  });
  if (r.status !== 0) throw new Error(`codec-tool decode ${type} exited ${r.status} (signal ${r.signal}):\n${r.stderr.slice(0, 4000)}`);
  const lines = r.stdout.split('\n').filter((l) => l.length > 0);
  if (lines.length !== inputs.length) throw new Error(`codec-tool decode ${type}: ${lines.length} lines for ${inputs.length} inputs`);
  return lines.map((l) => JSON.parse(l) as DecodeLine);
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const spec = Buffer.from(JSON.stringify({ ociVersion: '1.0.2', process: { args: ['sh', '-c', 'echo "hi\\n" \u00e9\u{1F600}'], terminal: false }, root: { path: 'rootfs' } }));
const storage = { driver: 'blk', source: '/dev/vda', mount_point: '/run/kata-ts/c1', fstype: 'ext4', options: ['ro', 'noatime'], driver_options: ['blk.serial=rootfs'] };

// Every request the agent decodes, fully populated, with the C++ tool's expected view of it.
const vectors: { type: string; value: object; expect: Record<string, unknown> }[] = [
  {
    type: 'CreateSandboxRequest',
    value: { sandbox_id: 'sb', hostname: 'h', dns: ['nameserver 10.0.2.3', 'search x'], storages: [storage, { driver: 'tmpfs', source: '', mount_point: '/t' }] },
    expect: {
      sandbox_id: 'sb', hostname: 'h', dns: ['nameserver 10.0.2.3', 'search x'],
      storages: [storage, { driver: 'tmpfs', source: '', mount_point: '/t', fstype: '', options: [], driver_options: [] }],
    },
  },
  {
    type: 'CreateContainerRequest',
    value: { container_id: 'c1', oci_spec_json: spec, storages: [storage], rootfs: '/run/kata-ts/c1/rootfs' },
    expect: { container_id: 'c1', oci_spec_json: hex(spec), storages: [storage], rootfs: '/run/kata-ts/c1/rootfs' },
  },
  { type: 'StartContainerRequest', value: { container_id: 'c-1.x_y' }, expect: { container_id: 'c-1.x_y' } },
  { type: 'StatsContainerRequest', value: { container_id: 'c1' }, expect: { container_id: 'c1' } },
  { type: 'RemoveContainerRequest', value: { container_id: 'c1', timeout_seconds: 4294967295 }, expect: { container_id: 'c1', timeout_seconds: 4294967295 } },
  {
    type: 'ExecProcessRequest',
    value: { container_id: 'c1', exec_id: 'e1', process_json: Buffer.from('{"args":["true"]}') },
    expect: { container_id: 'c1', exec_id: 'e1', process_json: hex(Buffer.from('{"args":["true"]}')) },
  },
  { type: 'SignalProcessRequest', value: { container_id: 'c1', exec_id: '', signal: 64, all: true }, expect: { container_id: 'c1', exec_id: '', signal: 64, all: true } },
  { type: 'WaitProcessRequest', value: { container_id: 'c1', exec_id: 'e9' }, expect: { container_id: 'c1', exec_id: 'e9' } },
  { type: 'CloseStdinRequest', value: { container_id: 'c1' }, expect: { container_id: 'c1', exec_id: '' } },
  { type: 'TtyWinResizeRequest', value: { container_id: 'c1', exec_id: 't', rows: 65535, columns: 80 }, expect: { container_id: 'c1', exec_id: 't', rows: 65535, columns: 80 } },
  { type: 'StdioStreamHeader', value: { container_id: 'c1', exec_id: 'e1', kind: 3 }, expect: { container_id: 'c1', exec_id: 'e1', kind: 3 } },
  {
    type: 'UpdateContainerRequest',
    value: { container_id: 'c1', resources_json: Buffer.from('{"memory":{"limit":16777216},"pids":{"limit":64}}') },
    expect: { container_id: 'c1', resources_json: hex(Buffer.from('{"memory":{"limit":16777216},"pids":{"limit":64}}')) },
  },
];

function codecFor(type: string): MessageCodec<object> {
  return (agentCodecs as unknown as Record<string, () => MessageCodec<object>>)[type]!();
}

t.test('protobufjs-made requests decode in C++ field for field', async (t) => {
  for (const v of vectors) {
    const bytes = codecFor(v.type).encode(v.value);
    const [line] = decode(v.type, [bytes]);
    t.equal(line!.ok, true, `${v.type} decodes${line!.error ? `: ${line!.error}` : ''}`);
    t.same(line!.value, v.expect, `${v.type} fields`);
  }
  // Unknown fields (a newer host) are skipped; the known ones still arrive.
  const extra = Buffer.concat([Buffer.from(agentCodecs.StartContainerRequest().encode({ container_id: 'c1' })), Buffer.from([0xa0, 0x06, 0x2a, 0xfa, 0x06, 0x01, 0x00, 0x9d, 0x07, 1, 2, 3, 4])]);
  const [skip] = decode('StartContainerRequest', [extra]);
  t.same(skip, { ok: true, value: { container_id: 'c1' } }, 'unknown varint, LEN and fixed32 fields are skipped');
  // ttRPC Request as protobufjs writes it (metadata repeated, timeout_nano int64).
  const req = encodeRequest({ service: AGENT_SERVICE, method: 'WaitProcess', payload: Buffer.from([1, 2, 3]), timeout_nano: 30_000_000_000, metadata: [{ key: 'k', value: 'v1' }, { key: 'k', value: 'v2' }] });
  const [rq] = decode('ttrpc.Request', [req]);
  t.same(rq!.value, { service: AGENT_SERVICE, method: 'WaitProcess', payload: '010203', timeout_nano: 30_000_000_000, metadata: [{ key: 'k', value: 'v1' }, { key: 'k', value: 'v2' }] });
});

t.test('C++-made responses decode with protobufjs', async (t) => {
  const r = spawnSync(tool, ['encode'], { encoding: 'utf8' });
  t.equal(r.status, 0, 'codec-tool encode ran');
  const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; hex: string });
  const dec = (i: number): unknown => {
    const { type, hex: h } = out[i]!;
    const bytes = Buffer.from(h, 'hex');
    if (type === 'ttrpc.Response') return decodeResponse(bytes);
    if (type === 'ttrpc.Request') return decodeRequest(bytes);
    return codecFor(type).decode(bytes);
  };
  t.same(dec(0), { exit_code: 137, signal: 9 });
  t.same(dec(1), { exit_code: -1, signal: 0 }, 'negative int32 (sign-extended 10-byte varint)');
  t.same(dec(2), { cgroup: { cpu_usage_usec: 1234567, cpu_user_usec: 1000000, cpu_system_usec: 234567, memory_current: 5 * 2 ** 30, memory_max: 0, pids_current: 3, pids_max: 4194304 } });
  t.same(dec(3), { cgroup: { cpu_usage_usec: 0, cpu_user_usec: 0, cpu_system_usec: 0, memory_current: 0, memory_max: 0, pids_current: 0, pids_max: 0 } }, 'an all-zero CgroupStats is still present');
  t.same(dec(4), { agent_version: 'kata-ts-agent 0.1.0', kernel_release: '6.1.0-kata', mem_total_bytes: 536870912, cpus: 2, runc_version: 'runc version 1.1.5', stdio_port: 1025 });
  t.same(dec(5), { status: 1 });
  t.same(dec(6), { code: 5, message: 'container nope not found' });
  t.same(dec(7), { code: 0, message: '' });
  const errResp = dec(8) as { status: { code: number; message: string } | null; payload: Uint8Array };
  t.same(errResp.status, { code: Code.NOT_FOUND, message: 'container x not found' });
  const okResp = dec(9) as { status: { code: number } | null; payload: Uint8Array };
  t.equal(okResp.status?.code ?? 0, 0, 'OK status (containerd sends an empty Status)');
  t.equal(hex(okResp.payload), '0801');
  const rq = dec(10) as { service: string; method: string; payload: Uint8Array; timeout_nano: number; metadata: KeyValue[] };
  t.same({ ...rq, payload: hex(rq.payload) }, { service: AGENT_SERVICE, method: 'WaitProcess', payload: '0a026331', timeout_nano: 30_000_000_000, metadata: [{ key: 'a', value: '1' }, { key: 'a', value: '2' }] });
  t.same(dec(11), { container_id: 'c-1.oom_x' }, 'OOMEvent (GetOOMEvent answer)');
});

function mutations(valid: Uint8Array, rand: () => number, count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < valid.length; i++) out.push(valid.subarray(0, i)); // every truncation
  for (let i = 0; i < count; i++) {
    const b = Buffer.from(valid);
    const kind = Math.floor(rand() * 4);
    if (kind === 0 && b.length) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    else if (kind === 1 && b.length) {
      const at = Math.floor(rand() * b.length);
      b[at] = b.readUInt8(at) ^ 0x80; // flip continuation bits
    } else if (kind === 2) {
      const at = Math.floor(rand() * (b.length + 1));
      out.push(Buffer.concat([b.subarray(0, at), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), b.subarray(at)]));
      continue;
    } else {
      out.push(Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))));
      continue;
    }
    out.push(b);
  }
  return out;
}

t.test('fuzzed inputs end in error lines, never in a crash (ASan + UBSan build)', async (t) => {
  const rand = mulberry32(0x6b617461); // deterministic: a failing input can be reproduced
  for (const v of vectors) {
    const inputs = mutations(codecFor(v.type).encode(v.value), rand, 400);
    const lines = decode(v.type, inputs);
    t.ok(lines.every((l) => typeof l.ok === 'boolean'), `${v.type}: ${inputs.length} inputs, ${lines.filter((l) => !l.ok).length} rejected, no crash`);
  }
  const req = encodeRequest({ service: AGENT_SERVICE, method: 'CreateContainer', payload: Buffer.from([1, 2]), timeout_nano: 5, metadata: [{ key: 'a', value: 'b' }] });
  const reqLines = decode('ttrpc.Request', mutations(req, rand, 400));
  t.ok(reqLines.some((l) => !l.ok), 'some mutated ttRPC Requests are rejected');
  decode('ttrpc.Response', mutations(Buffer.from('0a1908051215636f6e7461696e65722078206e6f7420666f756e64', 'hex'), rand, 200));

  // Specific malformations and what the decoder says about them.
  const cases: [string, string, RegExp][] = [
    ['StartContainerRequest', '0a05616263', /length 5 exceeds the 3 bytes left/],
    ['StartContainerRequest', '08', /truncated varint/],
    ['StartContainerRequest', '0880808080808080808002', /varint overflows 64 bits/],
    ['StartContainerRequest', '0b', /unsupported wire type 3/],
    ['StartContainerRequest', '0001', /invalid field number 0/],
    ['StartContainerRequest', '0d01000000', /wrong wire type 5/],
    ['RemoveContainerRequest', '1080808080 10'.replace(' ', ''), /does not fit uint32/],
    ['SignalProcessRequest', '190102030405060708', /wrong wire type 1/],
    ['StdioStreamHeader', '1d0102', /truncated fixed32/],
    ['CreateContainerRequest', '12' + '8180c000' + '00', /exceeds the limit|bytes left/],
  ];
  for (const [type, h, re] of cases) {
    const [l] = decode(type, [Buffer.from(h, 'hex')]);
    t.equal(l!.ok, false, `${type} ${h} rejected`);
    t.match(l!.error ?? '', re, `${type} ${h}: ${l!.error}`);
  }

  // OCI JSON: truncations and mutations of a spec; deep nesting is refused, not recursed into.
  const jsonInputs = mutations(spec, rand, 400);
  jsonInputs.push(Buffer.from('['.repeat(100_000)), Buffer.from('{"a":'.repeat(5000)), Buffer.from('"\\ud800"'), Buffer.from('"\\u12"'), Buffer.from('1 2'));
  const jl = decode('json', jsonInputs);
  t.match(jl[jl.length - 5]!.error ?? '', /deeper than 64/, '100 000 nested arrays refused');
  t.equal(jl[jl.length - 3]!.ok, false, 'lone surrogate refused');
  t.equal(jl[jl.length - 1]!.ok, false, 'trailing data refused');
  const [round] = decode('json', [spec]);
  t.same(JSON.parse((round!.value as { text: string }).text), JSON.parse(spec.toString()), 'JSON round trip keeps escapes and UTF-8');

  // Frames split at odd boundaries; an oversize header is reported and its payload skipped, in sync after it.
  const f1 = encodeFrame(1, MessageType.Request, Buffer.from('abc'));
  const big = Buffer.alloc(10);
  big.writeUInt32BE((4 << 20) + 1, 0);
  big.writeUInt32BE(3, 4);
  big.writeUInt8(1, 8);
  const [frames] = decode('frames', [Buffer.concat([f1, big, Buffer.alloc(0)])]);
  const fr = (frames!.value as { frames: { stream_id: number; oversize: boolean; payload: string }[] }).frames;
  t.same(fr.map((f) => [f.stream_id, f.oversize, f.payload]), [[1, false, '616263'], [3, true, '']]);
  decode('frames', mutations(Buffer.concat([f1, f1, encodeFrame(5, MessageType.Response, Buffer.alloc(300))]), rand, 300));
});

const goBuild = buildGoPeer();
t.test("containerd's Go ttrpc against the agent's C++ codec, both directions", { skip: goBuild.ok ? false : goBuild.reason }, async (t) => {
  const build = goBuild;
  if (!build.ok) return;
  const agentBuild = spawnSync('bash', ['guest/agent/build.sh'], { encoding: 'utf8', timeout: 300_000 });
  t.equal(agentBuild.status, 0, 'agent built');
  const agentBin = agentBuild.stdout.trim().split('\n').pop() ?? '';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kta-go-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'agent.sock');
  const agent = spawn(agentBin, ['--no-init', '--listen', `unix:${sock}`, '--state-dir', path.join(dir, 'state')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => agent.once('exit', () => resolve()));
  t.teardown(async () => {
    if (agent.exitCode === null) agent.kill('SIGKILL');
    await exited;
  });
  for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise<void>((resolve, reject) => {
    const s = connect(sock, () => (s.destroy(), resolve()));
    s.once('error', reject);
  });

  // Go client -> the agent's server
  const health = await goCall(build.binary, sock, HEALTH_SERVICE, 'Check', new Uint8Array());
  t.same(health.ok && hex(health.payload), '0801', 'Health.Check: SERVING');
  const details = await goCall(build.binary, sock, AGENT_SERVICE, 'GetGuestDetails', new Uint8Array());
  t.ok(details.ok, 'GetGuestDetails answered');
  if (details.ok) t.match(agentCodecs.GuestDetailsResponse().decode(details.payload), { agent_version: /^kata-ts-agent/, stdio_port: 1025 });
  const missing = await goCall(build.binary, sock, AGENT_SERVICE, 'StartContainer', agentCodecs.StartContainerRequest().encode({ container_id: 'nope' }));
  t.same(missing, { ok: false, code: Code.NOT_FOUND, message: 'container nope not found' }, 'a status error reaches containerd intact');
  const unimpl = await goCall(build.binary, sock, AGENT_SERVICE, 'Frobnicate', new Uint8Array(), { metadata: { 'x-a': 'b' } });
  t.match(unimpl, { ok: false, code: Code.UNIMPLEMENTED }, 'unknown method: UNIMPLEMENTED');
  const big = await goCall(build.binary, sock, AGENT_SERVICE, 'StartContainer', agentCodecs.StartContainerRequest().encode({ container_id: 'x'.repeat(3000) }));
  t.match(big, { ok: false, code: Code.INVALID_ARGUMENT }, 'an over-long id: INVALID_ARGUMENT');

  // The agent's C++ codec as the client -> containerd's Go server
  const goSock = path.join(dir, 'go.sock');
  const go = await startGoServer(build.binary, goSock);
  t.teardown(() => go.stop());
  const cCall = (service: string, method: string, payload: Uint8Array): Record<string, unknown> => {
    const r = spawnSync(tool, ['call', goSock, service, method, hex(payload)], { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } });
    if (r.status !== 0) throw new Error(`codec-tool call failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  t.same(cCall(HEALTH_SERVICE, 'Check', new Uint8Array()), { ok: true, payload: '0801' }, 'C++ client: Health.Check from Go');
  const kv = new MessageCodec<KeyValue>('ttrpc.proto', 'ttrpc.KeyValue');
  const echo = cCall('kata_ts.test.Echo', 'Echo', kv.encode({ key: 'k', value: 'hi' }));
  t.equal(echo['ok'], true);
  t.same(kv.decode(Buffer.from(String(echo['payload']), 'hex')), { key: 'k/go', value: 'HI;md=;deadline=no' }, 'C++ client: Echo payload from Go');
  t.same(cCall('kata_ts.test.Echo', 'Fail', kv.encode({ key: 'c9', value: '' })), { ok: false, code: Code.NOT_FOUND, message: 'no such thing: c9' }, 'C++ client: Go status error');
  t.match(cCall('nope.Svc', 'X', new Uint8Array()), { ok: false, code: Code.UNIMPLEMENTED }, 'C++ client: unknown service');
});

// protobufjs-made test vectors of agent.proto and ttrpc.proto messages, for codecs written elsewhere (the
// guest agent's C++ codec, DESIGN decision 9). Print them as JSON lines:
//   node dist/tests/helpers/agent-vectors.js > /tmp/agent-vectors.jsonl
// Each line: {"message": "kata_ts.agent.X", "value": <the object, bytes as hex strings>, "hex": "<encoding>"}.
import { fileURLToPath } from 'node:url';
import { MessageCodec } from '../../src/agent/proto-codec.js';
import type { ProtoFileName } from '../../src/agent/proto-files.js';

export interface Vector {
  file: ProtoFileName;
  message: string;
  value: object;
}

const b = (s: string): Buffer => Buffer.from(s);

export const AGENT_VECTORS: Vector[] = [
  { file: 'agent.proto', message: 'kata_ts.agent.Empty', value: {} },
  { file: 'agent.proto', message: 'kata_ts.agent.CheckRequest', value: { service: '' } },
  { file: 'agent.proto', message: 'kata_ts.agent.HealthCheckResponse', value: { status: 1 } },
  {
    file: 'agent.proto',
    message: 'kata_ts.agent.CreateSandboxRequest',
    value: { sandbox_id: 'sb-1', hostname: 'pod', dns: ['nameserver 10.0.2.3'], storages: [{ driver: 'virtio-fs', source: 'kataShared', mount_point: '/run/kata-ts/shared', fstype: 'virtiofs', options: [], driver_options: [] }] },
  },
  { file: 'agent.proto', message: 'kata_ts.agent.DestroySandboxRequest', value: {} },
  {
    file: 'agent.proto',
    message: 'kata_ts.agent.CreateContainerRequest',
    value: {
      container_id: 'c1',
      oci_spec_json: b('{"ociVersion":"1.0.2","process":{"args":["/bin/echo","héllo"]},"root":{"path":"rootfs"}}'),
      storages: [{ driver: 'blk', source: '/dev/vda', mount_point: '/run/kata-ts/containers/c1/rootfs', fstype: 'ext4', options: ['ro', 'nodev'], driver_options: ['blk.serial=rootfs'] }],
      rootfs: '/run/kata-ts/containers/c1/rootfs',
    },
  },
  { file: 'agent.proto', message: 'kata_ts.agent.StartContainerRequest', value: { container_id: 'c1' } },
  { file: 'agent.proto', message: 'kata_ts.agent.RemoveContainerRequest', value: { container_id: 'c1', timeout_seconds: 10 } },
  { file: 'agent.proto', message: 'kata_ts.agent.ExecProcessRequest', value: { container_id: 'c1', exec_id: 'e1', process_json: b('{"args":["sh","-c","exit 3"],"cwd":"/","terminal":false}') } },
  { file: 'agent.proto', message: 'kata_ts.agent.SignalProcessRequest', value: { container_id: 'c1', exec_id: '', signal: 15, all: true } },
  { file: 'agent.proto', message: 'kata_ts.agent.WaitProcessRequest', value: { container_id: 'c1', exec_id: 'e1' } },
  { file: 'agent.proto', message: 'kata_ts.agent.WaitProcessResponse', value: { exit_code: 137, signal: 9 } },
  { file: 'agent.proto', message: 'kata_ts.agent.StatsContainerRequest', value: { container_id: 'c1' } },
  {
    file: 'agent.proto',
    message: 'kata_ts.agent.StatsContainerResponse',
    value: { cgroup: { cpu_usage_usec: 1099511627776, cpu_user_usec: 1, cpu_system_usec: 300, memory_current: 4096, memory_max: 0, pids_current: 3, pids_max: 1024 } },
  },
  { file: 'agent.proto', message: 'kata_ts.agent.TtyWinResizeRequest', value: { container_id: 'c1', exec_id: 'e1', rows: 24, columns: 80 } },
  { file: 'agent.proto', message: 'kata_ts.agent.CloseStdinRequest', value: { container_id: 'c1', exec_id: '' } },
  { file: 'agent.proto', message: 'kata_ts.agent.GuestDetailsRequest', value: {} },
  { file: 'agent.proto', message: 'kata_ts.agent.GuestDetailsResponse', value: { agent_version: '0.1.0', kernel_release: '6.1.0', mem_total_bytes: 536870912, cpus: 2, runc_version: '1.1.5', stdio_port: 1025 } },
  { file: 'agent.proto', message: 'kata_ts.agent.StdioStreamHeader', value: { container_id: 'c1', exec_id: 'e1', kind: 2 } },
  { file: 'agent.proto', message: 'kata_ts.agent.StdioStreamAck', value: { code: 5, message: 'no process c1/e9' } },
  { file: 'ttrpc.proto', message: 'ttrpc.Request', value: { service: 'kata_ts.agent.Health', method: 'Check', payload: Buffer.alloc(0), timeout_nano: 5000000000, metadata: [{ key: 'k', value: 'v' }] } },
  { file: 'ttrpc.proto', message: 'ttrpc.Response', value: { status: { code: 5, message: 'container c9 not found' }, payload: Buffer.alloc(0) } },
  { file: 'ttrpc.proto', message: 'ttrpc.Response', value: { status: null, payload: Buffer.of(0x08, 0x01) } },
];

/** The value as JSON would show it, bytes as hex strings. */
export function jsonable(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (Array.isArray(v)) return v.map(jsonable);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonable(x)]));
  return v;
}

export function encodeVectors(): { message: string; value: unknown; hex: string }[] {
  return AGENT_VECTORS.map((v) => ({ message: v.message, value: jsonable(v.value), hex: Buffer.from(new MessageCodec<object>(v.file, v.message).encode(v.value)).toString('hex') }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const v of encodeVectors()) process.stdout.write(`${JSON.stringify(v)}\n`);
}

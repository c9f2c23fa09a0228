// The shim without a VM: its command line (containerd 1.6's flags), the socket address containerd's runc shim
// would compute, the task service's answers to bad input over real ttRPC (the status codes containerd maps to
// NotFound, AlreadyExists, InvalidArgument, FailedPrecondition, Unimplemented), the vendored protos, and the
// `delete` action's DeleteResponse for a shim that never ran.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Code, TtrpcClient, TtrpcStatusError } from '../../src/agent/ttrpc.js';
import { groupOf, shimRoot, socketAddress } from '../../src/shim/address.js';
import { parseFlags, serveArgs, UsageError } from '../../src/shim/flags.js';
import { codec, protoDir, TaskStatus } from '../../src/shim/proto.js';
import { TASK_SERVICE, taskServer } from '../../src/shim/server.js';
import { LINUX_RESOURCES_URL, linuxResourcesJson } from '../../src/shim/resources.js';
import { TaskService } from '../../src/shim/service.js';
import { unixSocketPair } from '../helpers/unix-socket-pair.js';
import { SHIM_MAIN } from './containerd-harness.js';

const quiet = { info: () => undefined, error: () => undefined };

t.test('flags: containerd 1.6 command lines', async (t) => {
  const f = parseFlags(['-namespace', 'k8s.io', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 'abc', '-debug', 'start'], { TTRPC_ADDRESS: '/run/containerd/containerd.sock.ttrpc' });
  t.match(f, { namespace: 'k8s.io', address: '/run/containerd/containerd.sock', publishBinary: '/usr/bin/containerd', id: 'abc', debug: true, action: 'start', ttrpcAddress: '/run/containerd/containerd.sock.ttrpc' });
  t.match(parseFlags(['--namespace=default', '-address=/a', '-id', 'x', '-bundle', '/b', 'delete'], {}), { namespace: 'default', address: '/a', bundle: '/b', action: 'delete' });
  t.equal(parseFlags(['-namespace', 'n', '-id', 'x'], {}).action, 'serve', 'no action: the long-lived shim');
  t.equal(parseFlags(['-id', 'x', 'start'], { NAMESPACE: 'from-env' }).namespace, 'from-env', 'NAMESPACE from the environment');
  t.throws(() => parseFlags(['-namespace', 'n', '-id', 'x', 'bogus'], {}), UsageError, 'unknown action');
  t.throws(() => parseFlags(['-namespace', 'n', '-frobnicate', 'x', 'start'], {}), UsageError, 'unknown flag');
  t.throws(() => parseFlags(['-id', 'x', 'start'], {}), UsageError, 'namespace required');
  t.throws(() => parseFlags(['-namespace', 'n', 'start'], {}), UsageError, '-id required for start');
  t.same(parseFlags(serveArgs(f), {}).id, 'abc', 'serveArgs round-trips');
});

t.test('address: the socket containerd 1.6 computes (sha256 of address/ns/group), grouping by CRI sandbox id', async (t) => {
  const want = createHash('sha256').update('/run/containerd/containerd.sock/k8s.io/pod1').digest('hex');
  t.equal(socketAddress('/run/containerd/containerd.sock', 'k8s.io', 'pod1'), `unix:///run/containerd/s/${want}`);
  t.equal(groupOf('c2', { 'io.kubernetes.cri.sandbox-id': 'pod1' }), 'pod1');
  t.equal(groupOf('c2', {}), 'c2');
  t.not(shimRoot('/a', 'n1'), shimRoot('/a', 'n2'), 'one state root per namespace');
});

t.test('vendored protos: containerd field numbers', async (t) => {
  t.ok(protoDir().endsWith('/proto/') || protoDir().endsWith('/proto'), protoDir());
  // DeleteResponse{pid 5, exit_status 137, exited_at {seconds 1}} exactly as gogo/protobuf encodes it
  const b = codec('containerd.task.v2.DeleteResponse').encode({ pid: 5, exit_status: 137, exited_at: { seconds: 1, nanos: 0 } });
  t.equal(Buffer.from(b).toString('hex'), '0805108901' + '1a020801');
  const st = codec<{ status: number }>('containerd.task.v2.StateResponse').decode(codec('containerd.task.v2.StateResponse').encode({ status: TaskStatus.PAUSED }));
  t.equal(st.status, 4, 'containerd.v1.types.Status PAUSED = 4');
  t.equal(codec('io.containerd.cgroups.v2.Metrics').any({ pids: { current: 1 } }).type_url, 'io.containerd.cgroups.v2.Metrics', 'the Any type ctr task metrics decodes');
});

t.test('task service over ttRPC: bad input gets the status codes containerd maps', async (t) => {
  const events: string[] = [];
  let shutdowns = 0;
  const svc = new TaskService({ namespace: 'n', root: '/nonexistent-kata-ts-root', log: quiet, publish: (n) => events.push(n), onShutdown: () => shutdowns++ });
  const pair = await unixSocketPair();
  t.teardown(() => pair.close());
  taskServer(svc, quiet).serve(pair.server);
  const client = new TtrpcClient(pair.client);
  const call = async (method: string, reqType: string, req: object, resType?: string): Promise<object> => {
    const out = await client.call(TASK_SERVICE, method, codec(`containerd.task.v2.${reqType}`).encode(req));
    return resType ? codec(`containerd.task.v2.${resType}`).decode(out) : {};
  };
  const code = (c: number) => ({ constructor: TtrpcStatusError, code: c });
  await t.rejects(call('State', 'StateRequest', { id: 'nope' }), code(Code.NOT_FOUND), 'State of an unknown task: NotFound');
  await t.rejects(call('Start', 'StartRequest', { id: 'nope' }), code(Code.NOT_FOUND), 'Start: NotFound');
  await t.rejects(call('Kill', 'KillRequest', { id: 'nope', signal: 9 }), code(Code.NOT_FOUND), 'Kill: NotFound');
  await t.rejects(call('Wait', 'WaitRequest', { id: 'nope' }), code(Code.NOT_FOUND), 'Wait: NotFound');
  await t.rejects(call('Delete', 'DeleteRequest', { id: 'nope' }), code(Code.NOT_FOUND), 'Delete: NotFound (containerd treats it as already gone)');
  await t.rejects(call('Pause', 'PauseRequest', { id: 'nope' }), code(Code.NOT_FOUND), 'Pause: NotFound');
  await t.rejects(call('Stats', 'StatsRequest', { id: 'nope' }), code(Code.NOT_FOUND), 'Stats: NotFound');
  await t.rejects(call('Exec', 'ExecProcessRequest', { id: 'nope', exec_id: 'e1' }), code(Code.NOT_FOUND), 'Exec in an unknown task: NotFound');
  await t.rejects(call('Create', 'CreateTaskRequest', { id: '../evil', bundle: '/tmp' }), code(Code.INVALID_ARGUMENT), 'Create with a bad id: InvalidArgument');
  await t.rejects(call('Create', 'CreateTaskRequest', { id: 'ok', bundle: 'relative' }), code(Code.INVALID_ARGUMENT), 'Create with a relative bundle: InvalidArgument');
  await t.rejects(call('Create', 'CreateTaskRequest', { id: 'ok', bundle: '/nonexistent-bundle' }), code(Code.INVALID_ARGUMENT), 'Create without config.json: InvalidArgument');
  await t.rejects(
    call('Create', 'CreateTaskRequest', { id: 'ok', bundle: '/tmp', options: { type_url: 'containerd.runc.v1.Options', value: Buffer.from([8, 1]) } }),
    code(Code.INVALID_ARGUMENT),
    'runc options: InvalidArgument',
  );
  await t.rejects(call('Checkpoint', 'CheckpointTaskRequest', { id: 'x' }), { code: Code.UNIMPLEMENTED, message: /checkpoint is not supported/ }, 'Checkpoint: Unimplemented with a reason');
  await t.rejects(
    call('Update', 'UpdateTaskRequest', { id: 'nope', resources: { type_url: LINUX_RESOURCES_URL, value: Buffer.from('{"memory":{"limit":16777216}}') } }),
    code(Code.NOT_FOUND),
    'Update of an unknown task: NotFound',
  );
  await t.rejects(client.call(TASK_SERVICE, 'State', Buffer.from([0x0a, 0xff])), code(Code.INVALID_ARGUMENT), 'a malformed request: InvalidArgument');
  await t.rejects(client.call(TASK_SERVICE, 'Frobnicate', new Uint8Array()), code(Code.UNIMPLEMENTED), 'an unknown method: Unimplemented');
  t.match(await call('Connect', 'ConnectRequest', { id: 'x' }, 'ConnectResponse'), { shim_pid: process.pid }, 'Connect names the shim pid');
  t.same(events, [], 'no event for failed calls');
  await call('Shutdown', 'ShutdownRequest', { id: 'x' });
  t.equal(shutdowns, 1, 'Shutdown with no task exits the shim');
  t.same(svc.ids, []);
});

t.test("Update's resources: OCI LinuxResources JSON under containerd's typeurl name, anything else InvalidArgument", async (t) => {
  const any = (value: string, type_url = LINUX_RESOURCES_URL) => ({ type_url, value: Buffer.from(value) });
  t.equal(LINUX_RESOURCES_URL, 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources');
  t.same(JSON.parse(linuxResourcesJson(any('{"memory":{"limit":16777216},"pids":{"limit":32}}')).toString()), { memory: { limit: 16777216 }, pids: { limit: 32 } }, 'what ctr task update sends passes through');
  const invalid = (what: string, v: Parameters<typeof linuxResourcesJson>[0], re: RegExp): void => {
    t.throws(() => linuxResourcesJson(v), { name: 'ShimError', code: 'INVALID_ARGUMENT', message: re }, what);
  };
  invalid('no resources', null, /update needs resources/);
  invalid('an empty Any', { type_url: '', value: new Uint8Array() }, /update needs resources/);
  invalid('another type', any('{}', 'types.containerd.io/opencontainers/runtime-spec/1/Process'), /not supported by kata-ts/);
  invalid('a Windows resources type', any('{}', 'types.containerd.io/opencontainers/runtime-spec/1/WindowsResources'), /not supported/);
  invalid('not JSON', any('{"memory":'), /not JSON/);
  invalid('a JSON array', any('[1]'), /JSON object/);
  invalid('JSON null', any('null'), /JSON object/);
  invalid('over 1 MiB', any(`{"unified":{"x":"${'a'.repeat(1 << 20)}"}}`), /exceed/);
});

t.test('delete action of a shim that never ran: a DeleteResponse with exit status 137, nothing removed that is not its own', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-shim-del-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bundle = join(dir, 'bundle');
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  writeFileSync(join(bundle, 'config.json'), '{}');
  const r = spawnSync(process.execPath, [SHIM_MAIN, '-namespace', 'kt-test', '-address', join(dir, 'c.sock'), '-id', 'gone', '-bundle', bundle, 'delete'], { cwd: bundle });
  t.equal(r.status, 0, r.stderr.toString());
  const res = codec<{ pid: number; exit_status: number; exited_at: { seconds: number } }>('containerd.task.v2.DeleteResponse').decode(r.stdout);
  t.equal(res.exit_status, 137);
  t.ok(Math.abs(res.exited_at.seconds - Date.now() / 1000) < 60, 'exited_at is now');
  const bad = spawnSync(process.execPath, [SHIM_MAIN, '-id', 'x', 'start'], { cwd: bundle, env: { ...process.env, NAMESPACE: '' } });
  t.equal(bad.status, 2, 'a usage error exits 2');
  t.match(bad.stderr.toString(), /namespace cannot be empty/);
});

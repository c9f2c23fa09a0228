// `delete` of a container still `creating` (src/runtime/api.ts, issue 14 item 9): a create interrupted half-way
// leaves a booting sandbox process that may never answer on its control socket. Without --force, delete says to
// use --force (not `kill`, which refuses a creating container); with --force it takes the 'creating' path:
// the container's own sandbox is killed at once (verified by its start time) without a control call and without
// the 30 s wait for the sandbox to exit; a sandbox the container was joining is only asked to drop it and keeps
// running. No VM: a detached `sleep` stands for the sandbox process, a unix socket server for its control socket.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { deleteContainer, kill, RuntimeError } from '../../src/runtime/api.js';
import { processStart } from '../../src/runtime/process-identity.js';
import { claimId, containerDir, controlSocketPath, writeContainer, writeSandbox, type ContainerRecord } from '../../src/runtime/state.js';

interface Rig {
  root: string;
  tmpDir: string;
  sandboxPid: number;
  sandboxExited: Promise<NodeJS.Signals | null>;
  /** requests the control socket received */
  requests: string[];
}

/** A sandbox 'sb' whose process (a sleep) boots and whose control socket answers every request NOT_FOUND. */
async function rig(t: Test): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-delcreating-'));
  const root = join(dir, 'root');
  const tmpDir = mkdtempSync(join(tmpdir(), 'kata-ts-sb-'));
  const child = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
  const sandboxExited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)));
  const requests: string[] = [];
  claimId(root, 'sb');
  writeSandbox(root, { id: 'sb', pid: child.pid!, pidStart: processStart(child.pid!)!, hypervisor: 'qemu', tmpDir, created: 'now' });
  const server: Server = createServer((s) => {
    s.once('data', (b: Buffer) => {
      requests.push(b.toString().trim());
      s.end(`${JSON.stringify({ ok: false, code: 'NOT_FOUND', message: 'not in this sandbox' })}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(controlSocketPath(root, 'sb'), r));
  t.teardown(() => {
    server.close();
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(tmpDir, { recursive: true, force: true });
  });
  return { root, tmpDir, sandboxPid: child.pid!, sandboxExited, requests };
}

const creating = (id: string, sandboxId: string): ContainerRecord => ({
  ociVersion: '1.0.2',
  id,
  status: 'creating',
  pid: 0,
  pidStart: 0,
  bundle: '/b',
  sandboxId,
  created: 'now',
});

async function refusal(p: Promise<unknown>): Promise<RuntimeError | undefined> {
  try {
    await p;
  } catch (e) {
    return e as RuntimeError;
  }
  return undefined;
}

t.test('its own sandbox: killed at once, no control call, no wait', async (t) => {
  const r = await rig(t);
  writeContainer(r.root, creating('sb', 'sb'));
  const noForce = await refusal(deleteContainer({ root: r.root }, 'sb', false));
  t.equal(noForce?.code, 'STATE');
  t.match(noForce?.message, /still being created: .*kata-ts delete --force sb/, 'delete says what works: --force');
  const k = await refusal(kill({ root: r.root }, 'sb', 15));
  t.match(k?.message, /still being created.*kata-ts delete --force sb/, 'kill points at delete --force too');
  t.ok(processStart(r.sandboxPid) !== undefined, 'a refused delete left the sandbox alone');

  t.equal(await deleteContainer({ root: r.root }, 'sb', true), 'creating', "the 'creating' path ran");
  t.same(r.requests, [], 'the sandbox was not asked (it may never answer)');
  t.equal(await r.sandboxExited, 'SIGKILL', 'the sandbox process (and its group) was killed');
  t.notOk(existsSync(containerDir(r.root, 'sb')), 'its state is gone');
  t.notOk(existsSync(r.tmpDir), 'its temp dir is gone');
});

t.test('a sandbox it was joining: asked to drop it, left running', async (t) => {
  const r = await rig(t);
  writeContainer(r.root, { ...creating('sb', 'sb'), status: 'running' });
  claimId(r.root, 'c2');
  writeContainer(r.root, creating('c2', 'sb'));
  t.equal(await deleteContainer({ root: r.root }, 'c2', true), 'creating');
  t.equal(r.requests.length, 1, 'one control call');
  t.match(JSON.parse(r.requests[0]!), { op: 'delete', id: 'c2', force: true });
  t.notOk(existsSync(containerDir(r.root, 'c2')), "the joining container's state is gone");
  t.ok(existsSync(containerDir(r.root, 'sb')), "the sandbox's first container is untouched");
  t.ok(processStart(r.sandboxPid) !== undefined, 'the sandbox process runs on (it holds other containers)');
});

// Signals to recorded host processes (src/runtime/process-identity.ts, issue 14 item 3): a pid or a process group
// is signalled only while /proc/<pid>/stat shows the recorded start time; a record whose start time changed (the
// pid now names another process) or is unknown is refused, for the process and for its group. A group whose
// leader has exited is still reached (its members are the leader's). And `delete --force` (api.ts) goes through
// this check: a sandbox record naming a live process with another start time leaves that process and its group
// alone.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { deleteContainer } from '../../src/runtime/api.js';
import { isSameProcess, processStart, signalGroup, signalProcess, type ProcessRef } from '../../src/runtime/process-identity.js';
import { writeContainer, writeSandbox } from '../../src/runtime/state.js';

/** A detached `sleep` (its own process group), killed at teardown whatever the test did. */
function sleeper(t: Test): { child: ChildProcess; ref: ProcessRef; exited: Promise<NodeJS.Signals | null> } {
  const child = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)));
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  return { child, ref: { pid: child.pid!, start: processStart(child.pid!)! }, exited };
}

const alive = (pid: number): boolean => processStart(pid) !== undefined;

t.test('a process: signalled only with its recorded start time', async (t) => {
  const s = sleeper(t);
  t.ok(s.ref.start > 0, `start time ${s.ref.start}`);
  t.ok(isSameProcess(s.ref));
  t.notOk(signalProcess({ pid: s.ref.pid, start: s.ref.start + 1 }, 'SIGKILL'), 'start time changed: refused');
  t.notOk(signalProcess({ pid: s.ref.pid, start: 0 }, 'SIGKILL'), 'start time unknown: refused');
  t.ok(alive(s.ref.pid), 'the process was not signalled');
  t.ok(signalProcess(s.ref, 'SIGKILL'), 'the recorded identity: signalled');
  t.equal(await s.exited, 'SIGKILL');
  t.notOk(signalProcess(s.ref, 'SIGKILL'), 'gone: nothing signalled');
  t.notOk(signalProcess({ pid: 0, start: 1 }, 'SIGKILL'));
  t.notOk(signalProcess({ pid: -1, start: 1 }, 'SIGKILL'));
});

t.test('a process group: signalled only while its leader is itself or gone', async (t) => {
  const s = sleeper(t);
  t.notOk(signalGroup({ pid: s.ref.pid, start: s.ref.start + 1 }, 'SIGKILL'), 'leader pid with another start time: refused');
  t.notOk(signalGroup({ pid: s.ref.pid, start: 0 }, 'SIGKILL'), 'leader pid with an unknown start time: refused');
  t.notOk(signalGroup({ pid: 1, start: 0 }, 'SIGKILL'), 'never group 1');
  t.ok(alive(s.ref.pid), 'the group was not signalled');
  t.ok(signalGroup(s.ref, 'SIGKILL'), 'the recorded leader: the group is signalled');
  t.equal(await s.exited, 'SIGKILL');

  // a leader that exited and left a member behind: the member is in the leader's group and still reached
  const sh = spawn('sh', ['-c', 'sleep 600 & echo $!'], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  const leader: ProcessRef = { pid: sh.pid!, start: processStart(sh.pid!)! };
  let out = '';
  sh.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await new Promise((r) => sh.once('exit', r));
  const member = Number(out.trim());
  t.teardown(() => {
    try {
      process.kill(member, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  t.ok(member > 0 && alive(member), `the member ${member} runs on after its leader ${leader.pid} exited`);
  t.notOk(alive(leader.pid), 'the leader is gone');
  t.ok(signalGroup(leader, 'SIGKILL'), "the leader's group is signalled through its record");
  for (let i = 0; i < 100 && alive(member); i++) await new Promise((r) => setTimeout(r, 20));
  t.notOk(alive(member), 'and the member is gone');
});

t.test('delete --force: a sandbox record whose pid now names another process kills nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-pid-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  mkdirSync(root);
  const victim = sleeper(t); // stands for an unrelated process that got the dead sandbox process's pid
  const relayVictim = sleeper(t); // and one that got the dead stdio relay's pid
  writeSandbox(root, { id: 'c1', pid: victim.ref.pid, pidStart: victim.ref.start + 1, hypervisor: 'qemu', tmpDir: join(dir, 'none'), created: 'now' });
  writeContainer(root, {
    ociVersion: '1.0.2',
    id: 'c1',
    status: 'running',
    pid: relayVictim.ref.pid,
    pidStart: 0, // a relay recorded without its start time: the old check took any process with the pid
    bundle: dir,
    sandboxId: 'c1',
    created: 'now',
  });
  t.equal(await deleteContainer({ root }, 'c1', true), 'reaped', 'the sandbox reads as gone: crash recovery');
  await new Promise((r) => setTimeout(r, 100));
  t.ok(alive(victim.ref.pid), 'the process (and group) now holding the sandbox pid was not signalled');
  t.ok(alive(relayVictim.ref.pid), 'the process now holding the relay pid was not signalled');
  t.ok(isSameProcess(victim.ref) && isSameProcess(relayVictim.ref));
});

// QEMU dies with the process that started it (issue 14 item 10): a small node script starts the qemu
// Hypervisor (the fake QEMU, which like QEMU outlives its QMP connection) and is then SIGKILLed; QEMU must
// be gone (or a zombie awaiting its reaper) without anyone calling stop or `delete`. The control case runs
// QEMU without the parent-death wrapper and shows it outliving its owner, which is the defect.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { findExecutable, knowsPdeathsig, pdeathsigWrapper, tieToParent } from '../../src/hypervisor/parent-death.js';
import { installFakeQemu } from '../helpers/fake-qemu-bin.js';
import { tinyKernelFile } from '../helpers/tiny-kernel.js';

const here = dirname(fileURLToPath(import.meta.url));
const qemuJs = pathToFileURL(join(here, '../../src/hypervisor/qemu.js')).href;
const dir = mkdtempSync(join(tmpdir(), 'kata-ts-pdeathsig-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const fakeBin = installFakeQemu(dir);
const kernel = tinyKernelFile();
t.teardown(kernel.remove);

/** The owner: starts the VM, prints QEMU's pid, then waits to be killed. */
const owner = join(dir, 'owner.mjs');
writeFileSync(
  owner,
  `import { QemuHypervisor } from ${JSON.stringify(qemuJs)};
const wrapper = process.argv[2] === 'unwrapped' ? { pdeathsigWrapper: null } : {};
const hv = new QemuHypervisor({ accel: 'tcg', hardwareVirtualization: false, binary: ${JSON.stringify(fakeBin)}, ...wrapper });
await hv.createVm({ kernelPath: ${JSON.stringify(kernel.path)}, cmdline: 'console=ttyS0', vcpus: 1, memoryMiB: 64 });
await hv.startVm();
process.stdout.write('qemu ' + hv.pid + '\\n');
setInterval(() => undefined, 1 << 30);
`,
);

/** 'running', 'zombie' (dead, not yet reaped) or 'gone'. */
function procState(pid: number): 'running' | 'zombie' | 'gone' {
  try {
    // /proc/PID/stat: "pid (comm) S ..." (comm may hold spaces and parentheses: split at the last ')')
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z' ? 'zombie' : 'running';
  } catch {
    return 'gone';
  }
}

async function settle(pid: number, until: (s: string) => boolean): Promise<string> {
  let s: string = procState(pid);
  for (let i = 0; i < 500 && !until(s); i++) {
    await new Promise((r) => setTimeout(r, 20));
    s = procState(pid);
  }
  return s;
}

/** Run the owner, SIGKILL it once QEMU runs; QEMU's pid. */
async function killOwner(mode: 'wrapped' | 'unwrapped'): Promise<number> {
  const child = spawn(process.execPath, [owner, mode], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FAKE_QEMU_MODE: 'hang' } });
  let out = '';
  const pid = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /qemu (\d+)\n/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`the owner exited (${String(code)}) before QEMU ran: ${out}`)));
  });
  const gone = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await gone;
  return pid;
}

t.test('the parent-death wrapper', async (t) => {
  t.same(tieToParent('/usr/bin/qemu', ['-S'], null), { file: '/usr/bin/qemu', args: ['-S'], tied: false });
  t.same(tieToParent('/usr/bin/qemu', ['-S'], '/usr/bin/setpriv'), { file: '/usr/bin/setpriv', args: ['--pdeathsig', 'KILL', '--', '/usr/bin/qemu', '-S'], tied: true });
  t.equal(findExecutable('sh'), findExecutable('sh', process.env['PATH']), 'PATH search');
  t.equal(findExecutable('no-such-program-kata-ts'), undefined);
  t.equal(findExecutable(fakeBin), fakeBin, 'a path is taken as it is');
  // the probe reads the binary for the option's name, and agrees with what setpriv --help says
  const setpriv = findExecutable('setpriv');
  if (setpriv !== undefined) {
    const help = spawnSync(setpriv, ['--help'], { encoding: 'utf8' });
    t.equal(knowsPdeathsig(setpriv), help.stdout.includes('--pdeathsig'), `${setpriv}: the probe agrees with --help`);
  }
  t.equal(knowsPdeathsig(fakeBin), false, 'a program that does not name the option');
  t.equal(knowsPdeathsig('/no/such/setpriv'), false, 'a missing file');
});

t.test('QEMU dies when the process that started it is SIGKILLed', { skip: pdeathsigWrapper() === null ? 'no setpriv with --pdeathsig (util-linux >= 2.33)' : false }, async (t) => {
  const pid = await killOwner('wrapped');
  t.ok(pid > 0, `QEMU ran as pid ${pid}`);
  const s = await settle(pid, (x) => x !== 'running');
  if (s === 'running') process.kill(pid, 'SIGKILL');
  t.not(s, 'running', `QEMU is ${s} after its owner was killed`);
});

t.test('control: without the wrapper QEMU outlives its killed owner (the defect)', async (t) => {
  const pid = await killOwner('unwrapped');
  await new Promise((r) => setTimeout(r, 300));
  const s = procState(pid);
  t.equal(s, 'running', 'an unwrapped QEMU is still running');
  if (s === 'running') process.kill(pid, 'SIGKILL');
  t.not(await settle(pid, (x) => x !== 'running'), 'running', 'cleaned up');
});

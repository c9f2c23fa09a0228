// The qemu backend's life cycle against a fake QEMU (tests/helpers/fake-qemu.ts) and fake vhost-user
// backends: phases, markers, exit mapping from QMP SHUTDOWN events and exit statuses, start failures,
// device attachment and cleanup. The real QEMU runs in tests/hypervisor/qemu-boot.test.ts.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { DeviceKindNotSupported, HotplugNotSupported, HypervisorStateError } from '../../src/hypervisor/interface.js';
import { exitFromShutdown, exitFromStatus, QemuHypervisor, QemuNotFound, QemuStartFailed } from '../../src/hypervisor/qemu.js';
import type { StartVhostUserBackend } from '../../src/hypervisor/vhost-user.js';
import { installFakeQemu } from '../helpers/fake-qemu-bin.js';
import { tinyKernelFile } from '../helpers/tiny-kernel.js';

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-fakeqemu-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const fakeBin = installFakeQemu(dir);
const kernel = tinyKernelFile();
t.teardown(kernel.remove);
const config = { kernelPath: kernel.path, cmdline: 'console=ttyS0', vcpus: 1, memoryMiB: 64 };

t.test('exit mapping', async (t) => {
  t.same(exitFromShutdown('guest-reset'), { kind: 'reset' });
  t.same(exitFromShutdown('guest-shutdown'), { kind: 'shutdown' });
  t.same(exitFromShutdown('host-qmp-quit'), { kind: 'stopped' });
  t.same(exitFromStatus(0, null, false, '', false), { kind: 'reset' }, '-no-reboot: a guest reset ends QEMU with 0');
  t.same(exitFromStatus(7, null, true, '', false), { kind: 'debug-exit', status: 3 }, 'isa-debug-exit: (3 << 1) | 1');
  t.match(exitFromStatus(1, null, true, 'qemu: bad\n', false), { kind: 'error', message: /exit status 1.*qemu: bad/ }, 'status 1 with an error message is an error');
  t.match(exitFromStatus(null, 'SIGKILL', false, '', false), { kind: 'error', message: /killed by SIGKILL/ });
  t.same(exitFromStatus(null, 'SIGKILL', false, '', true), { kind: 'stopped' }, 'a host stop is a stop');
});

t.test('boot: phases, markers, boot timer, guest reset; backends attached and closed', async (t) => {
  const argvFile = join(dir, 'argv.json');
  process.env.FAKE_QEMU_MODE = 'reset';
  process.env.FAKE_QEMU_ARGV = argvFile;
  const started: string[] = [];
  let closed = 0;
  const startBackend: StartVhostUserBackend = ({ spec, socketPath }) => {
    started.push(`${spec.kind}@${socketPath}`);
    return Promise.resolve({ close: () => Promise.resolve(void closed++), metrics: () => ({ requests: 7 }) });
  };
  const hv = new QemuHypervisor({ accel: 'tcg', hardwareVirtualization: false, binary: fakeBin, startBackend });
  await t.rejects(hv.startVm(), HypervisorStateError, 'start before create');
  await hv.createVm({ ...config, devices: [{ kind: 'rng' }], markers: ['KATA_TS_INIT_OK', 'never printed'] });
  t.throws(() => hv.addDevice({ kind: 'module', module: 'm', exportName: 'E' }), DeviceKindNotSupported);
  hv.addDevice({ kind: 'blk', path: '/img', readOnly: true });
  const markers: string[] = [];
  hv.on('marker', (m: string) => markers.push(m));
  await hv.startVm();
  t.throws(() => hv.addDevice({ kind: 'rng' }), HotplugNotSupported, 'no hotplug');
  t.same(hv.deviceMetrics(0), { requests: 7 }, 'backend metrics reachable');
  const exit = await hv.wait();
  t.same(exit, { kind: 'reset' }, 'SHUTDOWN guest-reset');
  t.equal(hv.consoleText, 'Linux version fake\nKATA_TS_INIT_OK\n');
  t.same(markers, ['KATA_TS_INIT_OK'], 'a marker split across writes is found once; absent ones never');
  const p = hv.phases;
  const order = [p.startRequested, p.vmCreated, p.running, p.kernelStarted, p.bootTimer, p.markers.KATA_TS_INIT_OK, p.exited];
  t.ok(order.every((x) => typeof x === 'bigint'), 'every phase recorded');
  t.ok(order.every((x, i) => i === 0 || x! >= order[i - 1]!), 'in order');
  t.equal(started.length, 2);
  t.match(started[0], /^rng@.*vhost-user-0\.sock$/);
  t.match(started[1], /^blk@.*vhost-user-1\.sock$/);
  t.equal(closed, 2, 'backends closed at exit');
  const argv = JSON.parse(readFileSync(argvFile, 'utf8')) as string[];
  t.ok(argv.includes('-S'), 'started paused, run by QMP cont');
  t.ok(argv.includes('vhost-user-rng,chardev=vu0') && argv.includes('vhost-user-blk,chardev=vu1,num-queues=1'), 'devices on the command line');
  const work = dirname(started[0]!.split('@')[1]!);
  t.notOk(existsSync(work), 'the socket directory is removed');
  t.equal(hv.deviceMetrics(0), undefined, 'no metrics once stopped');
});

t.test('stop: QMP quit', async (t) => {
  process.env.FAKE_QEMU_MODE = 'hang';
  const hv = new QemuHypervisor({ accel: 'kvm', hardwareVirtualization: true, binary: fakeBin });
  await hv.createVm(config);
  await hv.startVm();
  await hv.pauseVm();
  await hv.resumeVm();
  t.same(await hv.stopVm(), { kind: 'stopped' });
  t.same(await hv.stopVm(), { kind: 'stopped' }, 'stopping twice is harmless');
});

t.test('start failures say what happened', async (t) => {
  process.env.FAKE_QEMU_MODE = 'crash';
  const hv = new QemuHypervisor({ accel: 'tcg', hardwareVirtualization: false, binary: fakeBin });
  await hv.createVm(config);
  await t.rejects(hv.startVm(), QemuStartFailed);
  t.match(await hv.wait(), { kind: 'error', message: /exit status 1.*fake failure/ });

  const missing = new QemuHypervisor({ accel: 'tcg', hardwareVirtualization: false, binary: join(dir, 'no-such-qemu') });
  await missing.createVm(config);
  await t.rejects(missing.startVm(), QemuNotFound);
  await t.rejects(missing.startVm(), HypervisorStateError, 'a failed VM cannot be started again');

  const failing: StartVhostUserBackend = () => Promise.reject(new Error('socket in use'));
  const dev = new QemuHypervisor({ accel: 'tcg', hardwareVirtualization: false, binary: fakeBin, startBackend: failing });
  await dev.createVm({ ...config, devices: [{ kind: 'rng' }] });
  await t.rejects(dev.startVm(), /socket in use/, 'a backend failure fails the start');
  t.match(await dev.wait(), { kind: 'error', message: /socket in use/ });
});

t.test('stop before start', async (t) => {
  const hv = new QemuHypervisor({ accel: 'tcg', hardwareVirtualization: false, binary: fakeBin });
  await hv.createVm(config);
  t.same(await hv.stopVm(), { kind: 'stopped' });
});

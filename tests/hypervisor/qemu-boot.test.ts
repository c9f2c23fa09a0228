// The full guest kernel + the test initramfs under the qemu backend (TCG here; KVM where `kata-ts check` finds
// hardware virtualization): the init writes the boot timer (isa-debugcon on port 0x440), prints
// KATA_TS_INIT_OK and reboots, which with -no-reboot ends QEMU cleanly. A second boot is paused and resumed
// over QMP before it may reach init.

import t from 'tap';
import { DEFAULT_CMDLINE } from '../../src/cli/boot.js';
import { chooseHypervisor, createHypervisor, detectHost } from '../../src/hypervisor/factory.js';
import type { QemuHypervisor } from '../../src/hypervisor/qemu.js';
import { guestArtifact } from '../helpers/guest-artifacts.js';

const SAFETY_NET_MS = 300_000; // only so a broken boot cannot hang CI; never a speed assertion
const MARKER = 'KATA_TS_INIT_OK';

const host = detectHost();
const skip = host.qemuPath === undefined ? 'qemu-system-x86_64 is not installed (apt-get install -y qemu-system-x86)' : false;

t.test('the full kernel boots to init under qemu and exits cleanly', { skip }, async (t) => {
  const kernelPath = guestArtifact('guest:kernel');
  const initrdPath = guestArtifact('guest:initrd:test');
  const plan = chooseHypervisor('qemu', host);
  t.equal(plan.kind, 'qemu');
  t.equal(plan.accel, host.virtualization === 'hardware' ? 'kvm' : 'tcg', 'KVM only on hardware virtualization');
  const hv = createHypervisor(plan) as QemuHypervisor;
  t.equal(hv.capabilities().bootTimer, 'isa-debugcon');
  await hv.createVm({ kernelPath, initrdPath, cmdline: DEFAULT_CMDLINE, vcpus: 1, memoryMiB: 256, markers: [MARKER] });
  const safety = setTimeout(() => void hv.stopVm(), SAFETY_NET_MS);
  t.teardown(() => clearTimeout(safety));
  let bootTimerEvents = 0;
  hv.on('boot-timer', () => bootTimerEvents++);
  await hv.startVm();
  t.ok(hv.argv?.includes('-accel'), 'QEMU was started');
  t.equal(hv.argv?.[hv.argv.indexOf('-accel') + 1], plan.accel, 'with the planned accelerator');
  const exit = await hv.wait();
  clearTimeout(safety);

  t.same(exit, { kind: 'reset' }, `init rebooted, QEMU exited 0 (console tail: ${hv.consoleText.slice(-400)})`);
  t.match(hv.consoleText, /Run \/init as init process/, 'the kernel ran the initramfs init');
  t.ok(hv.consoleText.includes(MARKER), 'the init printed its marker');
  const p = hv.phases;
  t.equal(bootTimerEvents, 1, 'one boot-timer event');
  t.type(p.startRequested, 'bigint');
  t.type(p.vmCreated, 'bigint');
  t.type(p.running, 'bigint');
  t.type(p.kernelStarted, 'bigint');
  t.type(p.bootTimer, 'bigint', 'the boot timer byte arrived through isa-debugcon');
  t.type(p.markers[MARKER], 'bigint');
  t.type(p.exited, 'bigint');
  // the phases happened in order
  const order = [p.startRequested!, p.vmCreated!, p.running!, p.kernelStarted!, p.bootTimer!, p.exited!];
  t.same([...order].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), order, 'startRequested <= vmCreated <= running <= kernelStarted <= bootTimer <= exited');
  t.ok(p.bootTimer! <= p.markers[MARKER]!, 'the init wrote the boot timer before printing its marker');
});

t.test('pause and resume through QMP', { skip }, async (t) => {
  const kernelPath = guestArtifact('guest:kernel');
  const initrdPath = guestArtifact('guest:initrd:test');
  const hv = createHypervisor(chooseHypervisor('qemu', host)) as QemuHypervisor;
  await hv.createVm({ kernelPath, initrdPath, cmdline: DEFAULT_CMDLINE, vcpus: 1, memoryMiB: 256 });
  const safety = setTimeout(() => void hv.stopVm(), SAFETY_NET_MS);
  t.teardown(() => clearTimeout(safety));
  // pause while the kernel is printing: once the first console byte arrived
  const firstByte = new Promise((r) => hv.once('console', r));
  await hv.startVm();
  await firstByte;
  const qmp = hv.monitor!;
  t.ok(qmp, 'QMP is connected');
  t.ok(qmp.greeting?.version, 'QEMU greeted with its version');

  const status = async (): Promise<unknown> => ((await qmp.execute('query-status')) as { status?: unknown }).status;
  t.equal(await status(), 'running');
  await hv.pauseVm();
  t.equal(await status(), 'paused', 'QMP stop paused the vCPUs');
  const consoleAtPause = hv.consoleText.length;
  // a paused guest prints nothing (a QMP round trip later, the console is unchanged)
  await qmp.execute('query-status');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(hv.consoleText.length, consoleAtPause, 'no console output while paused');
  await t.rejects(hv.pauseVm(), /cannot pause a VM that is paused/, 'pausing twice is a state error');
  await hv.resumeVm();
  t.equal(await status(), 'running', 'QMP cont resumed it');
  const exit = await hv.wait();
  clearTimeout(safety);
  t.same(exit, { kind: 'reset' }, 'and it still boots to init and exits cleanly');
  t.ok(hv.consoleText.includes(MARKER));
});

t.test('stopVm quits QEMU through QMP', { skip }, async (t) => {
  const kernelPath = guestArtifact('guest:kernel');
  const hv = createHypervisor(chooseHypervisor('qemu', host));
  await hv.createVm({ kernelPath, cmdline: DEFAULT_CMDLINE, vcpus: 1, memoryMiB: 128 });
  await hv.startVm();
  const exit = await hv.stopVm();
  t.same(exit, { kind: 'stopped' }, 'a host stop is reported as stopped, not as a guest reset');
  t.type(hv.phases.exited, 'bigint');
});

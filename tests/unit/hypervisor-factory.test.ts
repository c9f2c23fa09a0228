// --hypervisor=inproc|qemu|auto on hardware KVM, software KVM (kvm_pvm) and no KVM, with and without QEMU.
import t from 'tap';
import { chooseHypervisor, createHypervisor, findOnPath, InvalidHypervisorChoice, NoKvmForInproc, parseHypervisorChoice, type HostFacts } from '../../src/hypervisor/factory.js';
import { QemuNotFound } from '../../src/hypervisor/qemu.js';
import { resolveQuirks } from '../../src/hypervisor/factory.js';
import { tinyKernelFile } from '../helpers/tiny-kernel.js';

const Q = '/usr/bin/qemu-system-x86_64';
const hw: HostFacts = { virtualization: 'hardware', qemuPath: Q };
const sw: HostFacts = { virtualization: 'software', qemuPath: Q };
const none: HostFacts = { virtualization: 'unavailable', qemuPath: Q };

t.test('auto', async (t) => {
  const a = chooseHypervisor('auto', hw);
  t.match(a, { kind: 'inproc', accel: 'kvm', hardwareVirtualization: true, softwareKvm: false, notice: undefined }, 'inproc on hardware KVM, silently');
  const b = chooseHypervisor('auto', sw);
  t.match(b, { kind: 'qemu', accel: 'tcg', hardwareVirtualization: false, softwareKvm: false, qemuPath: Q });
  t.match(b.notice, /software KVM.*qemu with -accel tcg/, 'with a notice that says why and which accelerator');
  t.notOk(b.notice!.includes('\n'), 'one line');
  const c = chooseHypervisor('auto', none);
  t.match(c, { kind: 'qemu', accel: 'tcg' });
  t.match(c.notice, /no usable \/dev\/kvm/);
  t.throws(() => chooseHypervisor('auto', { ...sw, qemuPath: undefined }), QemuNotFound, 'fallback needs QEMU installed');
  t.throws(() => chooseHypervisor('auto', { ...sw, qemuPath: undefined }), /apt-get install -y qemu-system-x86/);
});

t.test('inproc', async (t) => {
  t.match(chooseHypervisor('inproc', hw), { kind: 'inproc', softwareKvm: false, hardwareVirtualization: true });
  t.match(chooseHypervisor('inproc', sw), { kind: 'inproc', softwareKvm: true, hardwareVirtualization: false, quirks: 'pvm' }, 'software KVM: the plan names the pvm quirks');
  t.equal(chooseHypervisor('inproc', hw).quirks, null, 'hardware KVM: no quirks');
  t.equal(chooseHypervisor('inproc', { ...hw, qemuPath: undefined }).kind, 'inproc', 'does not need QEMU');
  t.throws(() => chooseHypervisor('inproc', none), NoKvmForInproc);
});

t.test('qemu says which accelerator', async (t) => {
  const a = chooseHypervisor('qemu', hw);
  t.match(a, { kind: 'qemu', accel: 'kvm', hardwareVirtualization: true });
  t.match(a.notice, /-accel kvm \(hardware virtualization found\)/);
  const b = chooseHypervisor('qemu', sw);
  t.match(b, { kind: 'qemu', accel: 'tcg', softwareKvm: false }, 'never -accel kvm on the software virtualizer');
  t.match(b.notice, /-accel tcg \(KVM here is a software virtualizer/);
  t.match(chooseHypervisor('qemu', none).notice, /-accel tcg \(no usable/);
  t.throws(() => chooseHypervisor('qemu', { ...hw, qemuPath: undefined }), QemuNotFound);
});

t.test('parsing and construction', async (t) => {
  t.equal(parseHypervisorChoice('auto'), 'auto');
  t.throws(() => parseHypervisorChoice('firecracker'), InvalidHypervisorChoice);
  t.throws(() => parseHypervisorChoice('firecracker'), /one of inproc, qemu, auto/);
  const q = createHypervisor(chooseHypervisor('qemu', sw));
  t.match(q.capabilities(), { kind: 'qemu', accel: 'tcg', guestUserspace: true, deviceTransport: 'vhost-user', bootTimer: 'isa-debugcon' });
  const qk = createHypervisor(chooseHypervisor('qemu', hw));
  t.match(qk.capabilities(), { accel: 'kvm', hardwareVirtualization: true, guestUserspace: true });
  const i = createHypervisor(chooseHypervisor('inproc', sw));
  t.match(i.capabilities(), { kind: 'inproc', accel: 'kvm', guestUserspace: false, deviceTransport: 'in-process', bootTimer: 'pio-exit' });
  t.equal(createHypervisor(chooseHypervisor('inproc', hw)).capabilities().guestUserspace, true);
});

t.test('findOnPath', async (t) => {
  t.equal(findOnPath('sh', '/nonexistent:/bin'), '/bin/sh');
  t.equal(findOnPath('definitely-not-a-binary-kata', '/bin:/usr/bin'), undefined);
});

t.test('the factory applies the host-quirks profile, and only it', async (t) => {
  const inprocSw = chooseHypervisor('inproc', sw);
  t.equal(resolveQuirks(inprocSw)?.name, 'pvm', "'auto' takes the plan's profile");
  t.equal(resolveQuirks(inprocSw, 'none'), undefined, "'none' turns it off");
  t.equal(resolveQuirks(chooseHypervisor('qemu', sw)), undefined, 'qemu+TCG needs none');
  t.equal(resolveQuirks(chooseHypervisor('qemu', sw), 'pvm')?.name, 'pvm', 'a named profile is applied as asked');
  t.throws(() => resolveQuirks(inprocSw, 'no-such-profile'), /host-quirks profile 'no-such-profile' is missing/);
  t.equal(createHypervisor(inprocSw).quirks?.name, 'pvm', 'the hypervisor reports the profile it applies');

  // the profile reaches the command line the backend launches with (QEMU is not found, so it stops there)
  const plan = { ...chooseHypervisor('qemu', sw), qemuPath: '/nonexistent/qemu-system-x86_64' };
  const hv = createHypervisor(plan, { quirks: 'pvm' });
  const kernel = tinyKernelFile();
  t.teardown(kernel.remove);
  await hv.createVm({ kernelPath: kernel.path, cmdline: 'console=ttyS0', vcpus: 1, memoryMiB: 64 });
  await t.rejects(hv.startVm(), QemuNotFound);
  t.match(hv.cmdline, /^console=ttyS0 .*noint3selftest/, 'quirks appended to the caller\'s command line');
});

// The inproc backend on this host's KVM: the bench payload (tests/payloads/bench.S: "B\n" on COM1, 123 to the
// boot-timer port, status 0 to the debug exit port) through the Hypervisor interface.
import t from 'tap';
import { chooseHypervisor, createHypervisor, detectHost } from '../../src/hypervisor/factory.js';
import { HotplugNotSupported } from '../../src/hypervisor/interface.js';
import { buildPayloadFile } from '../payloads/build.js';
import { tinyKernelFile } from '../helpers/tiny-kernel.js';

const host = detectHost();
const skip = host.virtualization === 'unavailable' ? 'no usable /dev/kvm' : false;

t.test('inproc: boot phases, console marker, debug exit', { skip }, async (t) => {
  const kernelPath = await buildPayloadFile('bench');
  const hv = createHypervisor(chooseHypervisor('inproc', host));
  t.equal(hv.capabilities().bootTimer, 'pio-exit');
  await hv.createVm({ kernelPath, cmdline: '', vcpus: 1, memoryMiB: 64, debugPorts: true, markers: ['B\n'] });
  const safety = setTimeout(() => void hv.stopVm(), 60_000);
  await hv.startVm();
  t.throws(() => hv.addDevice({ kind: 'rng' }), HotplugNotSupported);
  const exit = await hv.wait();
  clearTimeout(safety);
  t.same(exit, { kind: 'debug-exit', status: 0 });
  t.equal(hv.consoleText, 'B\n');
  const p = hv.phases;
  const order = [p.startRequested, p.vmCreated, p.running, p.markers['B\n'], p.exited];
  t.ok(order.every((x) => typeof x === 'bigint'), 'phases recorded');
  t.ok(order.every((x, i) => i === 0 || x! >= order[i - 1]!), 'in order');
  t.type(p.bootTimer, 'bigint', 'the boot-timer port write was timestamped');
  t.type(p.kernelStarted, 'bigint');
});

t.test('inproc: stop before start, start failures', { skip }, async (t) => {
  const hv = createHypervisor(chooseHypervisor('inproc', host));
  await t.rejects(hv.createVm({ kernelPath: '/nonexistent/vmlinux', cmdline: '', vcpus: 1, memoryMiB: 64 }), /kernel not found: \/nonexistent\/vmlinux/);
  const kernel = tinyKernelFile();
  t.teardown(kernel.remove);
  const hv2 = createHypervisor(chooseHypervisor('inproc', host));
  await hv2.createVm({ kernelPath: kernel.path, cmdline: '', vcpus: 1, memoryMiB: 64 });
  t.same(await hv2.stopVm(), { kind: 'stopped' });
});

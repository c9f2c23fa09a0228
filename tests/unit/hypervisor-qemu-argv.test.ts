// The QEMU command line: microvm with shared memfd RAM, modern virtio-mmio, the accelerator per host, QMP and
// the boot-timer debugcon as client sockets, vhost-user devices, option-value escaping.
import t from 'tap';
import { buildQemuArgv, qemuCmdline, qemuOptValue, QemuDeviceNotSupported, vhostUserDeviceArgs, type QemuArgvOptions } from '../../src/hypervisor/qemu-argv.js';

const base: QemuArgvOptions = {
  kernelPath: '/k/vmlinux',
  initrdPath: '/k/initrd.gz',
  cmdline: 'console=ttyS0 reboot=k panic=1',
  vcpus: 2,
  memoryMiB: 256,
  accel: 'tcg',
  qmpSocket: '/run/x/qmp.sock',
  bootTimerSocket: '/run/x/bt.sock',
};

/** the value after a flag (first occurrence) */
function after(argv: string[], flag: string, nth = 0): string | undefined {
  let seen = 0;
  for (let i = 0; i < argv.length; i++) if (argv[i] === flag && seen++ === nth) return argv[i + 1];
  return undefined;
}

t.test('machine, memory, console, boot', async (t) => {
  const a = buildQemuArgv(base);
  t.equal(after(a, '-M'), 'microvm,acpi=off,x-option-roms=off,memory-backend=mem');
  t.equal(after(a, '-object'), 'memory-backend-memfd,id=mem,size=256M,share=on', 'guest RAM is a shared memfd');
  t.equal(after(a, '-m'), '256M');
  t.equal(after(a, '-smp'), '2');
  t.equal(after(a, '-global'), 'virtio-mmio.force-legacy=false');
  for (const f of ['-nodefaults', '-no-user-config', '-nographic', '-no-reboot']) t.ok(a.includes(f), f);
  t.equal(after(a, '-serial'), 'stdio');
  t.equal(after(a, '-kernel'), '/k/vmlinux');
  t.equal(after(a, '-initrd'), '/k/initrd.gz');
  t.equal(after(a, '-append'), base.cmdline, 'the command line is passed verbatim');
  t.notOk(a.includes('-S'), 'runs at once unless asked');
  t.notOk(a.some((x) => x.startsWith('isa-debug-exit')), 'no debug exit unless asked');
  const noInitrd = buildQemuArgv({ ...base, initrdPath: undefined });
  t.notOk(noInitrd.includes('-initrd'));
});

t.test('accelerator', async (t) => {
  const tcg = buildQemuArgv(base);
  t.equal(after(tcg, '-accel'), 'tcg');
  t.notOk(tcg.includes('-cpu'), 'TCG keeps QEMU default CPU model');
  const kvm = buildQemuArgv({ ...base, accel: 'kvm' });
  t.equal(after(kvm, '-accel'), 'kvm');
  t.equal(after(kvm, '-cpu'), 'host,-arch-capabilities', 'MSR 0x10a is hidden (kvm_pvm rejects it)');
});

t.test('TCG with vhost-user devices: the guest zeroes pages it allocates (stale translated code)', async (t) => {
  const vu = [{ spec: { kind: 'rng' as const }, socketPath: '/run/x/rng.sock' }];
  t.equal(after(buildQemuArgv({ ...base, vhostUser: vu }), '-append'), `${base.cmdline} init_on_alloc=1`);
  t.equal(after(buildQemuArgv({ ...base, accel: 'kvm', vhostUser: vu }), '-append'), base.cmdline, 'KVM caches no translations');
  t.equal(after(buildQemuArgv(base), '-append'), base.cmdline, 'no vhost-user backend writes guest memory');
  t.equal(qemuCmdline('a init_on_alloc=0', 'tcg', true), 'a init_on_alloc=0', "the user's own setting stands");
  t.equal(qemuCmdline('init_on_alloc=0 b', 'tcg', true), 'init_on_alloc=0 b');
  t.equal(qemuCmdline('xinit_on_alloc=0', 'tcg', true), 'xinit_on_alloc=0 init_on_alloc=1', 'only the whole parameter counts');
});

t.test('QMP, boot timer, paused start, debug exit', async (t) => {
  const a = buildQemuArgv({ ...base, startPaused: true, debugExit: true });
  t.equal(after(a, '-qmp'), 'unix:/run/x/qmp.sock', 'QEMU connects to our QMP socket as a client');
  t.equal(after(a, '-chardev'), 'socket,id=boottimer,path=/run/x/bt.sock');
  t.equal(after(a, '-device'), 'i8042', 'an i8042 for reboot=k (port 0x64 reset), as in the in-process VMM');
  t.equal(after(a, '-device', 1), 'isa-debugcon,iobase=0x440,chardev=boottimer', 'boot-timer port 0x440');
  t.equal(after(a, '-device', 2), 'isa-debug-exit,iobase=0xf4,iosize=4');
  t.ok(a.includes('-S'));
});

t.test('vhost-user devices', async (t) => {
  const a = buildQemuArgv({
    ...base,
    vhostUser: [
      { spec: { kind: 'blk', path: '/img', readOnly: true }, socketPath: '/s/0.sock' },
      { spec: { kind: 'net', tap: 'tap0', mac: '52:54:00:00:00:01' }, socketPath: '/s/1.sock' },
      { spec: { kind: 'vsock', cid: 3 }, socketPath: '/s/2.sock' },
      { spec: { kind: 'rng' }, socketPath: '/s/3.sock' },
    ],
  });
  t.equal(after(a, '-chardev', 1), 'socket,id=vu0,path=/s/0.sock');
  t.equal(after(a, '-device', 2), 'vhost-user-blk,chardev=vu0,num-queues=1');
  t.equal(after(a, '-chardev', 2), 'socket,id=vu1,path=/s/1.sock');
  t.equal(after(a, '-netdev'), 'vhost-user,id=net1,chardev=vu1');
  t.equal(after(a, '-device', 3), 'virtio-net-device,netdev=net1,mac=52:54:00:00:00:01');
  t.equal(after(a, '-device', 4), 'vhost-user-vsock-device,chardev=vu2');
  t.equal(after(a, '-device', 5), 'vhost-user-rng,chardev=vu3');
  t.throws(() => vhostUserDeviceArgs({ spec: { kind: 'module', module: 'x', exportName: 'Y' }, socketPath: '/s' }, 0), QemuDeviceNotSupported);
});

t.test('commas in option values are doubled; -append and -kernel are not option lists', async (t) => {
  t.equal(qemuOptValue('/a,b/c,,d'), '/a,,b/c,,,,d');
  const a = buildQemuArgv({ ...base, kernelPath: '/k,1/vmlinux', cmdline: 'a=1,2', qmpSocket: '/r,1/q.sock', bootTimerSocket: '/r,1/b.sock' });
  t.equal(after(a, '-qmp'), 'unix:/r,,1/q.sock');
  t.equal(after(a, '-chardev'), 'socket,id=boottimer,path=/r,,1/b.sock');
  t.equal(after(a, '-kernel'), '/k,1/vmlinux');
  t.equal(after(a, '-append'), 'a=1,2');
});

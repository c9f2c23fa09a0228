// The pod network's pure parts (src/runtime/pod-network.ts): which namespace entry names the pod, the spec the
// guest gets, the kernel's ip= argument, and the launch settings' checks on what reaches the kernel command line.

import t from 'tap';
import { parseLaunch } from '../../src/runtime/launch.js';
import { guestSpec, kernelIpArg, netmask, networkNamespacePath } from '../../src/runtime/pod-network.js';

const podSpec = {
  process: { args: ['sh'] },
  linux: {
    namespaces: [{ type: 'pid' }, { type: 'network', path: '/run/netns/pod1' }, { type: 'mount' }],
    sysctl: { 'net.ipv4.ping_group_range': '0 0', 'kernel.msgmax': '8192' },
  },
};

t.test('the network namespace path and the spec the guest sees', async (t) => {
  t.equal(networkNamespacePath(podSpec), '/run/netns/pod1');
  t.equal(networkNamespacePath({ linux: { namespaces: [{ type: 'network' }] } }), undefined, 'a new namespace is no pod namespace');
  t.equal(networkNamespacePath({}), undefined);
  const g = guestSpec(podSpec) as typeof podSpec;
  t.same(g.linux.namespaces, [{ type: 'pid' }, { type: 'mount' }], 'the host namespace path is gone: the container uses the VM network');
  t.same(g.linux.sysctl, { 'kernel.msgmax': '8192' }, 'net.* sysctls go with it (runc refuses them outside a netns of its own)');
  t.equal(podSpec.linux.namespaces.length, 3, 'the original spec is untouched');
  const plain = { linux: { namespaces: [{ type: 'network' }], sysctl: { 'net.x': '1' } } };
  t.equal(guestSpec(plain), plain, 'a spec without a namespace path passes as it is');
});

t.test('ip= and netmasks', async (t) => {
  t.equal(netmask(16), '255.255.0.0');
  t.equal(netmask(24), '255.255.255.0');
  t.equal(netmask(0), '0.0.0.0');
  t.equal(netmask(32), '255.255.255.255');
  t.equal(netmask(23), '255.255.254.0');
  t.equal(kernelIpArg({ netns: '/n', ifname: 'eth0', mac: 'aa:bb:cc:dd:ee:ff', address: '10.88.0.5', prefixLen: 16, gateway: '10.88.0.1' }), 'ip=10.88.0.5::10.88.0.1:255.255.0.0::eth0:off');
  t.equal(kernelIpArg({ netns: '/n', ifname: 'eth0', mac: 'aa:bb:cc:dd:ee:ff', address: '10.0.0.2', prefixLen: 24 }), 'ip=10.0.0.2:::255.255.255.0::eth0:off');
});

t.test('launch settings: what reaches the kernel command line has its exact form', async (t) => {
  const base = {
    root: '/run/kata-ts', sid: 'c1', hypervisor: 'qemu', qemuPath: 'q', kernel: '/k', initrd: '/i', cmdline: '', vcpus: 1, memoryMiB: 512, sharedFs: 'none',
    slots: 1, slotSizeMiB: 16, consoleLogMaxMiB: 1, dialTimeoutMs: 1, requestTimeoutMs: 1, logFormat: 'text', tmpDir: '/tmp/x',
  };
  const net = { netns: '/run/netns/p', ifname: 'eth0', mac: 'aa:bb:cc:dd:ee:ff', address: '10.88.0.5', prefixLen: 16, gateway: '10.88.0.1' };
  t.same(parseLaunch(JSON.stringify({ ...base, network: net })).network, net);
  for (const [k, v] of [
    ['address', '10.88.0.5 init=/bin/sh'],
    ['address', '300.1.1.1'],
    ['gateway', '10.88.0.1 rd.break'],
    ['mac', 'AA:BB:CC:DD:EE:FF;'],
    ['ifname', 'eth0 x'],
    ['prefixLen', 33],
  ] as const) {
    t.throws(() => parseLaunch(JSON.stringify({ ...base, network: { ...net, [k]: v } })), new RegExp(`network\\.${k}`), `${k} ${JSON.stringify(v)} refused`);
  }
});

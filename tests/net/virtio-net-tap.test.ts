// virtio-net on a real Linux tap: the mock driver plays the guest, the kernel plays the host network.
// The tap is created in the host namespace (the fd stays with this process), then moved into a network
// namespace made for the test, where it gets 10.213.0.1/30; the "guest" is 10.213.0.2. Nothing is configured
// outside that namespace, and the namespace is deleted at teardown.
//
// Needs root (CAP_NET_ADMIN), /dev/net/tun, iproute2 and the native addon; skipped with the reason otherwise.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { loadNative } from '../../src/kvm/native.js';
import { TapBackend } from '../../src/virtio/net/backend.js';
import {
  TUN_F_CSUM,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
} from '../../src/virtio/net/features.js';
import { decodeNetHdr } from '../../src/virtio/net/header.js';
import {
  BROADCAST,
  ETH_P_ARP,
  ETH_P_IP,
  MAC_BYTES,
  arp,
  concat,
  ethType,
  ethernet,
  frameOf,
  icmpEcho,
  inetChecksum,
  ipv4,
  makeRig,
  patternFrame,
} from '../unit/virtio-net-rig.js';

const NS = `kt-test-${process.pid}`;
const IFNAME = `kt${process.pid}`.slice(0, 15);
const HOST_IP = [10, 213, 0, 1];
const GUEST_IP = [10, 213, 0, 2];

function ip(...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error?.message ?? ''}`.trim() };
}

/** Why the test cannot run here, or undefined. */
function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (CAP_NET_ADMIN) to create a tap and a network namespace';
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    return '/dev/net/tun is missing or not usable';
  }
  try {
    loadNative();
  } catch (e) {
    return (e as Error).message;
  }
  const v = ip('-V');
  if (!v.ok) return `iproute2 'ip' is not usable: ${v.out}`;
  return undefined;
}

const skip = whyNot();
if (skip !== undefined) console.log(`# virtio-net tap test skipped: ${skip}`);

const ARP_REPLY = 2;
const IPPROTO_ICMP = 1;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('virtio-net <-> Linux tap in a private namespace: ARP, ICMP echo, a frame over two mergeable buffers', { skip: skip ?? false }, async (t) => {
  const add = ip('netns', 'add', NS);
  if (!add.ok) {
    t.fail(`ip netns add ${NS}: ${add.out}`);
    return;
  }
  // teardowns run last-registered first: device reset, then tap close, then the namespace
  t.teardown(() => {
    ip('netns', 'del', NS);
  });
  const tap = TapBackend.open(IFNAME);
  t.teardown(() => tap.close()); // the tap disappears with its last fd
  t.equal(tap.ifName, IFNAME);
  for (const args of [
    ['link', 'set', IFNAME, 'netns', NS],
    ['-n', NS, 'addr', 'add', '10.213.0.1/30', 'dev', IFNAME],
    ['-n', NS, 'link', 'set', IFNAME, 'up'],
  ]) {
    const r = ip(...args);
    t.ok(r.ok, `ip ${args.join(' ')} ${r.out}`);
  }

  const rig = makeRig(tap);
  t.teardown(() => rig.dev.reset());
  const dev = rig.dev;
  t.ok(dev.acceptedTunFlags & TUN_F_CSUM, `the tap accepts TUN_F_CSUM (accepted 0x${dev.acceptedTunFlags.toString(16)})`);
  t.ok(dev.availableFeatures & VIRTIO_NET_F_GUEST_CSUM);
  rig.activate(
    VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MRG_RXBUF | VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM,
    { eventIdx: true },
  );
  rig.postRx(32, 2048);

  /** Frames the "guest" received, reassembled from mergeable buffers; rx buffers are reposted. */
  const received: Array<{ numBuffers: number; flags: number; frame: Uint8Array }> = [];
  const r = rig;
  const collect = (): void => {
    const used = r.rx.used();
    let i = 0;
    while (i < used.length) {
      const first = r.rx.readWrittenBytes(used[i]!.id);
      const n = Math.max(1, decodeNetHdr(first).numBuffers);
      const parts = [first];
      for (let k = 1; k < n && i + k < used.length; k++) parts.push(r.rx.readWrittenBytes(used[i + k]!.id));
      const all = concat(...parts);
      const h = decodeNetHdr(all);
      received.push({ numBuffers: h.numBuffers, flags: h.flags, frame: frameOf(all) });
      i += n;
    }
    if (used.length > 0) {
      r.postRx(used.length, 2048);
      r.kickRx();
    }
  };
  const waitFor = async (what: string, pred: (f: Uint8Array) => boolean): Promise<Uint8Array | undefined> => {
    for (let i = 0; i < 250; i++) {
      collect();
      const hit = received.find((x) => pred(x.frame));
      if (hit !== undefined) return hit.frame;
      await sleep(20);
    }
    t.fail(`no ${what} within 5 s; got ${received.length} other frames`);
    return undefined;
  };

  // ARP who-has 10.213.0.1 tell 10.213.0.2
  r.send(ethernet(BROADCAST, MAC_BYTES, ETH_P_ARP, arp(1, MAC_BYTES, GUEST_IP, new Uint8Array(6), HOST_IP)));
  r.kickTx();
  const isArpReply = (f: Uint8Array): boolean =>
    ethType(f) === ETH_P_ARP && f[21] === ARP_REPLY && f.subarray(28, 32).join('.') === HOST_IP.join('.');
  const reply = await waitFor('ARP reply', isArpReply);
  if (reply === undefined) return;
  t.same(Array.from(reply.subarray(0, 6)), Array.from(MAC_BYTES), 'ARP reply addressed to the guest MAC');
  t.same(Array.from(reply.subarray(32, 38)), Array.from(MAC_BYTES), 'target hardware address is ours');
  t.same(Array.from(reply.subarray(38, 42)), GUEST_IP);
  const hostMac = reply.subarray(22, 28).slice();

  // ICMP echo request 10.213.0.2 -> 10.213.0.1
  const payload = patternFrame(56, 3);
  const echo = icmpEcho(8, 0x4b54, 1, payload);
  r.send(ethernet(hostMac, MAC_BYTES, ETH_P_IP, ipv4(GUEST_IP, HOST_IP, IPPROTO_ICMP, echo)));
  r.kickTx();
  const isEchoReply = (f: Uint8Array): boolean =>
    ethType(f) === ETH_P_IP && f[23] === IPPROTO_ICMP && f[34] === 0 && f.subarray(26, 30).join('.') === HOST_IP.join('.');
  const pong = await waitFor('ICMP echo reply', isEchoReply);
  if (pong === undefined) return;
  const icmp = pong.subarray(34, 34 + 8 + payload.length);
  t.equal((icmp[4]! << 8) | icmp[5]!, 0x4b54, 'echo id');
  t.equal((icmp[6]! << 8) | icmp[7]!, 1, 'echo seq');
  t.same(Array.from(icmp.subarray(8)), Array.from(payload), 'echo payload comes back');
  const entry = received.find((x) => isEchoReply(x.frame))!;
  if (!(entry.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) t.equal(inetChecksum(icmp), 0, 'ICMP checksum valid');
  t.equal(entry.numBuffers, 1, 'num_buffers = 1 for a frame in one buffer');

  // A 3000-byte echo (tap MTU 4000): the 3054-byte reply spans two 2048-byte mergeable buffers.
  const mtu = ip('-n', NS, 'link', 'set', IFNAME, 'mtu', '4000');
  t.ok(mtu.ok, `ip link set mtu 4000 ${mtu.out}`);
  const big = patternFrame(3000, 4);
  r.send(ethernet(hostMac, MAC_BYTES, ETH_P_IP, ipv4(GUEST_IP, HOST_IP, IPPROTO_ICMP, icmpEcho(8, 0x4b54, 2, big), 2)));
  r.kickTx();
  const isBigReply = (f: Uint8Array): boolean => isEchoReply(f) && f.length >= 34 + 8 + big.length && f[41] === 2;
  const bigPong = await waitFor('3000-byte ICMP echo reply', isBigReply);
  if (bigPong === undefined) return;
  t.same(Array.from(bigPong.subarray(42, 42 + big.length)), Array.from(big), 'large echo payload comes back');
  t.equal(received.find((x) => isBigReply(x.frame))!.numBuffers, 2, 'num_buffers = 2: the frame spans two rx chains');

  const m = dev.metrics();
  t.comment(`device metrics: ${JSON.stringify(m)}; frames seen by the guest: ${received.length}`);
  t.equal(m.txFrames, 3);
  t.ok((m.rxFrames ?? 0) >= 3);
  t.ok(rig.irqs.includes(0) && rig.irqs.includes(1), 'rx and tx interrupts raised');
});

// virtio-net device model against the mock driver (virtio 1.2 §5.1) with the in-memory PairBackend.
import t from 'tap';
import { DeviceBroken } from '../../src/virtio/device.js';
import { VIRTIO_ID_NET, VIRTIO_RING_F_EVENT_IDX } from '../../src/virtio/ids.js';
import { EAGAIN, PairBackend, TapBackend, type TapNative } from '../../src/virtio/net/backend.js';
import { NetDevice } from '../../src/virtio/net/device.js';
import {
  MAX_FRAME_LEN,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_UFO,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_GUEST_UFO,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_HOST_UFO,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_LEN,
} from '../../src/virtio/net/features.js';
import { decodeNetHdr } from '../../src/virtio/net/header.js';
import { formatMac, parseMac } from '../../src/virtio/net/mac.js';
import { VRING_DESC_F_NEXT } from '../../src/virtio/queue.js';
import { MAC_BYTES, concat, frameOf, makeRig, patternFrame, withHdr } from './virtio-net-rig.js';

const BASE = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS;
const MRG = BASE | VIRTIO_NET_F_MRG_RXBUF;

t.test('config space: mac[6] then status LINK_UP; link changes raise a config interrupt', (t) => {
  const r = makeRig();
  t.equal(r.dev.deviceType, VIRTIO_ID_NET);
  t.same(r.dev.queueMaxSizes, [256, 256]);
  t.same(Array.from(r.dev.configSpace()), [0x52, 0x54, 0, 0, 2, 2, 1, 0]);
  r.activate(BASE);
  r.dev.setLinkUp(false);
  t.equal(r.dev.configSpace()[6], 0);
  t.same(r.irqs, ['config']);
  r.dev.setLinkUp(true);
  t.equal(r.dev.configSpace()[6], 1);
  r.dev.writeConfig(0, Uint8Array.of(1, 2, 3));
  t.same(Array.from(r.dev.configSpace().subarray(0, 6)), Array.from(MAC_BYTES), 'config writes are ignored');
  t.end();
});

t.test('MAC parsing and the random default', (t) => {
  t.same(Array.from(parseMac('52-54-00-AB-cd-EF')), [0x52, 0x54, 0, 0xab, 0xcd, 0xef]);
  t.throws(() => parseMac('52:54:00:12:34'), { name: 'InvalidMac' });
  t.throws(() => parseMac('52:54:00:12:34:zz'), /bad octet/);
  t.throws(() => parseMac('01:00:5e:00:00:01'), /multicast/);
  const [a] = PairBackend.pair();
  const d = new NetDevice({}, a);
  t.equal(d.mac[0]! & 3, 2, 'locally administered unicast');
  t.match(formatMac(d.mac), /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  t.end();
});

t.test('features: offloads only for TUN_F_* flags the backend accepts; setOffload after activation', (t) => {
  const all = makeRig();
  const f = all.dev.availableFeatures;
  for (const bit of [VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_RING_F_EVENT_IDX]) {
    t.ok(f & bit, `offers bit ${bit}`);
  }
  for (const bit of [VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_GUEST_TSO6]) {
    t.ok(f & bit, `tap accepting everything: offers offload bit ${bit}`);
  }
  const peer = all.backend as PairBackend;
  t.equal(peer.offload, 0, 'offloads off until a driver accepts them');

  // A tap that refuses TSO6 and UFO.
  const [partial] = PairBackend.pair(TUN_F_CSUM | TUN_F_TSO4);
  const r = makeRig(partial);
  const g = r.dev.availableFeatures;
  t.ok(g & VIRTIO_NET_F_GUEST_TSO4 && g & VIRTIO_NET_F_HOST_TSO4 && g & VIRTIO_NET_F_CSUM);
  t.notOk(g & (VIRTIO_NET_F_GUEST_TSO6 | VIRTIO_NET_F_HOST_TSO6 | VIRTIO_NET_F_GUEST_UFO | VIRTIO_NET_F_HOST_UFO));
  t.equal(r.dev.acceptedTunFlags, TUN_F_CSUM | TUN_F_TSO4);
  r.activate(BASE | VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_GUEST_TSO4 | VIRTIO_NET_F_CSUM);
  t.equal(partial.offload, TUN_F_CSUM | TUN_F_TSO4, 'GUEST_* offloads the driver accepted reach the tap');
  r.dev.reset();
  t.equal(partial.offload, 0, 'reset switches them off');
  // A driver accepting TSO without CSUM breaks §5.1.3.1: the tap refuses, the device falls back to none.
  r.activate(BASE | VIRTIO_NET_F_GUEST_TSO4);
  t.equal(partial.offload, 0);
  t.equal(r.dev.metrics().offloadRefused, 1);

  // A tap without checksum offload gets no offload features at all (TSO needs CSUM: tun.c set_offload).
  const [none] = PairBackend.pair(TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO);
  const n = makeRig(none).dev.availableFeatures;
  t.notOk(n & (VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_GUEST_TSO4));
  t.end();
});

t.test('tx: header + frame reach the backend, header split across descriptors', (t) => {
  const r = makeRig();
  r.activate(BASE);
  const f1 = patternFrame(60, 1);
  const f2 = patternFrame(1514, 2);
  const h1 = r.send(f1);
  const h2 = r.send(f2, {}, [5, 9, 12, 100, 700]); // header in 3 pieces, frame in 4
  r.kickTx();
  t.same(r.tx.used(), [
    { id: h1, len: 0 },
    { id: h2, len: 0 },
  ]);
  t.same(r.peer!.take(), withHdr(f1));
  t.same(r.peer!.take(), withHdr(f2));
  t.same(r.irqs, [1]);
  t.match(r.dev.metrics(), { txFrames: 2, txBytes: 60 + 1514, txDropped: 0 });
  t.end();
});

t.test('tx: malformed frames are dropped with named errors, nothing written', (t) => {
  const r = makeRig();
  r.activate(BASE | VIRTIO_NET_F_CSUM);
  const short = r.tx.addChain([{ data: new Uint8Array(8) }]);
  const empty = r.tx.addChain([{ data: new Uint8Array(VIRTIO_NET_HDR_LEN) }]);
  const big = r.tx.addChain([{ data: new Uint8Array(VIRTIO_NET_HDR_LEN + MAX_FRAME_LEN + 1) }]);
  const maxOk = r.tx.addChain([{ data: new Uint8Array(VIRTIO_NET_HDR_LEN + MAX_FRAME_LEN) }]);
  const writable = r.tx.addChain([{ data: withHdr(patternFrame(60)) }, { len: 16, writable: true }]);
  const gso = r.send(patternFrame(100), { gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448, flags: 1 });
  const badCsum = r.send(patternFrame(100), { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 90, csumOffset: 9 });
  const goodCsum = r.send(patternFrame(100), { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 16 });
  const dataValid = r.send(patternFrame(100), { flags: 2 });
  r.tx.publish();
  r.kickTx();
  const used = r.tx.used();
  t.same(
    used.map((u) => u.id),
    [short, empty, big, maxOk, writable, gso, badCsum, goodCsum, dataValid],
  );
  t.ok(used.every((u) => u.len === 0));
  t.equal(r.peer!.waiting, 2, 'only the 65550-byte frame and the good checksum frame went out');
  t.equal(r.peer!.take()!.length, VIRTIO_NET_HDR_LEN + MAX_FRAME_LEN);
  t.equal(decodeNetHdr(r.peer!.take()!).csumStart, 34);
  t.match(r.dev.metrics(), {
    txFrames: 2,
    txDropped: 7,
    'errors.HeaderTooShort': 1,
    'errors.EmptyFrame': 1,
    'errors.FrameTooLarge': 1,
    'errors.UnexpectedWritableDescriptor': 1,
    'errors.OffloadNotNegotiated': 1,
    'errors.BadHeaderField': 2,
  });
  t.end();
});

t.test('tx: NEEDS_CSUM without VIRTIO_NET_F_CSUM and GSO with HOST_TSO4', (t) => {
  const r = makeRig();
  r.activate(BASE | VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4);
  r.send(patternFrame(3000), { flags: 1, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448, csumStart: 34, csumOffset: 16 });
  r.kickTx();
  t.equal(r.peer!.waiting, 1, 'a negotiated TSO frame goes through');
  const r2 = makeRig();
  r2.activate(BASE);
  r2.send(patternFrame(100), { flags: 1, csumStart: 34, csumOffset: 16 });
  r2.kickTx();
  t.equal(r2.peer!.waiting, 0);
  t.equal(r2.dev.metrics()['errors.OffloadNotNegotiated'], 1);
  t.end();
});

t.test('tx: a broken chain makes the device broken (DeviceBroken), nothing else', (t) => {
  const r = makeRig();
  r.activate(BASE);
  const head = r.send(patternFrame(60));
  r.tx.writeDesc(head, { addr: 0x5000, len: 64, flags: VRING_DESC_F_NEXT, next: 999 });
  let err: unknown;
  try {
    r.kickTx();
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof DeviceBroken, `DeviceBroken subclass: ${String(err)}`);
  t.equal((err as Error).name, 'DescriptorIndexOutOfRange');
  t.end();
});

t.test('rx without mergeable buffers: one chain per frame, num_buffers 1, truncation like a tap', (t) => {
  const r = makeRig();
  r.activate(BASE);
  const heads = r.postRx(3, 1526 + 12);
  const f = patternFrame(100, 3);
  r.peer!.writev([withHdr(f, { flags: 2 })]);
  r.peer!.writev([withHdr(patternFrame(4000, 4))]);
  (r.backend as PairBackend).flushReadable();
  const used = r.rx.used();
  t.same(used, [
    { id: heads[0], len: 112 },
    { id: heads[1], len: 1538 },
  ]);
  const got = r.rx.readWrittenBytes(heads[0]!);
  const hdr = decodeNetHdr(got);
  t.equal(hdr.numBuffers, 1);
  t.equal(hdr.flags, 2, 'header from the backend kept');
  t.same(frameOf(got), f);
  t.same(frameOf(r.rx.readWrittenBytes(heads[1]!)), patternFrame(4000, 4).subarray(0, 1526), 'truncated');
  t.same(r.irqs, [0]);
  t.match(r.dev.metrics(), { rxFrames: 2, rxBuffers: 2, rxPendingChains: 1 }, 'the third chain waits popped');
  t.end();
});

t.test('rx with mergeable buffers: a frame spans chains, num_buffers counts them', (t) => {
  const r = makeRig();
  r.activate(MRG);
  const heads = r.postRx(4, 500, 2); // chains of 2 x 500 bytes
  const f = patternFrame(2500, 5); // 2512 bytes with the header: 3 chains (1000, 1000, 512)
  r.peer!.writev([withHdr(f)]);
  (r.backend as PairBackend).flushReadable();
  const used = r.rx.used();
  t.same(used, [
    { id: heads[0], len: 1000 },
    { id: heads[1], len: 1000 },
    { id: heads[2], len: 512 },
  ]);
  const bytes = concat(...used.map((u) => r.rx.readWrittenBytes(u.id)));
  t.equal(decodeNetHdr(bytes).numBuffers, 3);
  t.same(frameOf(bytes), f);
  t.equal(r.dev.metrics().rxPendingChains, 1, 'the fourth chain stays with the device');
  // 1000 bytes left: less than a full 1518-byte frame, so the device waits for more buffers; the next
  // frame then starts in the kept chain.
  const g = patternFrame(200, 6);
  r.peer!.writev([withHdr(g)]);
  (r.backend as PairBackend).flushReadable();
  t.same(r.rx.used(), [], 'waits for room for a full frame');
  r.postRx(1, 1000);
  r.kickRx();
  t.same(r.rx.used(), [{ id: heads[3], len: 212 }]);
  const b2 = r.rx.readWrittenBytes(heads[3]!);
  t.equal(decodeNetHdr(b2).numBuffers, 1);
  t.same(frameOf(b2), g);
  t.end();
});

t.test('rx mergeable + GUEST_TSO4: waits for 64 KiB of buffers, then takes a 20000-byte frame', (t) => {
  const r = makeRig();
  r.activate(MRG | VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_GUEST_TSO4);
  r.postRx(10, 1536);
  const f = patternFrame(20000, 7);
  r.peer!.writev([withHdr(f, { gsoType: 1, gsoSize: 1448, flags: 1 })]);
  (r.backend as PairBackend).flushReadable();
  t.same(r.rx.used(), [], 'not enough room for a GSO frame yet: backpressure');
  t.equal(r.dev.metrics().rxBlocked, 1);
  r.postRx(40, 1536);
  r.kickRx();
  const used = r.rx.used();
  t.equal(used.length, Math.ceil(20012 / 1536));
  const bytes = concat(...used.map((u) => r.rx.readWrittenBytes(u.id)));
  t.equal(decodeNetHdr(bytes).numBuffers, used.length);
  t.equal(decodeNetHdr(bytes).gsoSize, 1448);
  t.same(frameOf(bytes), f);
  t.end();
});

t.test('rx backpressure: no buffers, stop reading; rx notify resumes in order', async (t) => {
  const r = makeRig();
  r.activate(MRG, { eventIdx: true });
  const pb = r.backend as PairBackend;
  for (let i = 0; i < 3; i++) r.peer!.writev([withHdr(patternFrame(300 + i, i))]);
  pb.flushReadable();
  t.equal(pb.waiting, 3, 'frames wait in the backend');
  t.equal(r.dev.metrics().rxBlocked, 1);
  await new Promise((res) => setImmediate(res));
  await new Promise((res) => setImmediate(res));
  t.equal(pb.waiting, 3, 'the device no longer watches the backend (no busy loop)');
  t.equal(r.rx.availEvent(), 0, 'EVENT_IDX: avail_event armed at the next chain');
  const heads = r.postRx(2, 1600);
  t.ok(r.rx.kickNeeded(true), 'the driver would notify');
  r.kickRx();
  t.same(
    r.rx.used().map((u) => [u.id, u.len]),
    [
      [heads[0], 312],
      [heads[1], 313],
    ],
  );
  t.equal(pb.waiting, 1);
  t.same(frameOf(r.rx.readWrittenBytes(heads[1]!)), patternFrame(301, 1));
  r.postRx(1, 1600);
  r.kickRx();
  t.equal(pb.waiting, 0);
  t.equal(r.rx.used().length, 1);
  t.equal(r.dev.metrics().rxFrames, 3);
  t.end();
});

t.test('rx: level-triggered readiness delivers frames without flushes', async (t) => {
  const r = makeRig();
  r.activate(MRG);
  r.postRx(8, 2048);
  for (let i = 0; i < 5; i++) r.peer!.writev([withHdr(patternFrame(1000, i))]);
  for (let i = 0; i < 10 && r.dev.metrics().rxFrames! < 5; i++) await new Promise((res) => setImmediate(res));
  t.equal(r.dev.metrics().rxFrames, 5);
  t.equal(r.rx.used().length, 5);
  t.end();
});

t.test('rx: a device-readable rx chain or one shorter than the header breaks the device', (t) => {
  const r = makeRig();
  r.activate(MRG);
  r.rx.addChain([{ data: new Uint8Array(64) }, { len: 2000, writable: true }]);
  r.rx.publish();
  r.peer!.writev([withHdr(patternFrame(60))]);
  t.throws(() => r.kickRx(), { name: 'RxChainNotWritable' });
  t.ok(r.dev.metrics()['rxPendingChains'] === 0);

  const s = makeRig();
  s.activate(BASE);
  s.postRx(1, 11);
  s.peer!.writev([withHdr(patternFrame(60))]);
  // found by the readiness callback: reported at the next processQueue
  (s.backend as PairBackend).flushReadable();
  t.throws(() => s.kickTx(), { name: 'RxBufferTooSmall' });
  t.doesNotThrow(() => s.kickTx(), 'reported once; the transport resets the device');
  s.dev.reset();
  s.rx.reset();
  s.tx.reset();
  s.activate(BASE);
  s.postRx(1, 100);
  (s.backend as PairBackend).flushReadable();
  t.equal(s.rx.used().length, 1, 'works again after reset');
  t.end();
});

t.test('two devices over one PairBackend exchange frames', (t) => {
  const [a, b] = PairBackend.pair();
  const ra = makeRig(a, '52:54:00:00:00:0a');
  const rb = makeRig(b, '52:54:00:00:00:0b');
  ra.activate(MRG);
  rb.activate(MRG);
  rb.postRx(4, 2048);
  const f = patternFrame(1400, 9);
  ra.send(f);
  ra.kickTx();
  b.flushReadable();
  const used = rb.rx.used();
  t.equal(used.length, 1);
  t.same(frameOf(rb.rx.readWrittenBytes(used[0]!.id)), f);
  t.end();
});

t.test('TapBackend over a fake addon: vnet header 12, offloads, errno mapping, watch/unwatch', (t) => {
  const calls: string[] = [];
  let nextWatch = 1;
  const errno = (code: string, n: number): Error => Object.assign(new Error(`${code}`), { code, errno: n });
  const native: TapNative = {
    tapOpen: (name, vnet) => {
      calls.push(`open ${name} ${vnet}`);
      if (name === 'busy') throw errno('EBUSY', 16);
      return { fd: 42, name: name || 'tap0' };
    },
    tapSetVnetHdrSize: (fd, n) => void calls.push(`hdrsz ${fd} ${n}`),
    tapSetOffload: (fd, f) => {
      if (f & TUN_F_UFO) throw errno('EINVAL', 22);
      calls.push(`offload ${fd} ${f}`);
    },
    readv: (fd, bufs) => {
      if (bufs.length === 0) throw errno('EIO', 5);
      return fd === 42 ? -11 : 0;
    },
    writev: (_fd, bufs) => bufs.reduce((s, b) => s + b.length, 0),
    watchReadable: (fd) => {
      calls.push(`watch ${fd}`);
      return nextWatch++;
    },
    unwatch: (id) => void calls.push(`unwatch ${id}`),
    close: (fd) => void calls.push(`close ${fd}`),
  };
  const tap = TapBackend.open('', native);
  t.equal(tap.ifName, 'tap0');
  t.same(calls.splice(0), ['open  true', 'hdrsz 42 12', 'offload 42 0']);
  t.equal(tap.readv([new Uint8Array(10)]), EAGAIN);
  t.equal(tap.readv([]), -5, 'a thrown NativeError becomes -errno');
  t.equal(tap.writev([new Uint8Array(3), new Uint8Array(4)]), 7);
  t.ok(tap.setOffload(TUN_F_CSUM | TUN_F_TSO4));
  t.notOk(tap.setOffload(TUN_F_CSUM | TUN_F_UFO), 'refused flags report false');
  calls.length = 0;
  tap.onReadable(() => {});
  tap.onReadable(null);
  tap.onReadable(() => {});
  tap.close();
  tap.close();
  t.same(calls, ['watch 42', 'unwatch 1', 'watch 42', 'unwatch 2', 'close 42']);
  t.throws(() => TapBackend.open('busy', native), /cannot open tap "busy": EBUSY.*CAP_NET_ADMIN/);
  t.end();
});

t.test('tx: a frame in more than 1023 pieces (indirect table) is dropped, not handed to writev', (t) => {
  const r = makeRig();
  r.activate(BASE);
  const pieces = [{ data: new Uint8Array(12) }, ...Array.from({ length: 1024 }, () => ({ data: Uint8Array.of(7) }))];
  r.tx.addChain(pieces, { indirect: true });
  r.tx.addChain([{ data: new Uint8Array(12) }, ...pieces.slice(1, 1024)], { indirect: true });
  r.tx.publish();
  r.kickTx();
  t.equal(r.tx.used().length, 2);
  t.equal(r.dev.metrics()['errors.TooManySegments'], 1);
  t.equal(r.peer!.waiting, 1, 'the 1023-piece frame went out');
  t.equal(r.peer!.take()!.length, 12 + 1023);
  t.end();
});

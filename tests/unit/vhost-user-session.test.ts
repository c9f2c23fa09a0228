// The vhost-user back-end against a scripted front-end over a real unix socket: QEMU's message sequence,
// ring start/stop/restart with the avail position kept, interrupts through the call eventfd, GET_CONFIG,
// REPLY_ACK failures, bad messages (sizes, fds, versions, unknown requests) that close the connection,
// a hostile ring that breaks only the device, and no fd leaks.

import { readdirSync } from 'node:fs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadNative } from '../../src/kvm/native.js';
import { BlockDevice } from '../../src/virtio/blk/device.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX } from '../../src/virtio/ids.js';
import { FakeEntropySource } from '../../src/virtio/rng/backend.js';
import { RngDevice } from '../../src/virtio/rng/device.js';
import { MockSplitQueue } from '../support/virtio/mock-driver.js';
import { FakeVsockBackend } from '../../src/virtio/vsock/backend.js';
import { VsockDevice } from '../../src/virtio/vsock/device.js';
import type { VirtioDevice } from '../../src/virtio/device.js';
import { encodeConfig, encodeMemTable, encodeMessage, encodeU64, encodeVringAddr, encodeVringFile, encodeVringState } from '../../src/vhost-user/codec.js';
import { SUPPORTED_PROTOCOL_FEATURES, VHOST_USER_F_PROTOCOL_FEATURES, VhostUserRequest as R } from '../../src/vhost-user/protocol.js';
import { VhostUserServer } from '../../src/vhost-user/server.js';
import { ScriptedFrontEnd, UVA_BASE, u64Of } from '../helpers/vhost-user-frontend.js';

const native = loadNative();
const dir = mkdtempSync(join(tmpdir(), 'vhost-user-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

async function rig(device: VirtioDevice = new RngDevice(new FakeEntropySource(7))) {
  const path = join(dir, `s${n++}.sock`);
  const logs: string[] = [];
  const server = VhostUserServer.listen(path, device, native, (_l, m) => logs.push(m));
  const fe = new ScriptedFrontEnd(native, native.unixConnect(path));
  return {
    server,
    fe,
    logs,
    done: () => {
      fe.dispose();
      server.close();
    },
  };
}

t.test('rng over vhost-user: handshake, ring start, request, interrupt, stop and restart', async (t) => {
  const { server, fe, done } = await rig();
  const hs = await fe.handshake();
  t.equal(hs.queueNum, 1, 'GET_QUEUE_NUM: one ring');
  t.ok((hs.features & VIRTIO_F_VERSION_1) !== 0n, 'VERSION_1 offered');
  t.ok((hs.features & VHOST_USER_F_PROTOCOL_FEATURES) !== 0n, 'PROTOCOL_FEATURES offered');
  t.equal(hs.protocolFeatures & (1n << 9n), 0n, 'no CONFIG protocol feature for a device without a config space');
  const q = new MockSplitQueue(fe.mem, 0x1000, 16);
  const fds = await fe.startRing(0, q);
  t.notOk(server.session!.isActive, 'protocol features negotiated: the ring starts disabled');
  t.equal(await fe.enableRing(0), 0n);
  t.ok(server.session!.isActive, 'enabled: device active');

  const head = q.addChain([{ len: 64, writable: true }]);
  q.publish();
  native.eventfdWrite(fds.kick, 1n);
  t.ok((await fe.waitEventfd(fds.call)) > 0n, 'call eventfd signalled');
  t.same(q.used(), [{ id: head, len: 64 }], 'used: 64 bytes');
  t.ok(q.readWrittenBytes(head).some((b) => b !== 0), 'entropy written into shared guest memory');

  // GET_VRING_BASE stops the ring and reports the next avail index
  const base = await fe.call(R.GET_VRING_BASE, encodeVringState(0, 0));
  t.equal(new DataView(base!.payload.buffer).getUint32(4, true), 1, 'last_avail = 1');
  t.notOk(server.session!.isActive, 'stopped');
  // a kick on the old fd is ignored (closed on the back-end side)
  const h2 = q.addChain([{ len: 16, writable: true }]);
  q.publish();
  // restart from base 1 with new eventfds
  q.setUsedEvent(1); // EVENT_IDX: interrupt when used passes 1
  const fds2 = await fe.startRing(0, q, 1);
  t.equal(await fe.enableRing(0), 0n);
  t.ok(await fe.waitEventfd(fds2.call) > 0n, 'activation processes the pending chain');
  t.same(q.used().map((u) => u.id), [h2], 'second chain used once, first not replayed');
  const m = server.metrics();
  t.equal(m['session.activations'], 2);
  t.equal(m['session.msg.GET_VRING_BASE'], 1);
  for (const fd of [fds.kick, fds.call, fds.err, fds2.kick, fds2.call, fds2.err]) native.close(fd);
  done();
});

t.test('GET_CONFIG returns the device config space (blk capacity); bad ranges get a zero-length reply', async (t) => {
  const img = join(dir, 'disk.img');
  writeFileSync(img, Buffer.alloc(1 << 20));
  const dev = new BlockDevice({ path: img, readOnly: true });
  const { fe, done } = await rig(dev);
  await fe.handshake();
  const r = await fe.call(R.GET_CONFIG, encodeConfig(0, 0, new Uint8Array(60)));
  t.equal(r!.payload.byteLength, 12 + 60, 'payload size matches the request');
  t.equal(new DataView(r!.payload.buffer, r!.payload.byteOffset + 12).getBigUint64(0, true), 2048n, 'capacity = 2048 sectors');
  const bad = await fe.call(R.GET_CONFIG, encodeConfig(250, 0, new Uint8Array(16)));
  t.equal(bad!.payload.byteLength, 0, 'offset+size past 256: zero-length reply');
  done();
  dev.close();
});

t.test('vsock: two rings (the event queue stays with the front-end), activated once both are enabled', async (t) => {
  const dev = new VsockDevice({ cid: 3 }, new FakeVsockBackend());
  const { server, fe, done } = await rig(dev);
  const hs = await fe.handshake();
  t.equal(hs.queueNum, 2);
  t.equal(hs.protocolFeatures & (1n << 9n), 1n << 9n, 'CONFIG offered: vsock has a config space');
  const rx = new MockSplitQueue(fe.mem, 0x1000, 16, { dataEnd: 0x40000 });
  const tx = new MockSplitQueue(fe.mem, 0x40000, 16, { dataEnd: 0x80000 });
  const a = await fe.startRing(0, rx);
  const b = await fe.startRing(1, tx);
  await fe.enableRing(0);
  t.notOk(server.session!.isActive, 'one of two rings enabled: not yet');
  await fe.enableRing(1);
  t.ok(server.session!.isActive, 'both enabled: active');
  const cfg = await fe.call(R.GET_CONFIG, encodeConfig(0, 0, new Uint8Array(8)));
  t.equal(u64Of(cfg!.payload.subarray(12)), 3n, 'guest_cid 3');
  for (const fd of [a.kick, a.call, a.err, b.kick, b.call, b.err]) native.close(fd);
  done();
});

t.test('REPLY_ACK failures keep the connection; the same errors without need_reply close it', async (t) => {
  const { fe, done, server } = await rig();
  await fe.handshake();
  t.equal(await fe.ack(R.SET_VRING_NUM, new Uint8Array(4)), 1n, 'short payload: failure');
  t.equal(await fe.ack(R.SET_VRING_NUM, encodeVringState(0, 3)), 1n, 'size 3: not a power of two');
  t.equal(await fe.ack(R.SET_VRING_NUM, encodeVringState(0, 65536)), 1n, 'size above 32768');
  t.equal(await fe.ack(R.SET_VRING_NUM, encodeVringState(7, 16)), 1n, 'ring 7 does not exist');
  t.equal(await fe.ack(R.SET_VRING_BASE, encodeVringState(0, 0x10000)), 1n, 'base is a u16');
  t.equal(await fe.ack(R.SET_VRING_ENABLE, encodeVringState(0, 2)), 1n, 'enable 2');
  t.equal(
    await fe.ack(R.SET_VRING_ADDR, encodeVringAddr({ index: 0, flags: 0, desc: 0x1000n, used: 0x2000n, avail: 0x3000n, log: 0n })),
    1n,
    'user addresses outside the memory table',
  );
  t.equal(
    await fe.ack(R.SET_VRING_ADDR, encodeVringAddr({ index: 0, flags: 1, desc: UVA_BASE, used: UVA_BASE + 0x1000n, avail: UVA_BASE + 0x800n, log: 0n })),
    1n,
    'VHOST_VRING_F_LOG without LOG_ALL',
  );
  t.equal(await fe.ack(R.SET_FEATURES, encodeU64(1n << 60n)), 1n, 'feature not offered');
  t.equal(await fe.ack(R.SET_PROTOCOL_FEATURES, encodeU64(1n << 5n)), 1n, 'BACKEND_REQ not offered');
  t.equal(await fe.ack(R.SET_OWNER), 1n, 'second SET_OWNER');
  t.equal(await fe.ack(99), 1n, 'unknown request 99');
  t.equal(await fe.ack(R.SET_LOG_BASE, encodeU64(0n)), 1n, 'SET_LOG_BASE unsupported');
  t.equal(await fe.ack(R.SET_VRING_KICK, encodeVringFile(0, true)), 1n, 'polling (no kick fd) unsupported');
  t.equal(await fe.ack(R.SET_VRING_KICK, encodeVringFile(0, false)), 1n, 'kick without its fd');
  t.equal(await fe.ack(R.SET_VRING_KICK, encodeU64(1n << 20n), []), 1n, 'reserved bits in the u64');
  const memfd = native.memfdCreate('x');
  t.equal(await fe.ack(R.SET_VRING_KICK, encodeVringFile(0, false), [memfd]), 1n, 'a kick fd that cannot be polled (memfd)');
  t.equal(
    await fe.ack(R.SET_MEM_TABLE, encodeMemTable([{ guestPhysAddr: 0n, memorySize: 4096n, userspaceAddr: 0n, mmapOffset: 0n }]), []),
    1n,
    'SET_MEM_TABLE without its fd',
  );
  t.equal(
    await fe.ack(
      R.SET_MEM_TABLE,
      encodeMemTable([
        { guestPhysAddr: 0n, memorySize: 8192n, userspaceAddr: 0n, mmapOffset: 0n },
        { guestPhysAddr: 4096n, memorySize: 8192n, userspaceAddr: 0x100000n, mmapOffset: 0n },
      ]),
      [fe.memfd, fe.memfd],
    ),
    1n,
    'overlapping guest regions',
  );
  t.equal(
    await fe.ack(R.SET_MEM_TABLE, encodeMemTable([{ guestPhysAddr: 0n, memorySize: 0n, userspaceAddr: 0n, mmapOffset: 0n }]), [fe.memfd]),
    1n,
    'zero-size region',
  );
  t.equal(await fe.ack(R.SET_MEM_TABLE, new Uint8Array(8).fill(0), []), 1n, 'zero regions');
  native.close(memfd);
  t.ok(server.connected, 'still connected after all the refusals');
  t.equal(server.metrics()['session.bugs'], 0, 'every refusal was a named protocol error');

  // the same kind of error without need_reply: connection closed
  fe.send(R.SET_VRING_NUM, new Uint8Array(4));
  t.ok(await fe.closedByPeer(), 'closed');
  t.notOk(server.connected);
  done();
});

t.test('framing errors close the connection: bad version, oversized payload, too many fds', async (t) => {
  for (const [what, send] of [
    ['version 2', (fe: ScriptedFrontEnd) => fe.sendRaw(encodeMessage(R.GET_FEATURES, 2))],
    ['payload of 1 MiB announced', (fe: ScriptedFrontEnd) => {
      const b = encodeMessage(R.GET_FEATURES, 1);
      new DataView(b.buffer).setUint32(8, 1 << 20, true);
      fe.sendRaw(b);
    }],
    ['9 fds', (fe: ScriptedFrontEnd) => fe.sendRaw(encodeMessage(R.SET_OWNER, 1), Array<number>(9).fill(fe.memfd))],
  ] as const) {
    const { fe, server, done } = await rig();
    send(fe);
    t.ok(await fe.closedByPeer(), `${what}: closed`);
    t.equal(server.metrics().framingErrors, 1, `${what}: counted as a framing error`);
    done();
  }
});

t.test('a message split across writes and several messages in one write are reassembled', async (t) => {
  const { fe, done } = await rig();
  const a = encodeMessage(R.GET_FEATURES, 1);
  const b = encodeMessage(R.GET_QUEUE_NUM, 1);
  const both = new Uint8Array([...a, ...b]);
  fe.sendRaw(both.subarray(0, 5));
  await new Promise((r) => setImmediate(r));
  fe.sendRaw(both.subarray(5));
  const r1 = await fe.reply();
  const r2 = await fe.reply();
  t.equal(r1!.request, R.GET_FEATURES);
  t.equal(r2!.request, R.GET_QUEUE_NUM);
  t.equal(u64Of(r2!.payload), 1n);
  done();
});

t.test('a hostile ring breaks the device, signals the err eventfd, and the process goes on', async (t) => {
  const { fe, server, done } = await rig();
  await fe.handshake({ features: VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES | VIRTIO_RING_F_EVENT_IDX });
  const q = new MockSplitQueue(fe.mem, 0x1000, 16);
  const fds = await fe.startRing(0, q);
  await fe.enableRing(0);
  q.setAvailIdx(100); // 100 entries ahead of a 16-entry ring
  native.eventfdWrite(fds.kick, 1n);
  t.ok((await fe.waitEventfd(fds.err)) > 0n, 'err eventfd signalled');
  t.ok(server.session!.isBroken, 'device broken');
  t.match(String(server.session!.lastError?.message), /ahead/);
  t.ok(server.connected, 'connection stays');
  // the front-end stops and restarts the ring: the device works again
  await fe.call(R.GET_VRING_BASE, encodeVringState(0, 0));
  q.reset();
  const h = q.addChain([{ len: 8, writable: true }]);
  q.publish();
  const fds2 = await fe.startRing(0, q, 0);
  await fe.enableRing(0);
  t.ok((await fe.waitEventfd(fds2.call)) > 0n, 'restarted ring serves requests', { metrics: server.metrics(), err: String(server.session!.lastError) });
  t.same(q.used(), [{ id: h, len: 8 }]);
  for (const fd of [fds.kick, fds.call, fds.err, fds2.kick, fds2.call, fds2.err]) native.close(fd);
  done();
});

t.test('without PROTOCOL_FEATURES rings start enabled; reconnect gets a fresh session; no fd leaks', async (t) => {
  const before = openFds();
  const { fe, server, done } = await rig();
  await fe.handshake({ protocolFeatures: SUPPORTED_PROTOCOL_FEATURES, features: VIRTIO_F_VERSION_1 });
  const q = new MockSplitQueue(fe.mem, 0x1000, 16);
  const fds = await fe.startRing(0, q);
  t.ok(server.session!.isActive, 'active without SET_VRING_ENABLE');
  native.close(fe.fd);
  (fe as { fd: number }).fd = native.unixConnect(server.socketPath);
  await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; i < 100 && (server.metrics().connections ?? 0) < 2; i++) await new Promise((r) => setImmediate(r));
  t.equal(server.metrics().connections, 2, 'reconnected');
  t.equal(server.metrics().disconnects, 1);
  const f = await fe.call(R.GET_FEATURES);
  t.ok(f !== undefined && u64Of(f.payload) !== 0n, 'new session answers');
  for (const fd of [fds.kick, fds.call, fds.err]) native.close(fd);
  done();
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  t.equal(openFds(), before, 'every fd passed to the back-end was closed');
});

t.test('random messages never crash the back-end or leak fds', async (t) => {
  const before = openFds();
  let seed = 12345;
  const rnd = (k: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % k;
  };
  let closes = 0;
  let sent = 0;
  for (let round = 0; round < 20; round++) {
    const { fe, server, done } = await rig();
    await fe.handshake();
    for (let i = 0; i < 100 && server.connected; i++) {
      let req = rnd(45);
      if (req === R.SET_PROTOCOL_FEATURES) req = R.GET_PROTOCOL_FEATURES; // keep REPLY_ACK on: every message answers
      const size = [0, 4, 8, 12, 40, 72, 268, rnd(300)][rnd(8)]!;
      const payload = new Uint8Array(size);
      for (let j = 0; j < size; j++) payload[j] = rnd(4) === 0 ? rnd(256) : 0;
      if (size >= 8 && rnd(2) === 0) new DataView(payload.buffer).setUint32(0, rnd(3), true); // small index / count
      const nfds = rnd(4) === 0 ? rnd(3) : 0;
      const fds = Array.from({ length: nfds }, () => native.eventfd(0, 0o4000));
      fe.send(req, payload, fds, { needReply: true });
      for (const fd of fds) native.close(fd);
      sent++;
      const r = await fe.reply();
      if (r === undefined) break;
    }
    if (!server.connected) closes++;
    done();
  }
  t.comment(`${sent} random messages, ${closes} of 20 sessions closed by the back-end`);
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  t.equal(openFds(), before, 'no fd leaked');
});

// The vsock host side: VsockHost Duplex streams over the in-thread link and over a real MessageChannel,
// a 1 MiB echo through a fake guest driver loop, host write backpressure, and hybrid vsock unix sockets.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import t, { type Test } from 'tap';
import { portVsockBackend, type VsockBackend } from '../../src/virtio/vsock/backend.js';
import { VsockDevice } from '../../src/virtio/vsock/device.js';
import { FakeVsockGuest, type RxPacket } from '../support/virtio/fake-vsock-guest.js';
import { VSOCK_HOST_WINDOW } from '../../src/virtio/vsock/host-protocol.js';
import { VsockConnectError } from '../../src/virtio/vsock-host/errors.js';
import { InProcessVsockHost, VsockHost, createVsockChannel } from '../../src/virtio/vsock-host/host.js';
import type { VsockStream } from '../../src/virtio/vsock-host/stream.js';
import { parseConnectLine, serveHybridVsock } from '../../src/virtio/vsock-host/hybrid.js';
import { VSOCK_SHUTDOWN_BOTH, VSOCK_SHUTDOWN_SEND, VsockOp } from '../../src/virtio/vsock/packet.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
async function until(what: string, cond: () => boolean, max = 2000): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (cond()) return;
    await tick();
  }
  throw new Error(`timed out waiting for ${what}`);
}

function world(host?: VsockHost & { backend?: VsockBackend }, backend?: VsockBackend) {
  const h = host ?? new InProcessVsockHost({ connectTimeoutMs: 2000 });
  const device = new VsockDevice({ cid: 3 }, backend ?? (h as InProcessVsockHost).backend);
  const guest = new FakeVsockGuest(device);
  guest.activate();
  guest.postRx();
  const inbox: RxPacket[] = [];
  /** post buffers and collect what the device wrote */
  const pump = (): RxPacket[] => {
    guest.postRx();
    const r = guest.receive();
    inbox.push(...r);
    return r;
  };
  return { host: h, device, guest, inbox, pump };
}

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function collect(s: Duplex): { data: Buffer[]; ended: boolean; closed: boolean; error?: Error } {
  const st: { data: Buffer[]; ended: boolean; closed: boolean; error?: Error } = { data: [], ended: false, closed: false };
  s.on('data', (d: Buffer) => st.data.push(d));
  s.on('end', () => (st.ended = true));
  s.on('close', () => (st.closed = true));
  s.on('error', (e) => (st.error = e));
  return st;
}

t.test('guest -> host listener: data both ways, half-close, close', async (t) => {
  const w = world();
  let stream: VsockStream | undefined;
  const stop = w.host.listen(5000, (s) => (stream = s as VsockStream));
  w.guest.send({ op: VsockOp.REQUEST, srcPort: 40000, dstPort: 5000, bufAlloc: 65536 });
  await until('accept', () => stream !== undefined);
  await tick();
  const resp = w.pump();
  t.same(resp.map((p) => p.hdr.op), [VsockOp.RESPONSE]);
  t.equal(stream!.localPort, 5000);
  t.equal(stream!.remotePort, 40000);
  const st = collect(stream!);
  w.guest.send({ op: VsockOp.RW, srcPort: 40000, dstPort: 5000, bufAlloc: 65536 }, Buffer.from('hello'));
  await until('data', () => st.data.length > 0);
  t.equal(Buffer.concat(st.data).toString(), 'hello');
  stream!.write('world');
  await until('RW to guest', () => w.pump().length > 0 || w.inbox.some((p) => p.hdr.op === VsockOp.RW));
  const rw = w.inbox.find((p) => p.hdr.op === VsockOp.RW)!;
  t.equal(Buffer.from(rw.payload).toString(), 'world');
  t.match(rw.hdr, { srcPort: 5000, dstPort: 40000 });
  // guest half-closes: the stream ends; the host can still write, then ends too
  w.guest.send({ op: VsockOp.SHUTDOWN, srcPort: 40000, dstPort: 5000, flags: VSOCK_SHUTDOWN_SEND, bufAlloc: 65536 });
  await until('end', () => st.ended);
  stream!.end('bye');
  await until('SHUTDOWN to guest', () => (w.pump(), w.inbox.some((p) => p.hdr.op === VsockOp.SHUTDOWN)));
  const sh = w.inbox.filter((p) => p.hdr.op === VsockOp.SHUTDOWN);
  t.ok(sh.length >= 1, 'SHUTDOWN reached the guest');
  t.equal(Buffer.from(w.inbox.filter((p) => p.hdr.op === VsockOp.RW).at(-1)!.payload).toString(), 'bye', 'data before SHUTDOWN');
  await until('stream closed', () => st.closed);
  // guest closes fully: device RSTs
  w.guest.send({ op: VsockOp.SHUTDOWN, srcPort: 40000, dstPort: 5000, flags: VSOCK_SHUTDOWN_BOTH });
  await tick();
  await until('RST', () => (w.pump(), w.inbox.some((p) => p.hdr.op === VsockOp.RST)));
  t.equal(w.device.metrics().connections, 0);
  t.equal(st.error, undefined);
  stop();
  // no listener now: refused
  w.guest.send({ op: VsockOp.REQUEST, srcPort: 40001, dstPort: 5000 });
  await tick();
  await until('RST for unlistened port', () => w.pump().some((p) => p.hdr.op === VsockOp.RST && p.hdr.dstPort === 40001));
  w.host.close();
});

t.test('host -> guest connect: RESPONSE, RST, inactive, timeout', async (t) => {
  const w = world();
  const p = w.host.connect(1024);
  await tick();
  const req = w.pump().find((x) => x.hdr.op === VsockOp.REQUEST)!;
  t.equal(req.hdr.dstPort, 1024);
  w.guest.send({ op: VsockOp.RESPONSE, srcPort: 1024, dstPort: req.hdr.srcPort, bufAlloc: 65536 });
  const s = await p;
  t.equal(s.localPort, req.hdr.srcPort);
  t.equal(s.remotePort, 1024);

  const refused = w.host.connect(2048);
  await tick();
  const req2 = w.pump().find((x) => x.hdr.op === VsockOp.REQUEST)!;
  w.guest.send({ op: VsockOp.RST, srcPort: 2048, dstPort: req2.hdr.srcPort });
  const e = await refused.then(() => undefined, (err: unknown) => err);
  t.ok(e instanceof VsockConnectError, 'RST -> VsockConnectError');
  t.equal((e as VsockConnectError).reason, 'refused');

  const slow = w.host.connect(4096, { timeoutMs: 30 });
  await t.rejects(slow, { name: 'VsockConnectError', reason: 'timeout' });
  await tick();
  const after = w.pump();
  t.ok(after.some((x) => x.hdr.op === VsockOp.RST && x.hdr.dstPort === 4096), 'a timed-out connect is reset in the guest');

  const idle = new InProcessVsockHost();
  new VsockDevice({ cid: 3 }, idle.backend); // never activated
  await t.rejects(idle.connect(1), { name: 'VsockConnectError', reason: 'inactive' });
  s.destroy();
  w.host.close();
  idle.close();
});

/** A guest-side stream peer: tracks the host's credit, sends RW within it, returns credit for what it reads. */
class GuestPeer {
  txCnt = 0;
  fwdCnt = 0;
  lastFwdSent = 0;
  peerBufAlloc = 0;
  peerFwdCnt = 0;
  readonly got: Uint8Array[] = [];
  gotBytes = 0;
  constructor(
    readonly w: ReturnType<typeof world>,
    readonly port: number,
    readonly hostPort: number,
    readonly bufAlloc = 64 * 1024,
  ) {}
  credit(): number {
    return this.peerBufAlloc - (this.txCnt - this.peerFwdCnt);
  }
  hdr(op: number) {
    return { op, srcPort: this.port, dstPort: this.hostPort, bufAlloc: this.bufAlloc, fwdCnt: this.fwdCnt >>> 0 };
  }
  handle(ps: RxPacket[]): void {
    for (const p of ps) {
      if (p.hdr.dstPort !== this.port) continue;
      this.peerBufAlloc = p.hdr.bufAlloc;
      this.peerFwdCnt = p.hdr.fwdCnt;
      if (p.hdr.op === VsockOp.RW) {
        this.got.push(p.payload);
        this.gotBytes += p.payload.length;
        this.fwdCnt += p.payload.length; // read at once
      }
    }
    if (this.fwdCnt - this.lastFwdSent >= this.bufAlloc / 2) {
      this.lastFwdSent = this.fwdCnt;
      this.w.guest.send(this.hdr(VsockOp.CREDIT_UPDATE));
    }
  }
  /** send as much of data[from..] as the host's credit allows, in packets of <= 4 KiB */
  sendSome(data: Uint8Array, from: number): number {
    let o = from;
    while (o < data.length) {
      const n = Math.min(4096, data.length - o, this.credit());
      if (n <= 0) break;
      this.w.guest.send(this.hdr(VsockOp.RW), data.subarray(o, o + n));
      this.txCnt += n;
      o += n;
    }
    return o;
  }
}

async function echo(t: Test, w: ReturnType<typeof world>, total: number): Promise<void> {
  const stop = w.host.listen(7, (s) => s.pipe(s));
  const g = new GuestPeer(w, 50000, 7);
  w.guest.send(g.hdr(VsockOp.REQUEST));
  await until('RESPONSE', () => (g.handle(w.pump()), g.peerBufAlloc > 0));
  const src = bytes(total, 11);
  let sent = 0;
  let spins = 0;
  let maxOutstanding = 0;
  while (g.gotBytes < total) {
    sent = g.sendSome(src, sent);
    maxOutstanding = Math.max(maxOutstanding, g.txCnt - g.peerFwdCnt);
    await tick();
    g.handle(w.pump());
    if (++spins > 100_000) throw new Error('echo made no progress');
  }
  t.same(Buffer.compare(Buffer.concat(g.got), Buffer.from(src)), 0, `${total} bytes echoed intact`);
  t.ok(maxOutstanding <= 256 * 1024, `guest stayed within the host's credit (max ${maxOutstanding} in flight)`);
  t.comment(`echo ${total} B: ${spins} driver loop turns, device ${JSON.stringify({ rx: w.device.metrics().rxPackets, tx: w.device.metrics().txPackets })}`);
  stop();
}

t.test('1 MiB echo through a fake guest driver loop (in-thread link)', async (t) => {
  const w = world();
  await echo(t, w, 1 << 20);
  w.host.close();
});

t.test('echo over a real MessageChannel (the worker path, transferred buffers)', async (t) => {
  const { host, workerPort } = createVsockChannel({ connectTimeoutMs: 2000 });
  const w = world(host, portVsockBackend(workerPort));
  await echo(t, w, 256 * 1024);
  host.close();
  workerPort.close();
});

t.test('host writes wait for the guest: bounded buffering', async (t) => {
  const w = world();
  const p = w.host.connect(99);
  await tick();
  const req = w.pump().find((x) => x.hdr.op === VsockOp.REQUEST)!;
  w.guest.send({ op: VsockOp.RESPONSE, srcPort: 99, dstPort: req.hdr.srcPort, bufAlloc: 0 }); // no credit
  const s = await p;
  let refused = 0;
  let written = 0;
  const chunk = Buffer.alloc(64 * 1024, 1);
  for (let i = 0; i < 16; i++) {
    if (!s.write(chunk)) refused++;
    written += chunk.length;
  }
  for (let i = 0; i < 20; i++) await tick();
  t.ok(refused > 0, 'write() reports backpressure');
  const m = w.device.metrics();
  t.ok(m.bufferedToGuest! <= VSOCK_HOST_WINDOW + chunk.length, `device holds at most the window (${m.bufferedToGuest})`);
  t.ok(s.writableLength >= written - VSOCK_HOST_WINDOW - chunk.length, 'the rest waits in the stream');
  // the guest grants credit: everything flows
  w.guest.send({ op: VsockOp.CREDIT_UPDATE, srcPort: 99, dstPort: req.hdr.srcPort, bufAlloc: 1 << 30, fwdCnt: 0 });
  let got = 0;
  await until('all bytes at the guest', () => {
    got += w.pump().reduce((n, x) => n + (x.hdr.op === VsockOp.RW ? x.payload.length : 0), 0);
    return got === written;
  });
  t.equal(got, written);
  s.destroy();
  await tick();
  t.ok(w.pump().some((x) => x.hdr.op === VsockOp.RST), 'destroy() resets the connection');
  w.host.close();
});

t.test('one host write larger than the window is posted a window at a time', async (t) => {
  const w = world();
  const p = w.host.connect(98);
  await tick();
  const req = w.pump().find((x) => x.hdr.op === VsockOp.REQUEST)!;
  w.guest.send({ op: VsockOp.RESPONSE, srcPort: 98, dstPort: req.hdr.srcPort, bufAlloc: 64 * 1024 });
  const s = await p;
  const big = bytes(1 << 20, 5); // 4x the host window in a single write
  let done = false;
  s.write(big, () => (done = true));
  await tick();
  t.ok(w.device.metrics().bufferedToGuest! <= VSOCK_HOST_WINDOW, 'the device never holds more than the window');
  t.notOk(done, 'the write completes only when the guest has taken the bytes');
  const got: Uint8Array[] = [];
  let fwd = 0;
  await until('all bytes at the guest', () => {
    for (const x of w.pump()) {
      if (x.hdr.op !== VsockOp.RW) continue;
      got.push(x.payload);
      fwd += x.payload.length;
      w.guest.send({ op: VsockOp.CREDIT_UPDATE, srcPort: 98, dstPort: req.hdr.srcPort, bufAlloc: 64 * 1024, fwdCnt: fwd });
    }
    return fwd === big.length;
  });
  t.equal(Buffer.compare(Buffer.concat(got), Buffer.from(big)), 0, 'the connection survived and the bytes arrived in order');
  await until('write callback', () => done);
  s.destroy();
  w.host.close();
});

t.test('hybrid vsock: CONNECT <port> and guest connections to <uds>_<port>', async (t) => {
  t.equal(parseConnectLine('CONNECT 1024'), 1024);
  t.equal(parseConnectLine('connect 7\r'), 7);
  t.equal(parseConnectLine('CONNECT 4294967296'), undefined);
  t.equal(parseConnectLine('CONNECT -1'), undefined);
  t.equal(parseConnectLine('HELLO'), undefined);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vsock-'));
  const uds = path.join(dir, 'v.sock');
  const w = world();
  const srv = await serveHybridVsock(w.host, uds);
  let loopRunning = true;
  const guestPort = 1024;
  // the guest: accepts host connections on 1024 and echoes upper-cased; answers nothing else
  const peers = new Map<number, number>(); // host port -> fwd
  const loop = (async () => {
    while (loopRunning) {
      for (const p of w.pump()) {
        if (p.hdr.op === VsockOp.REQUEST && p.hdr.dstPort === guestPort) {
          peers.set(p.hdr.srcPort, 0);
          w.guest.send({ op: VsockOp.RESPONSE, srcPort: guestPort, dstPort: p.hdr.srcPort, bufAlloc: 65536 });
        } else if (p.hdr.op === VsockOp.RW && peers.has(p.hdr.srcPort)) {
          const fwd = peers.get(p.hdr.srcPort)! + p.payload.length;
          peers.set(p.hdr.srcPort, fwd);
          w.guest.send(
            { op: VsockOp.RW, srcPort: guestPort, dstPort: p.hdr.srcPort, bufAlloc: 65536, fwdCnt: fwd },
            Buffer.from(Buffer.from(p.payload).toString().toUpperCase()),
          );
        }
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  })();

  // host -> guest through the unix socket
  const c = net.connect(uds);
  let reply = '';
  c.on('data', (d) => (reply += d.toString()));
  c.write('CONNECT 1024\nping');
  await until('OK + echo', () => /^OK \d+\nPING$/.test(reply), 5000);
  const okPort = Number(/^OK (\d+)/.exec(reply)![1]);
  t.ok(peers.has(okPort), `OK names the host-side port (${okPort})`);
  c.write('more');
  await until('second echo', () => reply.endsWith('PINGMORE'), 5000);
  c.destroy();

  // a bad line closes the socket
  const bad = net.connect(uds);
  const badClosed = new Promise<void>((r) => bad.on('close', () => r()));
  bad.on('error', () => undefined);
  bad.write('GET / HTTP/1.1\n');
  await badClosed;
  t.pass('bad CONNECT line: socket closed');

  // guest -> host: a listener at <uds>_5555
  const received: Buffer[] = [];
  const side = net.createServer((s) => {
    s.on('data', (d) => received.push(d));
    s.write('hi guest');
  });
  await new Promise<void>((r) => side.listen(`${uds}_5555`, () => r()));
  w.guest.send({ op: VsockOp.REQUEST, srcPort: 3333, dstPort: 5555, bufAlloc: 65536 });
  await until('RESPONSE from hybrid', () => w.inbox.some((p) => p.hdr.op === VsockOp.RESPONSE && p.hdr.dstPort === 3333), 5000);
  w.guest.send({ op: VsockOp.RW, srcPort: 3333, dstPort: 5555, bufAlloc: 65536 }, Buffer.from('hello host'));
  await until('data at the unix listener', () => Buffer.concat(received).toString() === 'hello host', 5000);
  await until('data from the unix listener', () =>
    w.inbox.some((p) => p.hdr.op === VsockOp.RW && p.hdr.dstPort === 3333 && Buffer.from(p.payload).toString() === 'hi guest'), 5000);
  t.pass('guest <-> <uds>_5555 both ways');
  // nothing at <uds>_6666: RST
  w.guest.send({ op: VsockOp.REQUEST, srcPort: 3334, dstPort: 6666 });
  await until('RST for a missing unix listener', () => w.inbox.some((p) => p.hdr.op === VsockOp.RST && p.hdr.dstPort === 3334), 5000);
  t.pass('no unix listener: RST');

  loopRunning = false;
  await loop;
  w.host.close(); // destroys the vsock streams, which ends the spliced unix sockets
  await new Promise<void>((r) => side.close(() => r()));
  await srv.close();
  t.notOk(fs.existsSync(uds), 'socket file removed on close');
  fs.rmSync(dir, { recursive: true, force: true });
});

// Hostile-guest fuzzing of virtio-vsock: >= 1,000,000 random and adversarial chains on all three queues
// (the shared fuzzDevice driver), with random vsock headers on tx, random rx buffers, and a host side that
// accepts, connects, writes, consumes, half-closes and closes at random. Only DeviceBroken may escape;
// connections, queued bytes and pending replies stay within their bounds throughout.
import t, { type Test } from 'tap';
import { FakeVsockBackend } from '../../src/virtio/vsock/backend.js';
import { VsockDevice } from '../../src/virtio/vsock/device.js';
import { VSOCK_HOST_WINDOW } from '../../src/virtio/vsock/host-protocol.js';
import { encodeHeader, type VsockHeader } from '../../src/virtio/vsock/packet.js';
import { fuzzDevice, mulberry32, randInt, type ChainPart, type Rng } from '../support/virtio/mock-driver.js';

const CID = 3;
const MAX_CONN = 64;
const MAX_RST = 32;
const BUF_ALLOC = 64 * 1024;
const CHAINS = Number(process.env.VSOCK_FUZZ_CHAINS ?? 1_000_000);
/** share of the chains run with well-formed rings only (random headers): connections live long enough to matter */
const PROTOCOL_SHARE = 0.3;

const GUEST_PORTS = [1000, 1001, 1002, 1003, 0xffff_ffff];
const HOST_PORTS = [5000, 5001, 0x4000_0000, 0x4000_0001, 0];
const U32S = [0, 1, 4096, 65536, 0x7fff_ffff, 0xffff_ffff];

function pick<T>(rng: Rng, a: readonly T[]): T {
  return a[randInt(rng, a.length)]!;
}
function u32(rng: Rng): number {
  return rng() < 0.5 ? pick(rng, U32S) : (rng() * 4294967296) >>> 0;
}

const hdrBuf = new Uint8Array(44);
function txRequest(rng: Rng): ChainPart[] {
  const r = rng();
  const op = r < 0.35 ? 5 : r < 0.55 ? 1 : randInt(rng, 9); // RW and REQUEST most often
  const payloadLen = op === 5 && rng() < 0.9 ? randInt(rng, rng() < 0.9 ? 2048 : 70000) : randInt(rng, 64);
  const h: VsockHeader = {
    srcCid: rng() < 0.95 ? BigInt(CID) : rng() < 0.5 ? 2n : BigInt(u32(rng)) << BigInt(randInt(rng, 33)),
    dstCid: rng() < 0.95 ? 2n : BigInt(u32(rng)),
    srcPort: rng() < 0.9 ? pick(rng, GUEST_PORTS) : u32(rng),
    dstPort: rng() < 0.9 ? pick(rng, HOST_PORTS) : u32(rng),
    len: rng() < 0.9 ? payloadLen : u32(rng),
    type: rng() < 0.95 ? 1 : randInt(rng, 4),
    op,
    flags: rng() < 0.8 ? randInt(rng, 4) : u32(rng),
    bufAlloc: rng() < 0.7 ? BUF_ALLOC : u32(rng),
    fwdCnt: u32(rng),
  };
  const hb = encodeHeader(h, hdrBuf);
  const parts: ChainPart[] = [];
  if (rng() < 0.2) {
    const cut = randInt(rng, 45);
    parts.push({ data: hb.slice(0, cut) }, { data: hb.slice(cut) });
  } else {
    parts.push({ data: rng() < 0.05 ? hb.slice(0, randInt(rng, 44)) : hb.slice() });
  }
  if (payloadLen > 0) parts.push({ len: Math.min(payloadLen, 65536) }); // contents do not matter
  if (rng() < 0.03) parts.push({ len: 16, writable: true }); // a device-writable buffer in tx
  return parts;
}

function rxRequest(rng: Rng): ChainPart[] {
  const sizes = [0, 8, 43, 44, 45, 100, 4096, 4140, 65580];
  if (rng() < 0.2) return [{ len: 44, writable: true }, { len: pick(rng, sizes), writable: true }];
  return [{ len: pick(rng, sizes), writable: true }];
}

interface Phase {
  name: string;
  chains: number;
  seed: number;
  requestShare: number;
  expectBroken: boolean;
}

const phases: Phase[] = [
  { name: 'adversarial rings + random headers', chains: Math.ceil(CHAINS * (1 - PROTOCOL_SHARE)), seed: 0x5eed, requestShare: 0.7, expectBroken: true },
  { name: 'well-formed rings, random headers', chains: Math.ceil(CHAINS * PROTOCOL_SHARE), seed: 0xbeef, requestShare: 1, expectBroken: false },
];
let total = 0;
for (const ph of phases) {
  total += ph.chains;
  t.test(`fuzz (${ph.name}): ${ph.chains} chains`, async (t) => runPhase(t, ph));
}
t.test('fuzz total', async (t) => {
  t.ok(total >= CHAINS, `${total} chains in all`);
  t.comment(`vsock fuzz total: ${total} chains`);
});

async function runPhase(t: Test, ph: Phase): Promise<void> {
  // the host side: a fake backend that takes actions at random between notifications
  const backend = new FakeVsockBackend(0);
  const incoming: number[] = [];
  const connecting: number[] = [];
  const live = new Map<number, { unacked: number; received: number; consumed: number }>();
  let nextHostId = 1;
  backend.onSend = (m) => {
    switch (m.t) {
      case 'incoming':
        incoming.push(m.id);
        break;
      case 'connected':
        live.set(m.id, { unacked: 0, received: 0, consumed: 0 });
        break;
      case 'data': {
        const c = live.get(m.id);
        if (c !== undefined) c.received += m.data.length;
        break;
      }
      case 'acked': {
        const c = live.get(m.id);
        if (c !== undefined) c.unacked -= m.n;
        break;
      }
      case 'closed':
        live.delete(m.id);
        break;
      default:
        break;
    }
  };
  const hostRng = mulberry32(7); // the host's choices: a second deterministic stream
  const payload = new Uint8Array(8192).fill(0xa5);
  let maxConn = 0;
  let maxRst = 0;
  let maxToGuest = 0;
  let maxUnconsumed = 0;
  let calls = 0;
  let device: VsockDevice | undefined;
  const bounds = (d: VsockDevice): void => {
    const m = d.metrics();
    maxConn = Math.max(maxConn, m.connections!);
    maxRst = Math.max(maxRst, m.pendingRst!);
    maxToGuest = Math.max(maxToGuest, m.bufferedToGuest!);
    maxUnconsumed = Math.max(maxUnconsumed, m.bufferedUnconsumed!);
  };

  const res = fuzzDevice(
    () => {
      device = new VsockDevice({ cid: CID, maxConnections: MAX_CONN, maxPendingRst: MAX_RST, bufAlloc: BUF_ALLOC }, backend);
      return device;
    },
    {
      chains: ph.chains,
      seed: ph.seed,
      queueSize: 64,
      batch: 6,
      requestShare: ph.requestShare,
      request: (rng, q) => (q === 1 ? txRequest(rng) : q === 0 ? rxRequest(rng) : [{ len: 4, writable: true }]),
      onActivate: () => {
        incoming.length = 0;
        connecting.length = 0;
        live.clear();
      },
      afterProcess: (dev, _q) => {
        const d = dev as VsockDevice;
        const rng = hostRng;
        calls++;
        while (incoming.length > 0) {
          const id = incoming.shift()!;
          if (rng() < 0.85) {
            backend.inject({ t: 'accept', id });
            live.set(id, { unacked: 0, received: 0, consumed: 0 });
          } else backend.inject({ t: 'refuse', id });
        }
        const actions = randInt(rng, 3);
        for (let i = 0; i < actions; i++) {
          const r = rng();
          if (r < 0.05) {
            backend.inject({ t: 'connect', id: nextHostId, port: pick(rng, GUEST_PORTS) });
            connecting.push(nextHostId);
            nextHostId += 2;
            // VsockHost gives up on unanswered connects (its timeout): keep a few outstanding
            if (connecting.length > 4) backend.inject({ t: 'close', id: connecting.shift()!, abort: true });
            continue;
          }
          if (live.size === 0) break;
          const ids = [...live.keys()];
          const id = ids[randInt(rng, ids.length)]!;
          const c = live.get(id)!;
          if (r < 0.6) {
            const n = 1 + randInt(rng, payload.length);
            if (c.unacked + n <= VSOCK_HOST_WINDOW) {
              c.unacked += n;
              backend.inject({ t: 'data', id, data: payload.subarray(0, n) });
            }
          } else if (r < 0.85) {
            const n = c.received - c.consumed;
            if (n > 0) {
              const k = 1 + randInt(rng, n);
              c.consumed += k;
              backend.inject({ t: 'consumed', id, n: k });
            }
          } else if (r < 0.92) {
            backend.inject({ t: 'shutdown', id });
          } else {
            backend.inject({ t: 'close', id, abort: rng() < 0.5 });
          }
        }
        if (calls % 512 === 0) bounds(d);
      },
    },
  );
  if (device !== undefined) bounds(device);
  const m = device!.metrics();
  t.ok(res.chains >= ph.chains, `${res.chains} chains`);
  t.ok(maxConn <= MAX_CONN, `connections never above ${MAX_CONN} (max seen ${maxConn})`);
  t.ok(maxRst <= 4 * MAX_RST, `pending RST replies bounded (max seen ${maxRst})`);
  t.ok(maxToGuest <= MAX_CONN * 2 * VSOCK_HOST_WINDOW, `host bytes queued bounded (max seen ${maxToGuest})`);
  t.ok(maxUnconsumed <= MAX_CONN * BUF_ALLOC, `guest bytes held bounded by credit (max seen ${maxUnconsumed})`);
  if (ph.expectBroken) t.ok(res.broken > 0, 'malformed chains broke the device (and it was reset)');
  // rare breaks remain: the mock places buffers and indirect tables at random, so a later chain's bytes can
  // overwrite an indirect table still in the ring (a hostile guest may do that too)
  else t.ok(res.broken < ph.chains / 10_000, `well-formed requests almost never break the device (${res.broken})`);
  t.ok((backend.counts.get('incoming') ?? 0) > 100, 'guest connections reached the host');
  if (!ph.expectBroken) t.ok((backend.counts.get('data') ?? 0) > 50, 'guest data reached the host');
  const heapMiB = process.memoryUsage().heapUsed / 2 ** 20;
  t.ok(heapMiB < 512, `heap after the run: ${heapMiB.toFixed(0)} MiB`);
  t.comment(
    `vsock fuzz: ${res.chains} chains, ${res.notifications} notifications, ${res.used} used, ${res.broken} DeviceBroken ` +
      `(${JSON.stringify(res.brokenByName)}), ${res.stalls} stalls, ${res.ms.toFixed(0)} ms`,
  );
  t.comment(
    `host messages: ${JSON.stringify(Object.fromEntries(backend.counts))}; last device: rxPackets ${m.rxPackets}, ` +
      `rstSent ${m.rstSent}, creditExceeded ${m.creditExceeded}, protocolErrors ${m.protocolErrors}`,
  );
  t.comment(`max seen: connections ${maxConn}, pending RST ${maxRst}, queued to guest ${maxToGuest} B, unconsumed ${maxUnconsumed} B`);
}

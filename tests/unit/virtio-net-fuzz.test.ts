// Hostile-guest fuzz for virtio-net: 1,000,000 random and adversarial chains on rx and tx (plus well-formed
// frames and rx buffers, and frames arriving from the host side). Only DeviceBroken may escape the device;
// fuzzDevice turns anything else (an access outside guest RAM included) into FuzzEscape.
import t from 'tap';
import { fuzzDevice, randInt, type ChainPart, type Rng } from '../support/virtio/mock-driver.js';
import { PairBackend } from '../../src/virtio/net/backend.js';
import { NetDevice } from '../../src/virtio/net/device.js';
import { RX_QUEUE, TX_QUEUE, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_HDR_LEN } from '../../src/virtio/net/features.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../../src/virtio/ids.js';

const CHAINS = Number(process.env.NET_FUZZ_CHAINS ?? 1_000_000);
const ZEROS = new Uint8Array(4096);

/** A tx chain: a header (usually zero, sometimes random) and a frame, cut into 1-4 descriptors. */
function txRequest(rng: Rng): ChainPart[] {
  const r = rng();
  const len = r < 0.05 ? randInt(rng, VIRTIO_NET_HDR_LEN + 1) : VIRTIO_NET_HDR_LEN + (r < 0.9 ? randInt(rng, 256) : randInt(rng, 4096 - 12));
  const bytes = ZEROS.slice(0, len);
  if (rng() < 0.3) for (let i = 0; i < Math.min(len, VIRTIO_NET_HDR_LEN); i++) bytes[i] = randInt(rng, 256);
  const n = 1 + randInt(rng, 4);
  const parts: ChainPart[] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const end = i + 1 === n ? len : at + randInt(rng, len - at + 1);
    parts.push({ data: bytes.subarray(at, end) });
    at = end;
  }
  if (rng() < 0.02) parts.push({ len: 16, writable: true });
  return parts;
}

/** An rx chain: 1-3 writable buffers (rarely shorter than the header in all). */
function rxRequest(rng: Rng): ChainPart[] {
  const n = 1 + randInt(rng, 3);
  const parts: ChainPart[] = [];
  for (let i = 0; i < n; i++) parts.push({ len: rng() < 0.02 ? randInt(rng, 12) : 12 + randInt(rng, 2048), writable: true });
  return parts;
}

interface Pass {
  name: string;
  chains: number;
  /** features the fuzz driver acks (undefined: everything offered) */
  features?: bigint;
  requestShare: number;
}

const RX_ONLY = VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_NET_F_MAC;
const PASSES: Pass[] = [
  { name: 'all offered features (GSO, mergeable rx)', chains: CHAINS, requestShare: 0.5 },
  // Fewer resets and no 64 KiB floor, so frames do reach the guest's buffers:
  { name: 'mergeable rx without GSO', chains: CHAINS / 5, features: RX_ONLY | VIRTIO_NET_F_MRG_RXBUF, requestShare: 0.9 },
  { name: 'one rx chain per frame', chains: CHAINS / 5, features: RX_ONLY, requestShare: 0.9 },
];

for (const pass of PASSES) {
  t.test(`virtio-net survives ${pass.chains} hostile chains: ${pass.name}`, (t) => {
    const [dev, host] = PairBackend.pair();
    dev.record = false;
    host.record = false;
    let rngState = 12345;
    const coin = (): number => {
      rngState = (Math.imul(rngState, 1103515245) + 12345) >>> 0;
      return rngState / 4294967296;
    };
    let device: NetDevice | undefined;
    let injected = 0;
    const res = fuzzDevice(
      () => {
        device = new NetDevice({ mac: '52:54:00:00:00:01' }, dev);
        return device;
      },
      {
        chains: pass.chains,
        seed: 7,
        ...(pass.features === undefined ? {} : { features: pass.features }),
        request: (rng, q) => (q === TX_QUEUE ? txRequest(rng) : rxRequest(rng)),
        requestShare: pass.requestShare,
        afterProcess: (d, q) => {
          while (host.take() !== undefined); // the host network swallows what the guest sent
          if (q === RX_QUEUE || coin() < 0.3) {
            const k = 1 + Math.floor(coin() * 3);
            for (let i = 0; i < k; i++) {
              const len = coin() < 0.05 ? Math.floor(coin() * 12) : 12 + Math.floor(coin() * 3000);
              if (dev.inject(ZEROS.subarray(0, Math.min(len, ZEROS.length)))) injected++;
            }
            dev.flushReadable(); // the tap became readable
            d.processQueue(RX_QUEUE); // reports a DeviceBroken the readiness callback found
          }
        },
      },
    );
    dev.close(); // no readiness callbacks after the test
    const m = device!.metrics();
    t.comment(`chains ${res.chains}, notifications ${res.notifications}, used ${res.used}, interrupts ${res.interrupts}`);
    t.comment(`broken ${res.broken} ${JSON.stringify(res.brokenByName)}, stalls ${res.stalls}, ${res.ms.toFixed(0)} ms`);
    t.comment(`device counters (all activations): ${JSON.stringify(m)}; frames injected ${injected}`);
    t.ok(res.chains >= pass.chains, 'every chain was written');
    t.ok(res.broken > 0, 'adversarial chains broke the device (and it was reset)');
    t.ok((m.txFrames ?? 0) > 0 && (m.txDropped ?? 0) > 0, 'tx frames were sent and malformed ones dropped');
    t.ok((m.rxFrames ?? 0) > 0, 'rx frames reached guest buffers');
    t.end();
  });
}

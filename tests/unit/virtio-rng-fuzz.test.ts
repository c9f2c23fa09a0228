// Hostile-guest fuzz for virtio-rng: >= 1,000,000 random and adversarial chains through the shared mock
// driver's fuzzDevice. Only DeviceBroken may escape; every buffer the device fills is a view of guest RAM
// no longer than the per-request cap.

import t from 'tap';
import type { EntropySource } from '../../src/virtio/rng/backend.js';
import { RngDevice } from '../../src/virtio/rng/device.js';
import { RNG_MAX_BYTES_PER_REQUEST } from '../../src/virtio/rng/request.js';
import { fuzzDevice, randInt, type ChainPart, type Rng } from '../support/virtio/mock-driver.js';

/** Cheap source that records what it was asked to fill. */
class CountingSource implements EntropySource {
  fills = 0;
  bytes = 0;
  largest = 0;
  foreign = 0;
  buffers = new Set<ArrayBufferLike>();
  fill(buf: Uint8Array): void {
    this.fills++;
    this.bytes += buf.length;
    if (buf.length > this.largest) this.largest = buf.length;
    if (!this.buffers.has(buf.buffer)) this.foreign++;
    buf.fill(0xa5);
  }
}

function rngRequest(rng: Rng): ChainPart[] {
  const n = 1 + randInt(rng, 4);
  const parts: ChainPart[] = [];
  if (rng() < 0.1) parts.push({ len: randInt(rng, 64) }); // a readable part: refused
  for (let i = 0; i < n; i++) {
    const r = rng();
    parts.push({ len: r < 0.1 ? 0 : r < 0.8 ? 1 + randInt(rng, 64) : randInt(rng, 80_000), writable: true });
  }
  return parts;
}

t.test('1,000,000 hostile chains against virtio-rng', async (t) => {
  const src = new CountingSource();
  let dev: RngDevice | undefined;
  const res = fuzzDevice(() => (dev = new RngDevice(src)), {
    chains: 1_000_000,
    seed: 0x5eed,
    request: (rng) => rngRequest(rng),
    requestShare: 0.5,
    batch: 8,
    onActivate: (d) => {
      // the fuzz memory's buffers: every fill must be a view into one of them
      const ctx = (d as unknown as { active?: { mem: { regions: Array<{ buffer: ArrayBufferLike }> } } }).active;
      for (const r of ctx?.mem.regions ?? []) src.buffers.add(r.buffer);
    },
  });
  t.comment(`rng: ${res.chains} chains, ${res.notifications} notifications, ${res.used} used, ${res.broken} DeviceBroken (reset + reactivate), ${res.stalls} stalls, ${res.interrupts} interrupts, ${Math.round(res.ms)} ms`);
  t.comment(`rng broken by name: ${JSON.stringify(res.brokenByName)}`);
  t.comment(`rng chain kinds: ${JSON.stringify(res.kinds)}`);
  t.comment(`rng fills: ${src.fills}, bytes ${src.bytes}, largest ${src.largest}; device metrics (all activations) ${JSON.stringify(dev!.metrics())}`);
  t.ok(res.chains >= 1_000_000, 'a million chains');
  t.ok(res.used > 200_000, 'many chains were completed (the rest were lost to resets after structural attacks)');
  t.ok(res.broken > 0, 'structural attacks broke the device (and it was reset)');
  t.ok(src.fills > 100_000, 'the device filled buffers');
  t.ok(src.largest <= RNG_MAX_BYTES_PER_REQUEST, 'no fill beyond the per-request cap');
  t.equal(src.foreign, 0, 'every filled buffer is a view of guest memory');
});

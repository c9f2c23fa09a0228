// Whole-device fuzzing: a VirtioDevice driven by random and adversarial chains until a million have gone by.

import { SplitQueue } from '../../../src/virtio/queue.js';
import { DeviceBroken, type ActivateContext, type VirtioDevice } from '../../../src/virtio/device.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../../../src/virtio/ids.js';
import { mulberry32, randInt, type Rng } from '../prng.js';
import { align, MockSplitQueue, type ChainPart } from './mock-driver.js';
import { FUZZ_KINDS, fuzzMemory, writeFuzzChain, type FuzzChainOptions } from './fuzz-chains.js';

export interface FuzzDeviceOptions {
  /** chains to write in all (default 1,000,000) */
  chains?: number;
  seed?: number;
  /** queue size for every queue (default 64, capped at each queue's maximum) */
  queueSize?: number;
  /** features the "driver" acks (default: all offered + VERSION_1); EVENT_IDX/INDIRECT are dropped at random */
  features?: bigint;
  /** most chains per notification (default 4) */
  batch?: number;
  /** well-formed requests for queue `queue` (parts laid out at random); mixed with adversarial chains */
  request?: (rng: Rng, queue: number) => ChainPart[] | undefined;
  /** share of chains from `request` (default 0.5 when given) */
  requestShare?: number;
  /**
   * share of notifications whose batch holds only well-formed chains (default 0.5), so that long runs of
   * valid requests reach the device between the attacks that break it
   */
  cleanBatchShare?: number;
  /** called after each activation (e.g. to open host-side connections) */
  onActivate?: (device: VirtioDevice) => void;
  /** called after each processQueue (e.g. to pump a fake backend); may throw DeviceBroken like processQueue */
  afterProcess?: (device: VirtioDevice, queue: number) => void;
}

export interface FuzzDeviceResult {
  chains: number;
  notifications: number;
  /** DeviceBroken caught (each followed by reset + reactivate) */
  broken: number;
  brokenByName: Record<string, number>;
  /** used elements the device returned */
  used: number;
  interrupts: number;
  /** times every queue was full and the device took nothing (then reset) */
  stalls: number;
  kinds: Record<string, number>;
  ms: number;
}

/** Something other than DeviceBroken escaped the device: a bug. */
export class FuzzEscape extends Error {
  constructor(
    readonly error: unknown,
    readonly seed: number,
    readonly chain: number,
  ) {
    super(
      `fuzz seed ${seed}, chain ${chain}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}` +
        ' escaped the device (only DeviceBroken may)',
      { cause: error },
    );
    this.name = 'FuzzEscape';
  }
}

/**
 * Activate a device on mock queues filled with random and adversarial chains, notify it repeatedly, and check
 * that only DeviceBroken escapes (then reset + reactivate, as the transport does). Any other exception —
 * including an access outside guest RAM, which GuestMemory turns into InvalidGuestAddress/PartialBuffer —
 * is rethrown as FuzzEscape with the seed.
 */
export function fuzzDevice(makeDevice: () => VirtioDevice, opts: FuzzDeviceOptions = {}): FuzzDeviceResult {
  const total = opts.chains ?? 1_000_000;
  const seed = opts.seed ?? 1;
  const batch = opts.batch ?? 4;
  const rng = mulberry32(seed);
  const { mem, small, big } = fuzzMemory();
  const device = makeDevice();
  const nq = device.queueMaxSizes.length;
  const sizes = device.queueMaxSizes.map((m) => Math.min(m, opts.queueSize ?? 64));
  // Rings packed at the start of the small region; the rest is the shared data area.
  const mocks: MockSplitQueue[] = [];
  let at = 0;
  for (const s of sizes) at = align(at + 16 * s + 6 + 2 * s + 4 + 6 + 8 * s, 4096);
  const dataStart = at;
  at = 0;
  for (const s of sizes) {
    mocks.push(new MockSplitQueue(mem, at, s, { dataStart, dataEnd: small.base + small.size }));
    at = align(at + 16 * s + 6 + 2 * s + 4 + 6 + 8 * s, 4096);
  }
  const offered = opts.features ?? device.availableFeatures | VIRTIO_F_VERSION_1;
  const res: FuzzDeviceResult = {
    chains: 0,
    notifications: 0,
    broken: 0,
    brokenByName: {},
    used: 0,
    interrupts: 0,
    stalls: 0,
    kinds: {},
    ms: 0,
  };
  const kindCounts = new Array<number>(FUZZ_KINDS.length).fill(0);
  let queues: SplitQueue[] = [];
  let chainOpts: FuzzChainOptions[] = [];
  let cleanOpts: FuzzChainOptions[] = [];
  const cleanShare = opts.cleanBatchShare ?? 0.5;
  const lastUsed = new Array<number>(nq).fill(0);
  const interrupt = {
    signalUsed: (): void => {
      res.interrupts++;
    },
    signalConfig: (): void => {},
  };

  const escape = (e: unknown): never => {
    throw new FuzzEscape(e, seed, res.chains);
  };
  const activate = (): void => {
    let acked = offered;
    if (rng() < 0.3) acked &= ~VIRTIO_RING_F_EVENT_IDX;
    if (rng() < 0.2) acked &= ~VIRTIO_RING_F_INDIRECT_DESC;
    const eventIdx = (acked & VIRTIO_RING_F_EVENT_IDX) !== 0n;
    const indir = (acked & VIRTIO_RING_F_INDIRECT_DESC) !== 0n;
    queues = mocks.map((m, i) => {
      m.reset();
      if (rng() < 0.2) m.setNoInterrupt(true);
      if (rng() < 0.2) m.setUsedEvent(randInt(rng, 0x10000));
      lastUsed[i] = 0;
      return SplitQueue.create(mem, m.layout(), { maxSize: device.queueMaxSizes[i]!, eventIdx, indirect: indir });
    });
    // Offer the adversarial chains whatever was negotiated: a hostile driver ignores negotiation.
    const make = (i: number, clean: boolean): FuzzChainOptions => {
      const o: FuzzChainOptions = { indirect: clean ? indir : indir || rng() < 0.5, big, validOnly: clean };
      if (opts.request !== undefined) {
        const req = opts.request;
        o.request = (r: Rng) => req(r, i);
        if (opts.requestShare !== undefined) o.requestShare = opts.requestShare;
      }
      return o;
    };
    chainOpts = mocks.map((_, i) => make(i, false));
    cleanOpts = mocks.map((_, i) => make(i, true));
    const ctx: ActivateContext = { mem, queues, interrupt, ackedFeatures: acked };
    try {
      device.activate(ctx);
      opts.onActivate?.(device);
    } catch (e) {
      escape(e);
    }
  };
  const broken = (e: unknown): void => {
    if (!(e instanceof DeviceBroken)) escape(e);
    const err = e as DeviceBroken;
    res.broken++;
    res.brokenByName[err.name] = (res.brokenByName[err.name] ?? 0) + 1;
    try {
      device.reset();
    } catch (e2) {
      escape(e2);
    }
    activate();
  };

  const t0 = performance.now();
  activate();
  let idle = 0;
  while (res.chains < total) {
    const qi = randInt(rng, nq);
    const m = mocks[qi]!;
    const pending = (m.availIdx - queues[qi]!.nextAvail) & 0xffff;
    const room = m.size - pending;
    if (room > 0) {
      const k = 1 + randInt(rng, Math.min(batch, room, total - res.chains));
      const co = rng() < cleanShare ? cleanOpts[qi]! : chainOpts[qi]!;
      for (let j = 0; j < k; j++) kindCounts[writeFuzzChain(rng, m, co)]!++;
      res.chains += k;
      m.publish();
      idle = 0;
    } else if (++idle > 8 * nq) {
      // every queue full and nothing consumed: a driver would wait forever; reset instead
      res.stalls++;
      idle = 0;
      try {
        device.reset();
      } catch (e) {
        escape(e);
      }
      activate();
      continue;
    }
    res.notifications++;
    try {
      device.processQueue(qi);
      opts.afterProcess?.(device, qi);
    } catch (e) {
      broken(e);
      continue;
    }
    const u = m.usedIdx();
    res.used += (u - lastUsed[qi]!) & 0xffff;
    lastUsed[qi] = u;
  }
  res.ms = performance.now() - t0;
  FUZZ_KINDS.forEach((k, i) => {
    res.kinds[k] = kindCounts[i]!;
  });
  return res;
}

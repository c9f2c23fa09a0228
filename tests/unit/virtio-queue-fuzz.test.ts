// Hostile-guest fuzz of the split virtqueue: >= 1,000,000 random and adversarial chains against SplitQueue,
// DescriptorChain.descriptors() and ChainReader/ChainWriter. Only ChainError, AvailIndexJump and ChainTooShort
// may be thrown; every descriptor handed out lies in guest RAM; well-formed chains always pass. The hot-path
// forms are checked against them on every chain: SplitQueue.walk() must see exactly what descriptors() sees
// (same descriptors or the same error), and CheckedChainWriter must write what ChainWriter would.
import t from 'tap';
import type { ActivateContext, VirtioDevice } from '../../src/virtio/device.js';
import {
  AvailIndexJump,
  ChainError,
  ChainReader,
  ChainTooShort,
  ChainWriter,
  CheckedChain,
  CheckedChainWriter,
  SplitQueue,
} from '../../src/virtio/queue.js';
import {
  FUZZ_KINDS,
  FuzzEscape,
  MockSplitQueue,
  VALID_FUZZ_KINDS,
  fuzzDevice,
  fuzzMemory,
  mulberry32,
  randInt,
  writeFuzzChain,
  type FuzzChainOptions,
} from '../support/virtio/mock-driver.js';
import { VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../../src/virtio/ids.js';

const CHAINS = 1_000_000;
const SEED = 0x5eed_0001;
const SIZES = [1, 2, 4, 8, 16, 64, 128, 256];

t.test(`${CHAINS} random and adversarial chains through SplitQueue + descriptors() + ChainReader/Writer`, async (t) => {
  const { mem, big } = fuzzMemory();
  const rng = mulberry32(SEED);
  let m!: MockSplitQueue;
  let q!: SplitQueue;
  let queueIndirect = true;
  let opts!: FuzzChainOptions;
  let size = 16;
  let eventIdx = false;
  const newQueue = (): void => {
    m.reset();
    q = SplitQueue.create(mem, m.layout(), { maxSize: 256, eventIdx, indirect: queueIndirect });
  };
  const epoch = (): void => {
    size = SIZES[randInt(rng, SIZES.length)]!;
    eventIdx = rng() < 0.5;
    queueIndirect = rng() < 0.7;
    // the generator sometimes offers indirect tables the driver never negotiated
    opts = { indirect: queueIndirect || rng() < 0.5, big };
    m = new MockSplitQueue(mem, 0, size);
    newQueue();
  };

  const errors: Record<string, number> = {};
  const escaped: string[] = [];
  const kindCount = new Array<number>(FUZZ_KINDS.length).fill(0);
  const kindOk = new Array<number>(FUZZ_KINDS.length).fill(0);
  let validFailed = 0;
  let outside = 0;
  let readAfterWrite = 0;
  let descs = 0;
  let tooShort = 0;
  let emptyPop = 0;
  let bytesRead = 0;
  let bytesWritten = 0;
  let notifications = 0;
  let walkMismatch = 0;
  let writerMismatch = 0;
  let writerChecked = 0;
  const chk = new CheckedChain(2); // grows on long chains
  const cw = new CheckedChainWriter();

  const t0 = performance.now();
  epoch();
  for (let i = 0; i < CHAINS; i++) {
    if (i % 20_000 === 0 && i > 0) epoch();
    const kind = writeFuzzChain(rng, m, opts);
    kindCount[kind]!++;
    m.publish();
    const mustPass = VALID_FUZZ_KINDS.has(kind) && !(FUZZ_KINDS[kind] === 'validIndirect' && !queueIndirect);
    try {
      if (rng() < 0.05) q.disableNotification();
      const c = q.pop();
      if (c === undefined) {
        emptyPop++;
        continue;
      }
      let walkErr: unknown;
      try {
        q.walk(c.head, chk);
      } catch (e) {
        walkErr = e;
      }
      let d;
      try {
        d = c.descriptors();
      } catch (e) {
        if (walkErr === undefined || (walkErr as Error).constructor !== (e as Error).constructor) walkMismatch++;
        throw e;
      }
      if (walkErr !== undefined) walkMismatch++;
      else if (!sameChain(d, chk)) walkMismatch++;
      let sawW = false;
      for (const x of d) {
        descs++;
        if (!mem.isValidRange(x.addr, x.len)) outside++;
        if (x.writable) sawW = true;
        else if (sawW) readAfterWrite++;
      }
      // Read: a scalar, a zero-copy view, then one byte more than is left (must be ChainTooShort).
      const r = new ChainReader(mem, d);
      const rem = r.remaining;
      if (rem >= 4) r.readU32();
      if (r.remaining > 0) r.views(Math.min(r.remaining, 1 + randInt(rng, 64)));
      if (r.remaining > 0) r.readBytes(Math.min(r.remaining, randInt(rng, 16)));
      bytesRead += rem - r.remaining;
      try {
        r.readBytes(r.remaining + 1);
        escaped.push(`chain ${i}: reading past the end did not throw`);
      } catch (e) {
        if (!(e instanceof ChainTooShort)) throw e;
        tooShort++;
      }
      // Write: a u16 (maybe across a boundary), a view, and sometimes too much.
      const w = new ChainWriter(mem, d);
      if (w.remaining >= 2) w.writeU16(0xa5a5);
      if (w.remaining > 0) w.views(Math.min(w.remaining, 1 + randInt(rng, 64)))[0]!.fill(0x5a);
      if (rng() < 0.1) {
        try {
          w.write(new Uint8Array(w.remaining + 1));
        } catch (e) {
          if (!(e instanceof ChainTooShort)) throw e;
          tooShort++;
        }
      }
      bytesWritten += w.written;
      // CheckedChainWriter against ChainWriter: the same pattern in the same random pieces leaves the same bytes
      // (buffers may overlap each other: compare with what ChainWriter leaves, not with the pattern); one byte
      // too many is ChainTooShort
      cw.reset(mem, chk);
      const total = cw.remaining;
      if (total <= 1 << 16 && rng() < 0.25) {
        writerChecked++;
        const pattern = new Uint8Array(total);
        for (let k = 0; k < total; k++) pattern[k] = (i + k * 7) & 0xff;
        const pieces: number[] = [];
        for (let left = total; left > 0; ) {
          const n = Math.min(left, randInt(rng, 300));
          pieces.push(n);
          left -= n;
        }
        const readBack = (): Uint8Array => {
          const out = new Uint8Array(total);
          let at = 0;
          for (const v of new ChainWriter(mem, d).views(total)) {
            out.set(v, at);
            at += v.length;
          }
          return out;
        };
        const zero = (): void => {
          for (const v of new ChainWriter(mem, d).views(total)) v.fill(0);
        };
        const writeAll = (sink: { write(b: Uint8Array): void }): void => {
          let pos = 0;
          for (const n of pieces) {
            sink.write(pattern.subarray(pos, pos + n));
            pos += n;
          }
        };
        zero();
        writeAll(new ChainWriter(mem, d));
        const want = readBack();
        zero();
        writeAll(cw);
        const got = readBack();
        for (let k = 0; k < total; k++) if (got[k] !== want[k]) writerMismatch++;
        if (cw.written !== total || cw.remaining !== 0) writerMismatch++;
        try {
          cw.write(new Uint8Array(1));
          writerMismatch++;
        } catch (e) {
          if (!(e instanceof ChainTooShort)) throw e;
        }
      }
      q.addUsed(c.head, w.written);
      q.enableNotification();
      if (q.needsNotification()) notifications++;
      kindOk[kind]!++;
    } catch (e) {
      if (e instanceof ChainError || e instanceof AvailIndexJump || e instanceof ChainTooShort) {
        errors[e.name] = (errors[e.name] ?? 0) + 1;
        if (mustPass) validFailed++;
        if (e instanceof AvailIndexJump) newQueue(); // the transport resets the device
      } else {
        escaped.push(`chain ${i} (${FUZZ_KINDS[kind]}): ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        if (escaped.length > 20) break;
      }
    }
  }
  const ms = performance.now() - t0;

  t.same(escaped, [], 'nothing but ChainError / AvailIndexJump / ChainTooShort escaped');
  t.equal(outside, 0, 'every descriptor handed out lies in guest RAM');
  t.equal(readAfterWrite, 0, 'no readable descriptor after a writable one was handed out');
  t.equal(validFailed, 0, 'every well-formed chain passed');
  t.equal(emptyPop, 0, 'every published chain was popped');
  t.equal(walkMismatch, 0, 'walk() saw every chain as descriptors() did (same descriptors, same error)');
  t.equal(writerMismatch, 0, `CheckedChainWriter wrote what ChainWriter would (${writerChecked} chains)`);
  for (const name of [
    'DescriptorIndexOutOfRange',
    'ChainTooLong',
    'NestedIndirect',
    'BadIndirectTable',
    'DescriptorOutOfMemory',
    'ChainLengthOverflow',
    'ReadAfterWrite',
    'AvailIndexJump',
  ]) {
    t.ok((errors[name] ?? 0) > 0, `${name} was provoked (${errors[name] ?? 0}x)`);
  }
  for (const k of ['valid', 'validIndirect', 'zeroLength', 'ringOverlap']) {
    const i = FUZZ_KINDS.indexOf(k as (typeof FUZZ_KINDS)[number]);
    t.ok(kindOk[i]! > 0, `${k} chains went through (${kindOk[i]} of ${kindCount[i]})`);
  }
  const total = Object.values(errors).reduce((s, x) => s + x, 0);
  t.comment(
    `queue fuzz: ${CHAINS} chains (seed ${SEED.toString(16)}) in ${(ms / 1000).toFixed(2)} s ` +
      `(${((ms * 1000) / CHAINS).toFixed(2)} us/chain): ${CHAINS - total} accepted, ${total} rejected, ` +
      `${descs} descriptors checked, ${bytesRead} bytes read, ${bytesWritten} written, ${tooShort} ChainTooShort, ` +
      `${notifications} interrupts`,
  );
  t.comment(`rejections: ${JSON.stringify(errors)}`);
  t.comment(`kinds: ${JSON.stringify(Object.fromEntries(FUZZ_KINDS.map((k, i) => [k, kindCount[i]])))}`);
});

/** The same descriptors, in order, as a CheckedChain holds. */
function sameChain(d: ReturnType<NonNullable<ReturnType<SplitQueue['pop']>>['descriptors']>, c: CheckedChain): boolean {
  if (d.length !== c.count) return false;
  let readable = 0;
  let writable = 0;
  for (let i = 0; i < d.length; i++) {
    const x = d[i]!;
    if (x.addr !== c.addr[i] || x.len !== c.len[i] || x.writable !== i >= c.firstWritable) return false;
    if (x.writable) writable += x.len;
    else readable += x.len;
  }
  return readable === c.readableBytes && writable === c.writableBytes;
}

/** A minimal device: echoes readable bytes into the writable part, the way real devices loop. */
class EchoDevice implements VirtioDevice {
  readonly deviceType = 0x7f;
  readonly queueMaxSizes = [64, 16];
  readonly availableFeatures = VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC;
  handled = 0;
  private ctx: ActivateContext | undefined;
  constructor(private readonly bug?: 'throws' | 'outsideRam') {}
  configSpace(): Uint8Array {
    return new Uint8Array(0);
  }
  writeConfig(): void {}
  activate(ctx: ActivateContext): void {
    this.ctx = ctx;
  }
  processQueue(index: number): void {
    const ctx = this.ctx!;
    const q = ctx.queues[index]!;
    q.disableNotification();
    do {
      for (let c = q.pop(); c !== undefined; c = q.pop()) {
        const d = c.descriptors();
        const r = new ChainReader(ctx.mem, d);
        const w = new ChainWriter(ctx.mem, d);
        const n = Math.min(r.remaining, w.remaining, 256);
        if (n > 0) w.write(r.readBytes(n));
        if (this.bug === 'throws' && n === 3) throw new TypeError('device bug');
        if (this.bug === 'outsideRam' && n === 3) ctx.mem.readU8(2 ** 40);
        q.addUsed(c.head, w.written);
        this.handled++;
      }
    } while (q.enableNotification());
    if (q.needsNotification()) ctx.interrupt.signalUsed(index);
  }
  reset(): void {
    this.ctx = undefined;
  }
  metrics(): Record<string, number> {
    return { handled: this.handled };
  }
}

t.test('fuzzDevice drives a device with hostile queues and only lets DeviceBroken through', async (t) => {
  const dev = new EchoDevice();
  const res = fuzzDevice(() => dev, {
    chains: 200_000,
    seed: 7,
    request: (rng) => [{ data: new Uint8Array(1 + randInt(rng, 32)) }, { len: 64, writable: true }],
  });
  t.equal(res.chains, 200_000);
  t.ok(res.broken > 0, `device was broken and reset ${res.broken} times`);
  t.ok(res.used > 50_000, `device returned ${res.used} chains`);
  t.ok(res.interrupts > 0, `${res.interrupts} interrupts`);
  t.ok(res.brokenByName['ChainTooLong']! > 0 && res.brokenByName['AvailIndexJump']! > 0, 'broken by queue errors');
  t.ok(res.kinds['request']! > 50_000, 'the device template was used');
  t.comment(`fuzzDevice(echo): ${JSON.stringify({ ...res, kinds: undefined, ms: Math.round(res.ms) })}`);

  const escape1 = t.throws(() => fuzzDevice(() => new EchoDevice('throws'), { chains: 20_000, seed: 3 })) as Error;
  t.ok(escape1 instanceof FuzzEscape && /TypeError: device bug/.test(escape1.message), 'a TypeError escapes as FuzzEscape');
  const escape2 = t.throws(() => fuzzDevice(() => new EchoDevice('outsideRam'), { chains: 20_000, seed: 3 })) as Error;
  t.ok(escape2 instanceof FuzzEscape && /InvalidGuestAddress/.test(escape2.message), 'an access outside RAM is caught');
});

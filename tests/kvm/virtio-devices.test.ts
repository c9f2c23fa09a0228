// Each virtio device driven through the real path by a driver in guest ring 3 (tests/payloads/virtio-drv-*.c
// on virtio-drv-entry.S): MMIO register accesses from ring 3 -> vCPU worker (transport) / ioeventfd on
// QueueNotify -> the device's worker -> used ring + irqfd -> IOAPIC -> the guest's ring-0 interrupt counter
// -> the ring-3 driver acks InterruptStatus and reads the used ring. The payloads report what they saw on the
// test value port; the host side checks the other end (the image file, the vsock stream, the tap).

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import t, { type Test } from 'tap';
import { W_NOTIFY_EXITS } from '../../src/virtio/mmio/state.js';
import { VcpuPool } from '../../src/vmm/vcpu-pool.js';
import { createVm, type Vm } from '../../src/vmm/vm.js';
import { buildPayload, type PayloadName } from '../payloads/build.js';
import { TapNetns } from '../helpers/tap-netns.js';
import { describeRun, EXIT_OK, kvmSkipReason, type PayloadRun } from './payload-harness.js';
import type { DeviceSpec } from '../../src/contract/device-spec.js';

const SAFETY_MS = 120_000; // only so a hung guest cannot hang CI; never a speed assertion
const skip = kvmSkipReason() ?? false;
const pool = new VcpuPool();
t.teardown(() => pool.close());

/** Exception report of virtio-drv-entry.S: 0xE00000vv, error code, RIP, CS, CR2. */
function exceptionOf(values: readonly number[]): string | undefined {
  const i = values.findIndex((v) => ((v & 0xffffff00) >>> 0) === 0xe0000000);
  if (i < 0) return undefined;
  const [vec, err, rip, cs, cr2] = values.slice(i);
  return `vector ${String(vec! & 0xff)} error 0x${(err ?? 0).toString(16)} rip 0x${(rip ?? 0).toString(16)} cs 0x${(cs ?? 0).toString(16)} cr2 0x${(cr2 ?? 0).toString(16)}`;
}

interface DriverRun extends PayloadRun {
  metrics: Awaited<ReturnType<Vm['deviceMetrics']>>;
  notifyExits: number;
}

/** virtio-drv.h HOST_ACK_ADDR: after its done marker the guest waits for the host to write this word. */
const HOST_ACK_ADDR = 0x01fff000;

/**
 * Boot `payload` with `devices`; `during(vm)` runs after createVm (before the vCPUs start) and may set up
 * host-side peers. When the guest reports its done marker (0x600dxxxx) it waits for the host's handshake:
 * the device counters are read then, while the device workers still run, and the handshake lets it exit.
 */
async function runDriver(payload: PayloadName, devices: DeviceSpec[], during?: (vm: Vm) => void): Promise<DriverRun> {
  const kernel = await buildPayload(payload);
  const t0 = process.hrtime.bigint();
  const vm = await createVm({ kernel, devices, memoryMiB: 128, pool, cmdline: 'payload' });
  during?.(vm);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void vm.stop();
  }, SAFETY_MS);
  // the guest's last report is its "done" marker: metrics are read while the device worker still runs
  let metrics: DriverRun['metrics'];
  let notifyExits = -1;
  const got = new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      const last = vm.testValues[vm.testValues.length - 1];
      if (last !== undefined && (last >>> 0) >= 0x600d0000 && (last >>> 0) <= 0x600dffff) {
        clearInterval(poll);
        notifyExits = vm.devices[0]?.state.get(W_NOTIFY_EXITS) ?? -1;
        void vm.deviceMetrics(0).then((m) => {
          metrics = m;
          vm.memory.writeU32(HOST_ACK_ADDR, 1);
          resolve();
        });
      }
    }, 5);
    void vm.wait().then(() => {
      clearInterval(poll);
      resolve();
    });
  });
  vm.start();
  await got;
  const exit = await vm.wait();
  clearTimeout(timer);
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { exit, vm, wallMs, timedOut, metrics, notifyExits };
}

function checkRan(t: Test, run: DriverRun, doneMarker: number): void {
  const exc = exceptionOf(run.vm.testValues);
  t.equal(exc, undefined, `no CPU exception in the guest (${exc ?? 'none'})`);
  t.same(run.exit, { kind: 'debug-exit', status: EXIT_OK }, `the ring-3 driver ran to its end: ${describeRun(run)}`);
  t.equal(run.vm.testValues[run.vm.testValues.length - 1], doneMarker, 'done marker');
  t.equal(run.notifyExits, 0, 'every QueueNotify went through an ioeventfd (none exited to the register model)');
  const m = run.metrics;
  t.ok(m, 'device metrics read while the device ran');
  if (m) {
    t.equal(m.transport.broken, 0, 'the device never went broken');
    t.equal(m.transport.bugs, 0, 'no device bug');
    t.comment(`metrics: device ${JSON.stringify(m.device)} transport ${JSON.stringify(m.transport)}`);
  }
  t.comment(`whole VM ${run.wallMs.toFixed(0)} ms (informational)`);
}

// ---------------------------------------------------------------------------------------------- virtio-blk
const BLK_DONE = 0x600db10c;
const PATTERN_SECTOR = 24;
const PATTERN_BYTES = 4096;
const HOST_SECTOR = 8;
const DISK_SECTORS = 2048; // 1 MiB image

function blkPattern(): Buffer {
  const b = Buffer.alloc(PATTERN_BYTES);
  for (let i = 0; i < PATTERN_BYTES; i++) b[i] = (i * 7 + 0x5a + (i >> 9)) & 0xff;
  return b;
}

for (const readOnly of [false, true]) {
  t.test(`virtio-blk (${readOnly ? 'read-only' : 'read-write'}): a ring-3 driver writes, reads back, flushes`, { skip }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'kata-ts-blk-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const image = join(dir, 'disk.img');
    const initial = Buffer.alloc(DISK_SECTORS * 512, 0x11);
    initial.write('HOSTDATA', HOST_SECTOR * 512, 'latin1');
    writeFileSync(image, initial);

    const run = await runDriver('virtio-drv-blk', [{ kind: 'blk', path: image, readOnly, id: 'kata-ts-disk' }]);
    checkRan(t, run, BLK_DONE);
    const [id, feats, capLo, capHi, idStatus, idWord, hostStatus, hostWord, writeStatus, writeUsed, readStatus, mismatches,
      flushStatus, pastEndStatus, interrupts, isr] = run.vm.testValues;
    t.equal(id, 2, 'DeviceID 2 (block)');
    t.equal(((feats ?? 0) >>> 9) & 1, 1, 'VIRTIO_BLK_F_FLUSH offered and accepted');
    t.equal(((feats ?? 0) >>> 5) & 1, readOnly ? 1 : 0, `VIRTIO_BLK_F_RO ${readOnly ? 'set' : 'clear'}`);
    t.equal(capLo, DISK_SECTORS, 'capacity (config space) in 512-byte sectors');
    t.equal(capHi, 0);
    t.equal(idStatus, 0, 'GET_ID: VIRTIO_BLK_S_OK');
    t.equal(idWord, Buffer.from('kata').readUInt32LE(0), 'GET_ID: the serial came back');
    t.equal(hostStatus, 0, 'read of a host-written sector: OK');
    t.equal(hostWord, Buffer.from('HOST').readUInt32LE(0), 'the guest read what the host wrote into the image');
    if (readOnly) {
      t.equal(writeStatus, 1, 'write to a read-only disk: VIRTIO_BLK_S_IOERR');
      const differ = [...blkPattern()].filter((b) => b !== 0x11).length;
      t.equal(mismatches, differ, 'read back: the old contents (nothing written)');
    } else {
      t.equal(writeStatus, 0, 'write: VIRTIO_BLK_S_OK');
      t.equal(mismatches, 0, 'read back: the pattern, byte for byte');
    }
    t.equal(writeUsed, 1, 'write: used len = the status byte only');
    t.equal(readStatus, 0, 'read back: OK');
    t.equal(flushStatus, 0, 'FLUSH: OK');
    t.equal(pastEndStatus, 1, 'read past the last sector: IOERR');
    t.equal(interrupts, 6, 'one interrupt per request (6 requests, one at a time)');
    t.equal(isr, 1, 'InterruptStatus: used-buffer notifications only');

    const disk = readFileSync(image);
    const at = disk.subarray(PATTERN_SECTOR * 512, PATTERN_SECTOR * 512 + PATTERN_BYTES);
    if (readOnly) t.ok(at.equals(Buffer.alloc(PATTERN_BYTES, 0x11)), 'the image is unchanged');
    else t.ok(at.equals(blkPattern()), 'the host image holds the pattern at the sector the guest wrote');
    t.ok(disk.subarray(0, PATTERN_SECTOR * 512).equals(initial.subarray(0, PATTERN_SECTOR * 512)), 'sectors before it untouched');
    t.ok(disk.subarray((PATTERN_SECTOR + 8) * 512).equals(initial.subarray((PATTERN_SECTOR + 8) * 512)), 'sectors after it untouched');
    if (run.metrics) {
      t.equal(run.metrics.device.writes, readOnly ? 0 : 1, 'device counted the write');
      t.ok((run.metrics.device.reads ?? 0) >= 2, 'device counted the reads');
    }
  });
}

// ---------------------------------------------------------------------------------------------- virtio-rng
const RNG_DONE = 0x600d0a9c;

t.test('virtio-rng: a ring-3 driver gets random bytes, different each time', { skip }, async (t) => {
  const run = await runDriver('virtio-drv-rng', [{ kind: 'rng' }]);
  checkRan(t, run, RNG_DONE);
  const [id, feats, numMax, lenA, nzA, firstA, lenB, nzB, firstB, differ, lenC, nzC, interrupts, isr] = run.vm.testValues;
  t.equal(id, 4, 'DeviceID 4 (entropy source)');
  t.equal(feats, 0, 'no device feature asked for, FEATURES_OK accepted');
  t.ok((numMax ?? 0) >= 8, `QueueNumMax ${String(numMax)}`);
  t.equal(lenA, 64, 'request A: the whole 64-byte buffer filled');
  t.equal(lenB, 64, 'request B: 64 bytes');
  t.equal(lenC, 64, 'request C: a two-buffer chain (24 + 40) filled completely');
  // 64 random bytes hold ~0.25 zero bytes on average; 8 or more zeros has probability < 1e-12
  t.ok((nzA ?? 0) > 56 && (nzB ?? 0) > 56 && (nzC ?? 0) > 56, `bytes are not zero (non-zero: ${String(nzA)}, ${String(nzB)}, ${String(nzC)} of 64)`);
  t.ok((differ ?? 0) > 56, `two reads differ (${String(differ)} of 64 bytes)`);
  t.not(firstA, firstB, 'first words differ');
  t.equal(interrupts, 3, 'one interrupt per request');
  t.equal(isr, 1, 'InterruptStatus: used-buffer notifications only');
  if (run.metrics) {
    t.equal(run.metrics.device.requests, 3, 'the device counted 3 requests');
    t.equal(run.metrics.device.bytes, 192, 'and 192 bytes');
  }
});

// -------------------------------------------------------------------------------------------- virtio-vsock
const VSOCK_DONE = 0x600d50c4;
const VSOCK_HOST_PORT = 5000;
const VSOCK_GUEST_PORT = 1234;
const VSOCK_TOTAL = 1 << 20;
const VSOCK_GUEST_BUF_ALLOC = 32768; // virtio-drv-vsock.c GUEST_BUF_ALLOC
const VSOCK_OP = { RESPONSE: 2, RST: 3 };

function fnv1a(b: Uint8Array): number {
  let h = 2166136261;
  for (const x of b) h = Math.imul(h ^ x, 16777619) >>> 0;
  return h >>> 0;
}

t.test('virtio-vsock: a ring-3 driver connects to a host listener and echoes 1 MiB with credit flow control', { skip }, async (t) => {
  const payload = randomBytes(VSOCK_TOTAL);
  const echoed: Buffer[] = [];
  let peer: { remotePort: number; localPort: number } | undefined;
  let hostDone!: (r: { ended: boolean; error?: string }) => void;
  const hostSide = new Promise<{ ended: boolean; error?: string }>((r) => (hostDone = r));
  const run = await runDriver('virtio-drv-vsock', [{ kind: 'vsock', cid: 42 }], (vm) => {
    t.ok(vm.vsock, 'the VM exposes the host side of its vsock device');
    vm.vsock!.listen(VSOCK_HOST_PORT, (s: Duplex) => {
      const vs = s as Duplex & { remotePort?: number; localPort?: number };
      peer = { remotePort: vs.remotePort ?? -1, localPort: vs.localPort ?? -1 };
      s.on('data', (d: Buffer) => echoed.push(d));
      s.on('end', () => hostDone({ ended: true }));
      s.on('error', (e: Error) => hostDone({ ended: false, error: e.message }));
      // 64 KiB writes: one write larger than twice the host window (VSOCK_HOST_WINDOW, 256 KiB) makes the device
      // reset the connection with 'limit' (VsockStream._write does not split chunks)
      for (let o = 0; o < VSOCK_TOTAL; o += 65536) s.write(payload.subarray(o, o + 65536));
      s.end(); // half close: the guest still echoes
    });
  });
  checkRan(t, run, VSOCK_DONE);
  const [id, , cidLo, cidHi, replyOp, received, rxPackets, creditSent, hash, sent, txPackets, creditWaits, creditReceived,
    lastOp, unexpected, interrupts, error] = run.vm.testValues;
  t.equal(id, 19, 'DeviceID 19 (socket)');
  t.equal(cidLo, 42, 'guest CID from the config space');
  t.equal(cidHi, 0);
  t.equal(error, 0, 'the guest driver met no error (1 features, 2 queue, 3 timeout, 4 refused, 5 overflow, 6 tx full, 7 bad used, 8 early close)');
  t.equal(replyOp, VSOCK_OP.RESPONSE, 'REQUEST answered with RESPONSE');
  t.equal(peer?.remotePort, VSOCK_GUEST_PORT, 'the host saw the guest port');
  t.equal(received, VSOCK_TOTAL, 'the guest received 1 MiB');
  t.equal(hash, fnv1a(payload), 'the guest received exactly the bytes the host sent');
  t.equal(sent, VSOCK_TOTAL, 'the guest sent 1 MiB back');
  const host = await Promise.race([hostSide, new Promise<{ ended: boolean; error?: string }>((r) => setTimeout(() => r({ ended: false, error: 'no end' }), 5000))]);
  t.same(host, { ended: true }, 'the host stream ended in order (the guest SHUTDOWN)');
  const back = Buffer.concat(echoed);
  t.equal(back.length, VSOCK_TOTAL, 'the host read 1 MiB back');
  t.ok(back.equals(payload), 'the echo is byte-for-byte what the host sent');
  // each update can grant at most buf_alloc (32 KiB) more: the host could not have sent 1 MiB with fewer
  t.ok((creditSent ?? 0) >= (VSOCK_TOTAL - VSOCK_GUEST_BUF_ALLOC) / VSOCK_GUEST_BUF_ALLOC,
    `the guest sent CREDIT_UPDATEs as it consumed (${String(creditSent)}), enough to move 1 MiB through a 32 KiB buffer`);
  // 1 MiB back through the host's 256 KiB buf_alloc: only possible with the host's CREDIT_UPDATEs (it sends
  // nothing else after its half close); whether the guest ever had to wait for one depends on timing
  t.ok((creditReceived ?? 0) > 0, `the guest got and used the host's CREDIT_UPDATEs (${String(creditReceived)}; ` +
    `it ran out of credit and waited ${String(creditWaits)} times)`);
  t.equal(lastOp, VSOCK_OP.RST, 'the device answered the full SHUTDOWN with RST');
  t.equal(unexpected, 0, 'no packet for another connection or with a bad length');
  t.comment(`rx RW packets ${String(rxPackets)}, tx RW packets ${String(txPackets)}, interrupts ${String(interrupts)}, ` +
    `${(((2 * VSOCK_TOTAL) / run.wallMs) * 1000 / 1e6).toFixed(1)} MB/s both ways over the whole VM run (informational)`);
  if (run.metrics) {
    t.equal(run.metrics.device.creditExceeded ?? 0, 0, 'the guest never overran the host credit');
    t.equal(run.metrics.device.protocolErrors ?? 0, 0, 'no protocol error');
  }
});

// ---------------------------------------------------------------------------------------------- virtio-net
const NET_DONE = 0x600d0e70;
const GUEST_MAC = '52:54:00:6b:74:02';

function macFrom(lo: number, hi: number): string {
  const b = Buffer.alloc(6);
  b.writeUInt32LE(lo >>> 0, 0);
  b.writeUInt16LE(hi & 0xffff, 4);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const tapOrSkip = skip ? undefined : TapNetns.create();
const netSkip = skip || (tapOrSkip && !(tapOrSkip instanceof TapNetns) ? tapOrSkip.skip : false);
if (tapOrSkip instanceof TapNetns) t.teardown(() => tapOrSkip.close()); // if the test below never runs
if (netSkip) t.comment(`virtio-net KVM test skipped: ${netSkip}`);

t.test('virtio-net: a ring-3 driver ARPs across a tap into a network namespace and gets the reply', { skip: netSkip }, async (t) => {
  const tap = tapOrSkip as TapNetns;
  t.teardown(() => tap.close());
  const run = await runDriver('virtio-drv-net', [{ kind: 'net', tap: tap.tap, mac: GUEST_MAC }], () => tap.moveIntoNetns());
  const stats = tap.stats();
  checkRan(t, run, NET_DONE);
  const [id, feats, macLo, macHi, status, requests, txDone, gotReply, peerLo, peerHi, targetOk, frames, others, interrupts, error] =
    run.vm.testValues;
  t.equal(id, 1, 'DeviceID 1 (network card)');
  t.equal((feats ?? 0) & (1 << 5), 1 << 5, 'VIRTIO_NET_F_MAC negotiated');
  t.equal(macFrom(macLo ?? 0, macHi ?? 0), GUEST_MAC, 'the MAC from the config space is the one the VMM was given');
  t.equal((status ?? 0) & 1, 1, 'config status: VIRTIO_NET_S_LINK_UP');
  t.equal(error, 0, 'the guest driver met no error');
  t.ok((requests ?? 0) >= 1, `ARP requests sent: ${String(requests)}`);
  t.equal(txDone, requests, 'every tx chain came back on the used ring');
  t.equal(gotReply, 1, 'the ARP reply from 10.213.0.1 arrived on rx');
  t.equal(macFrom(peerLo ?? 0, peerHi ?? 0), tap.mac(), 'its sender MAC is the tap inside the namespace');
  t.equal(targetOk, 1, 'addressed to the guest (MAC and 10.213.0.2)');
  t.ok(stats.rxPackets >= 1, `the tap (namespace side) received the guest's frames (rx ${String(stats.rxPackets)}, tx ${String(stats.txPackets)})`);
  t.comment(`frames received ${String(frames)} (${String(others)} not the reply), interrupts ${String(interrupts)}`);
  if (run.metrics) {
    t.ok((run.metrics.device.txFrames ?? 0) >= 1, 'device counted tx frames');
    t.ok((run.metrics.device.rxFrames ?? 0) >= 1, 'device counted rx frames');
  }
});

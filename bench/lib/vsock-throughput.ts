// Device-model throughput for the devices benchmark: host → guest bytes through VsockDevice, driven by the
// fake guest driver (MockSplitQueue) and a synchronous fake backend. No threads, no MessagePort: this measures
// the device (packetizing, credit accounting, ring handling, copies into guest memory), not the transport.

import { FakeVsockBackend } from '../../src/virtio/vsock/backend.js';
import { VsockDevice } from '../../src/virtio/vsock/device.js';
import { VSOCK_HOST_WINDOW } from '../../src/virtio/vsock/host-protocol.js';
import { VsockOp } from '../../src/virtio/vsock/packet.js';
import { FakeVsockGuest } from '../../tests/support/virtio/fake-vsock-guest.js';

/** offsets in struct virtio_vsock_hdr (include/uapi/linux/virtio_vsock.h) */
const HDR_LEN = 24;
const HDR_OP = 30;


export interface VsockThroughputOptions {
  /** guest rx buffer size in bytes (default 4096, like Linux 6.1; 65580 = one full packet per buffer) */
  rxBufSize?: number;
  /** bytes per host write (default 64 KiB) */
  chunk?: number;
}

export interface VsockThroughputResult {
  /** payload megabytes (10^6 bytes) per second */
  mbps: number;
  bytes: number;
  ms: number;
  /** rx packets the guest received (data and control) */
  packets: number;
  /** rx notifications the guest made (one per batch of posted buffers) */
  rxKicks: number;
}

/** Push `bytes` host → guest on one connection and measure payload MB/s. */
export function benchVsockThroughput(bytes: number, opts: VsockThroughputOptions = {}): VsockThroughputResult {
  const chunkSize = opts.chunk ?? 64 * 1024;
  const rxBufSize = opts.rxBufSize ?? 4096;
  const backend = new FakeVsockBackend(64);
  let unacked = 0;
  const device = new VsockDevice({ cid: 3 }, backend);
  const guest = new FakeVsockGuest(device, { rxBufSize, eventIdx: true });
  guest.activate();
  const guestBufAlloc = 256 * 1024;
  const guestPort = 49152;
  const hostPort = 5000;

  // the guest connects; accept synchronously so the benchmark stays synchronous
  backend.onSend = (m) => {
    if (m.t === 'incoming') backend.inject({ t: 'accept', id: m.id });
    else if (m.t === 'acked') unacked -= m.n;
  };
  guest.send({ op: VsockOp.REQUEST, srcPort: guestPort, dstPort: hostPort, bufAlloc: guestBufAlloc });
  guest.postRx();
  const resp = guest.receive();
  const id = backend.of('incoming')[0]?.id;
  if (id === undefined || resp[0]?.hdr.op !== VsockOp.RESPONSE) throw new Error('vsock bench: handshake failed');

  const chunk = new Uint8Array(chunkSize).fill(0x5a);
  let sent = 0;
  let received = 0;
  let fwdCnt = 0;
  let lastFwdSent = 0;
  let packets = resp.length;
  let rxKicks = 0;

  // A lean rx driver, as Linux's: every rx buffer is posted once and recycled by head index (the descriptor
  // table never changes), and only the 44-byte header of each used buffer is read. The guest application's
  // own copy of the payload is not the device's cost and is left out; the device's copy into guest memory,
  // its ring handling and credit accounting are what is timed.
  const rxq = guest.rx;
  const bufOf = new Map<number, number>();
  guest.postRx();
  for (const [head, addr] of rxq.chainBuffers()) bufOf.set(head, addr);
  const mem = guest.mem;
  const t0 = performance.now();
  while (received < bytes) {
    // host writes while its window allows (VsockHost does the same with acks)
    while (sent < bytes && unacked < VSOCK_HOST_WINDOW) {
      const n = Math.min(chunkSize, bytes - sent);
      const data = n === chunkSize ? chunk : chunk.subarray(0, n);
      unacked += n;
      sent += n;
      backend.inject({ t: 'data', id, data });
    }
    const before = received;
    let reposted = 0;
    for (const u of rxq.used()) {
      packets++;
      const addr = bufOf.get(u.id);
      if (addr === undefined) throw new Error(`vsock bench: unknown rx head ${String(u.id)}`);
      if (mem.readU16(addr + HDR_OP) === VsockOp.RW) {
        const len = mem.readU32(addr + HDR_LEN);
        received += len;
        fwdCnt += len; // the guest application reads at once
      }
      rxq.pushHead(u.id);
      reposted++;
    }
    if (reposted > 0) {
      rxKicks++;
      rxq.publish();
      device.processQueue(0);
    }
    // Linux sends a credit update once less than one packet of space is left unreported (rough equivalent)
    const stuck = received === before;
    if (stuck && fwdCnt === lastFwdSent && reposted === 0) {
      device.processQueue(0);
      if (rxq.usedIdx() === rxq.availIdx - bufOf.size) throw new Error(`vsock bench: no progress at ${String(received)} bytes`);
    }
    if (fwdCnt - lastFwdSent >= guestBufAlloc / 4 || received >= bytes || stuck) {
      lastFwdSent = fwdCnt;
      guest.send({ op: VsockOp.CREDIT_UPDATE, srcPort: guestPort, dstPort: hostPort, bufAlloc: guestBufAlloc, fwdCnt: fwdCnt >>> 0 });
    }
  }
  const ms = performance.now() - t0;
  return { mbps: bytes / 1e6 / (ms / 1000), bytes, ms, packets, rxKicks };
}

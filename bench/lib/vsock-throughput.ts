// Device-model throughput for the devices benchmark: host → guest bytes through VsockDevice, driven by the
// fake guest driver (MockSplitQueue) and a synchronous fake backend. No threads, no MessagePort: this measures
// the device (packetizing, credit accounting, ring handling, copies into guest memory), not the transport.
//
// A VsockStreamBench sets the device, the fake guest, the connection and the posted rx buffers up ONCE; each
// transfer() then pushes bytes over the established connection. (Building a fresh guest per measured round,
// as this file once did, timed the allocation and zeroing of its 10-70 MiB of test memory, not the device.)

import { FakeVsockBackend } from '../../src/virtio/vsock/backend.js';
import { VsockDevice } from '../../src/virtio/vsock/device.js';
import { VSOCK_HOST_WINDOW } from '../../src/virtio/vsock/host-protocol.js';
import { VSOCK_HDR_SIZE, VSOCK_MAX_PKT_PAYLOAD, VsockOp, encodeHeader, type VsockHeader } from '../../src/virtio/vsock/packet.js';
import { FakeVsockGuest } from '../../tests/support/virtio/fake-vsock-guest.js';

/** offsets in struct virtio_vsock_hdr (include/uapi/linux/virtio_vsock.h) */
const HDR_LEN = 24;
const HDR_OP = 30;

export interface VsockThroughputOptions {
  /**
   * guest rx buffer size in bytes, header included (default 4096: Linux 6.1 posts one ~4 KiB descriptor per
   * rx buffer, header and payload together; VSOCK_HDR_SIZE + 65536 = one full 64 KiB packet per buffer)
   */
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
  /** rx notifications the guest made (one per batch of reposted buffers) */
  rxKicks: number;
  /** rx used-buffer interrupts the device raised */
  rxInterrupts: number;
}

/** One established host → guest connection through a VsockDevice, reused by every transfer(). */
export class VsockStreamBench {
  readonly rxBufSize: number;
  readonly chunkSize: number;
  readonly device: VsockDevice;
  readonly guest: FakeVsockGuest;
  private readonly backend: FakeVsockBackend;
  private readonly id: number;
  private readonly chunk: Uint8Array;
  /** guest address of each rx head's buffer (the descriptor table never changes: buffers are recycled) */
  private readonly bufOf: Float64Array;
  private readonly posted: number;
  private unacked = 0;
  private fwdCnt = 0;
  private lastFwdSent = 0;
  private usedSeen = 0;
  private readonly guestBufAlloc = 256 * 1024;
  private readonly guestPort = 49152;
  private readonly hostPort = 5000;
  /** the guest's CREDIT_UPDATE, re-encoded with the new fwd_cnt each time */
  private readonly credit: VsockHeader;
  private readonly creditBytes = new Uint8Array(VSOCK_HDR_SIZE);
  private readonly creditHead: number;
  private readonly creditAddr: number;

  constructor(opts: VsockThroughputOptions = {}) {
    this.chunkSize = opts.chunk ?? 64 * 1024;
    this.rxBufSize = opts.rxBufSize ?? 4096;
    this.backend = new FakeVsockBackend(64);
    this.device = new VsockDevice({ cid: 3 }, this.backend);
    this.guest = new FakeVsockGuest(this.device, { rxBufSize: this.rxBufSize, eventIdx: true });
    const { backend, guest } = this;
    guest.activate();
    // the guest connects; accept synchronously so the benchmark stays synchronous
    backend.onSend = (m) => {
      if (m.t === 'incoming') backend.inject({ t: 'accept', id: m.id });
      else if (m.t === 'acked') this.unacked -= m.n;
    };
    guest.send({ op: VsockOp.REQUEST, srcPort: this.guestPort, dstPort: this.hostPort, bufAlloc: this.guestBufAlloc });
    guest.postRx();
    const resp = guest.receive();
    const id = backend.of('incoming')[0]?.id;
    if (id === undefined || resp[0]?.hdr.op !== VsockOp.RESPONSE) throw new Error('vsock bench: handshake failed');
    this.id = id;
    this.credit = guest.header({ op: VsockOp.CREDIT_UPDATE, srcPort: this.guestPort, dstPort: this.hostPort, bufAlloc: this.guestBufAlloc });
    // the tx chain every credit update goes through: laid out once here (with a first, fwd_cnt 0 update)
    this.creditHead = guest.tx.addChain([{ data: encodeHeader(this.credit, this.creditBytes) }]);
    this.creditAddr = guest.tx.chainBuffers().find(([h]) => h === this.creditHead)?.[1] ?? -1;
    if (this.creditAddr < 0) throw new Error('vsock bench: no tx buffer for credit updates');
    guest.tx.publish();
    this.device.processQueue(1);
    this.chunk = new Uint8Array(this.chunkSize).fill(0x5a);
    // A lean rx driver, as Linux's: every rx buffer is posted once and recycled by head index, and only the
    // 44-byte header of each used buffer is read. The guest application's own copy of the payload is not the
    // device's cost and is left out.
    guest.postRx();
    this.bufOf = new Float64Array(guest.rx.size).fill(-1);
    let posted = 0;
    for (const [head, addr] of guest.rx.chainBuffers()) {
      this.bufOf[head] = addr;
      posted++;
    }
    this.posted = posted;
    this.usedSeen = guest.rx.usedIdx();
  }

  /** Push `bytes` host → guest and wait (synchronously) until the guest has them all. */
  transfer(bytes: number): VsockThroughputResult {
    const { backend, device, guest, id, chunk, chunkSize } = this;
    const rxq = guest.rx;
    const used = rxq.usedView;
    const data = rxq.dataView; // the rx buffers' area: [rxq.dataStart, rxq.dataEnd)
    const base = rxq.dataStart;
    const mask = rxq.size - 1;
    const interruptsBefore = guest.interrupts[0] ?? 0;
    let sent = 0;
    let received = 0;
    let packets = 0;
    let rxKicks = 0;
    const t0 = performance.now();
    while (received < bytes) {
      // the host writes while its window allows (VsockHost does the same with acks)
      while (sent < bytes && this.unacked < VSOCK_HOST_WINDOW) {
        const n = Math.min(chunkSize, bytes - sent);
        this.unacked += n;
        sent += n;
        backend.inject({ t: 'data', id, data: n === chunkSize ? chunk : chunk.subarray(0, n) });
      }
      const before = received;
      const idx = used.getUint16(2, true);
      let reposted = 0;
      for (; this.usedSeen !== idx; this.usedSeen = (this.usedSeen + 1) & 0xffff) {
        const head = used.getUint32(4 + 8 * (this.usedSeen & mask), true);
        packets++;
        const addr = this.bufOf[head] ?? -1;
        if (addr < 0) throw new Error(`vsock bench: unknown rx head ${String(head)}`);
        if (data.getUint16(addr - base + HDR_OP, true) === VsockOp.RW) {
          const len = data.getUint32(addr - base + HDR_LEN, true);
          received += len;
          this.fwdCnt += len; // the guest application reads at once
        }
        rxq.pushHead(head);
        reposted++;
      }
      if (reposted > 0) {
        rxKicks++;
        rxq.publish();
        device.processQueue(0);
      }
      // Linux 6.1 virtio_transport_stream_do_dequeue(): a credit update once the space the host still believes
      // free, buf_alloc - (fwd_cnt - last reported fwd_cnt), is below one full packet (VSOCK_MAX_PKT_PAYLOAD)
      const stuck = received === before;
      if (stuck && this.fwdCnt === this.lastFwdSent && reposted === 0) {
        device.processQueue(0);
        if (((rxq.availIdx - used.getUint16(2, true)) & 0xffff) === this.posted) {
          throw new Error(`vsock bench: no progress at ${String(received)} bytes`);
        }
      }
      if (this.guestBufAlloc - (this.fwdCnt - this.lastFwdSent) < VSOCK_MAX_PKT_PAYLOAD || received >= bytes || stuck) {
        this.lastFwdSent = this.fwdCnt;
        this.sendCredit();
      }
    }
    const ms = performance.now() - t0;
    if (received !== bytes) throw new Error(`vsock bench: the guest received ${String(received)} of ${String(bytes)} bytes`);
    return {
      mbps: bytes / 1e6 / (ms / 1000),
      bytes,
      ms,
      packets,
      rxKicks,
      rxInterrupts: (guest.interrupts[0] ?? 0) - interruptsBefore,
    };
  }

  /** The guest's CREDIT_UPDATE on tx, through the one chain it recycles for them (the table never changes). */
  private sendCredit(): void {
    const { guest } = this;
    this.credit.fwdCnt = this.fwdCnt >>> 0;
    guest.mem.write(this.creditAddr, encodeHeader(this.credit, this.creditBytes));
    guest.tx.pushHead(this.creditHead);
    guest.tx.publish();
    this.device.processQueue(1);
  }

  /** Guest memory the rx buffers' payloads occupy: [start, start + bytes) (for a baseline writing there too). */
  rxArea(): { start: number; bytes: number } {
    let lo = Number.POSITIVE_INFINITY;
    let hi = 0;
    for (const a of this.bufOf) {
      if (a < 0) continue;
      lo = Math.min(lo, a);
      hi = Math.max(hi, a + this.rxBufSize);
    }
    return { start: lo + VSOCK_HDR_SIZE, bytes: hi - lo - VSOCK_HDR_SIZE };
  }
}

/** Push `bytes` host → guest on a fresh connection and measure payload MB/s. */
export function benchVsockThroughput(bytes: number, opts: VsockThroughputOptions = {}): VsockThroughputResult {
  return new VsockStreamBench(opts).transfer(bytes);
}

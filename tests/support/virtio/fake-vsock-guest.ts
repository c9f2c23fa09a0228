// A fake guest vsock driver for tests and the devices benchmark: it lays the three queues out with the shared
// MockSplitQueue, posts rx buffers, sends tx packets and reads back what the device wrote. It knows the wire
// format only (no sockets): tests drive the connection state machine packet by packet.

import { GuestMemory } from '../../../src/memory/guest-memory.js';
import type { Interrupt } from '../../../src/virtio/device.js';
import { SplitQueue } from '../../../src/virtio/queue.js';
import { MockSplitQueue, type ChainPart } from './mock-driver.js';
import type { VsockDevice } from '../../../src/virtio/vsock/device.js';
import {
  VMADDR_CID_HOST,
  VSOCK_HDR_SIZE,
  VSOCK_TYPE_STREAM,
  decodeHeader,
  encodeHeader,
  type VsockHeader,
} from '../../../src/virtio/vsock/packet.js';

export interface FakeGuestOptions {
  queueSize?: number;
  /** bytes per rx buffer (Linux 6.1 posts ~4 KiB buffers) */
  rxBufSize?: number;
  eventIdx?: boolean;
  /** split each rx buffer into a 44-byte header descriptor and a payload descriptor */
  splitRx?: boolean;
}

export interface RxPacket {
  hdr: VsockHeader;
  payload: Uint8Array;
  /** used length the device reported */
  usedLen: number;
}

const MIB = 1 << 20;

export class FakeVsockGuest {
  readonly mem: GuestMemory;
  readonly rx: MockSplitQueue;
  readonly tx: MockSplitQueue;
  readonly ev: MockSplitQueue;
  readonly interrupts = [0, 0, 0];
  readonly cid: bigint;
  readonly rxBufSize: number;
  private readonly queueSize: number;
  private readonly eventIdx: boolean;
  private readonly splitRx: boolean;
  private rxOutstanding = 0;

  constructor(
    readonly device: VsockDevice,
    opts: FakeGuestOptions = {},
  ) {
    this.queueSize = opts.queueSize ?? 256;
    this.rxBufSize = opts.rxBufSize ?? 4096;
    this.eventIdx = opts.eventIdx ?? false;
    this.splitRx = opts.splitRx ?? false;
    this.cid = device.cid;
    const rxArea = Math.max(4 * MIB, 4 * this.queueSize * (this.rxBufSize + 64));
    const txArea = 4 * MIB;
    this.mem = GuestMemory.anonymous([{ base: 0, size: MIB + rxArea + txArea + MIB }]);
    this.rx = new MockSplitQueue(this.mem, 0, this.queueSize, { dataStart: MIB, dataEnd: MIB + rxArea });
    this.tx = new MockSplitQueue(this.mem, 0x40000, this.queueSize, { dataStart: MIB + rxArea, dataEnd: MIB + rxArea + txArea });
    this.ev = new MockSplitQueue(this.mem, 0x80000, this.queueSize, {
      dataStart: MIB + rxArea + txArea,
      dataEnd: 2 * MIB + rxArea + txArea,
    });
  }

  /** DRIVER_OK: hand the device its queues. */
  activate(): void {
    const opts = { maxSize: this.queueSize, eventIdx: this.eventIdx, indirect: true };
    const queues = [this.rx, this.tx, this.ev].map((m) => {
      m.reset();
      return SplitQueue.create(this.mem, m.layout(), opts);
    });
    this.rxOutstanding = 0;
    const interrupt: Interrupt = {
      signalUsed: (q) => {
        this.interrupts[q] = (this.interrupts[q] ?? 0) + 1;
      },
      signalConfig: () => undefined,
    };
    this.device.activate({ mem: this.mem, queues, interrupt, ackedFeatures: this.device.availableFeatures });
  }

  /** A header from the guest to the host with defaults filled in. */
  header(h: Partial<VsockHeader>): VsockHeader {
    return {
      srcCid: this.cid,
      dstCid: BigInt(VMADDR_CID_HOST),
      srcPort: 0,
      dstPort: 0,
      len: 0,
      type: VSOCK_TYPE_STREAM,
      op: 0,
      flags: 0,
      bufAlloc: 0,
      fwdCnt: 0,
      ...h,
    };
  }

  /** Send one packet on tx (header descriptor + payload descriptor) and notify. len defaults to the payload's. */
  send(h: Partial<VsockHeader>, payload?: Uint8Array): void {
    const hdr = this.header({ len: payload?.length ?? 0, ...h });
    const parts: ChainPart[] = [{ data: encodeHeader(hdr) }];
    if (payload !== undefined && payload.length > 0) parts.push({ data: payload });
    this.sendRaw(parts);
  }

  /** Send an arbitrary chain on tx and notify. */
  sendRaw(parts: ChainPart[], opts: { indirect?: boolean } = {}): void {
    this.tx.addChain(parts, opts);
    this.tx.publish();
    this.device.processQueue(1);
    this.tx.used();
  }

  /** Post up to n rx buffers (default: as many as fit) and notify. Returns how many were posted. */
  postRx(n = Number.POSITIVE_INFINITY): number {
    const perChain = this.splitRx ? 2 : 1;
    const k = Math.min(n, Math.floor(this.queueSize / perChain) - this.rxOutstanding);
    for (let i = 0; i < k; i++) {
      if (this.splitRx) {
        this.rx.addChain([
          { len: VSOCK_HDR_SIZE, writable: true },
          { len: this.rxBufSize - VSOCK_HDR_SIZE, writable: true },
        ]);
      } else {
        this.rx.addChain([{ len: this.rxBufSize, writable: true }]);
      }
    }
    this.rxOutstanding += k;
    if (k > 0) {
      this.rx.publish();
      this.device.processQueue(0);
    }
    return k;
  }

  /** rx buffers posted and not yet returned */
  get rxPosted(): number {
    return this.rxOutstanding;
  }

  /** Packets the device returned since the last call (empty used buffers are skipped). */
  receive(): RxPacket[] {
    const out: RxPacket[] = [];
    for (const u of this.rx.used()) {
      this.rxOutstanding--;
      if (u.len === 0) continue;
      const b = this.rx.readWrittenBytes(u.id);
      if (b.length < VSOCK_HDR_SIZE) throw new Error(`device returned a ${String(b.length)}-byte rx packet`);
      const hdr = decodeHeader(b);
      if (VSOCK_HDR_SIZE + hdr.len !== u.len) {
        throw new Error(`rx used length ${String(u.len)} does not match header len ${String(hdr.len)} + 44`);
      }
      out.push({ hdr, payload: b.slice(VSOCK_HDR_SIZE, VSOCK_HDR_SIZE + hdr.len), usedLen: u.len });
    }
    return out;
  }
}

// Test rig for virtio-net: a NetDevice on mock rx/tx queues (the "guest" side) over one end of a PairBackend
// (the other end plays the host network), plus small Ethernet/ARP/IPv4 frame builders. Shared by the unit,
// fuzz and real-tap tests.

import { GuestMemory } from '../../src/memory/guest-memory.js';
import type { Interrupt } from '../../src/virtio/device.js';
import { VIRTIO_F_VERSION_1 } from '../../src/virtio/ids.js';
import { SplitQueue } from '../../src/virtio/queue.js';
import { MockSplitQueue } from '../support/virtio/mock-driver.js';
import { PairBackend, type NetBackend } from '../../src/virtio/net/backend.js';
import { NetDevice } from '../../src/virtio/net/device.js';
import { encodeNetHdr, type VirtioNetHdr } from '../../src/virtio/net/header.js';
import { NET_QUEUE_SIZE, RX_QUEUE, TX_QUEUE, VIRTIO_NET_HDR_LEN } from '../../src/virtio/net/features.js';
import { concatBytes } from '../support/bytes.js';

export interface NetRig {
  mem: GuestMemory;
  rx: MockSplitQueue;
  tx: MockSplitQueue;
  dev: NetDevice;
  backend: NetBackend;
  /** interrupts raised: queue index, or 'config' */
  irqs: Array<number | 'config'>;
  activate(features: bigint, opts?: { eventIdx?: boolean }): void;
  /** queue a tx chain: header + frame, cut into descriptors at `cuts` (byte offsets into hdr+frame) */
  send(frame: Uint8Array, hdr?: Partial<VirtioNetHdr>, cuts?: number[]): number;
  /** post `count` rx chains, each of `parts` writable descriptors of `len` bytes */
  postRx(count: number, len: number, parts?: number): number[];
  kickTx(): void;
  kickRx(): void;
}

export const MAC = '52:54:00:00:02:02';
export const MAC_BYTES = Uint8Array.of(0x52, 0x54, 0, 0, 2, 2);

/** A device over `backend` (default: one end of a PairBackend pair, the other end returned as `peer`). */
export function makeRig(backend?: NetBackend, mac: string = MAC): NetRig & { peer: PairBackend | undefined } {
  let peer: PairBackend | undefined;
  if (backend === undefined) {
    const [a, b] = PairBackend.pair();
    backend = a;
    peer = b;
  }
  // 8 MiB: rx rings at 0 with buffers up to 4 MiB, tx rings at 4 MiB with buffers to the end.
  const mem = GuestMemory.anonymous([{ base: 0, size: 8 << 20 }]);
  const rx = new MockSplitQueue(mem, 0, NET_QUEUE_SIZE, { dataEnd: 4 << 20 });
  const tx = new MockSplitQueue(mem, 4 << 20, NET_QUEUE_SIZE);
  const dev = new NetDevice({ mac }, backend);
  const irqs: Array<number | 'config'> = [];
  const interrupt: Interrupt = {
    signalUsed: (q) => void irqs.push(q),
    signalConfig: () => void irqs.push('config'),
  };
  const rig = {
    mem,
    rx,
    tx,
    dev,
    backend,
    peer,
    irqs,
    activate(features: bigint, opts: { eventIdx?: boolean } = {}): void {
      const eventIdx = opts.eventIdx ?? false;
      const queues = [rx, tx].map((m) => SplitQueue.create(mem, m.layout(), { maxSize: NET_QUEUE_SIZE, eventIdx }));
      dev.activate({ mem, queues, interrupt, ackedFeatures: features | VIRTIO_F_VERSION_1 });
    },
    send(frame: Uint8Array, hdr: Partial<VirtioNetHdr> = {}, cuts: number[] = []): number {
      const all = concat(encodeNetHdr(hdr), frame);
      const bounds = [0, ...cuts, all.length];
      const parts = [];
      for (let i = 0; i + 1 < bounds.length; i++) parts.push({ data: all.subarray(bounds[i], bounds[i + 1]) });
      const head = tx.addChain(parts);
      tx.publish();
      return head;
    },
    postRx(count: number, len: number, parts = 1): number[] {
      const heads = [];
      for (let i = 0; i < count; i++) {
        heads.push(rx.addChain(Array.from({ length: parts }, () => ({ len, writable: true }))));
      }
      rx.publish();
      return heads;
    },
    kickTx: () => dev.processQueue(TX_QUEUE),
    kickRx: () => dev.processQueue(RX_QUEUE),
  };
  return rig;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(parts);
}

/** hdr + frame as the backend moves them */
export function withHdr(frame: Uint8Array, hdr: Partial<VirtioNetHdr> = {}): Uint8Array {
  return concat(encodeNetHdr(hdr), frame);
}

/** Strip the 12-byte header. */
export function frameOf(bytes: Uint8Array): Uint8Array {
  return bytes.subarray(VIRTIO_NET_HDR_LEN);
}

export function patternFrame(len: number, seed = 1): Uint8Array {
  const f = new Uint8Array(len);
  for (let i = 0; i < len; i++) f[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return f;
}

// --- Ethernet / ARP / IPv4 / ICMP (RFC 826, RFC 791, RFC 792) ----------------------------------------------

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const BROADCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const h = new Uint8Array(14);
  h.set(dst, 0);
  h.set(src, 6);
  h[12] = type >> 8;
  h[13] = type & 0xff;
  return concat(h, payload);
}

/** ARP op 1 (request) or 2 (reply) for IPv4 over Ethernet. */
export function arp(op: 1 | 2, sha: Uint8Array, spa: number[], tha: Uint8Array, tpa: number[]): Uint8Array {
  const a = new Uint8Array(28);
  a.set([0, 1, 8, 0, 6, 4, 0, op], 0);
  a.set(sha, 8);
  a.set(spa, 14);
  a.set(tha, 18);
  a.set(tpa, 24);
  return a;
}

export function inetChecksum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export function ipv4(src: number[], dst: number[], proto: number, payload: Uint8Array, id = 1): Uint8Array {
  const h = new Uint8Array(20);
  const total = 20 + payload.length;
  h.set([0x45, 0, total >> 8, total & 0xff, id >> 8, id & 0xff, 0x40, 0, 64, proto, 0, 0], 0);
  h.set(src, 12);
  h.set(dst, 16);
  const c = inetChecksum(h);
  h[10] = c >> 8;
  h[11] = c & 0xff;
  return concat(h, payload);
}

export function icmpEcho(type: 0 | 8, id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m.set([type, 0, 0, 0, id >> 8, id & 0xff, seq >> 8, seq & 0xff], 0);
  m.set(data, 8);
  const c = inetChecksum(m);
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return m;
}

export function ethType(f: Uint8Array): number {
  return (f[12]! << 8) | f[13]!;
}

// virtio-net (virtio 1.2 §5.1; include/uapi/linux/virtio_net.h): receiveq 0 and transmitq 1, no control
// queue, no multiqueue. Frames move between guest memory and a NetBackend (a tap) with no copy: tx chains are
// written with writev() of guest views, rx frames are read with readv() straight into the guest's buffers,
// spanning several chains with VIRTIO_NET_F_MRG_RXBUF.
//
// Offloads are offered only when the backend accepts the matching TUNSETOFFLOAD flags (probed once, at
// construction); after the driver accepts features, the backend gets the TUN_F_* bits of the GUEST_* offloads
// it accepted.
//
// Rx backpressure: while the guest has posted too few rx buffers the device stops watching the backend (the
// frames wait in the tap's queue, where the kernel drops them when it is full) and re-arms rx notifications;
// the driver's next rx notify resumes reading.

import type { GuestMemory } from '../../memory/guest-memory.js';
import { DeviceBroken, type ActivateContext, type Interrupt, type VirtioDevice } from '../device.js';
import { VIRTIO_ID_NET, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../ids.js';
import type { DescriptorChain, SplitQueue } from '../queue.js';
import { EAGAIN, type NetBackend } from './backend.js';
import {
  MAX_FRAME_LEN,
  MIN_RX_FRAME_CAPACITY,
  NET_QUEUE_SIZE,
  OFFLOADS,
  RX_QUEUE,
  TX_QUEUE,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_LEN,
  VIRTIO_NET_S_LINK_UP,
  guestGso,
  tunFlagsFor,
} from './features.js';
import { parseMac, randomMac } from './mac.js';
import { TxFrameError, parseTx } from './request.js';
import { RxBuffers } from './rx-buffers.js';

/** The largest rx read: a header and a MAX_FRAME_LEN frame. */
const RX_MAX_READ = VIRTIO_NET_HDR_LEN + MAX_FRAME_LEN;
/** Work bounds per call (DeviceContract: processQueue does bounded work). */
const TX_BUDGET_PER_CALL = 4 * NET_QUEUE_SIZE;
const RX_FRAMES_PER_CALL = NET_QUEUE_SIZE;

export interface NetDeviceOptions {
  /** "52:54:00:12:34:56"; absent: a random locally administered address */
  mac?: string | Uint8Array;
}

interface Active {
  mem: GuestMemory;
  rxq: SplitQueue;
  txq: SplitQueue;
  interrupt: Interrupt;
  /** the transport's immediate DEVICE_NEEDS_RESET hook (ActivateContext.fail) */
  fail: ((e: DeviceBroken) => void) | undefined;
  acked: bigint;
  rx: RxBuffers;
  /** bumped at reset so deferred work of an earlier activation does nothing */
  generation: number;
}

export class NetDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_NET;
  readonly queueMaxSizes: readonly number[] = [NET_QUEUE_SIZE, NET_QUEUE_SIZE];
  readonly availableFeatures: bigint;
  /** the MAC in the config space */
  readonly mac: Uint8Array;
  /** TUN_F_* flags the backend accepted when probed */
  readonly acceptedTunFlags: number;

  private active: Active | undefined;
  private generation = 0;
  private linkUp = true;
  /** rx stopped for lack of buffers: the backend is not watched until the driver posts more */
  private rxBlocked = false;
  private txDeferred = false;
  /** a DeviceBroken raised outside processQueue (rx readiness callback), reported at the next call */
  private brokenLater: DeviceBroken | undefined;
  private broken = false;
  private readonly counters = {
    notifications: 0,
    interrupts: 0,
    txFrames: 0,
    txBytes: 0,
    txDropped: 0,
    txBackendErrors: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxBuffers: 0,
    rxBlocked: 0,
    rxRunts: 0,
    rxBackendErrors: 0,
    offloadRefused: 0,
  };
  private readonly errors = new Map<string, number>();
  private readonly onReadable = (): void => this.guard(() => this.pumpRx());

  constructor(
    opts: NetDeviceOptions,
    private readonly backend: NetBackend,
  ) {
    this.mac = opts.mac === undefined ? randomMac() : typeof opts.mac === 'string' ? parseMac(opts.mac) : opts.mac.slice(0, 6);
    if (this.mac.length !== 6) throw new RangeError('a MAC address has 6 bytes');
    let features =
      VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MRG_RXBUF | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC;
    // Probe CSUM, then each other offload on top of it (tun.c set_offload refuses TSO/UFO without CSUM); switch
    // everything off again until a driver accepts features.
    let accepted = 0;
    const [csum, ...others] = OFFLOADS;
    if (csum !== undefined && backend.setOffload(csum.tun)) {
      accepted = csum.tun;
      features |= csum.features;
      for (const o of others) {
        if (backend.setOffload(accepted | o.tun)) {
          accepted |= o.tun;
          features |= o.features;
        }
      }
    }
    this.acceptedTunFlags = accepted;
    backend.setOffload(0);
    this.availableFeatures = features;
  }

  /** struct virtio_net_config: mac[6], status le16 (virtio 1.2 §5.1.4); the MQ/MTU fields are not offered. */
  configSpace(): Uint8Array {
    const c = new Uint8Array(8);
    c.set(this.mac, 0);
    c[6] = this.linkUp ? VIRTIO_NET_S_LINK_UP : 0;
    return c;
  }

  /** virtio 1.2 §5.1.4.2: the driver MUST NOT write the config space (no VIRTIO_NET_F_CTRL_MAC_ADDR here). */
  writeConfig(offset: number, data: Uint8Array): void {
    void offset;
    void data;
    this.countError('ConfigWriteIgnored');
  }

  /** Link status (config.status LINK_UP); a change raises a configuration interrupt. */
  setLinkUp(up: boolean): void {
    if (up === this.linkUp) return;
    this.linkUp = up;
    const a = this.active;
    if (a !== undefined && a.acked & VIRTIO_NET_F_STATUS) a.interrupt.signalConfig();
  }

  activate(ctx: ActivateContext): void {
    const [rxq, txq] = ctx.queues;
    if (rxq === undefined || txq === undefined) {
      throw new RangeError('virtio-net needs receiveq (0) and transmitq (1) at activation');
    }
    this.reset();
    // Hand the tap the offloads the driver will take on rx; on refusal, none (always safe for the guest).
    const flags = tunFlagsFor(ctx.ackedFeatures);
    if (!this.backend.setOffload(flags)) {
      this.counters.offloadRefused++;
      this.backend.setOffload(0);
    }
    this.active = {
      mem: ctx.mem,
      rxq,
      txq,
      interrupt: ctx.interrupt,
      fail: ctx.fail,
      acked: ctx.ackedFeatures,
      rx: new RxBuffers(ctx.mem),
      generation: this.generation,
    };
    this.rxBlocked = false;
    this.backend.onReadable(this.onReadable);
  }

  reset(): void {
    this.generation++;
    this.backend.onReadable(null);
    this.active?.rx.clear();
    if (this.active !== undefined) this.backend.setOffload(0);
    this.active = undefined;
    this.rxBlocked = false;
    this.broken = false;
    this.brokenLater = undefined;
  }

  /** Throws only DeviceBroken (a malformed ring or chain; also one found earlier by the rx callback). */
  processQueue(index: number): void {
    if (this.brokenLater !== undefined) {
      const e = this.brokenLater;
      this.brokenLater = undefined;
      throw e;
    }
    if (this.active === undefined || this.broken) return;
    this.counters.notifications++;
    try {
      if (index === TX_QUEUE) this.processTx();
      else if (index === RX_QUEUE) this.pumpRx();
    } catch (e) {
      this.stop();
      throw e;
    }
  }

  /** Stop the device after a failure; the transport (or the next processQueue) reports it. */
  private stop(): void {
    this.broken = true;
    this.backend.onReadable(null);
  }

  /** Run work outside processQueue (event-loop callbacks): nothing may escape into the worker's loop. */
  private guard(work: () => void): void {
    const active = this.active;
    try {
      work();
    } catch (e) {
      this.stop();
      this.brokenLater =
        e instanceof DeviceBroken ? e : new DeviceBroken(`virtio-net: ${e instanceof Error ? e.message : String(e)}`);
      this.countError(this.brokenLater.name);
      active?.fail?.(this.brokenLater);
    }
  }

  // --- transmit -------------------------------------------------------------------------------------------

  private processTx(): void {
    const a = this.active!;
    const q = a.txq;
    let budget = TX_BUDGET_PER_CALL;
    let used = 0;
    for (;;) {
      q.disableNotification();
      for (let c = budget > 0 ? q.pop() : undefined; c !== undefined; c = budget > 0 ? q.pop() : undefined) {
        budget--;
        this.transmit(a, c);
        q.addUsed(c.head, 0); // virtio 1.2 §5.1.6.2: the device writes nothing to tx buffers
        used++;
      }
      if (budget === 0) {
        // The guest keeps the ring full: let other work run, then go on.
        q.enableNotification();
        this.deferTx(a);
        break;
      }
      if (!q.enableNotification()) break; // virtio 1.2 §2.7.10: re-check after re-enabling
    }
    if (used > 0 && q.needsNotification()) {
      this.counters.interrupts++;
      a.interrupt.signalUsed(TX_QUEUE);
    }
  }

  private deferTx(a: Active): void {
    if (this.txDeferred) return;
    this.txDeferred = true;
    setImmediate(() => {
      this.txDeferred = false;
      if (this.active !== a || a.generation !== this.generation || this.broken) return;
      this.guard(() => this.processTx());
    });
  }

  private transmit(a: Active, chain: DescriptorChain): void {
    const descs = chain.descriptors(); // ChainError (DeviceBroken) propagates
    let req;
    try {
      req = parseTx(a.mem, descs, a.acked);
    } catch (e) {
      if (!(e instanceof TxFrameError)) throw e;
      this.counters.txDropped++;
      this.countError(e.name);
      return;
    }
    const n = this.backend.writev([req.header, ...req.frame]);
    if (n < 0) {
      // EAGAIN (tap queue full) or an error: the frame is dropped, as a NIC drops on a full wire.
      this.counters.txDropped++;
      this.counters.txBackendErrors++;
      return;
    }
    this.counters.txFrames++;
    this.counters.txBytes += req.frameLen;
  }

  // --- receive --------------------------------------------------------------------------------------------

  private pumpRx(): void {
    const a = this.active;
    if (a === undefined || this.broken) return;
    const q = a.rxq;
    const mergeable = (a.acked & VIRTIO_NET_F_MRG_RXBUF) !== 0n;
    // With mergeable buffers gather up to a full 64 KiB frame; read once there is room for any frame the tap
    // may hand us (64 KiB with GSO, else a 1518-byte frame), or the driver has no more chains to give.
    const target = mergeable ? RX_MAX_READ : 1;
    const floor = mergeable ? (guestGso(a.acked) ? RX_MAX_READ : MIN_RX_FRAME_CAPACITY) : 1;
    let frames = 0;
    let used = 0;
    let rearms = 0;
    while (frames < RX_FRAMES_PER_CALL) {
      a.rx.fill(q, target, q.size);
      const ready = mergeable ? a.rx.capacity >= floor || a.rx.chains >= q.size : a.rx.chains > 0;
      if (!ready) {
        this.blockRx();
        // Notifications stay enabled on the rx queue; a chain that raced the re-arm is picked up here.
        if (rearms++ < 2 && q.enableNotification()) continue;
        break;
      }
      this.unblockRx();
      const n = this.backend.readv(a.rx.views(mergeable, RX_MAX_READ));
      if (n === EAGAIN) break;
      if (n < 0) {
        this.counters.rxBackendErrors++;
        break;
      }
      if (n < VIRTIO_NET_HDR_LEN) {
        this.counters.rxRunts++; // the chains stay pending for the next frame
        continue;
      }
      for (const u of a.rx.consume(n)) {
        q.addUsed(u.head, u.len);
        used++;
      }
      frames++;
      this.counters.rxFrames++;
      this.counters.rxBytes += n - VIRTIO_NET_HDR_LEN;
    }
    this.counters.rxBuffers += used;
    if (used > 0 && q.needsNotification()) {
      this.counters.interrupts++;
      a.interrupt.signalUsed(RX_QUEUE);
    }
  }

  private blockRx(): void {
    if (this.rxBlocked) return;
    this.rxBlocked = true;
    this.counters.rxBlocked++;
    this.backend.onReadable(null);
  }

  private unblockRx(): void {
    if (!this.rxBlocked) return;
    this.rxBlocked = false;
    this.backend.onReadable(this.onReadable);
  }

  /** Reset and close the backend (the device is gone for good: VM teardown). */
  dispose(): void {
    this.reset();
    this.backend.close();
  }

  private countError(name: string): void {
    this.errors.set(name, (this.errors.get(name) ?? 0) + 1);
  }

  metrics(): Record<string, number> {
    const m: Record<string, number> = { ...this.counters, rxPendingChains: this.active?.rx.chains ?? 0 };
    for (const [k, v] of this.errors) m[`errors.${k}`] = v;
    return m;
  }
}

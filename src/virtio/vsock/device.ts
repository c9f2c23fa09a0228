// virtio-vsock (virtio 1.2 §5.10): queues rx 0, tx 1, event 2; config { le64 guest_cid }. The guest talks
// only to the host (CID 2); the host side is in-process (a VsockBackend: MessagePort to the main thread's
// VsockHost, or a fake). Tx chains are parsed into packets with named errors before the muxer acts on them;
// host events and guest packets become packets for the guest, written into rx chains as buffers arrive.
//
// Threading: lives on its device worker (DESIGN decision 3). Host messages arrive on the same event loop,
// so they never interleave with processQueue().

import type { GuestMemory } from '../../memory/guest-memory.js';
import { DeviceBroken, type ActivateContext, type Interrupt, type VirtioDevice } from '../device.js';
import { VIRTIO_ID_VSOCK, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../ids.js';
import { CheckedChain, CheckedChainWriter, type SplitQueue } from '../queue.js';
import { NullVsockBackend, type VsockBackend } from './backend.js';
import type { HostToDevice } from './host-protocol.js';
import { VsockMuxer, type MuxerOptions } from './muxer.js';
import { MAX_GUEST_CID, MIN_GUEST_CID, VSOCK_HDR_SIZE, VsockOp, VsockPacketError, parseTxChain } from './packet.js';

/** Queue indexes (virtio 1.2 §5.10.2). */
export const VSOCK_RX_QUEUE = 0;
export const VSOCK_TX_QUEUE = 1;
export const VSOCK_EVENT_QUEUE = 2;
/** Size offered for each queue (Firecracker and QEMU use 128..256). */
export const VSOCK_QUEUE_SIZE = 256;

/** The configured guest CID cannot be used. */
export class InvalidGuestCid extends Error {
  override readonly name = 'InvalidGuestCid';
  constructor(cid: unknown) {
    super(
      `vsock guest CID ${String(cid)} is not usable: pick an integer from ${String(MIN_GUEST_CID)} to ` +
        `${String(MAX_GUEST_CID)} (0-2 are reserved, 2 is the host; include/uapi/linux/vm_sockets.h)`,
    );
  }
}

export interface VsockDeviceOptions extends MuxerOptions {
  cid: number;
  /** tx chains handled per processQueue() call before yielding to the event loop (bounded work) */
  txBudget?: number;
}

interface Active {
  mem: GuestMemory;
  rx: SplitQueue;
  tx: SplitQueue;
  interrupt: Interrupt;
}

export class VsockDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_VSOCK;
  readonly queueMaxSizes: readonly number[] = [VSOCK_QUEUE_SIZE, VSOCK_QUEUE_SIZE, VSOCK_QUEUE_SIZE];
  // VIRTIO_VSOCK_F_SEQPACKET (bit 1) is not offered: stream sockets only.
  readonly availableFeatures = VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC;

  readonly cid: bigint;
  private readonly mux: VsockMuxer;
  private active: Active | undefined;
  /** a structural queue error met outside processQueue (host-driven rx fill); thrown at the next call */
  private broken: DeviceBroken | undefined;
  private onFail: ((e: DeviceBroken) => void) | undefined;
  private busy = false;
  private readonly deferred: HostToDevice[] = [];
  private readonly txBudget: number;
  private txResume: ReturnType<typeof setImmediate> | undefined;
  /** tx processing stopped because RST replies wait for rx buffers */
  private txStalled = false;
  private readonly counters = {
    notifications: 0,
    interrupts: 0,
    txChains: 0,
    rxChains: 0,
    rxTooSmall: 0,
    txStalls: 0,
    asyncBroken: 0,
  };
  private readonly errors = new Map<string, number>();
  /** the rx chain being filled and its writer, reused for every rx buffer (no allocation per packet) */
  private readonly rxChain = new CheckedChain();
  private readonly rxWriter = new CheckedChainWriter();
  /** the tx chain being parsed (its packet's payload views point into guest memory, not into this) */
  private readonly txChain = new CheckedChain();

  constructor(
    opts: VsockDeviceOptions,
    private readonly backend: VsockBackend = new NullVsockBackend(),
  ) {
    const cid = opts.cid;
    if (!Number.isInteger(cid) || cid < MIN_GUEST_CID || cid > MAX_GUEST_CID) throw new InvalidGuestCid(cid);
    this.cid = BigInt(cid);
    this.txBudget = opts.txBudget ?? 4 * VSOCK_QUEUE_SIZE;
    this.mux = new VsockMuxer(this.cid, (m) => this.backend.send(m), () => this.pump(), opts);
    backend.onMessage((m) => this.onHost(m));
  }

  /** virtio 1.2 §5.10.4: struct virtio_vsock_config { le64 guest_cid; } */
  configSpace(): Uint8Array {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, this.cid, true);
    return b;
  }

  writeConfig(): void {
    // §5.10.4: the configuration space is read-only for the driver
  }

  activate(ctx: ActivateContext): void {
    const rx = ctx.queues[VSOCK_RX_QUEUE];
    const tx = ctx.queues[VSOCK_TX_QUEUE];
    if (rx === undefined || tx === undefined) {
      throw new DeviceBroken('virtio-vsock needs its rx (0) and tx (1) queues at DRIVER_OK');
    }
    // the event queue (2) is only used for VIRTIO_VSOCK_EVENT_TRANSPORT_RESET after migration: never here
    this.active = { mem: ctx.mem, rx, tx, interrupt: ctx.interrupt };
    this.onFail = ctx.fail;
    this.broken = undefined;
  }

  reset(): void {
    this.active = undefined;
    this.broken = undefined;
    if (this.txResume !== undefined) clearImmediate(this.txResume);
    this.txResume = undefined;
    this.txStalled = false;
    this.mux.resetAll('device-reset');
  }

  processQueue(index: number): void {
    if (this.broken !== undefined) throw this.broken;
    const a = this.active;
    if (a === undefined) return;
    this.counters.notifications++;
    this.busy = true;
    try {
      // VSOCK_EVENT_QUEUE: the driver only posts buffers there; we keep them unused
      if (index === VSOCK_TX_QUEUE || index === VSOCK_RX_QUEUE) this.run(a, index === VSOCK_TX_QUEUE);
    } catch (e) {
      if (e instanceof DeviceBroken) this.fail(e);
      throw e;
    } finally {
      this.busy = false;
    }
    this.drainDeferred();
  }

  /** Tx first when asked (or when it stalled before), then fill rx with whatever is owed. */
  private run(a: Active, tx: boolean): void {
    if (tx || this.txStalled) this.processTx(a);
    this.fillRx(a);
  }

  /** Handle tx chains; stops at the budget (resumed on the next turn) or while RST replies wait for rx. */
  private processTx(a: Active): void {
    const q = a.tx;
    this.txStalled = false;
    let used = 0;
    let budget = this.txBudget;
    outer: for (;;) {
      q.disableNotification();
      for (;;) {
        if (this.mux.txBlocked()) {
          // no rx buffers for our replies: leave the rest in the ring until the guest gives some
          this.fillRx(a);
          if (this.mux.txBlocked()) {
            this.counters.txStalls++;
            this.txStalled = true;
            break outer;
          }
        }
        if (budget === 0) {
          this.scheduleTxResume();
          break outer;
        }
        const head = q.popHead();
        if (head < 0) break;
        budget--;
        used++;
        this.counters.txChains++;
        const chain = q.walk(head, this.txChain); // ChainError (DeviceBroken) for a malformed chain
        const pkt = parseTxChain(a.mem, chain, this.cid);
        if (pkt instanceof VsockPacketError) {
          this.errors.set(pkt.name, (this.errors.get(pkt.name) ?? 0) + 1);
          // Linux virtio_transport_reset_no_sock(): RST unless the packet was itself a RST
          if (pkt.reply && pkt.hdr !== undefined && pkt.hdr.op !== VsockOp.RST) {
            this.mux.queueRst(pkt.hdr.dstPort, pkt.hdr.srcPort, pkt.hdr.type);
          }
        } else {
          this.mux.handleTx(pkt);
        }
        q.addUsed(head, 0); // tx buffers are read-only: nothing written
      }
      if (!q.enableNotification()) break;
    }
    if (used > 0 && q.needsNotification()) {
      this.counters.interrupts++;
      a.interrupt.signalUsed(VSOCK_TX_QUEUE);
    }
  }

  private scheduleTxResume(): void {
    if (this.txResume !== undefined) return;
    this.txResume = setImmediate(() => {
      this.txResume = undefined;
      this.pump(true);
    });
    this.txResume.unref();
  }

  /**
   * Move pending packets into rx chains while both exist: every available rx buffer in one pass, then one
   * ack per connection to the host and at most one interrupt (EVENT_IDX decides) for the whole batch.
   */
  private fillRx(a: Active): void {
    const q = a.rx;
    const chain = this.rxChain;
    const w = this.rxWriter;
    let used = 0;
    while (this.mux.hasRx()) {
      const head = q.popHead();
      if (head < 0) break;
      used++;
      this.counters.rxChains++;
      q.walk(head, chain); // ChainError (DeviceBroken) for a malformed chain
      w.reset(a.mem, chain);
      let n = 0;
      if (w.remaining < VSOCK_HDR_SIZE) {
        this.counters.rxTooSmall++; // the guest's problem: the chain goes back empty
      } else {
        n = this.mux.writeNext(w);
      }
      q.addUsed(head, n);
    }
    this.mux.flushAcks();
    if (used > 0 && q.needsNotification()) {
      this.counters.interrupts++;
      a.interrupt.signalUsed(VSOCK_RX_QUEUE);
    }
  }

  /** A host message (or a timer) may have made packets for the guest. */
  private onHost(m: HostToDevice): void {
    if (this.busy) {
      this.deferred.push(m); // a synchronous backend called back from inside our own send()
      return;
    }
    if (this.active === undefined || this.broken !== undefined) {
      this.mux.refuseInactive(m);
      return;
    }
    this.mux.handleHost(m);
    this.pump();
  }

  private drainDeferred(): void {
    while (this.deferred.length > 0 && !this.busy) this.onHost(this.deferred.shift()!);
  }

  /** Fill rx (and resume stalled tx) outside processQueue; a structural error waits for the next call. */
  private pump(resumeTx = false): void {
    const a = this.active;
    if (a === undefined || this.broken !== undefined || this.busy) return;
    this.busy = true;
    try {
      this.run(a, resumeTx);
    } catch (e) {
      // nobody up the stack can take an exception here (a MessagePort or timer callback): a device bug
      // is handled like a broken queue, and either way the next processQueue() reports DeviceBroken
      this.counters.asyncBroken++;
      this.fail(e instanceof DeviceBroken ? e : new DeviceBroken(`vsock internal error: ${String(e)}`));
    } finally {
      this.busy = false;
    }
    this.drainDeferred();
  }

  private fail(e: DeviceBroken): void {
    this.errors.set(e.name, (this.errors.get(e.name) ?? 0) + 1);
    this.broken = e;
    this.mux.resetAll('device-reset');
    // tell the transport now; processQueue will also throw it
    this.onFail?.(e);
  }

  metrics(): Record<string, number> {
    const m: Record<string, number> = { ...this.counters, ...this.mux.counters };
    m.connections = this.mux.connectionCount;
    m.pendingRst = this.mux.pendingRstCount;
    const buffered = this.mux.bufferedBytes();
    m.bufferedToGuest = buffered.toGuest;
    m.bufferedUnconsumed = buffered.unconsumed;
    for (const [k, v] of this.errors) m[`errors.${k}`] = v;
    return m;
  }
}

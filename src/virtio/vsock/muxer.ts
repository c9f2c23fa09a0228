// The vsock connection multiplexer: routes parsed guest packets to connections by (host port, guest port),
// runs each connection's state machine (net/vmw_vsock/virtio_transport_common.c is the reference for the
// rules), turns host messages into packets owed to the guest, and picks the next packet for each rx buffer.
//
// Bounded state: at most `maxConnections` connections; host → guest bytes bounded per connection by the
// host window (VsockHost holds its writers); guest → host bytes bounded by the credit we grant (a guest
// that overruns it is reset); connectionless RST replies bounded by stalling tx processing while the
// queue is full (the guest must give rx buffers to make progress: Firecracker's muxer does the same).

import { Connection, Pending } from './connection.js';
import {
  VSOCK_BUF_ALLOC,
  VSOCK_HOST_WINDOW,
  type DeviceToHost,
  type HostToDevice,
  type VsockCloseReason,
} from './host-protocol.js';
import {
  VMADDR_CID_HOST,
  VSOCK_HDR_SIZE,
  VSOCK_SHUTDOWN_BOTH,
  VSOCK_SHUTDOWN_RCV,
  VSOCK_SHUTDOWN_SEND,
  VSOCK_TYPE_STREAM,
  VsockOp,
  type TxPacket,
  type VsockHeader,
} from './packet.js';
import type { ByteSink } from '../queue.js';

export interface MuxerOptions {
  /** most connections at once (guest- and host-initiated together) */
  maxConnections?: number;
  /** connectionless RST replies queued before tx processing stalls */
  maxPendingRst?: number;
  /** how long an orderly host close waits for the guest's RST (ms) */
  closeTimeoutMs?: number;
  /** our receive buffer per connection (buf_alloc) */
  bufAlloc?: number;
  /** host → guest bytes a connection may queue before the host is considered misbehaving */
  hostWindow?: number;
}

/** First host port for host-initiated connections (Firecracker starts its local ports at 1 << 30). */
const EPHEMERAL_BASE = 0x4000_0000;

interface RstReply {
  hostPort: number;
  guestPort: number;
  type: number;
}

/**
 * The connections with a packet for the guest, in round-robin order: a FIFO without duplicates, linked through
 * the connections themselves (Connection.readyPrev/readyNext), so taking the first and re-queueing it at the
 * tail (once per rx packet) allocates nothing.
 */
class ReadyList {
  private head: Connection | undefined;
  private tail: Connection | undefined;
  size = 0;

  first(): Connection | undefined {
    return this.head;
  }

  /** Append `c` unless it is queued already (then it keeps its place). */
  add(c: Connection): void {
    if (c.readyQueued) return;
    c.readyQueued = true;
    c.readyPrev = this.tail;
    c.readyNext = undefined;
    if (this.tail === undefined) this.head = c;
    else this.tail.readyNext = c;
    this.tail = c;
    this.size++;
  }

  delete(c: Connection): void {
    if (!c.readyQueued) return;
    const p = c.readyPrev;
    const n = c.readyNext;
    if (p === undefined) this.head = n;
    else p.readyNext = n;
    if (n === undefined) this.tail = p;
    else n.readyPrev = p;
    c.readyQueued = false;
    c.readyPrev = undefined;
    c.readyNext = undefined;
    this.size--;
  }

  clear(): void {
    for (let c = this.head; c !== undefined; ) {
      const n = c.readyNext;
      c.readyQueued = false;
      c.readyPrev = undefined;
      c.readyNext = undefined;
      c = n;
    }
    this.head = undefined;
    this.tail = undefined;
    this.size = 0;
  }
}

export class VsockMuxer {
  private readonly conns = new Map<number, Connection>(); // by id
  private readonly ports = new Map<number, Map<number, Connection>>(); // host port → guest port → conn
  /** connections with a packet for the guest, in round-robin order */
  private readonly ready = new ReadyList();
  /** connections whose host bytes reached the guest but were not acked yet */
  private readonly toAck: Connection[] = []; // each at most once (Connection.ackQueued)
  private rsts: RstReply[] = [];
  private rstHead = 0;
  private nextDeviceId = 2;
  private nextHostPort = EPHEMERAL_BASE;
  /** the header of the packet being written; src_cid and dst_cid never change, so they are set once */
  private readonly hdrBuf = new Uint8Array(VSOCK_HDR_SIZE);
  private readonly hdrView = new DataView(this.hdrBuf.buffer);

  readonly maxConnections: number;
  readonly maxPendingRst: number;
  readonly closeTimeoutMs: number;
  readonly bufAlloc: number;
  readonly hostWindow: number;

  readonly counters = {
    connectionsOpened: 0,
    connectionsClosed: 0,
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    rstSent: 0,
    rstDropped: 0,
    creditExceeded: 0,
    protocolErrors: 0,
    hostBytesDropped: 0,
    guestBytesDropped: 0,
    connectionLimit: 0,
  };

  constructor(
    guestCid: bigint,
    private readonly send: (m: DeviceToHost) => void,
    /** called when a timer made packets for the guest (the device fills rx buffers) */
    private readonly kick: () => void,
    opts: MuxerOptions = {},
  ) {
    this.maxConnections = opts.maxConnections ?? 1024;
    this.maxPendingRst = opts.maxPendingRst ?? 256;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 2000;
    this.bufAlloc = opts.bufAlloc ?? VSOCK_BUF_ALLOC;
    this.hostWindow = opts.hostWindow ?? VSOCK_HOST_WINDOW;
    this.hdrView.setBigUint64(0, BigInt(VMADDR_CID_HOST), true); // src_cid
    this.hdrView.setBigUint64(8, guestCid, true); // dst_cid
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Bytes held for connections: host bytes waiting for the guest, guest bytes the host has not consumed. */
  bufferedBytes(): { toGuest: number; unconsumed: number } {
    let toGuest = 0;
    let unconsumed = 0;
    for (const c of this.conns.values()) {
      toGuest += c.toGuest.length;
      unconsumed += c.rxBytes;
    }
    return { toGuest, unconsumed };
  }

  get pendingRstCount(): number {
    return this.rsts.length - this.rstHead;
  }

  /** Tx processing must wait for rx buffers: the RST reply queue is full. */
  txBlocked(): boolean {
    return this.pendingRstCount >= this.maxPendingRst;
  }

  /** A packet is waiting for an rx buffer. */
  hasRx(): boolean {
    return this.rstHead < this.rsts.length || this.ready.size > 0;
  }

  connection(id: number): Connection | undefined {
    return this.conns.get(id);
  }

  // ---- guest packets ---------------------------------------------------------------------------------------

  /** Act on a tx packet that passed parseTxPacket(). */
  handleTx(pkt: TxPacket): void {
    const h = pkt.hdr;
    this.counters.txPackets++;
    const conn = this.lookup(h.dstPort, h.srcPort);
    if (conn === undefined) {
      if (h.op === VsockOp.REQUEST) this.guestConnect(h);
      else if (h.op !== VsockOp.RST) this.queueRst(h.dstPort, h.srcPort, h.type); // never answer RST with RST
      return;
    }
    conn.updatePeerCredit(h.bufAlloc, h.fwdCnt); // virtio_transport_space_update(): every header carries it
    switch (conn.state) {
      case 'accepting':
        if (h.op === VsockOp.RST) this.remove(conn, 'reset');
        else this.protocolError(conn);
        return;
      case 'connecting': // virtio_transport_recv_connecting()
        if (h.op === VsockOp.RESPONSE) {
          conn.state = 'established';
          this.send({ t: 'connected', id: conn.id, localPort: conn.hostPort });
        } else if (h.op === VsockOp.RST) {
          this.remove(conn, 'refused');
          return;
        } else {
          this.protocolError(conn);
          return;
        }
        break;
      case 'established':
        if (!this.onConnected(conn, h, pkt.payload)) return;
        break;
      case 'closing': // virtio_transport_recv_disconnecting(): only RST (or the guest's own full SHUTDOWN) matters
        if (h.op === VsockOp.RST) {
          this.remove(conn, 'closed');
          return;
        }
        if (h.op === VsockOp.SHUTDOWN && ((conn.peerShutdown | h.flags) & VSOCK_SHUTDOWN_BOTH) === VSOCK_SHUTDOWN_BOTH) {
          this.resetAndRemove(conn, 'closed');
          return;
        }
        if (h.op === VsockOp.RW) this.counters.guestBytesDropped += h.len;
        break;
    }
    this.schedule(conn);
  }

  /** virtio_transport_recv_connected(). Returns false when the connection is gone. */
  private onConnected(conn: Connection, h: VsockHeader, payload: Uint8Array[]): boolean {
    switch (h.op) {
      case VsockOp.RW: {
        if (h.len === 0) return true;
        if (!conn.fitsOurBuffer(h.len)) {
          // virtio_transport_recv_enqueue() failed: the guest sent past its credit; Linux resets too
          this.counters.creditExceeded++;
          this.resetAndRemove(conn, 'protocol');
          return false;
        }
        if (conn.closeRequested) {
          this.counters.guestBytesDropped += h.len; // the host is gone; nothing reads these
          return true;
        }
        const data = new Uint8Array(h.len);
        let o = 0;
        for (const v of payload) {
          data.set(v, o); // BOUNDS: views from ChainReader over checked descriptors
          o += v.length;
        }
        conn.rxBytes += h.len;
        this.counters.txBytes += h.len;
        this.send({ t: 'data', id: conn.id, data });
        return true;
      }
      case VsockOp.CREDIT_UPDATE:
        return true; // credit recorded; schedule() re-checks whether data can flow
      case VsockOp.CREDIT_REQUEST:
        conn.pending |= Pending.CREDIT_UPDATE;
        return true;
      case VsockOp.SHUTDOWN: {
        const fresh = h.flags & VSOCK_SHUTDOWN_BOTH & ~conn.peerShutdown;
        conn.peerShutdown |= fresh;
        if ((fresh & VSOCK_SHUTDOWN_SEND) !== 0) this.send({ t: 'eof', id: conn.id });
        if ((fresh & VSOCK_SHUTDOWN_RCV) !== 0) this.dropToGuest(conn);
        if (conn.peerShutdown === VSOCK_SHUTDOWN_BOTH) {
          // the guest closed its socket; answer with RST as the Linux host does when nothing is left to read
          this.resetAndRemove(conn, 'closed');
          return false;
        }
        return true;
      }
      case VsockOp.RST:
        this.remove(conn, 'reset');
        return false;
      default: // REQUEST or RESPONSE on an established connection
        this.protocolError(conn);
        return false;
    }
  }

  private guestConnect(h: VsockHeader): void {
    if (this.conns.size >= this.maxConnections) {
      this.counters.connectionLimit++;
      this.queueRst(h.dstPort, h.srcPort, h.type);
      return;
    }
    const id = this.nextDeviceId;
    this.nextDeviceId += 2;
    const conn = new Connection(id, h.dstPort, h.srcPort, 'accepting', this.bufAlloc);
    conn.updatePeerCredit(h.bufAlloc, h.fwdCnt);
    this.add(conn);
    this.send({ t: 'incoming', id, port: h.dstPort, peerPort: h.srcPort });
  }

  // ---- host messages ---------------------------------------------------------------------------------------

  handleHost(m: HostToDevice): void {
    if (m.t === 'connect') {
      this.hostConnect(m.id, m.port);
      return;
    }
    const conn = this.conns.get(m.id);
    if (conn === undefined) return; // already closed: a message that crossed our `closed`
    switch (m.t) {
      case 'accept':
        if (conn.state !== 'accepting') return;
        conn.state = 'established';
        conn.pending |= Pending.RESPONSE;
        break;
      case 'refuse':
        if (conn.state !== 'accepting') return;
        this.resetAndRemove(conn, 'refused');
        return;
      case 'data':
        if (conn.state !== 'established' || (conn.shutdownWanted & VSOCK_SHUTDOWN_SEND) !== 0 ||
          (conn.peerShutdown & VSOCK_SHUTDOWN_RCV) !== 0) {
          // nobody will read these (not connected, host half-closed, or the guest stopped reading)
          this.counters.hostBytesDropped += m.data.length;
          conn.unacked += m.data.length;
          this.queueAck(conn);
          return;
        }
        conn.toGuest.push(m.data);
        if (conn.toGuest.length > 2 * this.hostWindow) {
          this.resetAndRemove(conn, 'overrun'); // the host ignored its window
          return;
        }
        break;
      case 'consumed':
        if (!Number.isSafeInteger(m.n) || m.n <= 0) return;
        conn.consumed(m.n);
        if (conn.state === 'established' && conn.creditUpdateWorthwhile()) conn.pending |= Pending.CREDIT_UPDATE;
        break;
      case 'shutdown':
        conn.shutdownWanted |= VSOCK_SHUTDOWN_SEND;
        conn.pending |= Pending.SHUTDOWN;
        break;
      case 'close':
        if (m.abort || conn.state !== 'established') {
          this.resetAndRemove(conn, 'closed');
          return;
        }
        if (conn.closeRequested) return;
        conn.closeRequested = true;
        conn.shutdownWanted = VSOCK_SHUTDOWN_BOTH;
        conn.pending |= Pending.SHUTDOWN;
        this.armCloseTimer(conn);
        break;
    }
    this.schedule(conn);
  }

  private hostConnect(id: number, port: number): void {
    if (this.conns.has(id)) return; // duplicate id: a host bug; keep the existing connection
    if (!Number.isInteger(port) || port < 0 || port > 0xffff_ffff) {
      this.send({ t: 'closed', id, reason: 'refused' });
      return;
    }
    if (this.conns.size >= this.maxConnections) {
      this.counters.connectionLimit++;
      this.send({ t: 'closed', id, reason: 'limit' });
      return;
    }
    let hostPort = this.nextHostPort;
    while (this.lookup(hostPort, port) !== undefined) hostPort = hostPort >= 0xffff_fffe ? EPHEMERAL_BASE : hostPort + 1;
    this.nextHostPort = hostPort >= 0xffff_fffe ? EPHEMERAL_BASE : hostPort + 1;
    const conn = new Connection(id, hostPort, port, 'connecting', this.bufAlloc);
    conn.pending |= Pending.REQUEST;
    this.add(conn);
    this.schedule(conn);
  }

  // ---- rx: packets for the guest -------------------------------------------------------------------------

  /**
   * Write the next packet owed to the guest into an rx chain of at least VSOCK_HDR_SIZE writable bytes: the
   * header, then the payload copied straight from the host's chunks into guest memory (one copy).
   * Returns the bytes written, or 0 when nothing fits (the chain then goes back empty).
   */
  writeNext(w: ByteSink): number {
    const room = w.remaining - VSOCK_HDR_SIZE;
    if (room < 0) return 0;
    if (this.rstHead < this.rsts.length) {
      const r = this.rsts[this.rstHead]!;
      this.rstHead++;
      if (this.rstHead === this.rsts.length) {
        this.rsts = [];
        this.rstHead = 0;
      }
      this.counters.rstSent++;
      return this.emit(w, r.hostPort, r.guestPort, r.type, VsockOp.RST, 0, 0, 0, 0, undefined);
    }
    const conn = this.ready.first();
    if (conn === undefined) return 0;
    this.ready.delete(conn);
    let op: number;
    let flags = 0;
    let len = 0;
    if ((conn.pending & Pending.REQUEST) !== 0) {
      op = VsockOp.REQUEST;
      conn.pending &= ~Pending.REQUEST;
    } else if ((conn.pending & Pending.RESPONSE) !== 0) {
      op = VsockOp.RESPONSE;
      conn.pending &= ~Pending.RESPONSE;
    } else if (conn.canSendData() && room > 0) {
      op = VsockOp.RW;
      len = conn.nextDataLen(room);
      conn.sent(len);
      this.queueAck(conn);
      this.counters.rxBytes += len;
      conn.pending &= ~Pending.CREDIT_UPDATE; // this header carries the same credit info
    } else if ((conn.pending & Pending.CREDIT_UPDATE) !== 0) {
      op = VsockOp.CREDIT_UPDATE;
      conn.pending &= ~Pending.CREDIT_UPDATE;
    } else if (conn.shutdownReady()) {
      op = VsockOp.SHUTDOWN;
      flags = conn.shutdownWanted;
      conn.shutdownSent |= flags;
      conn.pending &= ~Pending.SHUTDOWN;
      if (conn.closeRequested) conn.state = 'closing';
    } else {
      this.schedule(conn); // only data is owed and it does not fit this buffer
      return 0;
    }
    conn.lastFwdCntSent = conn.fwdCnt;
    const n = this.emit(w, conn.hostPort, conn.guestPort, VSOCK_TYPE_STREAM, op, flags, conn.bufAlloc, conn.fwdCnt, len, conn);
    this.schedule(conn);
    return n;
  }

  /** Write a header (and, for RW, `len` bytes of `from`'s queued host data) into `w`. */
  private emit(
    w: ByteSink,
    hostPort: number,
    guestPort: number,
    type: number,
    op: number,
    flags: number,
    bufAlloc: number,
    fwdCnt: number,
    len: number,
    from: Connection | undefined,
  ): number {
    const v = this.hdrView; // src_cid and dst_cid: set in the constructor
    v.setUint32(16, hostPort, true);
    v.setUint32(20, guestPort, true);
    v.setUint32(24, len, true);
    v.setUint16(28, type, true);
    v.setUint16(30, op, true);
    v.setUint32(32, flags, true);
    v.setUint32(36, bufAlloc, true);
    v.setUint32(40, fwdCnt, true);
    const start = w.written;
    w.write(this.hdrBuf);
    if (from !== undefined && len > 0) from.toGuest.writeTo(w, len);
    this.counters.rxPackets++;
    return w.written - start;
  }

  /** Tell the host how many of its bytes reached the guest (one message per connection per batch). */
  flushAcks(): void {
    const q = this.toAck;
    if (q.length === 0) return;
    for (const c of q) {
      c.ackQueued = false;
      if (c.unacked > 0) this.send({ t: 'acked', id: c.id, n: c.unacked }); // 0 when removed meanwhile
      c.unacked = 0;
    }
    q.length = 0;
  }

  private queueAck(conn: Connection): void {
    if (conn.ackQueued) return;
    conn.ackQueued = true;
    this.toAck.push(conn);
  }

  // ---- lifecycle -------------------------------------------------------------------------------------------

  /** Driver reset or device broken: every connection ends; nothing more goes to the guest. */
  resetAll(reason: VsockCloseReason): void {
    for (const c of this.conns.values()) {
      if (c.timer !== undefined) clearTimeout(c.timer);
      c.live = false;
      this.counters.connectionsClosed++;
      this.send({ t: 'closed', id: c.id, reason });
    }
    this.conns.clear();
    this.ports.clear();
    this.ready.clear();
    for (const c of this.toAck) c.ackQueued = false;
    this.toAck.length = 0;
    this.rsts = [];
    this.rstHead = 0;
  }

  /** Refuse a host message that arrives while the device is not active. */
  refuseInactive(m: HostToDevice): void {
    if (m.t === 'connect') this.send({ t: 'closed', id: m.id, reason: 'inactive' });
  }

  private lookup(hostPort: number, guestPort: number): Connection | undefined {
    return this.ports.get(hostPort)?.get(guestPort);
  }

  private add(conn: Connection): void {
    conn.live = true;
    this.conns.set(conn.id, conn);
    let m = this.ports.get(conn.hostPort);
    if (m === undefined) {
      m = new Map();
      this.ports.set(conn.hostPort, m);
    }
    m.set(conn.guestPort, conn);
    this.counters.connectionsOpened++;
  }

  /** Forget a connection and tell the host why (no packet to the guest). */
  private remove(conn: Connection, reason: VsockCloseReason): void {
    if (conn.timer !== undefined) clearTimeout(conn.timer);
    conn.timer = undefined;
    conn.live = false;
    this.conns.delete(conn.id);
    const m = this.ports.get(conn.hostPort);
    if (m !== undefined) {
      m.delete(conn.guestPort);
      if (m.size === 0) this.ports.delete(conn.hostPort);
    }
    this.ready.delete(conn);
    if (conn.toGuest.length > 0) {
      this.counters.hostBytesDropped += conn.toGuest.length;
      conn.unacked += conn.toGuest.clear();
    }
    if (conn.unacked > 0) this.send({ t: 'acked', id: conn.id, n: conn.unacked });
    conn.unacked = 0; // flushAcks() skips it if it is still queued there
    this.counters.connectionsClosed++;
    this.send({ t: 'closed', id: conn.id, reason });
  }

  /** Send RST to the guest and forget the connection. */
  private resetAndRemove(conn: Connection, reason: VsockCloseReason): void {
    this.remove(conn, reason);
    this.queueRst(conn.hostPort, conn.guestPort, VSOCK_TYPE_STREAM);
  }

  private protocolError(conn: Connection): void {
    this.counters.protocolErrors++;
    this.resetAndRemove(conn, 'protocol');
  }

  /**
   * Queue a RST to the guest. Guest-provoked RSTs stall tx at maxPendingRst (see txBlocked()); a hard cap
   * of 4x that drops the excess (only host activity can get there).
   */
  queueRst(hostPort: number, guestPort: number, type: number): void {
    if (this.pendingRstCount >= 4 * this.maxPendingRst) {
      this.counters.rstDropped++;
      return;
    }
    this.rsts.push({ hostPort, guestPort, type });
  }

  private dropToGuest(conn: Connection): void {
    const n = conn.toGuest.clear();
    if (n > 0) {
      this.counters.hostBytesDropped += n;
      conn.unacked += n;
      this.queueAck(conn);
    }
  }

  /** Put the connection in (or out of) the rx round-robin according to what it owes the guest. */
  private schedule(conn: Connection): void {
    if (conn.live && conn.hasSendable()) this.ready.add(conn);
    else this.ready.delete(conn);
  }

  private armCloseTimer(conn: Connection): void {
    const t = setTimeout(() => {
      conn.timer = undefined;
      if (this.conns.get(conn.id) !== conn) return;
      this.resetAndRemove(conn, 'timeout');
      this.kick();
    }, this.closeTimeoutMs);
    t.unref();
    conn.timer = t;
  }
}

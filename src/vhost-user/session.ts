// One vhost-user connection's back-end state: negotiated features, the shared memory table, the vrings
// (size, base, user addresses, kick/call/err eventfds, enable bit) and the device they drive. The device is
// the same VirtioDevice as in the in-process VMM (DESIGN decision 5): only the transport differs. Where the
// MMIO transport activates a device at DRIVER_OK, here it is activated once every ring the front-end
// started (SET_VRING_KICK) is configured and enabled, and deactivated (device.reset(), the ring positions
// kept) when the front-end stops a ring (GET_VRING_BASE), reconfigures one or replaces the memory table.
// Activation, the guard around the device and its broken state are the transport-agnostic DeviceHost
// (src/virtio/device-host.ts), as on the MMIO path; this file keeps the message protocol, the memory table
// and the kick/call/err fds.
//
// handle() never throws: a malformed or refused message gets a REPLY_ACK failure when the front-end asked
// for one and negotiated REPLY_ACK (GET_CONFIG: a zero-length reply, as vhost-user.rst says), otherwise
// handle() returns false and the connection is closed. A malformed ring or chain makes the device broken
// (the ring's err eventfd is signalled; kicks are ignored until the front-end restarts the rings), exactly
// like DEVICE_NEEDS_RESET on the MMIO path. The process and other devices go on.
//
// Nothing the front end hands us may block this thread's event loop: the server sets O_NONBLOCK on every fd
// it receives, a full call/err eventfd (EAGAIN) means "a signal is already pending", and because the front
// end shares those fds' open file descriptions (it can clear O_NONBLOCK again), every read and write of them
// also runs under a short deadline (eventfdReadDeadline/eventfdWriteDeadline): an fd on which one slept
// past it is dropped, so it costs the loop at most FD_DEADLINE_MS once.

import { DeviceHost, type RingSetup } from '../virtio/device-host.js';
import { DeviceBroken, type VirtioDevice } from '../virtio/device.js';
import { VIRTIO_F_VERSION_1, VIRTIO_ID_VSOCK } from '../virtio/ids.js';
import { MAX_QUEUE_SIZE, ringBytes } from '../virtio/queue.js';
import {
  MalformedMessage,
  VhostUserProtocolError,
  decodeMessage,
  encodeConfig,
  encodeReply,
  encodeU64,
  encodeVringState,
  needsReply,
  type ConfigAccess,
  type RawMessage,
  type VhostUserMessage,
  type VringAddr,
  type VringFile,
} from './codec.js';
import { MemoryTable, type MapperIo } from './memory-table.js';
import {
  SUPPORTED_PROTOCOL_FEATURES,
  VHOST_F_LOG_ALL,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_VRING_F_LOG,
  VhostUserProtocolFeature,
  VhostUserRequest,
  protocolBit,
  requestName,
} from './protocol.js';

/** The front-end asked for something this back-end refuses (the message was well-formed). */
export class RequestRefused extends VhostUserProtocolError {}
export class RingIndexOutOfRange extends RequestRefused {}
export class NoMemoryTable extends RequestRefused {}
export class FeatureNotOffered extends RequestRefused {}
export class UnsupportedRequest extends RequestRefused {}
export class InvalidRingSetting extends RequestRefused {}

/** What the session needs from the addon (src/kvm/native.ts), injected for tests. */
export interface SessionIo extends MapperIo {
  eventfdReadDeadline(fd: number, signo: number, ms: number): bigint | null;
  eventfdWriteDeadline(fd: number, value: bigint, signo: number, ms: number): boolean;
  installKickHandler(signo: number): void;
  sigrtmin(): number;
  watchReadable(fd: number, cb: () => void): number;
  unwatch(id: number): void;
}

/**
 * The signal (SIGRTMIN + 3) that cuts short a read or write of a front-end fd still asleep after
 * FD_DEADLINE_MS: a no-op handler without SA_RESTART (the vCPU kick handler, DESIGN decision 4; the
 * in-process VMM kicks with SIGRTMIN + 2), sent by the addon's watchdog thread (native/fd_guard.cc). Only a
 * call that sleeps is interrupted, and with O_NONBLOCK set none does unless the front end cleared it (kick
 * reads never sleep: RWF_NOWAIT): a deadline this short costs an honest front end nothing, and a call that
 * does not sleep costs next to nothing more than the plain syscall.
 */
export const FD_DEADLINE_SIGNAL_OFFSET = 3;
export const FD_DEADLINE_MS = 1;

export type VhostLog = (level: 'info' | 'warn' | 'error', msg: string) => void;

/** How many rings the front-end drives for a device, and how many must run before it can be activated. */
export interface RingProfile {
  queues: number;
  minQueues: number;
}

/**
 * vhost-user ring counts. virtio-vsock: QEMU's vhost-user-vsock keeps the event queue (2) in the
 * front-end (hw/virtio/vhost-vsock-common.c: two vhost virtqueues, rx and tx), so the back-end gets two.
 */
export function ringProfile(device: VirtioDevice): RingProfile {
  if (device.deviceType === VIRTIO_ID_VSOCK) return { queues: 2, minQueues: 2 };
  return { queues: device.queueMaxSizes.length, minQueues: 1 };
}

interface Ring {
  /** SET_VRING_NUM (0 = not set) */
  num: number;
  /** next avail index (SET_VRING_BASE; updated when the device is deactivated) */
  base: number;
  /** SET_VRING_ADDR, front-end user addresses */
  addr: VringAddr | undefined;
  kickFd: number | undefined;
  kickWatch: number | undefined;
  callFd: number | undefined;
  errFd: number | undefined;
  enabled: boolean;
  /** an interrupt was due while the ring had no call fd: sent when SET_VRING_CALL gives one */
  callPending: boolean;
  /** started by SET_VRING_KICK, stopped by GET_VRING_BASE (vhost-user.rst "Ring states") */
  started: boolean;
}

function freshRing(): Ring {
  return { num: 0, base: 0, addr: undefined, kickFd: undefined, kickWatch: undefined, callFd: undefined, errFd: undefined, enabled: false, callPending: false, started: false };
}

export interface SessionCounters {
  messages: number;
  failures: number;
  kicks: number;
  calls: number;
  activations: number;
  deactivations: number;
  broken: number;
  bugs: number;
  configSignalsDropped: number;
  /** call/err eventfd writes that found the counter full (the front end had a signal pending) */
  signalsPending: number;
  /** call/err/kick fds dropped because a read or write on them slept past the deadline or failed */
  fdsDropped: number;
}

export class VhostUserSession {
  private owner = false;
  private features: bigint | undefined;
  private protocolFeatures = 0n;
  private memory: MemoryTable | undefined;
  private readonly rings: Ring[];
  /** the device, its activation, guard and broken state */
  private readonly host: DeviceHost;
  private closed = false;
  /** fds of the message being handled that a handler took ownership of */
  private taken = new Set<number>();
  readonly profile: RingProfile;
  /** the session's own counts; activations, broken and device bugs are the DeviceHost's */
  private readonly tally = { messages: 0, failures: 0, kicks: 0, calls: 0, deactivations: 0, bugs: 0, configSignalsDropped: 0, signalsPending: 0, fdsDropped: 0 };
  /** FD_DEADLINE_SIGNAL_OFFSET above this libc's SIGRTMIN */
  private readonly deadlineSignal: number;
  /** message counts by request name */
  readonly byRequest = new Map<string, number>();
  /** why the last message failed or the device went broken (tests, logs) */
  lastError: Error | undefined;

  constructor(
    readonly device: VirtioDevice,
    private readonly io: SessionIo,
    private readonly send: (bytes: Uint8Array) => void,
    private readonly log: VhostLog = () => undefined,
  ) {
    this.profile = ringProfile(device);
    this.deadlineSignal = io.sigrtmin() + FD_DEADLINE_SIGNAL_OFFSET;
    io.installKickHandler(this.deadlineSignal); // process-wide handler, unblocked on this (the serving) thread
    this.rings = Array.from({ length: this.profile.queues }, freshRing);
    this.host = new DeviceHost(device, {
      interrupt: {
        signalUsed: (q) => this.signalUsed(q),
        // a config change needs the back-end request channel (BACKEND_REQ), which we do not offer
        signalConfig: () => void this.tally.configSignalsDropped++,
      },
      onBroken: (err) => this.onBroken(err),
      log,
      logPrefix: 'vhost-user device',
      brokenMeans: 'rings stopped until the front-end restarts them',
    });
  }

  /** Session and device-host counters, in one flat record (bugs: refused messages and device bugs). */
  get counters(): SessionCounters {
    const h = this.host.counters;
    const t = this.tally;
    return {
      messages: t.messages,
      failures: t.failures,
      kicks: t.kicks,
      calls: t.calls,
      activations: h.activations,
      deactivations: t.deactivations,
      broken: h.broken,
      bugs: t.bugs + h.bugs,
      configSignalsDropped: t.configSignalsDropped,
      signalsPending: t.signalsPending,
      fdsDropped: t.fdsDropped,
    };
  }

  /** Feature bits offered by GET_FEATURES. */
  get offeredFeatures(): bigint {
    return this.device.availableFeatures | VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES;
  }

  get isActive(): boolean {
    return this.host.isActive;
  }

  get isBroken(): boolean {
    return this.host.isBroken;
  }

  /** Ring state for tests: [started, enabled, base]. */
  ringState(i: number): { started: boolean; enabled: boolean; base: number; num: number } | undefined {
    const r = this.rings[i];
    return r && { started: r.started, enabled: r.enabled, base: r.base, num: r.num };
  }

  /** Handle one message; false means "close the connection". Never throws. */
  handle(raw: RawMessage): boolean {
    if (this.closed) {
      for (const fd of raw.fds) this.io.close(fd);
      return false;
    }
    this.tally.messages++;
    const name = requestName(raw.request);
    this.byRequest.set(name, (this.byRequest.get(name) ?? 0) + 1);
    this.taken = new Set();
    try {
      const msg = decodeMessage(raw);
      const reply = this.dispatch(msg);
      if (reply !== undefined) this.send(encodeReply(raw.request, reply));
      else if (needsReply(raw) && this.replyAck) this.send(encodeReply(raw.request, encodeU64(0n)));
      return true;
    } catch (e) {
      for (const fd of raw.fds) if (!this.taken.has(fd)) this.io.close(fd);
      return this.fail(raw, e);
    }
  }

  /** The connection is gone: stop the device, close every fd, unmap the memory. */
  close(): void {
    if (this.closed) return;
    this.deactivate();
    for (const r of this.rings) this.dropRingFds(r);
    this.memory?.unmap();
    this.memory = undefined;
    this.closed = true;
  }

  metrics(): Record<string, number> {
    const m: Record<string, number> = { ...this.counters, active: this.host.isActive ? 1 : 0, brokenNow: this.host.isBroken ? 1 : 0 };
    for (const [k, v] of this.byRequest) m[`msg.${k}`] = v;
    return m;
  }

  private get replyAck(): boolean {
    return (this.protocolFeatures & protocolBit(VhostUserProtocolFeature.REPLY_ACK)) !== 0n;
  }

  private fail(raw: RawMessage, e: unknown): boolean {
    const err = e instanceof Error ? e : new Error(String(e));
    this.tally.failures++;
    this.lastError = err;
    const known = err instanceof VhostUserProtocolError || err.name === 'InvalidMemoryTable' || err.name === 'UntranslatableAddress';
    if (!known) this.tally.bugs++;
    this.log(known ? 'warn' : 'error', `vhost-user ${requestName(raw.request)} refused: ${err.name}: ${err.message}`);
    try {
      if (raw.request === VhostUserRequest.GET_CONFIG) {
        // vhost-user.rst GET_CONFIG: "uses zero length of payload to indicate an error"
        this.send(encodeReply(raw.request, new Uint8Array(0)));
        return true;
      }
      if (needsReply(raw) && this.replyAck && !hasOwnReply(raw.request)) {
        this.send(encodeReply(raw.request, encodeU64(1n)));
        return true;
      }
    } catch {
      return false;
    }
    return false;
  }

  private take(fd: number | undefined): void {
    if (fd !== undefined) this.taken.add(fd);
  }

  private ring(index: number): Ring {
    const r = this.rings[index];
    if (r === undefined) throw new RingIndexOutOfRange(`ring ${index} does not exist: this device has ${this.rings.length}`);
    return r;
  }

  /** CONFIG only for a device that has a configuration space (QEMU warns about it for rng otherwise). */
  private get offeredProtocolFeatures(): bigint {
    if (this.device.configSpace().length > 0) return SUPPORTED_PROTOCOL_FEATURES;
    return SUPPORTED_PROTOCOL_FEATURES & ~protocolBit(VhostUserProtocolFeature.CONFIG);
  }

  /** Returns the reply payload for messages that have one. */
  private dispatch(m: VhostUserMessage): Uint8Array | undefined {
    switch (m.t) {
      case 'GET_FEATURES':
        return encodeU64(this.offeredFeatures);
      case 'SET_FEATURES':
        return this.setFeatures(m.features);
      case 'GET_PROTOCOL_FEATURES':
        return encodeU64(this.offeredProtocolFeatures);
      case 'SET_PROTOCOL_FEATURES':
        if ((m.features & ~this.offeredProtocolFeatures) !== 0n) {
          throw new FeatureNotOffered(`protocol features 0x${(m.features & ~this.offeredProtocolFeatures).toString(16)} were not offered`);
        }
        this.protocolFeatures = m.features;
        return undefined;
      case 'SET_OWNER':
        // the kernel's VHOST_SET_OWNER answers EBUSY to a second owner
        if (this.owner) throw new RequestRefused('SET_OWNER: this session already has an owner');
        this.owner = true;
        return undefined;
      case 'RESET_OWNER':
        // deprecated: "back-ends either ignore this message, or use it to disable all rings"
        this.deactivate();
        for (const r of this.rings) r.enabled = false;
        return undefined;
      case 'RESET_DEVICE':
        this.requireProtocol(VhostUserProtocolFeature.RESET_DEVICE, 'RESET_DEVICE');
        this.deactivate();
        for (let i = 0; i < this.rings.length; i++) {
          this.dropRingFds(this.rings[i]!);
          this.rings[i] = freshRing();
        }
        this.features = undefined;
        this.host.recover();
        return undefined;
      case 'GET_QUEUE_NUM':
        return encodeU64(BigInt(this.profile.queues));
      case 'SET_MEM_TABLE':
        return this.setMemTable(m.regions, m.fds);
      case 'SET_VRING_NUM':
        return this.setVringNum(m.index, m.num);
      case 'SET_VRING_BASE': {
        const r = this.ring(m.index);
        // split rings only (VIRTIO_F_RING_PACKED is never offered): the base is a u16 avail index
        if (m.num > 0xffff) throw new InvalidRingSetting(`ring ${m.index}: base ${m.num} is not a 16-bit avail index`);
        this.reconfigure();
        r.base = m.num;
        return undefined;
      }
      case 'GET_VRING_BASE': {
        const r = this.ring(m.index);
        this.deactivate(); // keeps every running ring's position in ring.base
        r.started = false;
        this.dropRingFds(r);
        this.host.recover();
        this.reconcile();
        return encodeVringState(m.index, r.base);
      }
      case 'SET_VRING_ENABLE': {
        const r = this.ring(m.index);
        if (m.num > 1) throw new InvalidRingSetting(`ring ${m.index}: enable must be 0 or 1, not ${m.num}`);
        r.enabled = m.num === 1;
        this.reconcile();
        return undefined;
      }
      case 'SET_VRING_ADDR':
        return this.setVringAddr(m.addr);
      case 'SET_VRING_KICK':
        return this.setVringKick(m.file);
      case 'SET_VRING_CALL': {
        const r = this.ring(m.file.index);
        this.take(m.file.fd);
        if (r.callFd !== undefined) this.io.close(r.callFd);
        r.callFd = m.file.fd; // undefined: the front-end polls the used ring
        // QEMU sends CALL after KICK: a ring that started in between may already owe an interrupt
        if (r.callPending && r.callFd !== undefined) this.signalUsed(m.file.index);
        return undefined;
      }
      case 'SET_VRING_ERR': {
        const r = this.ring(m.file.index);
        this.take(m.file.fd);
        if (r.errFd !== undefined) this.io.close(r.errFd);
        r.errFd = m.file.fd;
        return undefined;
      }
      case 'GET_CONFIG':
        return this.getConfig(m.access);
      case 'SET_CONFIG':
        this.requireProtocol(VhostUserProtocolFeature.CONFIG, 'SET_CONFIG');
    this.host.guard('config write', () => this.device.writeConfig(m.access.offset, m.access.data));
        return undefined;
      case 'unsupported':
        throw new UnsupportedRequest(`${m.name} is not supported by this back-end (offered protocol features: MQ, REPLY_ACK, CONFIG, RESET_DEVICE)`);
    }
  }

  private requireProtocol(bit: number, what: string): void {
    if ((this.protocolFeatures & protocolBit(bit)) === 0n) {
      throw new RequestRefused(`${what} needs protocol feature ${bit}, which the front-end did not negotiate`);
    }
  }

  private setFeatures(f: bigint): undefined {
    const extra = f & ~this.offeredFeatures;
    if (extra !== 0n) throw new FeatureNotOffered(`feature bits 0x${extra.toString(16)} were not offered (GET_FEATURES)`);
    if (this.features !== undefined && this.features !== f) this.reconfigure();
    this.features = f;
    // vhost-user.rst "Ring states": without VHOST_USER_F_PROTOCOL_FEATURES rings start enabled
    if ((f & VHOST_USER_F_PROTOCOL_FEATURES) === 0n) for (const r of this.rings) r.enabled = true;
    this.reconcile();
    return undefined;
  }

  private setMemTable(regions: Parameters<typeof MemoryTable.map>[0], fds: number[]): undefined {
    for (const fd of fds) this.take(fd); // MemoryTable.map closes them in every case
    const table = MemoryTable.map(regions, fds, this.io);
    this.deactivate();
    this.memory?.unmap();
    this.memory = table;
    this.host.recover();
    this.reconcile();
    return undefined;
  }

  private setVringNum(index: number, num: number): undefined {
    const r = this.ring(index);
    // The front-end, not this device, reports QueueNumMax to the guest (QEMU's vhost-user-blk: queue-size,
    // 128..1024), so any ring size virtio allows is accepted: virtio 1.2 §2.7, a power of two <= 32768.
    const max = MAX_QUEUE_SIZE;
    if (num === 0 || (num & (num - 1)) !== 0 || num > max) {
      throw new InvalidRingSetting(`ring ${index}: size ${num} is not a power of two in [1, ${max}]`);
    }
    this.reconfigure();
    r.num = num;
    this.reconcile();
    return undefined;
  }

  private setVringAddr(a: VringAddr): undefined {
    const r = this.ring(a.index);
    if ((a.flags & ~VHOST_VRING_F_LOG) !== 0) throw new InvalidRingSetting(`ring ${a.index}: unknown address flags 0x${a.flags.toString(16)}`);
    if ((a.flags & VHOST_VRING_F_LOG) !== 0) throw new InvalidRingSetting(`ring ${a.index}: used-ring logging needs VHOST_F_LOG_ALL, never offered`);
    if (this.memory === undefined) throw new NoMemoryTable(`ring ${a.index}: SET_VRING_ADDR before SET_MEM_TABLE: user addresses cannot be translated`);
    this.translateRing(a, r.num || 1); // UntranslatableAddress
    this.reconfigure();
    r.addr = a;
    this.reconcile();
    return undefined;
  }

  private setVringKick(f: VringFile): undefined {
    const r = this.ring(f.index);
    if (f.fd === undefined) throw new InvalidRingSetting(`ring ${f.index}: polling (no kick fd) is not supported`);
    const fd = f.fd;
    const index = f.index;
    let watch: number;
    try {
      watch = this.io.watchReadable(fd, () => this.onKick(index, fd));
    } catch (e) {
      throw new InvalidRingSetting(`ring ${index}: the kick fd cannot be watched (${(e as Error).message}): pass an eventfd`);
    }
    this.take(fd);
    this.reconfigure();
    if (r.kickWatch !== undefined) this.io.unwatch(r.kickWatch);
    if (r.kickFd !== undefined) this.io.close(r.kickFd);
    r.kickFd = fd;
    r.kickWatch = watch;
    r.started = true;
    this.reconcile();
    return undefined;
  }

  private getConfig(a: ConfigAccess): Uint8Array {
    this.requireProtocol(VhostUserProtocolFeature.CONFIG, 'GET_CONFIG');
    const cfg = this.device.configSpace();
    const out = new Uint8Array(a.size); // bytes past the device's config space read as zero
    if (a.offset < cfg.byteLength) out.set(cfg.subarray(a.offset, Math.min(cfg.byteLength, a.offset + a.size)));
    return encodeConfig(a.offset, a.flags, out);
  }

  private translateRing(a: VringAddr, num: number): { desc: number; avail: number; used: number } {
    const m = this.memory!;
    const b = ringBytes(num);
    return {
      desc: m.translate(a.desc, b.desc, `ring ${a.index} descriptor table`),
      avail: m.translate(a.avail, b.avail, `ring ${a.index} available ring`),
      used: m.translate(a.used, b.used, `ring ${a.index} used ring`),
    };
  }

  // ------------------------------------------------------------------------------------------------------
  // Device activation

  /** A ring setting changes: a running device stops first (positions kept), and a broken one may retry. */
  private reconfigure(): void {
    this.deactivate();
    this.host.recover();
  }

  /** Activate the device when the started rings are 0..k-1, all configured and enabled. */
  private reconcile(): void {
    if (this.host.isActive || this.host.isBroken || this.memory === undefined) return;
    let k = 0;
    while (k < this.rings.length && this.rings[k]!.started) k++;
    if (k < this.profile.minQueues) return;
    for (let i = k; i < this.rings.length; i++) if (this.rings[i]!.started) return; // a gap: wait
    for (let i = 0; i < k; i++) {
      const r = this.rings[i]!;
      if (!r.enabled || r.num === 0 || r.addr === undefined) return;
    }
    this.activate(k);
  }

  private activate(k: number): void {
    const mem = this.memory!.mem;
    this.host.activate(() => {
      const rings: RingSetup[] = [];
      for (let i = 0; i < k; i++) {
        const r = this.rings[i]!;
        let layout;
        try {
          layout = this.translateRing(r.addr!, r.num);
        } catch (e) {
          throw new DeviceBroken((e as Error).message);
        }
        const usedIdx = mem.isValidRange(layout.used + 2, 2) ? mem.readU16(layout.used + 2) : 0;
        rings.push({
          layout: { size: r.num, descTable: layout.desc, availRing: layout.avail, usedRing: layout.used },
          maxSize: MAX_QUEUE_SIZE,
          // vhost: the avail position comes from SET_VRING_BASE, the used index from the ring itself
          start: { nextAvail: r.base, nextUsed: usedIdx },
        });
      }
      return { mem, ackedFeatures: (this.features ?? 0n) & ~(VHOST_USER_F_PROTOCOL_FEATURES | VHOST_F_LOG_ALL), rings };
    });
  }

  /** Stop the device (if running), remembering each ring's next avail index for GET_VRING_BASE. */
  private deactivate(): void {
    const queues = this.host.deactivate();
    if (queues === undefined) return;
    queues.forEach((q, i) => {
      this.rings[i]!.base = q.nextAvail;
    });
    this.tally.deactivations++;
  }

  private onKick(index: number, fd: number): void {
    try {
      // null: the front end read the counter first (it shares the eventfd); a kick all the same
      this.io.eventfdReadDeadline(fd, this.deadlineSignal, FD_DEADLINE_MS);
    } catch (e) {
      // not an eventfd, it broke, or a read on it slept past the deadline: stop watching it rather than
      // spin on a readable fd or block again
      const r = this.rings[index]!;
      this.log('warn', `vhost-user: ring ${index} kick fd unreadable (${(e as Error).message}): ring stopped`);
      if (r.kickFd === fd) {
        this.tally.fdsDropped++;
        this.dropKick(r);
        r.started = false;
      }
      return;
    }
    this.tally.kicks++;
    this.host.process(index, `ring ${index}`);
  }

  private signalUsed(q: number): void {
    const r = this.rings[q];
    if (r === undefined) return;
    const fd = r.callFd;
    if (fd === undefined) {
      r.callPending = true;
      return;
    }
    r.callPending = false;
    this.tally.calls++;
    if (!this.signal(fd, `ring ${q} call fd`)) {
      // dropped: the interrupt waits for the next SET_VRING_CALL, as when there was no call fd
      this.io.close(fd);
      r.callFd = undefined;
      r.callPending = true;
    }
  }

  /** The device went broken: tell the front-end through each ring's error eventfd (SET_VRING_ERR). */
  private onBroken(err: Error): void {
    this.lastError = err;
    for (const r of this.rings) {
      if (r.errFd === undefined) continue;
      if (!this.signal(r.errFd, 'err fd')) {
        this.io.close(r.errFd);
        r.errFd = undefined;
      }
    }
  }

  /**
   * Add 1 to a front-end eventfd without ever waiting: a full counter (EAGAIN) already holds a pending
   * signal. False when the fd must be dropped (the write failed, or slept past the deadline because the
   * front end cleared O_NONBLOCK on the description it shares with us).
   */
  private signal(fd: number, what: string): boolean {
    try {
      if (!this.io.eventfdWriteDeadline(fd, 1n, this.deadlineSignal, FD_DEADLINE_MS)) this.tally.signalsPending++;
      return true;
    } catch (e) {
      this.tally.fdsDropped++;
      this.log('warn', `vhost-user: ${what} write failed (${(e as Error).message}): fd dropped`);
      return false;
    }
  }

  private dropKick(r: Ring): void {
    if (r.kickWatch !== undefined) this.io.unwatch(r.kickWatch);
    if (r.kickFd !== undefined) this.io.close(r.kickFd);
    r.kickWatch = undefined;
    r.kickFd = undefined;
  }

  private dropRingFds(r: Ring): void {
    this.dropKick(r);
    if (r.callFd !== undefined) this.io.close(r.callFd);
    if (r.errFd !== undefined) this.io.close(r.errFd);
    r.callFd = undefined;
    r.errFd = undefined;
  }
}

function hasOwnReply(request: number): boolean {
  return (
    request === VhostUserRequest.GET_FEATURES ||
    request === VhostUserRequest.GET_PROTOCOL_FEATURES ||
    request === VhostUserRequest.GET_QUEUE_NUM ||
    request === VhostUserRequest.GET_VRING_BASE ||
    request === VhostUserRequest.GET_CONFIG
  );
}

export { MalformedMessage };

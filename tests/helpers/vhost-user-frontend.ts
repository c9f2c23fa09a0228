// A scripted vhost-user front-end for tests: it sends messages (with fds) over a real unix socket, reads
// replies, and owns guest RAM in a memfd that it shares with the back-end through SET_MEM_TABLE, like QEMU
// with memory-backend-memfd,share=on. The rings are laid out by the shared MockSplitQueue. Like QEMU's
// default (seal=on) the memfd allows sealing; `memfd: 'unsealable'` makes one without MFD_ALLOW_SEALING
// (its seals are F_SEAL_SEAL alone: the back-end cannot stop the front end from shrinking it).

import { ftruncateSync } from 'node:fs';
import type { NativeAddon } from '../../src/kvm/native.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { MockSplitQueue } from '../support/virtio/mock-driver.js';
import {
  decodeHeader,
  encodeMemTable,
  encodeMessage,
  encodeU64,
  encodeVringAddr,
  encodeVringFile,
  encodeVringState,
  type RawMessage,
} from '../../src/vhost-user/codec.js';
import {
  SUPPORTED_PROTOCOL_FEATURES,
  VHOST_USER_HDR_SIZE,
  VHOST_USER_NEED_REPLY_MASK,
  VHOST_USER_VERSION,
  VhostUserRequest as R,
} from '../../src/vhost-user/protocol.js';

export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
/** memfd_create(2) */
export const MFD_ALLOW_SEALING = 2;
/** fcntl(2) File Sealing */
export const F_SEAL_SEAL = 1;
export const F_SEAL_SHRINK = 2;
export const F_SEAL_GROW = 4;
/** Where the front-end pretends guest RAM lives in its own address space. */
export const UVA_BASE = 0x7f00_0000_0000n;

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

export class ScriptedFrontEnd {
  readonly memfd: number;
  readonly mem: GuestMemory;
  private readonly mapAddr: bigint;
  private rx = new Uint8Array(0);
  private rxFds: number[] = [];
  eof = false;

  constructor(
    readonly native: NativeAddon,
    readonly fd: number,
    readonly memSize = 1 << 20,
    opts: { memfd?: 'sealable' | 'unsealable'; seals?: number } = {},
  ) {
    this.memfd = opts.memfd === 'unsealable' ? native.memfdCreate('vhost-user-test-ram') : native.memfdCreate('vhost-user-test-ram', MFD_ALLOW_SEALING);
    ftruncateSync(this.memfd, memSize);
    if (opts.seals !== undefined) native.fdAddSeals(this.memfd, opts.seals);
    const m = native.mmapFd(this.memfd, memSize, 3, 1, 0);
    this.mapAddr = m.addr;
    this.mem = new GuestMemory([{ base: 0, size: memSize, buffer: m.buffer }]);
  }

  /** Send one message; `needReply` sets flag bit 3. */
  send(request: number, payload?: Uint8Array, fds: number[] = [], opts: { needReply?: boolean; flags?: number } = {}): void {
    const flags = opts.flags ?? VHOST_USER_VERSION | (opts.needReply ? VHOST_USER_NEED_REPLY_MASK : 0);
    this.sendRaw(encodeMessage(request, flags, payload), fds);
  }

  sendRaw(bytes: Uint8Array, fds: number[] = []): void {
    const n = this.native.sendmsgFds(this.fd, bytes, fds);
    if (n !== bytes.byteLength) throw new Error(`front-end send: ${String(n)} of ${bytes.byteLength} bytes`);
  }

  /** Wait (bounded) for one reply, or undefined if the back-end closed the connection. */
  async reply(maxTicks = 2000): Promise<RawMessage | undefined> {
    for (let i = 0; i < maxTicks; i++) {
      const m = this.takeMessage();
      if (m !== undefined) return m;
      if (this.eof) return undefined;
      const buf = new Uint8Array(4096);
      const r = this.native.recvmsgFds(this.fd, buf, 8);
      if (r === null) {
        await tick();
        continue;
      }
      if (r.bytes === 0) {
        this.eof = true;
        continue;
      }
      const next = new Uint8Array(this.rx.byteLength + r.bytes);
      next.set(this.rx);
      next.set(buf.subarray(0, r.bytes), this.rx.byteLength);
      this.rx = next;
      this.rxFds.push(...r.fds);
    }
    throw new Error('no reply from the back-end within the tick budget');
  }

  /** Wait until the back-end closes the connection (true) or the budget runs out (false). */
  async closedByPeer(maxTicks = 2000): Promise<boolean> {
    for (let i = 0; i < maxTicks && !this.eof; i++) {
      const buf = new Uint8Array(4096);
      let r;
      try {
        r = this.native.recvmsgFds(this.fd, buf, 8);
      } catch {
        this.eof = true;
        break;
      }
      if (r === null) await tick();
      else if (r.bytes === 0) this.eof = true;
    }
    return this.eof;
  }

  /** Send and wait for the reply (messages with their own reply, or any message with need_reply). */
  async call(request: number, payload?: Uint8Array, fds: number[] = []): Promise<RawMessage | undefined> {
    this.send(request, payload, fds, { needReply: true });
    return this.reply();
  }

  /** Send with need_reply and return the REPLY_ACK status (0 = success), or undefined if closed. */
  async ack(request: number, payload?: Uint8Array, fds: number[] = []): Promise<bigint | undefined> {
    const r = await this.call(request, payload, fds);
    if (r === undefined) return undefined;
    if (r.payload.byteLength !== 8) throw new Error(`ack of request ${request} has ${r.payload.byteLength} bytes`);
    return u64Of(r.payload);
  }

  private takeMessage(): RawMessage | undefined {
    if (this.rx.byteLength < VHOST_USER_HDR_SIZE) return undefined;
    const h = decodeHeader(this.rx.subarray(0, VHOST_USER_HDR_SIZE));
    if (this.rx.byteLength < VHOST_USER_HDR_SIZE + h.size) return undefined;
    const payload = this.rx.slice(VHOST_USER_HDR_SIZE, VHOST_USER_HDR_SIZE + h.size);
    this.rx = this.rx.slice(VHOST_USER_HDR_SIZE + h.size);
    const fds = this.rxFds;
    this.rxFds = [];
    return { ...h, payload, fds };
  }

  /** QEMU's handshake: features, protocol features (REPLY_ACK, MQ, CONFIG), owner, memory table. */
  async handshake(
    opts: { protocolFeatures?: bigint; features?: bigint; memTable?: boolean } = {},
  ): Promise<{ features: bigint; queueNum: number; protocolFeatures: bigint }> {
    const f = await this.call(R.GET_FEATURES);
    const offered = u64Of(f!.payload);
    const pf = await this.call(R.GET_PROTOCOL_FEATURES);
    const offeredPf = u64Of(pf!.payload);
    if ((offeredPf & ~SUPPORTED_PROTOCOL_FEATURES) !== 0n) throw new Error('unexpected protocol features');
    this.send(R.SET_PROTOCOL_FEATURES, encodeU64((opts.protocolFeatures ?? SUPPORTED_PROTOCOL_FEATURES) & offeredPf));
    const qn = await this.call(R.GET_QUEUE_NUM);
    await this.ack(R.SET_OWNER);
    const want = opts.features ?? offered;
    const st = await this.ack(R.SET_FEATURES, encodeU64(want));
    if (st !== 0n) throw new Error('SET_FEATURES refused');
    const result = { features: offered, queueNum: Number(u64Of(qn!.payload)), protocolFeatures: offeredPf };
    if (opts.memTable === false) return result;
    const mt = await this.setMemTable();
    if (mt !== 0n) throw new Error('SET_MEM_TABLE refused');
    return result;
  }

  /** SET_MEM_TABLE of the whole memfd at guest address 0, with need_reply: the REPLY_ACK status. */
  async setMemTable(fd = this.memfd): Promise<bigint | undefined> {
    return this.ack(
      R.SET_MEM_TABLE,
      encodeMemTable([{ guestPhysAddr: 0n, memorySize: BigInt(this.memSize), userspaceAddr: UVA_BASE, mmapOffset: 0n }]),
      [fd],
    );
  }

  /** Configure and start ring `index` laid out by `q` (NUM, BASE, ADDR, KICK, CALL, ERR, ENABLE). */
  async startRing(index: number, q: MockSplitQueue, base = 0): Promise<{ kick: number; call: number; err: number }> {
    const kick = this.native.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const call = this.native.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const err = this.native.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const l = q.layout();
    const steps: Array<[number, Uint8Array, number[]]> = [
      [R.SET_VRING_NUM, encodeVringState(index, l.size), []],
      [R.SET_VRING_BASE, encodeVringState(index, base), []],
      [
        R.SET_VRING_ADDR,
        encodeVringAddr({ index, flags: 0, desc: UVA_BASE + BigInt(l.descTable), used: UVA_BASE + BigInt(l.usedRing), avail: UVA_BASE + BigInt(l.availRing), log: 0n }),
        [],
      ],
      [R.SET_VRING_KICK, encodeVringFile(index, false), [kick]],
      [R.SET_VRING_CALL, encodeVringFile(index, false), [call]],
      [R.SET_VRING_ERR, encodeVringFile(index, false), [err]],
    ];
    for (const [req, payload, fds] of steps) {
      const st = await this.ack(req, payload, fds);
      if (st !== 0n) throw new Error(`ring ${index}: request ${req} refused`);
    }
    return { kick, call, err };
  }

  async enableRing(index: number, on = true): Promise<bigint | undefined> {
    return this.ack(R.SET_VRING_ENABLE, encodeVringState(index, on ? 1 : 0));
  }

  /** Wait (bounded) for an eventfd to be signalled; returns its count (0 if the budget ran out). */
  async waitEventfd(fd: number, maxTicks = 2000): Promise<bigint> {
    for (let i = 0; i < maxTicks; i++) {
      const v = this.native.eventfdRead(fd);
      if (v !== null) return v;
      await tick();
    }
    return 0n;
  }

  dispose(): void {
    this.native.close(this.fd);
    this.native.close(this.memfd);
    this.native.munmap(this.mapAddr);
    for (const fd of this.rxFds) this.native.close(fd);
  }
}

export function u64Of(b: Uint8Array): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, true);
}

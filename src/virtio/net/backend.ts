// Host side of virtio-net: a NetBackend moves whole frames, each prefixed by the 12-byte virtio_net_hdr_v1,
// between guest-memory views and the host. TapBackend is a Linux tap (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, vnet
// header size 12, non-blocking); PairBackend is an in-memory fake whose two ends exchange frames.

import type { NativeAddon } from '../../kvm/native.js';
import { loadNative } from '../../kvm/native.js';
import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO, VIRTIO_NET_HDR_LEN } from './features.js';

/** -EAGAIN, as readv/writev report "nothing now" (asm-generic/errno-base.h: EAGAIN 11). */
export const EAGAIN = -11;

export interface NetBackend {
  /** Read one frame (header + frame) into the views; bytes read (a frame longer than the views is truncated),
   * or a negative errno: -EAGAIN when no frame is waiting. */
  readv(views: Uint8Array[]): number;
  /** Write one frame (header + frame) gathered from the views; bytes written or a negative errno. */
  writev(views: Uint8Array[]): number;
  /** TUNSETOFFLOAD: may the backend hand us frames with these TUN_F_* offloads? false when refused. */
  setOffload(flags: number): boolean;
  /** Call `cb` whenever a frame is waiting (level-triggered: again and again until read); null stops watching
   * (the device does that while it has no rx buffers: backpressure). */
  onReadable(cb: (() => void) | null): void;
  close(): void;
}

/** The addon functions a tap needs (src/kvm/native.ts), injectable for tests. */
export type TapNative = Pick<
  NativeAddon,
  'tapOpen' | 'tapSetOffload' | 'tapSetVnetHdrSize' | 'readv' | 'writev' | 'watchReadable' | 'unwatch' | 'close'
>;

export class TapOpenFailed extends Error {
  constructor(name: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      `cannot open tap "${name}": ${why}. The VMM needs /dev/net/tun and CAP_NET_ADMIN (or a tap created for ` +
        `this user with \`ip tuntap add ${name || 'NAME'} mode tap vnet_hdr user $USER\`)`,
    );
    this.name = 'TapOpenFailed';
  }
}

function errnoOf(e: unknown): number {
  if (e instanceof Error && 'errno' in e && typeof e.errno === 'number') return -Math.abs(e.errno);
  return -5; // EIO
}

export class TapBackend implements NetBackend {
  private watchId: number | undefined;
  private closed = false;

  private constructor(
    private readonly native: TapNative,
    readonly fd: number,
    /** the interface's name, as the kernel knows it */
    readonly ifName: string,
  ) {}

  /** Open (or attach to) tap `name` ('' lets the kernel pick a name) with a 12-byte vnet header. */
  static open(name: string, native: TapNative = loadNative()): TapBackend {
    let tap: { fd: number; name: string };
    try {
      tap = native.tapOpen(name, true);
    } catch (e) {
      throw new TapOpenFailed(name, e);
    }
    try {
      // virtio 1.2 §5.1.6: with VIRTIO_F_VERSION_1 the header is virtio_net_hdr_v1, 12 bytes (if_tun.h TUNSETVNETHDRSZ)
      native.tapSetVnetHdrSize(tap.fd, VIRTIO_NET_HDR_LEN);
      native.tapSetOffload(tap.fd, 0);
    } catch (e) {
      native.close(tap.fd);
      throw new TapOpenFailed(name, e);
    }
    return new TapBackend(native, tap.fd, tap.name);
  }

  readv(views: Uint8Array[]): number {
    try {
      return this.native.readv(this.fd, views);
    } catch (e) {
      return errnoOf(e);
    }
  }

  writev(views: Uint8Array[]): number {
    try {
      return this.native.writev(this.fd, views);
    } catch (e) {
      return errnoOf(e);
    }
  }

  setOffload(flags: number): boolean {
    try {
      this.native.tapSetOffload(this.fd, flags);
      return true;
    } catch {
      return false;
    }
  }

  onReadable(cb: (() => void) | null): void {
    if (this.watchId !== undefined) {
      this.native.unwatch(this.watchId);
      this.watchId = undefined;
    }
    if (cb !== null && !this.closed) this.watchId = this.native.watchReadable(this.fd, cb);
  }

  close(): void {
    if (this.closed) return;
    this.onReadable(null);
    this.closed = true;
    this.native.close(this.fd);
  }
}

/** Every TUN_F_* flag drivers/net/tun.c set_offload knows. */
const KNOWN_TUN_FLAGS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO;

/**
 * One end of an in-memory link. Frames written to one end queue at the other (at most `limit`, then
 * -EAGAIN). Reads truncate like a tap (drivers/net/tun.c tun_chr_read_iter: min(frame, buffer)). Readability
 * is level-triggered like uv_poll: while frames wait and a callback is set, it runs on setImmediate.
 */
export class PairBackend implements NetBackend {
  private peer!: PairBackend;
  private readonly inbox: Uint8Array[] = [];
  private cb: (() => void) | null = null;
  private scheduled = false;
  private closed = false;
  /** TUN_F_* flags this end accepts (the fake refuses the others); the last accepted value */
  offload = 0;
  /** frames written by this end, for tests */
  readonly sent: Uint8Array[] = [];
  /** keep a copy of every frame written (tests); off for fuzzing */
  record = true;

  constructor(
    private readonly acceptedOffloads = KNOWN_TUN_FLAGS,
    private readonly limit = 1024,
  ) {}

  /** Two connected ends. */
  static pair(acceptedOffloads = KNOWN_TUN_FLAGS): [PairBackend, PairBackend] {
    const a = new PairBackend(acceptedOffloads);
    const b = new PairBackend(acceptedOffloads);
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  /** frames waiting to be read at this end */
  get waiting(): number {
    return this.inbox.length;
  }

  /** Put a frame (header + frame bytes) in this end's inbox, as if the peer wrote it. */
  inject(frame: Uint8Array): boolean {
    if (this.closed || this.inbox.length >= this.limit) return false;
    this.inbox.push(frame);
    this.kick();
    return true;
  }

  /** Take the next frame from this end's inbox (tests reading what the device sent via the peer). */
  take(): Uint8Array | undefined {
    return this.inbox.shift();
  }

  readv(views: Uint8Array[]): number {
    const f = this.inbox.shift();
    if (f === undefined) return EAGAIN;
    let off = 0;
    for (const v of views) {
      if (off >= f.length) break;
      const n = Math.min(v.length, f.length - off);
      v.set(f.subarray(off, off + n));
      off += n;
    }
    return off;
  }

  writev(views: Uint8Array[]): number {
    let len = 0;
    for (const v of views) len += v.length;
    if (this.peer === undefined) return len; // an unconnected end is a sink
    if (this.peer.closed) return -5; // EIO
    if (this.peer.inbox.length >= this.peer.limit) return EAGAIN;
    const f = new Uint8Array(len);
    let off = 0;
    for (const v of views) {
      f.set(v, off);
      off += v.length;
    }
    if (this.record) this.sent.push(f);
    this.peer.inject(f);
    return len;
  }

  setOffload(flags: number): boolean {
    // tun.c set_offload: TSO/UFO only together with CSUM; unknown bits refused.
    if (flags & ~this.acceptedOffloads) return false;
    if (flags & ~TUN_F_CSUM && !(flags & TUN_F_CSUM)) return false;
    this.offload = flags;
    return true;
  }

  onReadable(cb: (() => void) | null): void {
    this.cb = cb;
    this.kick();
  }

  /** Run the readable callback now if a frame waits (tests that want no event-loop turn). */
  flushReadable(): void {
    if (this.cb !== null && this.inbox.length > 0) this.cb();
  }

  close(): void {
    this.closed = true;
    this.cb = null;
    this.inbox.length = 0;
  }

  private kick(): void {
    if (this.scheduled || this.cb === null || this.inbox.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.cb !== null && this.inbox.length > 0) {
        this.cb();
        this.kick();
      }
    });
  }
}

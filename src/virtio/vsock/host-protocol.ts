// The message protocol between the vsock device (on its device worker) and the host side (VsockHost in
// ../vsock-host/, in the main thread). It travels over a MessagePort, or over an in-thread link in tests
// (DESIGN decision 7).
//
// Connection ids: the host picks ODD ids for connections it opens (`connect`); the device picks EVEN ids
// for connections the guest opens (`incoming`). Neither side reuses an id. Every connection ends with
// exactly one `closed` from the device; the host may still send messages for an id after that (races):
// the device ignores them.
//
// Flow control (both directions bounded):
// - host → guest: the host keeps at most `hostWindow` bytes of `data` un-`acked` per connection; the
//   device acks bytes once they are in the guest's rx buffers (or discarded). See VSOCK_HOST_WINDOW.
// - guest → host: the device gives the guest `VSOCK_BUF_ALLOC` bytes of credit (virtio 1.2 §5.10.6.3);
//   the host says `consumed` as its reader takes bytes, which the device turns into fwd_cnt.

/** Host → device. */
export type HostToDevice =
  /** open a connection to guest port `port` (host-initiated; id is odd) */
  | { t: 'connect'; id: number; port: number }
  /** take (`accept`) or refuse an `incoming` guest connection */
  | { t: 'accept'; id: number }
  | { t: 'refuse'; id: number }
  /** bytes for the guest (ownership moves with the message) */
  | { t: 'data'; id: number; data: Uint8Array }
  /** the host reader has taken `n` more bytes of guest data */
  | { t: 'consumed'; id: number; n: number }
  /** the host will write no more (half-close: SHUTDOWN SEND once queued data is out) */
  | { t: 'shutdown'; id: number }
  /** the host is done with the connection: `abort` = RST now; otherwise flush, SHUTDOWN both, then RST */
  | { t: 'close'; id: number; abort: boolean };

/** Why a connection ended (the `closed` message). */
export type VsockCloseReason =
  | 'refused' // RST in answer to our REQUEST (nothing listens on that guest port)
  | 'reset' // the guest reset an established connection
  | 'closed' // orderly end: both sides shut down
  | 'protocol' // the guest broke the protocol (unexpected op, credit overrun); we sent RST
  | 'timeout' // the guest did not finish an orderly close in time; we sent RST
  | 'device-reset' // the driver reset the device, or the device broke
  | 'limit' // too many connections
  | 'overrun' // the host wrote past its flow-control window
  | 'inactive'; // the device is not running (no DRIVER_OK yet)

/** Device → host. */
export type DeviceToHost =
  /** the guest connects to host port `port` from guest port `peerPort` (id is even); answer accept/refuse */
  | { t: 'incoming'; id: number; port: number; peerPort: number }
  /** a host-initiated connection was answered (RESPONSE); `localPort` is the host-side port used */
  | { t: 'connected'; id: number; localPort: number }
  /** bytes from the guest (ownership moves with the message) */
  | { t: 'data'; id: number; data: Uint8Array }
  /** `n` more host bytes reached the guest (or were discarded): the host may send that much more */
  | { t: 'acked'; id: number; n: number }
  /** the guest will send no more (SHUTDOWN SEND) */
  | { t: 'eof'; id: number }
  /** the connection is gone */
  | { t: 'closed'; id: number; reason: VsockCloseReason };

/** One end of a message link: what both a MessagePort and the in-thread fake provide. */
export interface VsockLink<Send, Recv> {
  post(msg: Send): void;
  /** set the receiver (replaces any earlier one) */
  onMessage(handler: (msg: Recv) => void): void;
  close(): void;
}

/** Bytes the host may have in flight (sent, not acked) per connection. */
export const VSOCK_HOST_WINDOW = 256 * 1024;
/** Our receive buffer per connection, advertised to the guest as buf_alloc. */
export const VSOCK_BUF_ALLOC = 256 * 1024;

interface PortLike {
  postMessage(value: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  off(event: 'message', listener: (value: unknown) => void): unknown;
  close(): void;
  unref?(): void;
}

function transferOf(msg: { t: string; data?: Uint8Array }): ArrayBuffer[] {
  const d = msg.data;
  // Transfer only a buffer the message owns outright (never a view into guest memory or a pooled Buffer).
  if (d !== undefined && d.buffer instanceof ArrayBuffer && d.byteOffset === 0 && d.byteLength === d.buffer.byteLength) {
    return [d.buffer];
  }
  return [];
}

/** Wrap a worker_threads MessagePort. Messages are plain objects; data buffers are transferred. */
export function portLink<Send extends { t: string }, Recv>(port: PortLike): VsockLink<Send, Recv> {
  let listener: ((v: unknown) => void) | undefined;
  return {
    post(msg) {
      port.postMessage(msg, transferOf(msg));
    },
    onMessage(handler) {
      if (listener !== undefined) port.off('message', listener);
      listener = (v) => handler(v as Recv);
      port.on('message', listener);
    },
    close() {
      if (listener !== undefined) port.off('message', listener);
      port.close();
    },
  };
}

/**
 * Two linked ends in one thread (tests, and a device run without a worker). Delivery is asynchronous
 * (a microtask per message, in order), like a MessagePort, so neither side re-enters the other.
 */
export function inThreadLinkPair(): {
  host: VsockLink<HostToDevice, DeviceToHost>;
  device: VsockLink<DeviceToHost, HostToDevice>;
} {
  let toDevice: ((m: HostToDevice) => void) | undefined;
  let toHost: ((m: DeviceToHost) => void) | undefined;
  let closed = false;
  return {
    host: {
      post(msg) {
        if (!closed) queueMicrotask(() => toDevice?.(msg));
      },
      onMessage(h) {
        toHost = h;
      },
      close() {
        closed = true;
      },
    },
    device: {
      post(msg) {
        if (!closed) queueMicrotask(() => toHost?.(msg));
      },
      onMessage(h) {
        toDevice = h;
      },
      close() {
        closed = true;
      },
    },
  };
}

/** Runtime check of a message that crossed a thread boundary (the host side is trusted, but typed by hand). */
export function isHostToDevice(m: unknown): m is HostToDevice {
  if (typeof m !== 'object' || m === null) return false;
  const o = m as Record<string, unknown>;
  if (typeof o.id !== 'number' || !Number.isSafeInteger(o.id)) return false;
  switch (o.t) {
    case 'connect':
      return typeof o.port === 'number';
    case 'accept':
    case 'refuse':
    case 'shutdown':
      return true;
    case 'data':
      return o.data instanceof Uint8Array;
    case 'consumed':
      return typeof o.n === 'number';
    case 'close':
      return typeof o.abort === 'boolean';
    default:
      return false;
  }
}

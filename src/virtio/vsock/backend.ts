// The vsock device's host side, as the device sees it: a message channel (host-protocol.ts). The device
// sends DeviceToHost messages and receives HostToDevice ones. Implementations:
// - portVsockBackend(port): the device worker's end of a MessagePort whose other end a VsockHost holds in
//   the main thread (the production path, DESIGN decision 7);
// - linkVsockBackend(link): any VsockLink (the in-thread pair used by InProcessVsockHost);
// - FakeVsockBackend: records what the device sent and lets a test inject host messages synchronously;
// - NullVsockBackend: no host at all (every guest connection is refused).

import type { MessagePort } from 'node:worker_threads';
import { isHostToDevice, portLink, type DeviceToHost, type HostToDevice, type VsockLink } from './host-protocol.js';

export interface VsockBackend {
  /** device → host */
  send(msg: DeviceToHost): void;
  /** host → device: the device registers its handler once, at construction */
  onMessage(handler: (msg: HostToDevice) => void): void;
}

/** Wrap one end of a message link. Messages that are not well-formed HostToDevice are dropped. */
export function linkVsockBackend(link: VsockLink<DeviceToHost, HostToDevice>): VsockBackend {
  return {
    send: (msg) => link.post(msg),
    onMessage: (handler) =>
      link.onMessage((m: unknown) => {
        if (isHostToDevice(m)) handler(m);
      }),
  };
}

/** The device worker's end of the host channel (DeviceContext.hostPort). */
export function portVsockBackend(port: MessagePort): VsockBackend {
  return linkVsockBackend(portLink<DeviceToHost, HostToDevice>(port));
}

/** No host: guest connections are refused at once; nothing ever connects to the guest. */
export class NullVsockBackend implements VsockBackend {
  private handler: ((msg: HostToDevice) => void) | undefined;
  send(msg: DeviceToHost): void {
    if (msg.t === 'incoming') this.handler?.({ t: 'refuse', id: msg.id });
  }
  onMessage(handler: (msg: HostToDevice) => void): void {
    this.handler = handler;
  }
}

/** For unit tests: a synchronous, recording host side with no streams. */
export class FakeVsockBackend implements VsockBackend {
  readonly sent: DeviceToHost[] = [];
  /** keep at most this many messages in `sent` (fuzzing sends millions) */
  constructor(
    private readonly keep = Number.POSITIVE_INFINITY,
    /** called for each message, after it is recorded */
    public onSend?: (msg: DeviceToHost) => void,
  ) {}
  private handler: ((msg: HostToDevice) => void) | undefined;
  /** messages counted by kind (all of them, also those not kept) */
  readonly counts = new Map<string, number>();

  send(msg: DeviceToHost): void {
    this.counts.set(msg.t, (this.counts.get(msg.t) ?? 0) + 1);
    if (this.sent.length < this.keep) this.sent.push(msg);
    this.onSend?.(msg);
  }
  onMessage(handler: (msg: HostToDevice) => void): void {
    this.handler = handler;
  }
  /** Deliver a host message to the device now. */
  inject(msg: HostToDevice): void {
    if (this.handler === undefined) throw new Error('no device is attached to this FakeVsockBackend');
    this.handler(msg);
  }
  /** Messages of one kind, in order. */
  of<T extends DeviceToHost['t']>(t: T): Extract<DeviceToHost, { t: T }>[] {
    return this.sent.filter((m): m is Extract<DeviceToHost, { t: T }> => m.t === t);
  }
  clear(): void {
    this.sent.length = 0;
  }
}

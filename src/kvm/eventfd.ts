// An eventfd(2): the endpoint of irqfd (device -> guest interrupt) and ioeventfd (guest -> device
// notification). Always EFD_CLOEXEC | EFD_NONBLOCK, so read() never blocks a thread.

import { FdClosedError, wrapNative } from './errors.js';
import { loadNative, type NativeAddon } from './native.js';

/** <sys/eventfd.h>: EFD_CLOEXEC = O_CLOEXEC (02000000), EFD_NONBLOCK = O_NONBLOCK (04000). */
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;

export class EventFd {
  private closed = false;
  readonly fd: number;

  /**
   * A new non-blocking, close-on-exec eventfd with counter `initval`; or, with `existingFd`, a wrapper
   * around an eventfd this process already owns (use EventFd.fromFd for that).
   */
  constructor(
    private readonly native: NativeAddon = loadNative(),
    initval = 0,
    existingFd?: number,
  ) {
    this.fd = existingFd ?? wrapNative(() => native.eventfd(initval, EFD_CLOEXEC | EFD_NONBLOCK));
  }

  static create(native: NativeAddon = loadNative(), initval = 0): EventFd {
    return new EventFd(native, initval);
  }

  /** Wrap an eventfd this process already owns (e.g. one passed to a worker thread by number). */
  static fromFd(fd: number, native: NativeAddon = loadNative()): EventFd {
    return new EventFd(native, 0, fd);
  }

  private live(): number {
    if (this.closed) throw new FdClosedError(`eventfd ${this.fd}`);
    return this.fd;
  }

  /** Add n to the counter (wakes any irqfd/poller). */
  write(n = 1n): void {
    const fd = this.live();
    wrapNative(() => this.native.eventfdWrite(fd, n));
  }

  /** Read and reset the counter; null when it is 0. */
  read(): bigint | null {
    const fd = this.live();
    return wrapNative(() => this.native.eventfdRead(fd));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    wrapNative(() => this.native.close(this.fd));
  }
}

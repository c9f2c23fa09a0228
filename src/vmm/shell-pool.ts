// Warm VM shells (vm.ts VmShell): a long-lived process (the shim, a FaaS host, the boot bench's warm series) keeps a
// few shells of the shape it will ask for, so createVm() skips creating the VM, registering its memory slots (3-7 ms
// for 128 MiB on the development machines' KVM, most of a warm createVm) and creating its vCPUs. A shell is taken
// once; the pool makes the next one on a later turn of the event loop, never inside the caller's createVm().
//
// ReadyPool holds the policy (how many, when to refill, what a failure does) apart from KVM, so it is tested on its
// own; VmShellPool binds it to createShell().

import type { NativeAddon } from '../kvm/native.js';
import { createShell, type VmShell } from './vm.js';

export interface Maker<T> {
  make(): T;
  dispose(item: T): void;
}

/** Up to `size` items made ahead of need, one per event-loop turn; a failed make stops refilling until the next take. */
export class ReadyPool<T> {
  private readonly ready: T[] = [];
  private filling = false;
  private closed = false;
  /** the error of the last make() that failed (refilling stops until the next take()) */
  lastError: Error | undefined;

  constructor(
    private readonly maker: Maker<T>,
    readonly size: number,
    private readonly later: (fn: () => void) => void = (fn) => void setImmediate(fn),
  ) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`pool size must be a positive integer, not ${size}`);
  }

  /** How many items are ready now. */
  get available(): number {
    return this.ready.length;
  }

  /** Starts making items until `size` are ready. */
  fill(): void {
    if (this.filling || this.closed || this.ready.length >= this.size) return;
    this.filling = true;
    this.later(() => {
      this.filling = false;
      if (this.closed) return;
      let item: T;
      try {
        item = this.maker.make();
      } catch (e) {
        this.lastError = e instanceof Error ? e : new Error(String(e));
        return;
      }
      this.lastError = undefined;
      this.ready.push(item);
      this.fill();
    });
  }

  /** A ready item (the oldest), or undefined when none is; either way the pool refills. */
  take(): T | undefined {
    const item = this.ready.shift();
    this.fill();
    return item;
  }

  /** Disposes of the ready items; nothing is made after this. */
  close(): void {
    this.closed = true;
    for (const item of this.ready.splice(0)) {
      try {
        this.maker.dispose(item);
      } catch {
        // keep disposing the rest
      }
    }
  }
}

/** Warm shells of one shape; createVm({ shells }) takes one when its vcpus and memory match. */
export class VmShellPool {
  private readonly pool: ReadyPool<VmShell>;

  constructor(
    readonly vcpus: number,
    readonly memoryMiB: number,
    size = 1,
    native?: NativeAddon,
  ) {
    this.pool = new ReadyPool<VmShell>({ make: () => createShell(vcpus, memoryMiB, native), dispose: (s) => s.cleanup.run() }, size);
    this.pool.fill();
  }

  get available(): number {
    return this.pool.available;
  }

  get lastError(): Error | undefined {
    return this.pool.lastError;
  }

  /** A warm shell when the shape matches and one is ready; the pool then makes the next. */
  take(vcpus: number, memoryMiB: number): VmShell | undefined {
    if (vcpus !== this.vcpus || memoryMiB !== this.memoryMiB) return undefined;
    return this.pool.take();
  }

  close(): void {
    this.pool.close();
  }
}

// Named errors for guest memory access. Each says which range was wrong and why.
import { hex } from './guest-address.js';

/** The address is not an integer in [0, 2^52], or no memory region contains it. */
export class InvalidGuestAddress extends Error {
  override readonly name = 'InvalidGuestAddress';
  constructor(readonly addr: number, reason = 'is not inside any guest memory region') {
    super(`guest address ${Number.isSafeInteger(addr) ? hex(addr) : String(addr)} ${reason}`);
  }
}

/** The range starts inside a region but runs off its end (or the length is unusable). */
export class PartialBuffer extends Error {
  override readonly name = 'PartialBuffer';
  constructor(readonly addr: number, readonly len: number, reason: string) {
    super(`guest range [${hex(addr)}, +${String(len)}) ${reason}`);
  }
}

/** Two memory regions claim the same guest addresses. */
export class RegionOverlap extends Error {
  override readonly name = 'RegionOverlap';
  constructor(aBase: number, aSize: number, bBase: number, bSize: number) {
    super(
      `guest memory regions [${hex(aBase)}, ${hex(aBase + aSize)}) and [${hex(bBase)}, ${hex(bBase + bSize)}) overlap: ` +
        'give each region its own address range',
    );
  }
}

/** A region description is unusable (bad base/size, or its backing buffer is too small). */
export class InvalidRegion extends Error {
  override readonly name = 'InvalidRegion';
}

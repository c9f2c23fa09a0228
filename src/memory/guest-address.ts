// A guest physical address: its own type, never mixed up with a host offset (rust-vmm vm-memory style).

/** Highest guest physical address we accept: x86-64 physical addresses are at most 52 bits wide. */
export const MAX_GUEST_ADDRESS = 2 ** 52;

/** A guest physical address (a plain number at run time, branded so the compiler keeps it apart). */
export type GuestAddress = number & { readonly __brand: 'GuestAddress' };

/** A guest address that is not a non-negative integer no larger than 2^52. */
export class InvalidGuestAddressValue extends RangeError {
  override readonly name = 'InvalidGuestAddressValue';
  constructor(readonly value: number) {
    super(`${String(value)} is not a guest physical address: it must be an integer in [0, 2^52]`);
  }
}

/** Brand `n` as a guest address after checking it is an integer in [0, 2^52]. */
export function guestAddr(n: number): GuestAddress {
  if (!Number.isInteger(n) || n < 0 || n > MAX_GUEST_ADDRESS) throw new InvalidGuestAddressValue(n);
  return n as GuestAddress;
}

/** Hex form of an address or size, for error messages. */
export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

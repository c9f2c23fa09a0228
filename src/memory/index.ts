// Guest memory: checked access to guest physical memory.
export { GuestMemory, type GuestSpan, type MemoryRegion, type RegionLayout } from './guest-memory.js';
export { type GuestAddress, guestAddr, MAX_GUEST_ADDRESS, InvalidGuestAddressValue } from './guest-address.js';
export { InvalidGuestAddress, PartialBuffer, RegionOverlap, InvalidRegion } from './errors.js';

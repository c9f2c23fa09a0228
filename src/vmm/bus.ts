// An address-range bus (port I/O or MMIO). Ranges are half-open [base, base+len); inserting a range that
// overlaps an existing one is refused, so two devices can never both claim an address.

export class BusOverlap extends Error {
  constructor(base: number, len: number, other: { base: number; len: number; name: string }) {
    super(
      `bus range [0x${base.toString(16)}, 0x${(base + len).toString(16)}) overlaps ${other.name} at ` +
        `[0x${other.base.toString(16)}, 0x${(other.base + other.len).toString(16)})`,
    );
    this.name = 'BusOverlap';
  }
}

export class InvalidBusRange extends Error {
  constructor(base: number, len: number) {
    super(`invalid bus range base=${base} len=${len}: need integers, len > 0`);
    this.name = 'InvalidBusRange';
  }
}

interface Entry<D> {
  base: number;
  len: number;
  name: string;
  device: D;
}

export interface BusHit<D> {
  device: D;
  /** offset of the access from the device's base */
  offset: number;
  name: string;
}

export class Bus<D> {
  // sorted by base; small (a handful of devices), so a sorted array with binary search is enough
  private readonly entries: Entry<D>[] = [];

  insert(base: number, len: number, name: string, device: D): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(len) || base < 0 || len <= 0) {
      throw new InvalidBusRange(base, len);
    }
    for (const e of this.entries) {
      if (base < e.base + e.len && e.base < base + len) throw new BusOverlap(base, len, e);
    }
    this.entries.push({ base, len, name, device });
    this.entries.sort((a, b) => a.base - b.base);
  }

  /** The device covering `addr`, or undefined. An access must also fit: [addr, addr+size) inside the range. */
  find(addr: number, size = 1): BusHit<D> | undefined {
    const es = this.entries;
    let lo = 0;
    let hi = es.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = es[mid]!;
      if (addr < e.base) hi = mid - 1;
      else if (addr >= e.base + e.len) lo = mid + 1;
      else {
        if (addr + size > e.base + e.len) return undefined; // straddles the end of the device
        return { device: e.device, offset: addr - e.base, name: e.name };
      }
    }
    return undefined;
  }

  get size(): number {
    return this.entries.length;
  }
}

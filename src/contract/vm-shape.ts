// The VM shapes every backend accepts, checked before any backend does work: a bad --vcpus or --memory is
// the user's mistake and is reported as such, whichever hypervisor would have run the VM.

/** The most vCPUs a VM may have: APIC ids 0..254 (255 is the broadcast id), as the MP table lists them. */
export const MAX_VCPUS = 254;
/** Guest RAM bounds, MiB: the PVH boot structures and a kernel need some; 1 TiB is beyond any sandbox. */
export const MIN_MEMORY_MIB = 16;
export const MAX_MEMORY_MIB = 1 << 20;

export class VmConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VmConfigError';
  }
}

export function checkVmShape(vcpus: number, memoryMiB: number): void {
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_VCPUS) {
    throw new VmConfigError(`--vcpus must be an integer from 1 to ${String(MAX_VCPUS)} (got ${String(vcpus)})`);
  }
  if (!Number.isInteger(memoryMiB) || memoryMiB < MIN_MEMORY_MIB || memoryMiB > MAX_MEMORY_MIB) {
    throw new VmConfigError(
      `--memory must be an integer number of MiB from ${String(MIN_MEMORY_MIB)} to ${String(MAX_MEMORY_MIB)} (got ${String(memoryMiB)})`,
    );
  }
}

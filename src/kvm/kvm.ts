// /dev/kvm: the system fd of the kernel's fd hierarchy (Kvm -> VmFd -> VcpuFd), after rust-vmm's
// kvm-ioctls. The addon is injected (default: the built one) so unit tests can pass a fake.

import { openSync, closeSync, constants as fsConstants } from 'node:fs';

import { KVM_API_VERSION, type RequiredCap } from './caps.js';
import { FdClosedError, KvmError, isNativeError, wrapNative } from './errors.js';
import { loadNative, type NativeAddon } from './native.js';
import { decodeCpuidEntries } from './structs.js';
import type { CpuidEntry } from './types.js';
import { VmFd } from './vm-fd.js';

export { KvmError } from './errors.js';
export { VmFd } from './vm-fd.js';
export { VcpuFd } from './vcpu-fd.js';
export { EventFd } from './eventfd.js';

export const KVM_DEVICE_PATH = '/dev/kvm';
/** KVM_CREATE_VM machine type 0: the default x86 VM. */
export const KVM_VM_TYPE_DEFAULT = 0;
/** KVM_MAX_CPUID_ENTRIES in arch/x86/include/asm/kvm_host.h. */
const MAX_CPUID_ENTRIES = 256;

export class MissingKvmCapability extends Error {
  constructor(readonly cap: RequiredCap) {
    super(`this host's KVM lacks ${cap.name} (needed for ${cap.why}): run \`kata-ts check\`, or use --hypervisor=qemu`);
    this.name = 'MissingKvmCapability';
  }
}

export class Kvm {
  private closed = false;

  private constructor(
    readonly fd: number,
    private readonly native: NativeAddon,
  ) {}

  /** Open /dev/kvm (or `path`) and check the API version is 12. */
  static open(native: NativeAddon = loadNative(), path = KVM_DEVICE_PATH): Kvm {
    const fd = wrapNative(() => native.openDevice(path));
    const kvm = new Kvm(fd, native);
    const v = kvm.apiVersion();
    if (v !== KVM_API_VERSION) {
      kvm.close();
      throw new KvmError(`${path} speaks KVM API ${v}, kata-ts needs ${KVM_API_VERSION}`, 'EINVAL', 22, 'KVM_GET_API_VERSION');
    }
    return kvm;
  }

  private live(): number {
    if (this.closed) throw new FdClosedError('/dev/kvm fd');
    return this.fd;
  }

  apiVersion(): number {
    const fd = this.live();
    return wrapNative(() => this.native.getApiVersion(fd));
  }

  /** KVM_CHECK_EXTENSION: 0 = absent, otherwise a cap-specific positive answer. */
  checkExtension(cap: number): number {
    const fd = this.live();
    return wrapNative(() => this.native.checkExtension(fd, cap));
  }

  /**
   * Throw MissingKvmCapability for the first capability KVM_CHECK_EXTENSION reports absent, so a KVM that
   * lacks (say) irqfd fails here, naming it, instead of late in an ioctl that needs it.
   */
  requireCapabilities(caps: readonly RequiredCap[]): void {
    for (const c of caps) {
      if (this.checkExtension(c.cap) === 0) throw new MissingKvmCapability(c);
    }
  }

  /** KVM_GET_VCPU_MMAP_SIZE: bytes of each vCPU's kvm_run mapping. */
  vcpuMmapSize(): number {
    const fd = this.live();
    return wrapNative(() => this.native.getVcpuMmapSize(fd));
  }

  createVm(type = KVM_VM_TYPE_DEFAULT): VmFd {
    const fd = this.live();
    const mmapSize = this.vcpuMmapSize();
    return new VmFd(wrapNative(() => this.native.createVm(fd, type)), mmapSize, this.native);
  }

  /** KVM_GET_SUPPORTED_CPUID: what the host and KVM can offer a guest. */
  supportedCpuid(): CpuidEntry[] {
    const fd = this.live();
    return decodeCpuidEntries(wrapNative(() => this.native.getSupportedCpuid(fd, MAX_CPUID_ENTRIES)));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    wrapNative(() => this.native.close(this.fd));
  }
}

export type KvmAvailability = { ok: true } | { ok: false; reason: string };

function reasonFor(path: string, code: string | undefined, message: string): string {
  switch (code) {
    case 'ENOENT':
      return `${path} is missing: enable virtualization (VT-x/AMD-V) in the firmware or load kvm_intel/kvm_amd`;
    case 'EACCES':
    case 'EPERM':
      return `${path} is not accessible to this user: add the user to the 'kvm' group or run as root`;
    case 'ENXIO':
    case 'ENODEV':
      return `${path} exists but no KVM module answers: load kvm_intel or kvm_amd`;
    default:
      return `${path} cannot be opened: ${message}`;
  }
}

/**
 * Can this process use KVM? Opens the device read-write (no addon needed), then, if the addon loads,
 * checks the API version. The reason says what is wrong and what to do.
 */
export function kvmAvailable(path = KVM_DEVICE_PATH, native?: NativeAddon): KvmAvailability {
  try {
    closeSync(openSync(path, fsConstants.O_RDWR)); // closed at once: no O_CLOEXEC needed
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { ok: false, reason: reasonFor(path, err.code, err.message) };
  }
  let addon: NativeAddon;
  try {
    addon = native ?? loadNative();
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
  try {
    Kvm.open(addon, path).close();
  } catch (e) {
    if (isNativeError(e) || e instanceof KvmError) return { ok: false, reason: reasonFor(path, e.code, e.message) };
    throw e;
  }
  return { ok: true };
}

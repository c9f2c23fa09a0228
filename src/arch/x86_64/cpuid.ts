// Per-vCPU CPUID, derived from KVM_GET_SUPPORTED_CPUID (after Firecracker's cpuid normalization).
// Leaf meanings: Intel SDM vol. 2A, CPUID; Linux reads them in arch/x86/kernel/cpu/{common,topology,cacheinfo}.c.
import type { CpuidEntry } from '../../kvm/types.js';
import { MP_MAX_CPUS } from './mptable.js';

/** KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the entry depends on the sub-leaf index in ECX. */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

export const LEAF_FEATURES = 0x1;
export const LEAF_CACHE_PARAMS = 0x4;
export const LEAF_EXT_TOPOLOGY = 0xb;
export const LEAF_V2_EXT_TOPOLOGY = 0x1f;

/** CPUID.1:ECX bit 31: running under a hypervisor. */
export const ECX_HYPERVISOR = 0x8000_0000;
/** CPUID.1:EDX bit 28: HTT, EBX[23:16] is valid (more than one logical processor). */
export const EDX_HTT = 1 << 28;

/** Topology level types in leaf 0xb/0x1f ECX[15:8]. */
const LEVEL_TYPE_SMT = 1;
const LEVEL_TYPE_CORE = 2;

export interface CpuTopology {
  /** this vCPU's index, which is also its APIC id */
  vcpuId: number;
  /** vCPUs in the VM: one socket, one thread per core, nVcpus cores */
  nVcpus: number;
}

/** vcpuId/nVcpus do not describe a valid topology. */
export class InvalidTopology extends RangeError {
  override readonly name = 'InvalidTopology';
}

/** Bits needed to number n items (ceil(log2 n)); 0 for n = 1. */
function bitsFor(n: number): number {
  let b = 0;
  while (1 << b < n) b++;
  return b;
}

function field(value: number, shift: number, width: number, x: number): number {
  const mask = ((1 << width) - 1) << shift;
  return ((value & ~mask) | ((x << shift) & mask)) >>> 0;
}

function topologyEntries(fn: number, flags: number, apicId: number, n: number): CpuidEntry[] {
  // Sub-leaf 0: SMT level, 1 thread per core. Sub-leaf 1: core level, n cores per package.
  // Sub-leaf 2: level type 0 ends the enumeration. EDX is the x2APIC id in every sub-leaf.
  return [
    { function: fn, index: 0, flags, eax: 0, ebx: 1, ecx: (LEVEL_TYPE_SMT << 8) | 0, edx: apicId },
    { function: fn, index: 1, flags, eax: bitsFor(n), ebx: n, ecx: (LEVEL_TYPE_CORE << 8) | 1, edx: apicId },
    { function: fn, index: 2, flags, eax: 0, ebx: 0, ecx: 2, edx: apicId },
  ];
}

/**
 * The CPUID table for one vCPU: copies of `supported` with leaf 1 (APIC id, logical count, HTT, hypervisor
 * bit), leaf 4 (cores per package, cache sharing), leaves 0xb and 0x1f (x2APIC id and topology, when
 * present) set for one socket of nVcpus single-thread cores. Other leaves (KVM's 0x4000_0000.. included)
 * are copied as given. `supported` is not changed.
 */
export function filterCpuid(supported: readonly CpuidEntry[], topo: CpuTopology): CpuidEntry[] {
  const { vcpuId, nVcpus } = topo;
  if (!Number.isInteger(nVcpus) || nVcpus < 1 || nVcpus > MP_MAX_CPUS) {
    throw new InvalidTopology(`nVcpus ${String(nVcpus)} must be between 1 and ${String(MP_MAX_CPUS)}`);
  }
  if (!Number.isInteger(vcpuId) || vcpuId < 0 || vcpuId >= nVcpus) {
    throw new InvalidTopology(`vcpuId ${String(vcpuId)} must be between 0 and ${String(nVcpus - 1)}`);
  }
  const out: CpuidEntry[] = [];
  const topoDone = new Set<number>();
  for (const src of supported) {
    const e: CpuidEntry = { ...src };
    switch (e.function) {
      case LEAF_FEATURES:
        // EBX[31:24] initial APIC id, EBX[23:16] logical processors per package.
        e.ebx = field(field(e.ebx, 24, 8, vcpuId), 16, 8, nVcpus);
        e.ecx = (e.ecx | ECX_HYPERVISOR) >>> 0;
        e.edx = (nVcpus > 1 ? e.edx | EDX_HTT : e.edx & ~EDX_HTT) >>> 0;
        break;
      case LEAF_CACHE_PARAMS: {
        // EAX[4:0] cache type (0 = no more caches), EAX[7:5] level; EAX[25:14] logical processors sharing
        // the cache - 1; EAX[31:26] cores per package - 1 (6 bits).
        if ((e.eax & 0x1f) !== 0) {
          const level = (e.eax >>> 5) & 0x7;
          e.eax = field(e.eax, 14, 12, level >= 3 ? nVcpus - 1 : 0);
        }
        e.eax = field(e.eax, 26, 6, Math.min(nVcpus - 1, 63));
        break;
      }
      case LEAF_EXT_TOPOLOGY:
      case LEAF_V2_EXT_TOPOLOGY:
        // Replace the leaf's sub-leaves once, with our own topology.
        if (!topoDone.has(e.function)) {
          topoDone.add(e.function);
          out.push(...topologyEntries(e.function, e.flags | KVM_CPUID_FLAG_SIGNIFCANT_INDEX, vcpuId, nVcpus));
        }
        continue;
      default:
        break;
    }
    out.push(e);
  }
  return out;
}

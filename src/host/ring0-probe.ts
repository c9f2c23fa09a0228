// Measures how fast guest ring-0 code runs: a real-mode `dec ecx; jnz` loop in a throw-away VM. On hardware
// virtualization it runs at native speed (~1e9 iterations/s); a software virtualizer that emulates guest
// kernel mode (kvm_pvm) manages about 1e6. Timing here is a host fact reported by `kata-ts check`, not a test.

import { Kvm } from '../kvm/kvm.js';
import { loadNative, type NativeAddon } from '../kvm/native.js';
import { decodeExit } from '../kvm/run.js';

const ITERATIONS = 200_000;
const PROBE_PORT = 0xf4;

export interface Ring0Probe {
  iterationsPerSecond: number;
  iterations: number;
  elapsedMs: number;
}

export function probeRing0Speed(native: NativeAddon = loadNative()): Ring0Probe {
  const kvm = Kvm.open(native);
  const vm = kvm.createVm();
  const mem = native.mmapAnonymous(0x10000, false);
  try {
    vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, size: mem.size, userspaceAddr: mem.addr });
    const code = new Uint8Array(mem.buffer, 0x1000, 16);
    // mov ecx, ITERATIONS ; l: dec ecx ; jnz l ; out 0xf4, al ; hlt
    const n = ITERATIONS;
    code.set([0x66, 0xb9, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff, 0x66, 0x49, 0x75, 0xfc, 0xe6, PROBE_PORT, 0xf4]);
    const vcpu = vm.createVcpu(0);
    try {
      const sregs = vcpu.getSregs();
      sregs.cs = { ...sregs.cs, base: 0n, selector: 0 };
      vcpu.setSregs(sregs);
      const regs = vcpu.getRegs();
      vcpu.setRegs({ ...regs, rip: 0x1000n, rflags: 2n });
      const run = native.mmapFd(vcpu.fd, kvm.vcpuMmapSize(), 3, 1, 0);
      try {
        const view = new DataView(run.buffer);
        const t0 = process.hrtime.bigint();
        for (let guard = 0; guard < 1000; guard++) {
          const rc = vcpu.run();
          if (rc !== 0) continue;
          const exit = decodeExit(view);
          if (exit.kind === 'io-out' && exit.port === PROBE_PORT) break;
          if (exit.kind !== 'io-out' && exit.kind !== 'intr') throw new Error(`ring-0 probe: unexpected exit ${exit.kind}`);
        }
        const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
        return { iterations: n, elapsedMs, iterationsPerSecond: n / (elapsedMs / 1000) };
      } finally {
        native.munmap(run.addr);
      }
    } finally {
      vcpu.close();
    }
  } finally {
    vm.close();
    native.munmap(mem.addr);
    kvm.close();
  }
}

// The boot benchmark's real-kernel section: the full guest kernel (`npm run guest:kernel`) + the test
// initramfs (`npm run guest:initrd:test`, whose init writes the boot timer, prints KATA_TS_INIT_OK and reboots),
// same command line, under each hypervisor backend this host can run: qemu+TCG wherever QEMU is installed;
// inproc and qemu+KVM only where `kata-ts check` finds hardware virtualization (on the software KVM of the
// development machines a Linux guest cannot reach user space in-process). Time is from startVm()
// (createVm / the QEMU spawn) to the init's marker on the console; the boot-timer write is kept beside it.

import { DEFAULT_CMDLINE } from '../src/cli/boot.js';
import { chooseHypervisor, createHypervisor, type HostFacts } from '../src/hypervisor/factory.js';
import { phaseMs, type HypervisorKind } from '../src/hypervisor/interface.js';
import { guestArtifact } from '../tests/helpers/guest-artifacts.js';
import { roundSummary, summarize, type Summary } from './lib/stats.js';

export const INIT_MARKER = 'KATA_TS_INIT_OK';
const GUEST_MIB = 256;
const SAFETY_MS = 300_000;

export type RealKernelSeries = 'inproc' | 'qemu_kvm' | 'qemu_tcg';

export interface RealKernelResult {
  /** per backend: ms from startVm() to the init marker */
  to_init_ms: Partial<Record<RealKernelSeries, Summary>>;
  /** per backend: ms from startVm() to the guest's boot-timer write */
  boot_timer_ms: Partial<Record<RealKernelSeries, Summary>>;
  kernel: string;
  initrd: string;
  cmdline: string;
  memory_mib: number;
  runs: number;
  notes: string[];
}

class RealKernelRunFailed extends Error {
  constructor(series: string, detail: string) {
    super(`real-kernel ${series} run failed: ${detail}`);
    this.name = 'RealKernelRunFailed';
  }
}

/** The series this host can run, and why the others are left out. */
export function realKernelSeries(host: HostFacts): { series: RealKernelSeries[]; notes: string[] } {
  const series: RealKernelSeries[] = [];
  const notes: string[] = [];
  if (host.virtualization === 'hardware') series.push('inproc');
  else notes.push(`real kernel, inproc: skipped (KVM here is ${host.virtualization === 'software' ? 'a software virtualizer: no guest user space in-process' : 'unavailable'})`);
  if (host.qemuPath === undefined) notes.push('real kernel, qemu: skipped (qemu-system-x86_64 not installed)');
  else {
    if (host.virtualization === 'hardware') series.push('qemu_kvm');
    else notes.push('real kernel, qemu_kvm: skipped (no hardware virtualization)');
    series.push('qemu_tcg');
  }
  return { series, notes };
}

interface Sample {
  toInitMs: number;
  bootTimerMs: number | undefined;
}

async function oneBoot(series: RealKernelSeries, host: HostFacts, kernelPath: string, initrdPath: string, cmdline: string): Promise<Sample> {
  const kind: HypervisorKind = series === 'inproc' ? 'inproc' : 'qemu';
  // qemu_tcg on a hardware host still means TCG: present the host as having no KVM to the chooser
  const facts: HostFacts = series === 'qemu_tcg' ? { ...host, virtualization: 'unavailable' } : host;
  const hv = createHypervisor(chooseHypervisor(kind, facts));
  await hv.createVm({ kernelPath, initrdPath, cmdline, vcpus: 1, memoryMiB: GUEST_MIB, markers: [INIT_MARKER] });
  const safety = setTimeout(() => void hv.stopVm(), SAFETY_MS);
  await hv.startVm();
  const exit = await hv.wait();
  clearTimeout(safety);
  const p = hv.phases;
  const toInit = phaseMs(p, p.markers[INIT_MARKER]);
  if (toInit === undefined) throw new RealKernelRunFailed(series, `no ${INIT_MARKER} on the console (exit ${JSON.stringify(exit)}; tail: ${hv.consoleText.slice(-300)})`);
  if (exit.kind !== 'reset') throw new RealKernelRunFailed(series, `guest ended with ${JSON.stringify(exit)} instead of a reset`);
  return { toInitMs: toInit, bootTimerMs: phaseMs(p, p.bootTimer) };
}

export async function benchRealKernel(repoRoot: string, host: HostFacts, runs: number): Promise<RealKernelResult | undefined> {
  const { series, notes } = realKernelSeries(host);
  if (series.length === 0) return undefined;
  const kernel = guestArtifact('guest:kernel', repoRoot);
  const initrd = guestArtifact('guest:initrd:test', repoRoot);
  // same command line everywhere: inproc runs here only on hardware KVM, where no host-quirks profile applies
  const cmdline = DEFAULT_CMDLINE;
  const toInit: Partial<Record<RealKernelSeries, number[]>> = {};
  const bootTimer: Partial<Record<RealKernelSeries, number[]>> = {};
  for (const s of series) await oneBoot(s, host, kernel, initrd, cmdline); // discarded warm-up (page cache, libraries)
  for (let i = 0; i < runs; i++) {
    const order = series.map((_, k) => series[(k + i) % series.length]!);
    for (const s of order) {
      const r = await oneBoot(s, host, kernel, initrd, cmdline);
      (toInit[s] ??= []).push(r.toInitMs);
      if (r.bootTimerMs !== undefined) (bootTimer[s] ??= []).push(r.bootTimerMs);
    }
    process.stderr.write(`real kernel run ${String(i + 1)}/${String(runs)}: ${series.map((s) => `${s} ${toInit[s]!.at(-1)!.toFixed(1)} ms`).join(', ')}\n`);
  }
  const sum = (m: Partial<Record<RealKernelSeries, number[]>>): Partial<Record<RealKernelSeries, Summary>> =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, roundSummary(summarize(v))]));
  return { to_init_ms: sum(toInit), boot_timer_ms: sum(bootTimer), kernel, initrd, cmdline, memory_mib: GUEST_MIB, runs, notes };
}

export const SERIES_LABEL: Record<RealKernelSeries, string> = {
  inproc: 'inproc (in-process VMM, KVM)',
  qemu_kvm: 'QEMU microvm, KVM',
  qemu_tcg: 'QEMU microvm, TCG',
};

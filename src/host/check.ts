// What a user needs to know about this host before running microVMs: /dev/kvm access and capabilities,
// network and vhost devices, and whether KVM is backed by hardware virtualization or by a software
// virtualizer (kvm_pvm), with the consequence in words.

import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { REQUIRED_CAPS } from '../kvm/caps.js';
import { Kvm } from '../kvm/kvm.js';
import { loadNative, type NativeAddon } from '../kvm/native.js';
import { probeRing0Speed, type Ring0Probe } from './ring0-probe.js';

// include/uapi/linux/kvm.h
const CAP = {
  irqchip: 0,
  user_memory: 3,
  set_tss_addr: 4,
  nr_vcpus: 9,
  irqfd: 32,
  pit2: 33,
  ioeventfd: 36,
  max_vcpus: 66,
  immediate_exit: 136,
} as const;

/** Below this guest ring-0 speed KVM is a software virtualizer (hardware runs ~1e9 iterations/s). */
const HARDWARE_RING0_IPS = 50e6;

export type Virtualization = 'hardware' | 'software' | 'unavailable';

export interface HostReport {
  kvm: { path: string; ok: boolean; error?: string; api_version?: number };
  max_vcpus?: number;
  recommended_vcpus?: number;
  caps: Record<string, boolean>;
  tun: boolean;
  vhost_vsock: boolean;
  vhost_net: boolean;
  virtualization: Virtualization;
  evidence: { kvm_pvm_module: boolean; cpu_flags: string[]; ring0_iterations_per_s?: number };
  /** the host-quirks profile the VMM applies, or null on hardware KVM */
  quirks_profile: string | null;
  consequence: string;
  can_create_vms: boolean;
}

function accessible(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export function kvmPvmLoaded(): boolean {
  if (existsSync('/sys/module/kvm_pvm')) return true;
  try {
    return /^kvm_pvm\s/m.test(readFileSync('/proc/modules', 'utf8'));
  } catch {
    return false;
  }
}

export function cpuVirtFlags(): string[] {
  try {
    const flags = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? [];
    return flags.filter((f) => f === 'vmx' || f === 'svm' || f === 'hypervisor');
  } catch {
    return [];
  }
}

/** Hardware or software, decided from the evidence (the module name wins; then the measured speed). */
export function classify(pvm: boolean, probe: Ring0Probe | undefined): Virtualization {
  if (pvm) return 'software';
  if (probe && probe.iterationsPerSecond < HARDWARE_RING0_IPS) return 'software';
  return 'hardware';
}

export function checkHost(opts: { probe?: boolean; native?: NativeAddon } = {}): HostReport {
  const path = '/dev/kvm';
  const report: HostReport = {
    kvm: { path, ok: false },
    caps: {},
    tun: accessible('/dev/net/tun'),
    vhost_vsock: existsSync('/dev/vhost-vsock'),
    vhost_net: existsSync('/dev/vhost-net'),
    virtualization: 'unavailable',
    evidence: { kvm_pvm_module: kvmPvmLoaded(), cpu_flags: cpuVirtFlags() },
    quirks_profile: null,
    consequence: '',
    can_create_vms: false,
  };
  let kvm: Kvm | undefined;
  // the capabilities createVm() requires (kvm/caps.ts REQUIRED_CAPS), by KVM name
  let missing: string[] = REQUIRED_CAPS.map((c) => c.name);
  try {
    const native = opts.native ?? loadNative();
    kvm = Kvm.open(native);
    report.kvm.api_version = kvm.apiVersion();
    for (const [name, cap] of Object.entries(CAP)) {
      const v = kvm.checkExtension(cap);
      if (name === 'nr_vcpus') report.recommended_vcpus = v;
      else if (name === 'max_vcpus') report.max_vcpus = v;
      else report.caps[name] = v > 0;
    }
    const k = kvm;
    missing = REQUIRED_CAPS.filter((c) => k.checkExtension(c.cap) === 0).map((c) => c.name);
    const vm = kvm.createVm();
    vm.close();
    report.kvm.ok = report.kvm.api_version === 12;
    if (!report.kvm.ok) report.kvm.error = `KVM API version ${report.kvm.api_version}, kata-ts needs 12`;
    const probe = opts.probe === false ? undefined : probeRing0Speed(native);
    if (probe) report.evidence.ring0_iterations_per_s = Math.round(probe.iterationsPerSecond);
    report.virtualization = classify(report.evidence.kvm_pvm_module, probe);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    report.kvm.error =
      err.code === 'ENOENT'
        ? '/dev/kvm does not exist: enable virtualization in the firmware/hypervisor and load kvm_intel or kvm_amd'
        : err.code === 'EACCES'
          ? '/dev/kvm is not accessible: run as root or add this user to the kvm group'
          : err.message;
  } finally {
    kvm?.close();
  }
  report.can_create_vms = report.kvm.ok && missing.length === 0;
  if (report.can_create_vms && missing.length === 0 && report.virtualization === 'software') {
    report.quirks_profile = 'pvm';
    report.consequence =
      'KVM here is a software virtualizer (kvm_pvm): guest kernel code is emulated (~2000x slower) and an ' +
      'unmodified Linux guest cannot run user space, so full microVMs boot only to the kernel. kata-ts adds the ' +
      "'pvm' host-quirks kernel parameters. Containers run under QEMU with TCG here (--hypervisor auto, the default " +
      'for kata-ts run), with our devices attached over vhost-user.';
  } else if (report.can_create_vms) {
    report.consequence = 'Hardware virtualization: microVMs run at native speed with the in-process VMM.';
  } else if (report.kvm.error) {
    report.consequence = `No microVMs with the in-process VMM: ${report.kvm.error}.`;
  } else {
    report.consequence = `No microVMs with the in-process VMM: KVM lacks ${missing.join(', ')}.`;
  }
  return report;
}

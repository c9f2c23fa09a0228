// Which hypervisor runs a VM: `inproc` (this process, needs /dev/kvm), `qemu` (external QEMU: KVM where
// `kata-ts check` finds hardware virtualization, TCG otherwise) or `auto` (inproc on hardware KVM, qemu+TCG
// where KVM is the kvm_pvm software virtualizer or missing). The choice is a pure function of the host facts
// (tested in tests/unit/hypervisor-factory.test.ts); detectHost() gathers them cheaply.

import { accessSync, constants } from 'node:fs';
import { checkHost, cpuVirtFlags, kvmPvmLoaded, type Virtualization } from '../host/check.js';
import { loadQuirksProfile, type QuirksProfile } from '../host/quirks.js';
import { InprocHypervisor } from './inproc.js';
import { findExecutable } from './parent-death.js';
import type { Accelerator, Hypervisor, HypervisorKind } from './interface.js';
import { QemuHypervisor, QemuNotFound } from './qemu.js';
import type { StartVhostUserBackend } from './vhost-user.js';

export type HypervisorChoice = HypervisorKind | 'auto';
export const HYPERVISOR_CHOICES: readonly HypervisorChoice[] = ['inproc', 'qemu', 'auto'];
export const QEMU_BINARY = 'qemu-system-x86_64';

export interface HostFacts {
  /** what /dev/kvm is backed by (host-check.ts classify()) */
  virtualization: Virtualization;
  /** path of qemu-system-x86_64, or undefined when it is not installed */
  qemuPath: string | undefined;
}

export interface HypervisorPlan {
  kind: HypervisorKind;
  accel: Accelerator;
  hardwareVirtualization: boolean;
  /** guest code runs on the software KVM */
  softwareKvm: boolean;
  /**
   * The host-quirks profile this plan's guests need (kernel-config/host-quirks.json): 'pvm' where guest code
   * runs on the software KVM, null otherwise. createHypervisor() applies it; nobody else does.
   */
  quirks: string | null;
  /** one line for stderr when the choice is worth telling (qemu's accelerator, auto's fallback) */
  notice: string | undefined;
  qemuPath?: string;
}

export class InvalidHypervisorChoice extends Error {
  constructor(v: string) {
    super(`--hypervisor must be one of ${HYPERVISOR_CHOICES.join(', ')} (got '${v}')`);
    this.name = 'InvalidHypervisorChoice';
  }
}

export class NoKvmForInproc extends Error {
  constructor() {
    super('the inproc hypervisor needs a usable /dev/kvm (run `kata-ts check`); use --hypervisor=qemu to boot under QEMU with TCG');
    this.name = 'NoKvmForInproc';
  }
}

export function parseHypervisorChoice(v: string): HypervisorChoice {
  if (!(HYPERVISOR_CHOICES as readonly string[]).includes(v)) throw new InvalidHypervisorChoice(v);
  return v as HypervisorChoice;
}

function qemuPlan(host: HostFacts, notice: string | undefined): HypervisorPlan {
  if (host.qemuPath === undefined) throw new QemuNotFound(QEMU_BINARY);
  const accel: Accelerator = host.virtualization === 'hardware' ? 'kvm' : 'tcg';
  const why =
    accel === 'kvm'
      ? 'hardware virtualization found'
      : host.virtualization === 'software'
        ? 'KVM here is a software virtualizer (kvm_pvm)'
        : 'no usable /dev/kvm';
  return {
    kind: 'qemu',
    accel,
    hardwareVirtualization: accel === 'kvm',
    softwareKvm: false,
    quirks: null,
    notice: notice ?? `kata-ts: hypervisor qemu with -accel ${accel} (${why})`,
    qemuPath: host.qemuPath,
  };
}

/** The hypervisor, accelerator and notice for a --hypervisor value on a host. */
export function chooseHypervisor(choice: HypervisorChoice, host: HostFacts): HypervisorPlan {
  switch (choice) {
    case 'inproc':
      if (host.virtualization === 'unavailable') throw new NoKvmForInproc();
      return {
        kind: 'inproc',
        accel: 'kvm',
        hardwareVirtualization: host.virtualization === 'hardware',
        softwareKvm: host.virtualization === 'software',
        quirks: host.virtualization === 'software' ? 'pvm' : null,
        notice: undefined,
      };
    case 'qemu':
      return qemuPlan(host, undefined);
    case 'auto':
      if (host.virtualization === 'hardware') return chooseHypervisor('inproc', host);
      return qemuPlan(
        host,
        host.virtualization === 'software'
          ? 'kata-ts: software KVM (kvm_pvm) cannot run guest user space: using hypervisor qemu with -accel tcg (--hypervisor=inproc boots in-process anyway)'
          : 'kata-ts: no usable /dev/kvm: using hypervisor qemu with -accel tcg',
      );
  }
}

/** An executable on PATH, or undefined. */
export function findOnPath(name: string, path = process.env.PATH ?? ''): string | undefined {
  return findExecutable(name, path);
}

function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Host facts, cheapest evidence first: /dev/kvm, the kvm_pvm module, the CPU flags; the ring-0 probe last. */
export function detectHost(): HostFacts {
  const qemuPath = findOnPath(QEMU_BINARY);
  let virtualization: Virtualization;
  if (!kvmUsable()) virtualization = 'unavailable';
  else if (kvmPvmLoaded()) virtualization = 'software';
  else if (cpuVirtFlags().some((f) => f === 'vmx' || f === 'svm')) virtualization = 'hardware';
  else virtualization = checkHost({ probe: true }).virtualization;
  return { virtualization, qemuPath };
}

export interface CreateHypervisorOptions {
  /** vhost-user server for qemu devices (tests); default src/vhost-user */
  startBackend?: StartVhostUserBackend;
  /**
   * The host-quirks profile: 'auto' (default: the plan's, i.e. only where guest code runs on the software
   * KVM), 'none', or a profile name from kernel-config/host-quirks.json.
   */
  quirks?: string;
}

/** The profile `quirks` ('auto' | 'none' | NAME) selects for a plan; throws for an unknown name. */
export function resolveQuirks(plan: HypervisorPlan, quirks = 'auto'): QuirksProfile | undefined {
  const name = quirks === 'auto' ? plan.quirks : quirks === 'none' ? null : quirks;
  return name === null ? undefined : loadQuirksProfile(name);
}

/**
 * The hypervisor a plan names. It applies the host-quirks profile to every VmConfig.cmdline it is given
 * (the only place the profile is applied), and reports it as `quirks`.
 */
export function createHypervisor(plan: HypervisorPlan, o: CreateHypervisorOptions = {}): Hypervisor {
  const quirks = resolveQuirks(plan, o.quirks);
  if (plan.kind === 'inproc') return new InprocHypervisor({ hardwareVirtualization: plan.hardwareVirtualization, quirks });
  return new QemuHypervisor({
    accel: plan.accel,
    hardwareVirtualization: plan.hardwareVirtualization,
    quirks,
    ...(plan.qemuPath !== undefined ? { binary: plan.qemuPath } : {}),
    ...(o.startBackend ? { startBackend: o.startBackend } : {}),
  });
}

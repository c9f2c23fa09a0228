// Shared by tests/kvm/payload-*.test.ts: boots one freestanding payload (tests/payloads) in the
// in-process VMM and collects what it reported. Not a test file itself.

import { closeSync, openSync } from 'node:fs';
import { createVm, type Vm, type VmOptions } from '../../src/vmm/vm.js';
import { buildPayload, type PayloadName } from '../payloads/build.js';
import type { VmExitReason } from '../../src/contract/exit-reason.js';

/** Exit statuses shared by every payload (tests/payloads/common.inc). */
export const EXIT_OK = 0x00;
export const EXIT_EXCEPTION = 0x7e;
export const EXIT_NOT_REACHED = 0x7f;

/** Why KVM tests cannot run here, or undefined when /dev/kvm opens read-write. */
export function kvmSkipReason(): string | undefined {
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    return undefined;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `/dev/kvm does not open (${e.code ?? e.message}): KVM payload tests need KVM access`;
  }
}

export interface PayloadRun {
  exit: VmExitReason;
  vm: Vm;
  /** host wall time from createVm() to the end of wait(), in ms (informational only) */
  wallMs: number;
  /** true when the safety-net timeout had to stop the VM */
  timedOut: boolean;
}

/**
 * Boots payload `name` and waits for the VM to end. `safetyMs` only guards against a hung guest
 * (the VM is stopped and `timedOut` set); it is never a speed assertion.
 */
export async function runPayload(
  name: PayloadName,
  opts: Partial<Omit<VmOptions, 'kernel'>> = {},
  safetyMs = 120_000,
): Promise<PayloadRun> {
  const kernel = await buildPayload(name);
  const t0 = process.hrtime.bigint();
  const vm = await createVm({ memoryMiB: 128, ...opts, kernel });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void vm.stop();
  }, safetyMs);
  try {
    vm.start();
    const exit = await vm.wait();
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    return { exit, vm, wallMs, timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** A one-line description of a run for assertion messages: exit, debug console text, test values. */
export function describeRun(run: PayloadRun): string {
  const vals = run.vm.testValues.map((v) => `0x${v.toString(16)}`).join(' ');
  const dbg = run.vm.debugOutput.replace(/\n/g, ' ').slice(0, 600);
  return `exit=${JSON.stringify(run.exit)} timedOut=${String(run.timedOut)} testValues=[${vals}] debugcon="${dbg}"`;
}

/** Decodes the exception report of common.inc's exc_common (0xE00000vv, error code, EIP), if any. */
export function exceptionIn(values: readonly number[]): { vector: number; error: number; eip: number } | undefined {
  const i = values.findIndex((v) => ((v & 0xffffff00) >>> 0) === 0xe0000000);
  if (i < 0 || i + 2 >= values.length) return undefined;
  return { vector: values[i]! & 0xff, error: values[i + 1]!, eip: values[i + 2]! };
}

// `kata-ts boot`: run one microVM, stream its console, report the boot timer and exit with the guest's status.
// One path for every backend: the Hypervisor interface (src/hypervisor), whose factory chooses the backend
// for --hypervisor and applies the host-quirks profile for --quirks.

import { closeSync, openSync, writeSync } from 'node:fs';
import type { DeviceSpec } from '../contract/device-spec.js';
import type { VmExitReason } from '../contract/exit-reason.js';
import { chooseHypervisor, createHypervisor, detectHost, parseHypervisorChoice, type HypervisorPlan } from '../hypervisor/factory.js';
import { phaseMs, type BootPhases, type Hypervisor } from '../hypervisor/interface.js';
import { checkVmConfig } from '../hypervisor/vm-config.js';
import { parseDiskArg } from './disk-arg.js';

export const DEFAULT_CMDLINE = 'console=ttyS0 reboot=k panic=1 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd';

/** Ctrl-]: stops the VM from an interactive console (as telnet and virsh console do). */
const CONSOLE_ESCAPE = 0x1d;

export interface BootOptions {
  kernel: string;
  initrd?: string;
  cmdline?: string;
  vcpus: number;
  memory: number;
  console?: string;
  timeout?: number;
  /** host-quirks profile: 'auto', 'none' or a name (kernel-config/host-quirks.json) */
  quirks: string;
  json?: boolean;
  /** `PATH` or `PATH:ro`, one virtio-blk each, in order (the first is /dev/vda) */
  disk?: string[];
  vsockCid?: number;
  vsockUds?: string;
  /** tap interface name for virtio-net */
  net?: string;
  rng?: boolean;
  /** 'inproc' (default), 'qemu' or 'auto' (inproc on hardware KVM, qemu+TCG otherwise) */
  hypervisor?: string;
}

/** The virtio devices the boot flags ask for, in slot order: disks, net, vsock, rng. */
export function deviceSpecs(o: Pick<BootOptions, 'disk' | 'vsockCid' | 'vsockUds' | 'net' | 'rng'>): DeviceSpec[] {
  const specs: DeviceSpec[] = [];
  for (const d of o.disk ?? []) specs.push({ kind: 'blk', ...parseDiskArg(d) });
  if (o.net !== undefined) specs.push({ kind: 'net', tap: o.net });
  if (o.vsockUds !== undefined && o.vsockCid === undefined) {
    throw new Error('--vsock-uds needs --vsock-cid N (the guest CID of the vsock device)');
  }
  if (o.vsockCid !== undefined) {
    specs.push({ kind: 'vsock', cid: o.vsockCid, ...(o.vsockUds !== undefined ? { udsPath: o.vsockUds } : {}) });
  }
  if (o.rng) specs.push({ kind: 'rng' });
  return specs;
}

/** The process exit status for a VM exit. */
export function exitStatus(r: VmExitReason): number {
  switch (r.kind) {
    case 'debug-exit':
      return r.status & 0xff;
    case 'reset':
    case 'shutdown':
      return 0; // the guest powered off or rebooted (reboot=k): a clean stop
    case 'stopped':
      return 124; // stopped by --timeout
    case 'error':
      return 1;
  }
}

/** Phase times in ms since startVm() (absent phases omitted). */
export function phasesMs(p: BootPhases): Record<string, number> {
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  const out: Record<string, number> = {};
  for (const k of ['vmCreateBegan', 'vmCreated', 'running', 'kernelStarted', 'bootTimer', 'exited'] as const) {
    const v = phaseMs(p, p[k]);
    if (v !== undefined) out[k] = round(v);
  }
  for (const [m, at] of Object.entries(p.markers)) {
    const v = phaseMs(p, at);
    if (v !== undefined) out[`marker:${m}`] = round(v);
  }
  return out;
}

/** The plan for --hypervisor (default inproc). */
export function planFor(flag = 'inproc'): HypervisorPlan {
  return chooseHypervisor(parseHypervisorChoice(flag), detectHost());
}

/** Raw terminal input goes to COM1; Ctrl-] stops the VM. Returns the function that restores the terminal. */
function attachTerminal(hv: Hypervisor): () => void {
  const onInput = (buf: Buffer): void => {
    if (buf.includes(CONSOLE_ESCAPE)) void hv.stopVm();
    else hv.sendConsoleInput(buf);
  };
  process.stdin.setRawMode(true);
  process.stdin.on('data', onInput);
  return () => {
    process.stdin.setRawMode(false);
    process.stdin.off('data', onInput);
    process.stdin.pause();
  };
}

function bootTimerLine(p: BootPhases, kind: string): string {
  const ms = phaseMs(p, p.bootTimer, p.vmCreateBegan ?? p.startRequested) ?? 0;
  const cpu = p.bootTimerProcessCpuUs !== undefined ? `, process CPU ${(p.bootTimerProcessCpuUs / 1000).toFixed(1)} ms` : '';
  return `kata-ts: boot timer: guest wrote ${ms.toFixed(3)} ms after VM creation (${kind}${cpu})\n`;
}

export async function bootCommand(o: BootOptions): Promise<number> {
  // the user's inputs first: a wrong path or number is reported as such on any host
  checkVmConfig({ kernelPath: o.kernel, ...(o.initrd ? { initrdPath: o.initrd } : {}), vcpus: o.vcpus, memoryMiB: o.memory });
  const devices = deviceSpecs(o);
  const plan = planFor(o.hypervisor);
  if (plan.notice) process.stderr.write(plan.notice + '\n');
  const hv = createHypervisor(plan, { quirks: o.quirks });
  if (hv.quirks) {
    process.stderr.write(`kata-ts: adding host-quirks profile '${hv.quirks.name}' (${hv.quirks.cmdline.join(' ')})\n`);
  }
  const consoleFd = o.console ? openSync(o.console, 'w') : 1;
  hv.on('log', (line: string) => process.stderr.write(`kata-ts: ${line}\n`));
  hv.on('boot-timer', (p: BootPhases) => process.stderr.write(bootTimerLine(p, plan.kind)));
  await hv.createVm({
    kernelPath: o.kernel,
    ...(o.initrd ? { initrdPath: o.initrd } : {}),
    cmdline: o.cmdline ?? DEFAULT_CMDLINE,
    vcpus: o.vcpus,
    memoryMiB: o.memory,
    devices,
    debugPorts: true,
    console: (bytes) => {
      writeSync(consoleFd, bytes);
    },
  });

  const restoreTerminal = process.stdin.isTTY === true && !o.console ? attachTerminal(hv) : () => undefined;
  let timedOut = false;
  const timer = o.timeout
    ? setTimeout(() => {
        timedOut = true;
        void hv.stopVm();
      }, o.timeout * 1000)
    : undefined;
  let reason: VmExitReason;
  try {
    await hv.startVm();
    reason = await hv.wait();
  } finally {
    if (timer) clearTimeout(timer);
    restoreTerminal();
    if (consoleFd !== 1) closeSync(consoleFd);
  }
  const status = exitStatus(reason);
  if (reason.kind === 'error') {
    const where = reason.vcpu >= 0 ? ` on vCPU ${String(reason.vcpu)}` : '';
    process.stderr.write(`kata-ts: VM failed${where}: ${reason.message}\n`);
  } else if (timedOut) {
    process.stderr.write(`kata-ts: VM stopped after the ${String(o.timeout)} s timeout\n`);
  }
  if (o.json) {
    const p = hv.phases;
    process.stdout.write(
      JSON.stringify({
        exit: reason,
        status,
        hypervisor: plan.kind,
        accel: plan.accel,
        boot_timer_monotonic_ns: p.bootTimer !== undefined ? p.bootTimer.toString() : null,
        /** since the backend began making the VM (inproc: createVm() called; qemu: spawned) */
        boot_timer_ms: phaseMs(p, p.bootTimer, p.vmCreateBegan ?? p.startRequested) ?? null,
        phases_ms: phasesMs(p),
        create_phases_ms: p.createStepsMs ?? {},
        cmdline: hv.cmdline ?? null,
      }) + '\n',
    );
  }
  return status;
}

// `kata-ts boot`: run one microVM in this process, stream its console, report the boot timer and exit
// with the guest's status.

import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { DeviceLogLine } from '../vmm/device-manager.js';
import { checkHost, cpuVirtFlags, kvmPvmLoaded } from '../host/check.js';
import { defaultVcpuPool } from '../vmm/vcpu-pool.js';
import { applyQuirks, loadQuirksProfile } from '../host/quirks.js';
import { createVm } from '../vmm/vm.js';
import type { VmExitReason } from '../contract/exit-reason.js';
import type { DeviceSpec } from '../contract/device-spec.js';

export const DEFAULT_CMDLINE = 'console=ttyS0 reboot=k panic=1 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd';

export interface BootOptions {
  kernel: string;
  initrd?: string;
  cmdline?: string;
  vcpus: number;
  memory: number;
  console?: string;
  timeout?: number;
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
  for (const d of o.disk ?? []) {
    const m = /^(.*?)(?::(ro|rw))?$/.exec(d)!;
    const path = m[1]!;
    if (path === '') throw new Error(`--disk '${d}': give an image path, optionally followed by :ro`);
    if (!existsSync(path)) throw new Error(`disk image not found: ${path} (--disk PATH[:ro] takes a raw image file)`);
    specs.push({ kind: 'blk', path, readOnly: m[2] === 'ro' });
  }
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

function readInput(path: string, what: string, hint: string): Uint8Array {
  if (!existsSync(path)) throw new Error(`${what} not found: ${path} (${hint})`);
  return readFileSync(path);
}

function chooseQuirks(flag: string): string | null {
  if (flag === 'none') return null;
  if (flag !== 'auto') return flag;
  // the cheap evidence first (no VM made): the software virtualizer's module, then the CPU's own flags
  if (kvmPvmLoaded()) return 'pvm';
  if (cpuVirtFlags().some((f) => f === 'vmx' || f === 'svm')) return null;
  // neither: measure guest ring-0 speed
  return checkHost({ probe: true }).quirks_profile;
}

export async function bootCommand(o: BootOptions): Promise<number> {
  if (o.hypervisor !== undefined && o.hypervisor !== 'inproc') {
    // loaded only here: the in-process path below stays as fast to start as before
    const { planFor, bootWithHypervisor } = await import('./boot-hypervisor.js');
    const plan = planFor(o.hypervisor);
    if (plan.notice) process.stderr.write(plan.notice + '\n');
    if (plan.kind !== 'inproc') return bootWithHypervisor(o, plan);
  }
  // vCPU threads take the longest to start: start them first, while the inputs are read
  const workersReady = defaultVcpuPool.prewarm(o.vcpus);
  workersReady.catch(() => undefined);
  const kernel = readInput(o.kernel, 'kernel', 'build one with `npm run --silent guest:kernel` or pass --kernel PATH');
  const initrd = o.initrd ? readInput(o.initrd, 'initrd', 'build one with `npm run --silent guest:initrd`') : undefined;
  let cmdline = o.cmdline ?? DEFAULT_CMDLINE;
  const quirks = chooseQuirks(o.quirks);
  if (quirks) {
    const profile = loadQuirksProfile(quirks);
    cmdline = applyQuirks(cmdline, profile);
    process.stderr.write(`kata-ts: software KVM detected: adding host-quirks profile '${quirks}' (${profile.cmdline.join(' ')})\n`);
  }

  const devices = deviceSpecs(o);
  const consoleFd = o.console ? openSync(o.console, 'w') : 1;
  await workersReady;
  const vm = await createVm({
    kernel,
    ...(initrd ? { initrd } : {}),
    cmdline,
    vcpus: o.vcpus,
    memoryMiB: o.memory,
    debugPorts: true,
    devices,
    console: (bytes) => {
      writeSync(consoleFd, bytes);
    },
  });

  vm.on('device-log', (l: DeviceLogLine) => process.stderr.write(`kata-ts: ${l.device}: ${l.level}: ${l.message}\n`));

  // interactive console: raw terminal input goes to COM1; Ctrl-] stops the VM
  const interactive = process.stdin.isTTY === true && !o.console;
  const onInput = (buf: Buffer): void => {
    if (buf.includes(0x1d)) void vm.stop();
    else vm.sendConsoleInput(buf);
  };
  if (interactive) {
    process.stdin.setRawMode(true);
    process.stdin.on('data', onInput);
  }
  const timer = o.timeout ? setTimeout(() => void vm.stop(), o.timeout * 1000) : undefined;
  vm.on('boot-timer', (b: { sinceCreateNs: bigint; processCpuUs: number }) => {
    process.stderr.write(
      `kata-ts: boot timer: guest wrote ${(Number(b.sinceCreateNs) / 1e6).toFixed(3)} ms after VM creation ` +
        `(process CPU ${(b.processCpuUs / 1000).toFixed(1)} ms)\n`,
    );
  });

  vm.start();
  const reason = await vm.wait();
  if (timer) clearTimeout(timer);
  if (interactive) {
    process.stdin.setRawMode(false);
    process.stdin.off('data', onInput);
    process.stdin.pause();
  }
  if (consoleFd !== 1) closeSync(consoleFd);

  const status = exitStatus(reason);
  if (reason.kind === 'error') process.stderr.write(`kata-ts: VM failed on vCPU ${reason.vcpu}: ${reason.message}\n`);
  else if (reason.kind === 'stopped' && o.timeout) process.stderr.write(`kata-ts: VM stopped after the ${o.timeout} s timeout\n`);
  if (o.json) {
    process.stdout.write(
      JSON.stringify({
        exit: reason,
        status,
        boot_timer_monotonic_ns: vm.bootTimer ? vm.bootTimer.monotonicNs.toString() : null,
        boot_timer_ms: vm.bootTimer ? Number(vm.bootTimer.sinceCreateNs) / 1e6 : null,
        create_phases_ms: Object.fromEntries(vm.createPhases.map((p) => [p.name, p.ms])),
        cmdline,
      }) + '\n',
    );
  }
  return status;
}

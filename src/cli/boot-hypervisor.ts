// `kata-ts boot --hypervisor=qemu|auto`: the same boot as `kata-ts boot` (console, boot timer, exit status,
// --json summary) through the Hypervisor interface, for the backends other than the in-process fast path.

import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { chooseHypervisor, createHypervisor, detectHost, parseHypervisorChoice, type HypervisorPlan } from '../hypervisor/factory.js';
import { phaseMs, type BootPhases } from '../hypervisor/interface.js';
import { applyQuirks, loadQuirksProfile } from '../host/quirks.js';
import { DEFAULT_CMDLINE, deviceSpecs, exitStatus, type BootOptions } from './boot.js';

/** The plan for --hypervisor (undefined or 'inproc' never reach here: bootCommand keeps its own path). */
export function planFor(flag: string): HypervisorPlan {
  return chooseHypervisor(parseHypervisorChoice(flag), detectHost());
}

function requireFile(path: string, what: string, hint: string): void {
  if (!existsSync(path)) throw new Error(`${what} not found: ${path} (${hint})`);
}

/** Phase times in ms since startVm() (absent phases omitted). */
export function phasesMs(p: BootPhases): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ['vmCreated', 'running', 'kernelStarted', 'bootTimer', 'exited'] as const) {
    const v = phaseMs(p, p[k]);
    if (v !== undefined) out[k] = Math.round(v * 1000) / 1000;
  }
  for (const [m, at] of Object.entries(p.markers)) {
    const v = phaseMs(p, at);
    if (v !== undefined) out[`marker:${m}`] = Math.round(v * 1000) / 1000;
  }
  return out;
}

export async function bootWithHypervisor(o: BootOptions, plan: HypervisorPlan): Promise<number> {
  requireFile(o.kernel, 'kernel', 'build one with `npm run --silent guest:kernel` or pass --kernel PATH');
  if (o.initrd) requireFile(o.initrd, 'initrd', 'build one with `npm run --silent guest:initrd`');
  let cmdline = o.cmdline ?? DEFAULT_CMDLINE;
  // host quirks only where guest code runs on the software KVM; a named profile is applied as asked
  const quirks = o.quirks === 'auto' ? (plan.softwareKvm ? 'pvm' : null) : o.quirks === 'none' ? null : o.quirks;
  if (quirks) {
    const profile = loadQuirksProfile(quirks);
    cmdline = applyQuirks(cmdline, profile);
    process.stderr.write(`kata-ts: adding host-quirks profile '${quirks}' (${profile.cmdline.join(' ')})\n`);
  }
  const consoleFd = o.console ? openSync(o.console, 'w') : 1;
  const hv = createHypervisor(plan);
  await hv.createVm({
    kernelPath: o.kernel,
    ...(o.initrd ? { initrdPath: o.initrd } : {}),
    cmdline,
    vcpus: o.vcpus,
    memoryMiB: o.memory,
    devices: deviceSpecs(o),
    console: (bytes) => {
      writeSync(consoleFd, bytes);
    },
  });
  hv.on('log', (line: string) => process.stderr.write(`kata-ts: ${line}\n`));
  hv.on('boot-timer', (p: BootPhases) => {
    process.stderr.write(`kata-ts: boot timer: guest wrote ${(phaseMs(p, p.bootTimer) ?? 0).toFixed(3)} ms after start (${plan.kind})\n`);
  });

  const interactive = process.stdin.isTTY === true && !o.console;
  const onInput = (buf: Buffer): void => {
    if (buf.includes(0x1d)) void hv.stopVm();
    else hv.sendConsoleInput(buf);
  };
  const restoreInput = (): void => {
    if (!interactive) return;
    process.stdin.setRawMode(false);
    process.stdin.off('data', onInput);
    process.stdin.pause();
  };
  if (interactive) {
    process.stdin.setRawMode(true);
    process.stdin.on('data', onInput);
  }
  let timedOut = false;
  const timer = o.timeout
    ? setTimeout(() => {
        timedOut = true;
        void hv.stopVm();
      }, o.timeout * 1000)
    : undefined;
  let reason;
  try {
    await hv.startVm();
    reason = await hv.wait();
  } finally {
    if (timer) clearTimeout(timer);
    restoreInput();
  }
  if (consoleFd !== 1) closeSync(consoleFd);
  const status = exitStatus(reason);
  if (reason.kind === 'error') process.stderr.write(`kata-ts: VM failed: ${reason.message}\n`);
  else if (timedOut) process.stderr.write(`kata-ts: VM stopped after the ${String(o.timeout)} s timeout\n`);
  if (o.json) {
    const p = hv.phases;
    process.stdout.write(
      JSON.stringify({
        exit: reason,
        status,
        hypervisor: plan.kind,
        accel: plan.accel,
        boot_timer_monotonic_ns: p.bootTimer !== undefined ? p.bootTimer.toString() : null,
        boot_timer_ms: phaseMs(p, p.bootTimer) ?? null,
        phases_ms: phasesMs(p),
        cmdline,
      }) + '\n',
    );
  }
  return status;
}

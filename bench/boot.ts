// Boot benchmark: time from "start a VM" to the guest's first instruction, three ways, interleaved:
//   warm  — createVm() in this process (vCPU worker pool already up) -> the guest's boot-timer write
//           (Vm.bootTimer.sinceCreateNs); and the same with a VmShellPool (src/vmm/shell-pool.ts) that made
//           the VM, its memory slots and vCPUs ahead, refilled between runs as a long-lived process would;
//           both with vm.createPhases per step;
//   cold  — a fresh `kata-ts boot --json` process -> its boot-timer write (CLOCK_MONOTONIC, the same
//           clock as this process's hrtime) minus our hrtime just before spawn;
//   qemu  — QEMU microvm with KVM -> the first "B" on its stdout.
// The guest is tests/payloads/bench.S ("B\n" on COM1, 123 on port 0x440, exit on 0xf4).
// Also measures the in-process VMM's memory overhead: RSS growth across a warm boot minus the guest
// RAM the host actually backs. Writes bench/results/boot.{json,md,svg}.
//
// Real kernel (bench/real-kernel.ts): the full guest kernel + test initramfs to its init marker under each
// hypervisor backend this host has (qemu+TCG everywhere; inproc and qemu+KVM on hardware virtualization),
// section `real_kernel_ms` of boot.json/boot.md and the chart boot-real-kernel.svg.
//
// Usage: node dist/bench/boot.js [--runs N] [--real-runs M] [--no-real-kernel]
//        (N >= 1, default 10; M >= 5, default 5)

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPayloadFile } from '../tests/payloads/build.js';
import { VmShellPool } from '../src/vmm/shell-pool.js';
import { createVm } from '../src/vmm/vm.js';
import { detectHost } from '../src/hypervisor/factory.js';
import { benchRealKernel, INIT_MARKER, SERIES_LABEL, type RealKernelResult, type RealKernelSeries } from './real-kernel.js';
import { round3, roundSummary, summarize, type Summary } from './lib/stats.js';
import { renderChart } from './lib/svg.js';

const GUEST_MIB = 128;
const SAFETY_MS = 60_000;
const GOAL_WARM_RATIO = 0.25;
const GOAL_COLD_RATIO = 2;
const GOAL_OVERHEAD_MIB = 5;

const here = dirname(fileURLToPath(import.meta.url));
// dist/bench/boot.js -> repo root is two levels up; bench/boot.ts (run from source) -> one level.
const repoRoot = existsSync(join(here, '../../package.json')) ? resolve(here, '../..') : resolve(here, '..');
const resultsDir = join(repoRoot, 'bench', 'results');
const cliPath = join(repoRoot, 'dist', 'bundle', 'kata-ts.js');

class BenchRunFailed extends Error {
  constructor(series: string, detail: string) {
    super(`${series} run failed: ${detail}`);
    this.name = 'BenchRunFailed';
  }
}

function parseRuns(argv: string[]): number {
  const i = argv.indexOf('--runs');
  if (i < 0) return 10;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new RangeError(`--runs must be an integer from 1 to 1000 (got ${String(argv[i + 1])})`);
  return n;
}

/** --real-runs M (>= 5: the real-kernel section needs at least five runs per backend) */
function parseRealRuns(argv: string[]): number {
  const i = argv.indexOf('--real-runs');
  if (i < 0) return 5;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 5 || n > 1000) throw new RangeError(`--real-runs must be an integer from 5 to 1000 (got ${String(argv[i + 1])})`);
  return n;
}

function kvmOpens(): boolean {
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    return true;
  } catch {
    return false;
  }
}

function hasCommand(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
  } catch {
    return undefined;
  }
}

interface WarmSample {
  ms: number;
  overheadBytes: number;
  /** vm.createPhases: ms per step of createVm() */
  phases: { name: string; ms: number }[];
}

/** One in-process boot; memory is sampled synchronously when the boot-timer event arrives (VM still alive). */
async function warmRun(kernel: Uint8Array, shells?: VmShellPool): Promise<WarmSample> {
  if (shells) {
    // a long-lived process refills its pool between VMs: wait for the refill as such a process would have
    for (let i = 0; i < 1000 && shells.available < 1; i++) await new Promise((r) => setImmediate(r));
    if (shells.available < 1) throw new BenchRunFailed('warm-pooled', `no warm shell: ${shells.lastError?.message ?? 'the pool did not refill'}`);
  }
  const rssBefore = process.memoryUsage().rss;
  const vm = await createVm({ kernel, memoryMiB: GUEST_MIB, ...(shells ? { shells } : {}) });
  let overheadBytes = Number.NaN;
  vm.once('boot-timer', () => {
    overheadBytes = process.memoryUsage().rss - rssBefore - vm.residentGuestBytes();
  });
  const timer = setTimeout(() => void vm.stop(), SAFETY_MS);
  vm.start();
  const exit = await vm.wait();
  clearTimeout(timer);
  if (exit.kind !== 'debug-exit' || exit.status !== 0) throw new BenchRunFailed('warm', `guest ended with ${JSON.stringify(exit)}`);
  if (!vm.bootTimer) throw new BenchRunFailed('warm', 'the guest never wrote the boot timer');
  return { ms: Number(vm.bootTimer.sinceCreateNs) / 1e6, overheadBytes, phases: vm.createPhases };
}

/** Spawns a process and resolves when `ready(stdoutSoFar)` returns a value, then waits for its exit. */
function spawnTimed<T>(series: string, cmd: string, args: string[], ready: (out: string) => T | undefined): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let result: T | undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), SAFETY_MS);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString('latin1');
      if (result === undefined) result = ready(out);
    });
    child.stderr.on('data', (b: Buffer) => (err += b.toString('latin1')));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new BenchRunFailed(series, `${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (result === undefined) result = ready(out);
      if (result === undefined) {
        reject(new BenchRunFailed(series, `${cmd} exited (code ${String(code)}, signal ${String(signal)}) without the boot marker; stderr: ${err.slice(-500)}`));
      } else {
        resolvePromise(result);
      }
    });
  });
}

async function coldRun(payloadPath: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const bootNs = await spawnTimed('cold', process.execPath, [cliPath, 'boot', '--kernel', payloadPath, '--memory', String(GUEST_MIB), '--json'], (out) => {
    for (const line of out.split('\n')) {
      const m = /"boot_timer_monotonic_ns"\s*:\s*"?(\d+)"?/.exec(line);
      if (m) return BigInt(m[1]!);
    }
    return undefined;
  });
  return Number(bootNs - t0) / 1e6;
}

async function qemuRun(payloadPath: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const args = ['-M', 'microvm,acpi=off,x-option-roms=off', '-accel', 'kvm', '-cpu', 'host,-arch-capabilities', '-m', String(GUEST_MIB),
    '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-kernel', payloadPath,
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=4'];
  const tB = await spawnTimed('qemu', 'qemu-system-x86_64', args, (out) => (out.includes('B') ? process.hrtime.bigint() : undefined));
  return Number(tB - t0) / 1e6;
}

function fmt(x: number | undefined, digits = 2): string {
  return x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(digits);
}

async function main(): Promise<void> {
  const runs = parseRuns(process.argv.slice(2));
  const realRuns = parseRealRuns(process.argv.slice(2));
  const doReal = !process.argv.includes('--no-real-kernel');
  const payloadPath = await buildPayloadFile('bench');
  const kernel = new Uint8Array(await readFile(payloadPath));
  const notes: string[] = [];

  const haveKvm = kvmOpens();
  const qemuVersion = hasCommand('qemu-system-x86_64', ['--version']);
  const doWarm = haveKvm;
  const doCold = haveKvm && existsSync(cliPath);
  const doQemu = haveKvm && qemuVersion !== undefined;
  if (!haveKvm) notes.push('/dev/kvm does not open: warm, cold and qemu series skipped');
  if (haveKvm && !existsSync(cliPath)) notes.push(`cold series skipped: ${cliPath} not built (npm run build:ts)`);
  if (haveKvm && qemuVersion === undefined) notes.push('qemu series skipped: qemu-system-x86_64 not on PATH');

  const warm: number[] = [];
  const pooled: number[] = [];
  const phaseRuns: Record<'warm' | 'pooled', Map<string, number[]>> = { warm: new Map(), pooled: new Map() };
  const keepPhases = (which: 'warm' | 'pooled', s: WarmSample): void => {
    for (const p of s.phases) phaseRuns[which].set(p.name, [...(phaseRuns[which].get(p.name) ?? []), p.ms]);
  };
  const shells = doWarm ? new VmShellPool(1, GUEST_MIB, 1) : undefined;
  const overhead: number[] = [];
  const cold: number[] = [];
  const qemu: number[] = [];

  // One discarded warm-up of each series: fills the vCPU worker pool, the page cache and QEMU's
  // shared libraries so that every recorded run sees the same starting state.
  // The warm-up is also the process's first VM: its overhead includes starting the vCPU worker pool.
  const firstOverheadBytes = doWarm ? (await warmRun(kernel)).overheadBytes : undefined;
  if (doWarm) await warmRun(kernel, shells);
  if (doCold) await coldRun(payloadPath);
  if (doQemu) await qemuRun(payloadPath);

  for (let i = 0; i < runs; i++) {
    // rotate the order so no series always runs right after another
    const order = [0, 1, 2].map((k) => (k + i) % 3);
    for (const which of order) {
      if (which === 0 && doWarm) {
        const s = await warmRun(kernel);
        warm.push(s.ms);
        overhead.push(s.overheadBytes / 2 ** 20);
        keepPhases('warm', s);
        const p = await warmRun(kernel, shells);
        pooled.push(p.ms);
        keepPhases('pooled', p);
      } else if (which === 1 && doCold) {
        cold.push(await coldRun(payloadPath));
      } else if (which === 2 && doQemu) {
        qemu.push(await qemuRun(payloadPath));
      }
    }
    process.stderr.write(`run ${String(i + 1)}/${String(runs)}: warm ${fmt(warm.at(-1))} ms, pooled ${fmt(pooled.at(-1))} ms, cold ${fmt(cold.at(-1))} ms, qemu ${fmt(qemu.at(-1))} ms\n`);
  }

  let real: RealKernelResult | undefined;
  if (doReal) {
    try {
      real = await benchRealKernel(repoRoot, detectHost(), realRuns);
      if (!real) notes.push('real kernel section skipped: no hypervisor backend available (no QEMU, no hardware KVM)');
    } catch (e) {
      notes.push(`real kernel section failed: ${(e as Error).message}`);
    }
  }

  shells?.close();
  const sWarm = warm.length ? roundSummary(summarize(warm)) : undefined;
  const sPooled = pooled.length ? roundSummary(summarize(pooled)) : undefined;
  const phaseMedians = (which: 'warm' | 'pooled'): Record<string, number> =>
    Object.fromEntries([...phaseRuns[which]].map(([n, v]) => [n, round3(summarize(v).median)]));
  const sCold = cold.length ? roundSummary(summarize(cold)) : undefined;
  const sQemu = qemu.length ? roundSummary(summarize(qemu)) : undefined;
  const sOver = overhead.length ? roundSummary(summarize(overhead)) : undefined;
  const warmRatio = sWarm && sQemu ? sWarm.median / sQemu.median : undefined;
  const pooledRatio = sPooled && sQemu ? sPooled.median / sQemu.median : undefined;
  const coldRatio = sCold && sQemu ? sCold.median / sQemu.median : undefined;

  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memory_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    qemu: qemuVersion ?? null,
    kvm: existsSync('/sys/module/kvm_pvm') ? 'kvm_pvm (software virtualizer)' : existsSync('/sys/module/kvm_intel') ? 'kvm_intel' : existsSync('/sys/module/kvm_amd') ? 'kvm_amd' : haveKvm ? 'kvm' : 'none',
  };
  const json = {
    warm_ms: sWarm ?? null,
    warm_pooled_ms: sPooled ?? null,
    create_phases_median_ms: { warm: phaseMedians('warm'), pooled: phaseMedians('pooled') },
    cold_ms: sCold ?? null,
    qemu_ms: sQemu ?? null,
    overhead_mib: sOver ? sOver.median : null,
    overhead_mib_runs: sOver ?? null,
    real_kernel_ms: real
      ? {
          to_init: real.to_init_ms,
          boot_timer: real.boot_timer_ms,
          marker: INIT_MARKER,
          kernel: real.kernel,
          initrd: real.initrd,
          cmdline: real.cmdline,
          memory_mib: real.memory_mib,
          runs: real.runs,
          notes: real.notes,
        }
      : null,
    overhead_first_vm_mib: firstOverheadBytes === undefined ? null : Math.round((firstOverheadBytes / 2 ** 20) * 1000) / 1000,
    ratios: { warm_vs_qemu: warmRatio ?? null, warm_pooled_vs_qemu: pooledRatio ?? null, cold_vs_qemu: coldRatio ?? null },
    goals: { warm_vs_qemu_max: GOAL_WARM_RATIO, cold_vs_qemu_max: GOAL_COLD_RATIO, overhead_mib_max: GOAL_OVERHEAD_MIB },
    guest: { payload: 'tests/payloads/bench.S', memory_mib: GUEST_MIB, vcpus: 1 },
    runs,
    notes,
    machine,
    date: new Date().toISOString(),
  };

  const verdict = (ok: boolean | undefined): string => (ok === undefined ? 'n/a' : ok ? 'met' : 'missed');
  const row = (name: string, s: Summary | undefined, ratio: string, goal: string, ok: boolean | undefined): string =>
    `| ${name} | ${fmt(s?.median)} | ${fmt(s?.p90)} | ${fmt(s?.min)} | ${ratio} | ${goal} | ${verdict(ok)} |`;
  const md = [
    '# Boot benchmark',
    '',
    `Guest: \`tests/payloads/bench.S\` (writes "B\\n" to COM1 and 123 to the boot-timer port, then exits), ${String(GUEST_MIB)} MiB, 1 vCPU.`,
    `${String(runs)} interleaved runs per series after one discarded warm-up each. Times are to the guest's first instructions.`,
    '',
    '| series | median ms | p90 ms | min ms | vs QEMU (median) | goal | goal status |',
    '|---|---:|---:|---:|---:|---|---|',
    row('warm (in-process createVm → boot timer)', sWarm, warmRatio === undefined ? 'n/a' : `${warmRatio.toFixed(3)}x`, `<= ${String(GOAL_WARM_RATIO)}x QEMU`, warmRatio === undefined ? undefined : warmRatio <= GOAL_WARM_RATIO),
    row('warm, pooled shell (VmShellPool: VM, memory slots, vCPUs made ahead)', sPooled, pooledRatio === undefined ? 'n/a' : `${pooledRatio.toFixed(3)}x`, `<= ${String(GOAL_WARM_RATIO)}x QEMU`, pooledRatio === undefined ? undefined : pooledRatio <= GOAL_WARM_RATIO),
    row('cold (`kata-ts boot` process → boot timer)', sCold, coldRatio === undefined ? 'n/a' : `${coldRatio.toFixed(3)}x`, `<= ${String(GOAL_COLD_RATIO)}x QEMU`, coldRatio === undefined ? undefined : coldRatio <= GOAL_COLD_RATIO),
    row('QEMU microvm, KVM (spawn → first "B" on stdout)', sQemu, '1x', '—', undefined),
    '',
    ...(phaseRuns.warm.size > 0
      ? [
          '| createVm() step (vm.createPhases), median ms | warm | pooled shell |',
          '|---|---:|---:|',
          ...[...phaseRuns.warm.keys()].map((n) => `| ${n} | ${fmt(phaseMedians('warm')[n])} | ${fmt(phaseMedians('pooled')[n])} |`),
          '',
        ]
      : []),
    '| memory | median MiB | p90 MiB | min MiB | goal | goal status |',
    '|---|---:|---:|---:|---|---|',
    `| warm VMM overhead (RSS growth − resident guest RAM) | ${fmt(sOver?.median)} | ${fmt(sOver?.p90)} | ${fmt(sOver?.min)} | <= ${String(GOAL_OVERHEAD_MIB)} MiB | ${verdict(sOver ? sOver.median <= GOAL_OVERHEAD_MIB : undefined)} |`,
    '',
    `Overhead of the process's first VM (the discarded warm-up, which also starts the vCPU worker pool): ` +
      `${fmt(firstOverheadBytes === undefined ? undefined : firstOverheadBytes / 2 ** 20)} MiB. RSS deltas of later runs are noisy ` +
      '(the JS heap can shrink between samples, hence values below 0).',
    '',
    ...(real ? realKernelMd(real) : []),
    `Machine: ${machine.cpu}, ${String(machine.cores)} cores, ${String(machine.memory_gib)} GiB, Linux ${machine.kernel}, Node ${machine.node}, ` +
      `KVM: ${machine.kvm}, ${machine.qemu ?? 'no QEMU'}. Date: ${json.date}.`,
    ...(notes.length ? ['', ...notes.map((n) => `- ${n}`)] : []),
    '',
    '![boot times](boot.svg)',
    '',
  ].join('\n');

  const series = [
    ...(sWarm ? [{ label: 'warm (in-process)', summary: sWarm, color: '#2b7bb9', ...(sQemu ? { goal: { value: sQemu.median * GOAL_WARM_RATIO, label: `goal ${String(GOAL_WARM_RATIO)}x QEMU` } } : {}) }] : []),
    ...(sPooled ? [{ label: 'warm, pooled shell', summary: sPooled, color: '#1f9e89' }] : []),
    ...(sCold ? [{ label: 'cold (new process)', summary: sCold, color: '#e08a1e', ...(sQemu ? { goal: { value: sQemu.median * GOAL_COLD_RATIO, label: `goal ${String(GOAL_COLD_RATIO)}x QEMU` } } : {}) }] : []),
    ...(sQemu ? [{ label: 'QEMU microvm (KVM)', summary: sQemu, color: '#6a6a6a' }] : []),
  ];
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, 'boot.json'), JSON.stringify(json, null, 2) + '\n');
  await writeFile(join(resultsDir, 'boot.md'), md);
  if (series.length) {
    await writeFile(join(resultsDir, 'boot.svg'), renderChart({
      title: `Time to first guest instruction (${String(runs)} runs each)`,
      unit: 'milliseconds (bar = median, whisker = min..p90, dots = runs)',
      series,
      notes: [`${machine.cpu} · ${machine.kvm} · ${json.date}`, ...notes],
    }));
  }
  if (real) {
    const rs = (Object.keys(real.to_init_ms) as RealKernelSeries[]).map((k, i) => ({
      label: SERIES_LABEL[k],
      summary: real.to_init_ms[k]!,
      color: ['#2b7bb9', '#6a6a6a', '#b94a2b'][i % 3]!,
    }));
    await writeFile(join(resultsDir, 'boot-real-kernel.svg'), renderChart({
      title: `Real kernel: start -> init marker (${String(real.runs)} runs each)`,
      unit: 'milliseconds (bar = median, whisker = min..p90, dots = runs)',
      series: rs,
      notes: [`${machine.cpu} · ${machine.kvm} · ${json.date}`, ...real.notes],
    }));
  }
  process.stdout.write(md);
}

function realKernelMd(r: RealKernelResult): string[] {
  const keys = Object.keys(r.to_init_ms) as RealKernelSeries[];
  return [
    '## Real kernel to init',
    '',
    `The full guest kernel (\`npm run guest:kernel\`) and the test initramfs (\`npm run guest:initrd:test\`), ${String(r.memory_mib)} MiB, 1 vCPU, ` +
      `the same command line on every backend (\`${r.cmdline}\`). Time from \`Hypervisor.startVm()\` (createVm / QEMU spawn) to the ` +
      `init's \`${INIT_MARKER}\` on the console, and to its boot-timer write; ${String(r.runs)} interleaved runs per backend after one discarded warm-up.`,
    '',
    '| backend | to init median ms | p90 ms | min ms | boot timer median ms |',
    '|---|---:|---:|---:|---:|',
    ...keys.map((k) => {
      const s = r.to_init_ms[k]!;
      return `| ${SERIES_LABEL[k]} | ${fmt(s.median, 1)} | ${fmt(s.p90, 1)} | ${fmt(s.min, 1)} | ${fmt(r.boot_timer_ms[k]?.median, 1)} |`;
    }),
    ...(r.notes.length ? ['', ...r.notes.map((n) => `- ${n}`)] : []),
    '',
    '![real kernel boot times](boot-real-kernel.svg)',
    '',
  ];
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exitCode = 1;
});

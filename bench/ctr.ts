// containerd benchmark: `ctr run --rm IMAGE ID /bin/true` with the kata-ts shim (io.containerd.kata-ts.v2: a
// microVM per container) against Debian's runc shim (io.containerd.runc.v2), on a real containerd 1.6 started for
// the benchmark (tests/shim/containerd-harness.ts: own root/state/socket, a busybox-static OCI image imported
// offline). Runs alternate one by one (kata-ts, runc, ...) after one discarded warm-up of each.
//
// Totals are host wall time from spawning `ctr run --rm` to its exit (the task and container are removed by then).
// kata-ts phases come from the shim's log (KATA_TS_SHIM_LOG_DIR, one file per sandbox: `<ISO time> <level>
// sandbox=<id> <msg>`): the messages in SHIM_PHASES, as ms since ctr was spawned. The anchor: Kata Containers
// with Cloud Hypervisor reports ~0.4 s from `ctr run` to the workload on hardware KVM; here the VM runs under
// QEMU TCG where the host has no usable KVM (see the hypervisor line of the report).
//
// Usage: node dist/bench/ctr.js [--runs N]   (root; default 10) -> bench/results/ctr.{json,md,svg}

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Containerd, ctrSkipReason, IMAGE, KATA, RUNC } from '../tests/shim/containerd-harness.js';
import { chooseHypervisor, detectHost } from '../src/hypervisor/factory.js';
import { round3, roundSummary, summarize, type Summary } from './lib/stats.js';
import { renderChart } from './lib/svg.js';
import { parseShimPhases, SHIM_PHASES } from './lib/ctr-phases.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = existsSync(join(here, '../../package.json')) ? resolve(here, '../..') : resolve(here, '..');
const resultsDir = join(repoRoot, 'bench', 'results');

function nowEpochMs(): number {
  return performance.timeOrigin + performance.now();
}

function timedCtr(c: Containerd, runtime: string, id: string): Promise<{ ms: number; t0: number; code: number | null; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const t0 = nowEpochMs();
    const child = spawn('ctr', ['-a', c.address, '-n', c.ns, 'run', '--rm', '--runtime', runtime, IMAGE, id, '/bin/true'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolvePromise({ ms: nowEpochMs() - t0, t0, code, stderr }));
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const ri = args.indexOf('--runs');
  const runs = ri >= 0 ? Number(args[ri + 1]) : 10;
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs needs a positive integer');
  const skip = ctrSkipReason();
  if (skip) throw new Error(`cannot run the containerd benchmark here: ${skip}`);
  const plan = chooseHypervisor('auto', detectHost());
  const c = new Containerd();
  const load0 = loadavg()[0]!;
  try {
    await c.start();
    await c.importImage();
    const kata: number[] = [];
    const runc: number[] = [];
    const phases = new Map<string, number[]>();
    for (let i = -1; i < runs; i++) {
      for (const [rt, runtime] of [['kata', KATA], ['runc', RUNC]] as const) {
        const id = `b-${rt}-${i + 1}`;
        const r = await timedCtr(c, runtime, id);
        if (r.code !== 0) throw new Error(`${rt} run ${id} failed (${r.code}): ${r.stderr}\n${c.diagnostics().slice(-4000)}`);
        if (i < 0) continue; // warm-up
        (rt === 'kata' ? kata : runc).push(r.ms);
        if (rt === 'kata') {
          const log = join(c.logs, `${c.ns}-${id}.log`);
          const marks = parseShimPhases(existsSync(log) ? readFileSync(log, 'utf8') : '');
          for (const [p, t] of marks) phases.set(p, [...(phases.get(p) ?? []), t - r.t0]);
        }
        process.stderr.write(`${rt} ${id}: ${r.ms.toFixed(0)} ms\n`);
      }
    }
    const kataSum = summarize(kata);
    const runcSum = summarize(runc);
    const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
    const phaseRows: string[] = [];
    const phaseJson: Record<string, Summary> = {};
    let prev = 0;
    for (const [msg, name] of SHIM_PHASES) {
      const v = phases.get(name);
      if (!v || v.length === 0) {
        phaseRows.push(`| ${name} (\`${msg}\`) | not logged | | |`);
        continue;
      }
      const s = summarize(v);
      phaseJson[name] = roundSummary(s);
      phaseRows.push(`| ${name} (\`${msg}\`) | ${fmt(s.median)} | ${fmt(s.median - prev)} | ${fmt(s.p90)} |`);
      prev = s.median;
    }
    const hv = `${plan.kind} (${plan.accel})`;
    const md = [
      '# containerd benchmark: `ctr run --rm` with the kata-ts shim and the runc shim',
      '',
      '`ctr run --rm IMAGE ID /bin/true` on a containerd 1.6 started for the benchmark, busybox-static OCI image, host wall',
      `time from spawning ctr to its exit. ${runs} runs of each, interleaved one by one, after one discarded warm-up of each.`,
      `kata-ts hypervisor: ${hv}. Anchor: Kata Containers with Cloud Hypervisor reports ~0.4 s from \`ctr run\` to the`,
      'workload on hardware KVM; this host has no hardware KVM (QEMU TCG emulates the guest), so the VM phases are far slower here.',
      '',
      '| runtime | median ms | p90 ms | min ms | max ms |',
      '|---|---:|---:|---:|---:|',
      `| kata-ts shim (${KATA}) | ${fmt(kataSum.median)} | ${fmt(kataSum.p90)} | ${fmt(kataSum.min)} | ${fmt(kataSum.max)} |`,
      `| runc shim (${RUNC}) | ${fmt(runcSum.median)} | ${fmt(runcSum.p90)} | ${fmt(runcSum.min)} | ${fmt(runcSum.max)} |`,
      '',
      `kata-ts / runc (medians): ${(kataSum.median / runcSum.median).toFixed(1)}x.`,
      '',
      '## kata-ts shim phases (from the shim log; ms since ctr was spawned)',
      '',
      '| phase (log message) | median ms since spawn | median step ms | p90 ms |',
      '|---|---:|---:|---:|',
      ...phaseRows,
      '',
      `"workload" = \`container started\`: the guest agent started the container's process (ctr run to workload: ${phaseJson['workload'] ? fmt(phaseJson['workload'].median) : '?'} ms median).`,
      '',
      `Machine: ${cpus()[0]?.model.trim() ?? '?'}, ${cpus().length} cores, ${round3(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}. 1-min load average ${load0.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after. Date: ${new Date().toISOString()}.`,
      '',
      '![ctr run times](ctr.svg)',
      '',
    ].join('\n');
    const json = { runs, hypervisor: hv, kata: { ...roundSummary(kataSum), runs: kata.map(round3) }, runc: { ...roundSummary(runcSum), runs: runc.map(round3) }, phases: phaseJson, date: new Date().toISOString() };
    await mkdir(resultsDir, { recursive: true });
    await writeFile(join(resultsDir, 'ctr.json'), JSON.stringify(json, null, 2) + '\n');
    await writeFile(join(resultsDir, 'ctr.md'), md);
    await writeFile(
      join(resultsDir, 'ctr.svg'),
      renderChart({
        title: 'ctr run --rm /bin/true: kata-ts shim vs runc shim (ms)',
        unit: 'ms',
        series: [
          { label: 'kata-ts shim', summary: kataSum, color: '#d9534f' },
          { label: 'runc shim', summary: runcSum, color: '#5cb85c' },
        ],
        notes: [`kata-ts hypervisor: ${hv}; ${runs} interleaved runs each`, 'anchor: Kata + Cloud Hypervisor ~400 ms ctr run to workload on hardware KVM'],
      }),
    );
    process.stdout.write(md);
  } finally {
    await c.cleanup();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bench:ctr: ${e.message}\n`);
  process.exit(1);
});

// Container start benchmark: `kata-ts run` (a microVM per container) against `runc run` (namespaces on the
// host) on the same busybox bundle running /bin/true. Runs alternate one by one (kata-ts, runc, kata-ts, ...)
// so that other load on the machine hits both alike; one discarded warm-up of each comes first (it also builds
// the cached guest kernel and agent initrd if needed).
//
// Totals are host wall time from spawning the CLI to its exit (both CLIs remove the container before exiting).
// kata-ts phases come from its JSON log (`--log FILE --log-format json`): every line carrying a string `phase`
// (or a `msg` the sandbox process logs at a phase: MESSAGE_PHASES) and a timestamp `time` (epoch ms, a number or an
// ISO string) marks that phase; each is reported as ms since the CLI was spawned. The phases the runtime exposes
// are used as they are; the canonical order is PHASE_ORDER, and the ones it does not expose are listed as such.
//
// Usage: node dist/bench/run.js [--runs N] [--hypervisor auto|qemu|inproc] [--unbundled]   (root; default 10 runs)
//        -> bench/results/run.{json,md,svg}

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { round3, roundSummary, summarize, type Summary } from './lib/stats.js';
import { renderChart } from './lib/svg.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = existsSync(join(here, '../../package.json')) ? resolve(here, '../..') : resolve(here, '..');
const resultsDir = join(repoRoot, 'bench', 'results');
/** The CLI users run (the bundle); `--unbundled` times tsc's ES modules instead, for a before/after. */
let cliPath = join(repoRoot, 'dist', 'bundle', 'kata-ts.js');

export const PHASE_ORDER = ['spawn', 'vm-created', 'kernel-start', 'agent-ready', 'container-created', 'container-started', 'exited', 'sandbox-shutdown'] as const;

/** Epoch ms with sub-ms resolution, comparable with Date.now()-based log timestamps of other processes. */
function nowEpochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Log messages of the sandbox process (src/runtime/sandbox-main.ts) that mark a phase without a `phase` field. */
export const MESSAGE_PHASES: Readonly<Record<string, string>> = {
  'vm started': 'vm-created',
  'kernel started': 'kernel-start',
  'agent ready': 'agent-ready',
  'container created': 'container-created',
  'container started': 'container-started',
  'container exited': 'exited',
  'sandbox shutting down': 'sandbox-shutdown',
};

/**
 * Phase marks from a JSON-lines log: `{ "phase": "agent-ready", "time": 1764226530123.4 }` (time may also
 * be an ISO string), or a line whose `msg` is one of MESSAGE_PHASES. The first mark of each phase wins. Lines
 * that are not JSON objects are skipped.
 */
export function parsePhases(log: string): Map<string, number> {
  const marks = new Map<string, number>();
  for (const line of log.split('\n')) {
    const s = line.trim();
    if (!s.startsWith('{')) continue;
    let o: unknown;
    try {
      o = JSON.parse(s);
    } catch {
      continue;
    }
    if (typeof o !== 'object' || o === null) continue;
    const rec = o as Record<string, unknown>;
    const msg = rec['msg'];
    const phase = typeof rec['phase'] === 'string' && rec['phase'] !== '' ? rec['phase'] : typeof msg === 'string' ? MESSAGE_PHASES[msg.toLowerCase()] : undefined;
    if (phase === undefined) continue;
    const tv = rec['time'] ?? rec['ts'];
    const time = typeof tv === 'number' ? tv : typeof tv === 'string' ? Date.parse(tv) : NaN;
    if (!Number.isFinite(time)) continue;
    const name = phase.toLowerCase().replace(/[^a-z0-9]+/g, '-');
    if (!marks.has(name)) marks.set(name, time);
  }
  return marks;
}

/** Which VMM ran the sandbox: its `VM started` log line carries `hypervisor` and `accel`, e.g. 'qemu (tcg)'. */
export function vmmOf(log: string): string | undefined {
  for (const line of log.split('\n')) {
    if (!line.includes('VM started')) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o['msg'] !== 'VM started' || typeof o['hypervisor'] !== 'string') continue;
      return typeof o['accel'] === 'string' ? `${o['hypervisor']} (${o['accel']})` : o['hypervisor'];
    } catch {
      /* not JSON */
    }
  }
  return undefined;
}

/** Phase names sorted: canonical ones in PHASE_ORDER, then others by their median time. */
export function orderPhases(medians: Map<string, number>): string[] {
  const canon = PHASE_ORDER as readonly string[];
  return [...medians.keys()].sort((a, b) => {
    const ia = canon.indexOf(a);
    const ib = canon.indexOf(b);
    if (ia >= 0 && ib >= 0) return ia - ib;
    return medians.get(a)! - medians.get(b)!;
  });
}

interface Timed {
  ms: number;
  code: number | null;
  stderr: string;
}

function timedSpawn(cmd: string, args: string[]): Promise<Timed & { t0: number }> {
  return new Promise((resolvePromise, reject) => {
    const t0 = nowEpochMs();
    const p0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolvePromise({ t0, ms: performance.now() - p0, code, stderr }));
  });
}

interface KataRun {
  total: number;
  phases: Map<string, number>;
  /** e.g. 'qemu (tcg)', from the sandbox process's log */
  vmm?: string;
}

async function kataRun(bundle: string, root: string, logDir: string, i: number, hypervisor: string | undefined): Promise<KataRun> {
  const id = `bench-${process.pid}-${i}`;
  const log = join(logDir, `kata-${i}.log`);
  const args = [cliPath, '--root', root, '--log', log, '--log-format', 'json', ...(hypervisor ? ['--hypervisor', hypervisor] : []), 'run', '--bundle', bundle, id];
  const r = await timedSpawn(process.execPath, args);
  // not timed: make sure nothing is left for the next run
  spawnSync(process.execPath, [cliPath, '--root', root, 'delete', '--force', id], { stdio: 'ignore', timeout: 60_000 });
  if (r.code !== 0) throw new Error(`kata-ts run exited with ${String(r.code)}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
  const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
  const marks = parsePhases(text);
  const vmm = vmmOf(text);
  const phases = new Map<string, number>();
  for (const [name, t] of marks) phases.set(name, t - r.t0);
  return { total: r.ms, phases, ...(vmm !== undefined ? { vmm } : {}) };
}

async function runcRun(bundle: string, root: string, i: number): Promise<number> {
  const id = `bench-runc-${process.pid}-${i}`;
  const r = await timedSpawn('runc', ['--root', root, 'run', '--bundle', bundle, id]);
  spawnSync('runc', ['--root', root, 'delete', '--force', id], { stdio: 'ignore' });
  if (r.code !== 0) throw new Error(`runc run exited with ${String(r.code)}: ${r.stderr.trim()}`);
  return r.ms;
}

function fmt(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export async function main(argv: string[]): Promise<number> {
  let runs = 10;
  let hypervisor: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') runs = Number(argv[++i]);
    else if (argv[i] === '--unbundled') cliPath = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
    else if (argv[i] === '--hypervisor') hypervisor = argv[++i];
    else throw new Error(`unknown argument ${argv[i]!}: use --runs N, --hypervisor auto|qemu|inproc and --unbundled`);
  }
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  if (process.getuid?.() !== 0) throw new Error('bench:run needs root (runc and the kata-ts runtime create namespaces and VMs)');
  if (spawnSync('runc', ['--version']).status !== 0) throw new Error('runc not found: bash guest/install-deps.sh');
  if (!existsSync(cliPath)) throw new Error(`${cliPath} missing: npm run build:ts`);

  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-bench-run-'));
  try {
    const mk = spawnSync('bash', [join(repoRoot, 'guest/make-bundle.sh'), join(dir, 'bundle'), '/bin/true'], { encoding: 'utf8' });
    if (mk.status !== 0) throw new Error(`guest/make-bundle.sh failed: ${mk.stderr.trim()}`);
    const bundle = mk.stdout.trim().split('\n').pop()!;
    const kataRoot = join(dir, 'kata-root');
    const runcRoot = join(dir, 'runc-root');

    process.stderr.write('[bench:run] warm-up (may build the guest kernel and agent initrd once)\n');
    await kataRun(bundle, kataRoot, dir, -1, hypervisor);
    await runcRun(bundle, runcRoot, -1);

    const load0 = loadavg()[0]!;
    const kata: KataRun[] = [];
    const runc: number[] = [];
    for (let i = 0; i < runs; i++) {
      kata.push(await kataRun(bundle, kataRoot, dir, i, hypervisor));
      runc.push(await runcRun(bundle, runcRoot, i));
      process.stderr.write(`[bench:run] ${i + 1}/${runs}: kata-ts ${fmt(kata[i]!.total)} ms, runc ${fmt(runc[i]!)} ms\n`);
    }
    const load1 = loadavg()[0]!;

    const kataSum = summarize(kata.map((k) => k.total));
    const runcSum = summarize(runc);
    // phases present in every run
    const names = [...new Set(kata.flatMap((k) => [...k.phases.keys()]))].filter((n) => kata.every((k) => k.phases.has(n)));
    const phaseSums = new Map<string, Summary>(names.map((n) => [n, summarize(kata.map((k) => k.phases.get(n)!))]));
    const order = orderPhases(new Map([...phaseSums].map(([n, s]) => [n, s.median])));
    const partial = [...new Set(kata.flatMap((k) => [...k.phases.keys()]))].filter((n) => !names.includes(n));
    const missing = (['vm-created', 'kernel-start', 'agent-ready', 'container-started', 'exited'] as string[]).filter((p) => !names.includes(p));

    const json = {
      benchmark: 'run',
      description: '`kata-ts run` vs `runc run` of the same busybox bundle (/bin/true), ms from spawn to exit; kata-ts phases in ms since spawn',
      runs,
      cli: relative(repoRoot, cliPath),
      hypervisor: [...new Set(kata.map((k) => k.vmm ?? '?'))].join(', ') + (hypervisor ? ` (--hypervisor ${hypervisor})` : ' (configuration.toml default)'),
      kata: roundSummary(kataSum),
      runc: roundSummary(runcSum),
      ratioMedian: round3(kataSum.median / runcSum.median),
      phases: Object.fromEntries(order.map((n) => [n, roundSummary(phaseSums.get(n)!)])),
      phasesNotExposed: missing,
      phasesInSomeRunsOnly: partial,
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memGiB: round3(totalmem() / 2 ** 30), kernel: release(), node: process.version },
      load: { before: load0, after: load1 },
      date: new Date().toISOString(),
    };

    let prev = 0;
    const phaseRows = order.map((n) => {
      const s = phaseSums.get(n)!;
      const row = `| ${n} | ${fmt(s.median)} | ${fmt(s.median - prev)} | ${fmt(s.p90)} |`;
      prev = s.median;
      return row;
    });
    const md = [
      '# Container run benchmark',
      '',
      '`kata-ts run` (container in a microVM: VM boot, guest agent, runc in the guest) against `runc run` (namespaces on the',
      'host), the same busybox-static bundle running `/bin/true`, host wall time from spawning the CLI to its exit.',
      `${runs} runs of each, interleaved one by one, after one discarded warm-up of each. Hypervisor: ${json.hypervisor}. CLI: \`${json.cli}\`.`,
      '',
      '| runtime | median ms | p90 ms | min ms | max ms |',
      '|---|---:|---:|---:|---:|',
      `| kata-ts run | ${fmt(kataSum.median)} | ${fmt(kataSum.p90)} | ${fmt(kataSum.min)} | ${fmt(kataSum.max)} |`,
      `| runc run | ${fmt(runcSum.median)} | ${fmt(runcSum.p90)} | ${fmt(runcSum.min)} | ${fmt(runcSum.max)} |`,
      '',
      `kata-ts / runc (medians): ${fmt(json.ratioMedian)}x.`,
      '',
      '## kata-ts phases (from its JSON log; ms since the CLI was spawned)',
      '',
      ...(order.length > 0
        ? ['| phase | median ms since spawn | median step ms | p90 ms |', '|---|---:|---:|---:|', ...phaseRows]
        : ['The runtime logged no `phase` marks, so only totals are shown.']),
      ...(missing.length > 0 ? ['', `Phases the runtime does not expose: ${missing.join(', ')}.`] : []),
      ...(partial.length > 0 ? ['', `Phases seen in some runs only (left out): ${partial.join(', ')}.`] : []),
      '',
      `Machine: ${json.machine.cpu}, ${json.machine.cores} cores, ${json.machine.memGiB} GiB, Linux ${json.machine.kernel}, Node ${json.machine.node}. ` +
        `1-min load average ${load0.toFixed(2)} before, ${load1.toFixed(2)} after. Date: ${json.date}.`,
      '',
      '![run times](run.svg)',
      '',
    ].join('\n');

    await mkdir(resultsDir, { recursive: true });
    await writeFile(join(resultsDir, 'run.json'), JSON.stringify(json, null, 2) + '\n');
    await writeFile(join(resultsDir, 'run.md'), md);
    await writeFile(
      join(resultsDir, 'run.svg'),
      renderChart({
        title: 'kata-ts run vs runc run (/bin/true)',
        unit: 'ms from spawn',
        series: [
          { label: 'runc run', summary: runcSum, color: '#4c72b0' },
          ...order.map((n) => ({ label: `kata-ts: ${n}`, summary: phaseSums.get(n)!, color: '#8172b2' })),
          { label: 'kata-ts run', summary: kataSum, color: '#dd8452' },
        ],
        notes: [`${runs} interleaved runs each; kata-ts phases from its JSON log, ms since the CLI was spawned.`],
      }),
    );
    process.stdout.write(md);
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (c) => (process.exitCode = c),
    (e: Error) => {
      process.stderr.write(`kata-ts bench:run: ${e.message}\n`);
      process.exitCode = 1;
    },
  );
}

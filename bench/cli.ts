// Cold start of a `kata-ts` process: what a new process costs before it does its work, the unbundled ES
// modules (dist/src/cli/main.js, as tsc writes them) against the bundle users run (dist/bundle/kata-ts.js,
// tools/bundle.ts: a launcher compiling the CommonJS body with V8's code cache), the same without the cache,
// and the same bundle started from a V8 startup snapshot (dist/bundle/kata-ts-snapshot), with `node -e 0` as
// the floor (Node's own start). Every OCI call containerd's runc shim or
// podman makes (create, start, state, kill, delete, exec) is such a cold process, and so is `kata-ts boot`.
//
// Commands: `--version` (parsing only), `state` of a missing container (loads the runtime and answers with its
// one-line error) and `boot` of the bench payload: with a usable /dev/kvm that is a whole cold boot to the
// payload's exit; without one, the process runs until it finds that out (after loading the VMM and starting its
// vCPU worker, before the first KVM ioctl), which is the host-side part of a cold boot. Runs are interleaved
// (floor, unbundled, bundled, snapshot, for each command in turn) so that load hits every series alike.
// Then one `--cpu-prof` of each variant's `boot` is summarised by where the time went.
//
// Usage: node dist/bench/cli.js [--runs N]   (default 21)   -> bench/results/cli.{json,md,svg}

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildPayloadFile } from '../tests/payloads/build.js';
import { machineInfo, round3, roundSummary, summarize, type Summary } from './lib/stats.js';
import { renderChart } from './lib/svg.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = existsSync(join(here, '../../package.json')) ? resolve(here, '../..') : resolve(here, '..');
const resultsDir = join(repoRoot, 'bench', 'results');
/** How each variant is started: [file, ...args before the command's]. */
const VARIANTS = {
  unbundled: [process.execPath, join(repoRoot, 'dist', 'src', 'cli', 'main.js')],
  bundled: [process.execPath, join(repoRoot, 'dist', 'bundle', 'kata-ts.js')],
  // the same launcher told not to use V8's code cache (KATA_TS_CODE_CACHE=off, ENV below): what the cache saves
  'no-cache': [process.execPath, join(repoRoot, 'dist', 'bundle', 'kata-ts.js')],
  // the same bundle evaluated into a V8 startup snapshot (tools/bundle.ts), started by its launcher
  snapshot: [join(repoRoot, 'dist', 'bundle', 'kata-ts-snapshot')],
} as const;
type Variant = keyof typeof VARIANTS;
const ENV: Partial<Record<Variant, NodeJS.ProcessEnv>> = { 'no-cache': { ...process.env, KATA_TS_CODE_CACHE: 'off' } };
const COLORS: Record<Variant, string> = { unbundled: '#c0504d', bundled: '#4f81bd', 'no-cache': '#8064a2', snapshot: '#9bbb59' };

function fmt(x: number): string {
  return x.toFixed(1);
}

function timed(argv: readonly string[], env?: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore', timeout: 120_000, env: env ?? process.env });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Self time of a V8 CPU profile by where it went: Node's module loader, file calls, our code, GC, ... */
export function profileShares(profile: { nodes: { id: number; callFrame: { url: string; functionName: string } }[]; samples: number[]; timeDeltas: number[] }): Record<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const out: Record<string, number> = {};
  profile.samples.forEach((id, i) => {
    const f = byId.get(id);
    const url = f?.url ?? '';
    const fn = f?.functionName ?? '';
    const kind = url.startsWith('node:internal/modules')
      ? 'Node module loader (resolve, read, link, compile)'
      : url.startsWith('node:')
        ? 'other Node internals'
        : url.includes('/node_modules/')
          ? 'dependencies (commander, ...)'
          : url.includes('/dist/')
            ? 'kata-ts code (and bundled dependencies)'
            : fn === '(garbage collector)'
              ? 'garbage collector'
              : fn === '(idle)' || fn === '(program)' || fn === '(root)'
                ? 'V8 and native, idle'
                : 'native calls (fstat, open, read, ...)';
    out[kind] = (out[kind] ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000;
  });
  return out;
}

function profileBoot(variant: 'unbundled' | 'bundled', bootArgs: string[]): Record<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-cli-prof-'));
  try {
    spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, VARIANTS[variant][1], ...bootArgs], { stdio: 'ignore', timeout: 120_000 });
    // the main thread's profile is the first one written (the vCPU worker writes its own)
    const first = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()[0];
    if (!first) return {};
    return profileShares(JSON.parse(readFileSync(join(dir, first), 'utf8')) as Parameters<typeof profileShares>[0]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let runs = 21;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') runs = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]!}: use --runs N`);
  }
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  for (const p of Object.values(VARIANTS)) if (!existsSync(p.at(-1)!)) throw new Error(`${p.at(-1)!} missing: npm run bench:cli builds every variant`);
  // each variant must be the same CLI (a launcher that lost its arguments would be timed failing fast)
  for (const [name, p] of Object.entries(VARIANTS)) {
    const r = spawnSync(p[0], [...p.slice(1), '--root', join(tmpdir(), 'kata-ts-bench-cli-none'), 'state', 'nope'], { encoding: 'utf8', timeout: 60_000, env: ENV[name as Variant] ?? process.env });
    if (!/^kata-ts: container 'nope' does not exist/.test(r.stderr)) throw new Error(`the ${name} CLI did not answer as the CLI does: ${r.stderr.trim() || `exit ${String(r.status)}`}`);
  }

  const payload = await buildPayloadFile('bench');
  let kvm = false;
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    kvm = true;
  } catch {
    // absent or not ours to open: boot stops at its check
  }
  const root = mkdtempSync(join(tmpdir(), 'kata-ts-cli-root-'));
  const bootArgs = ['boot', '--kernel', payload, '--memory', '128', '--hypervisor', 'inproc'];
  const commands: Record<string, string[]> = {
    '--version': ['--version'],
    'state (missing container)': ['--root', root, 'state', 'nope'],
    [kvm ? 'boot (cold, to the payload exit)' : 'boot (until it finds no /dev/kvm)']: bootArgs,
  };

  const floor: number[] = [];
  const res: Record<string, Record<Variant, number[]>> = {};
  const nodeFloor = [process.execPath, '-e', '0'];
  timed(nodeFloor);
  // warm-up (it also writes the bundle's code cache where the build's own run did not)
  for (const args of Object.values(commands)) for (const [v, p] of Object.entries(VARIANTS)) timed([...p, ...args], ENV[v as Variant]);
  const load0 = loadavg()[0]!;
  for (let i = 0; i < runs; i++) {
    for (const [name, args] of Object.entries(commands)) {
      floor.push(timed(nodeFloor));
      const r = (res[name] ??= { unbundled: [], bundled: [], 'no-cache': [], snapshot: [] });
      for (const v of Object.keys(VARIANTS) as Variant[]) r[v].push(timed([...VARIANTS[v], ...args], ENV[v]));
    }
    process.stderr.write(`[bench:cli] ${i + 1}/${runs}\n`);
  }
  rmSync(root, { recursive: true, force: true });
  const profiles = { unbundled: profileBoot('unbundled', bootArgs), bundled: profileBoot('bundled', bootArgs) };

  const floorSum = summarize(floor);
  const rows = Object.entries(res).map(([name, r]) => {
    const u = summarize(r.unbundled);
    const b = summarize(r.bundled);
    const sn = summarize(r.snapshot);
    const nc = summarize(r['no-cache']);
    return {
      name,
      unbundled: u,
      bundled: b,
      'no-cache': nc,
      snapshot: sn,
      ownUnbundled: u.median - floorSum.median,
      ownBundled: b.median - floorSum.median,
      ownNoCache: nc.median - floorSum.median,
      ownSnapshot: sn.median - floorSum.median,
    };
  });
  const json = {
    benchmark: 'cli',
    description: 'cold kata-ts processes: wall ms from spawn to exit, unbundled ES modules vs the bundle, node -e 0 as the floor',
    runs,
    kvm,
    floor: roundSummary(floorSum),
    commands: Object.fromEntries(
      rows.map((r) => [
        r.name,
        {
          unbundled: roundSummary(r.unbundled),
          bundled: roundSummary(r.bundled),
          bundled_no_code_cache: roundSummary(r['no-cache']),
          snapshot: roundSummary(r.snapshot),
          own_ms_unbundled: round3(r.ownUnbundled),
          own_ms_bundled: round3(r.ownBundled),
          own_ms_bundled_no_code_cache: round3(r.ownNoCache),
          own_ms_snapshot: round3(r.ownSnapshot),
        },
      ]),
    ),
    boot_profile_self_ms: Object.fromEntries(Object.entries(profiles).map(([v, p]) => [v, Object.fromEntries(Object.entries(p).map(([k, ms]) => [k, round3(ms)]))])),
    machine: machineInfo(load0),
    date: new Date().toISOString(),
  };
  const kinds = [...new Set(Object.values(profiles).flatMap((p) => Object.keys(p)))].sort((a, b) => (profiles.unbundled[b] ?? 0) - (profiles.unbundled[a] ?? 0));
  const md = [
    '# Cold `kata-ts` process benchmark',
    '',
    'Wall time from spawning a `kata-ts` process to its exit: the unbundled ES modules tsc writes (`dist/src/cli/main.js`)',
    'against the bundle users run (`dist/bundle/kata-ts.js`: a launcher that compiles the CommonJS bundle body with V8\'s',
    'code cache, one body per entry point, `tools/bundle.ts`; "no cache" is the same with `KATA_TS_CODE_CACHE=off`), with',
    '`node -e 0` as the floor. Every OCI call a runc shim or podman makes is such a process; so is `kata-ts boot`.',
    `${runs} interleaved runs of each after one warm-up. ${kvm ? '' : 'This host has no usable /dev/kvm, so `boot` runs until it finds that out: it has loaded the VMM and started its vCPU worker by then, which is the host side of a cold boot before its first KVM ioctl.'}`,
    '',
    `Floor (\`node -e 0\`): median ${fmt(floorSum.median)} ms, p90 ${fmt(floorSum.p90)} ms.`,
    '',
    '| command | unbundled median ms | bundled median ms | bundled, no cache, median ms | snapshot median ms | own cost unbundled (− floor) | own cost bundled | own cost bundled, no cache | own cost snapshot | bundled vs unbundled, own cost |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmt(r.unbundled.median)} | ${fmt(r.bundled.median)} | ${fmt(r['no-cache'].median)} | ${fmt(r.snapshot.median)} | ${fmt(r.ownUnbundled)} | ${fmt(r.ownBundled)} | ${fmt(r.ownNoCache)} | ${fmt(r.ownSnapshot)} | ${r.ownUnbundled > 0 ? `${(((r.ownBundled - r.ownUnbundled) / r.ownUnbundled) * 100).toFixed(0)}%` : 'n/a'} |`,
    ),
    '',
    'snapshot: the same bundle evaluated into a V8 startup snapshot (`node --build-snapshot`, tools/bundle.ts), started',
    'by `dist/bundle/kata-ts-snapshot`. On Node 20 deserialising its heap (about 5 MB) costs more than compiling the',
    'bundle lazily, and a user snapshot replaces Node\'s own, so the package\'s `kata-ts` is the plain bundle.',
    '',
    '## Where a cold `boot` process spends its time (one `--cpu-prof` each, main thread, self time ms)',
    '',
    '| where | unbundled | bundled |',
    '|---|---:|---:|',
    ...kinds.map((k) => `| ${k} | ${fmt(profiles.unbundled[k] ?? 0)} | ${fmt(profiles.bundled[k] ?? 0)} |`),
    '',
    'The profiler itself slows the process; read the rows as shares. Unbundled, Node resolves, reads, links and compiles',
    'about 70 ES modules; bundled, the launcher compiles one CommonJS file, most of it from the code cache (Node 20\'s ES',
    'module loader is not on that path at all). What is left is Node starting (the floor), running our code, and the VMM',
    'work itself.',
    '',
    `Machine: ${json.machine.cpu}, ${json.machine.cores} cores, ${json.machine.memGiB} GiB, Linux ${json.machine.kernel}, Node ${json.machine.node}. ` +
      `1-min load average ${json.machine.loadAvg.map((x) => x.toFixed(2)).join(', ')}. Date: ${json.date}.`,
    '',
    '![cold process times](cli.svg)',
    '',
  ].join('\n');

  const series: { label: string; summary: Summary; color: string }[] = [{ label: 'node -e 0 (floor)', summary: floorSum, color: '#888888' }];
  for (const r of rows) for (const v of Object.keys(VARIANTS) as Variant[]) series.push({ label: `${r.name}, ${v}`, summary: r[v], color: COLORS[v] });
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, 'cli.json'), JSON.stringify(json, null, 2) + '\n');
  await writeFile(join(resultsDir, 'cli.md'), md);
  await writeFile(join(resultsDir, 'cli.svg'), renderChart({ title: 'cold kata-ts processes: unbundled, bundled (code cache), no cache, snapshot', unit: 'ms from spawn to exit', series }));
  process.stderr.write(`[bench:cli] wrote ${join(resultsDir, 'cli.md')}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: Error) => {
    process.stderr.write(`kata-ts bench:cli: ${e.message}\n`);
    process.exitCode = 1;
  });
}

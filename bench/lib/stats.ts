// Summary statistics for benchmark samples.

import { cpus, loadavg, release, totalmem } from 'node:os';

export interface Summary {
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
  /** the samples in the order they were taken */
  runs: number[];
}

/** Nearest-rank percentile (p in [0, 100]) of already sorted samples. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no samples');
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${String(p)} is outside [0, 100]`);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** Median (mean of the two middle samples for an even count). */
export function median(sorted: readonly number[]): number {
  if (sorted.length === 0) throw new RangeError('median of no samples');
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function summarize(runs: readonly number[]): Summary {
  const sorted = [...runs].sort((a, b) => a - b);
  return {
    median: median(sorted),
    p90: percentile(sorted, 90),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    mean: runs.reduce((a, b) => a + b, 0) / runs.length,
    runs: [...runs],
  };
}

/** Rounds for JSON output: 3 decimals. */
export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export function roundSummary(s: Summary): Summary {
  return {
    median: round3(s.median),
    p90: round3(s.p90),
    min: round3(s.min),
    max: round3(s.max),
    mean: round3(s.mean),
    runs: s.runs.map(round3),
  };
}

/** The machine a bench ran on, with the 1-minute load average before and after the runs (other work skews them). */
export function machineInfo(loadBefore: number): { cpu: string; cores: number; memGiB: number; kernel: string; node: string; loadAvg: number[] } {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memGiB: round3(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadAvg: [round3(loadBefore), round3(loadavg()[0]!)],
  };
}

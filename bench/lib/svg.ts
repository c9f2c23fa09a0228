// A dependency-free SVG chart for benchmark series: one horizontal row per series with a bar to the
// median, a whisker from min to p90, every run as a dot, and optional goal markers.

import type { Summary } from './stats.js';

export interface ChartSeries {
  label: string;
  summary: Summary;
  color: string;
  /** a vertical goal line drawn across this row, e.g. 0.25x QEMU */
  goal?: { value: number; label: string };
}

export interface ChartOptions {
  title: string;
  unit: string;
  series: ChartSeries[];
  /** extra lines printed under the chart */
  notes?: string[];
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** "Nice" axis maximum: 1, 2 or 5 times a power of ten, at least `x`. */
export function niceCeil(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

export function renderChart(opts: ChartOptions): string {
  const width = 760;
  const left = 170;
  const right = 40;
  const top = 50;
  const rowH = 56;
  const plotW = width - left - right;
  const notes = opts.notes ?? [];
  const height = top + rowH * opts.series.length + 50 + 16 * notes.length;
  const maxVal = niceCeil(Math.max(...opts.series.flatMap((s) => [s.summary.max, s.goal?.value ?? 0])) * 1.05);
  const x = (v: number): number => left + (v / maxVal) * plotW;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(opts.title)}</text>`);
  // grid + axis labels
  const axisY = top + rowH * opts.series.length;
  for (let i = 0; i <= 5; i++) {
    const v = (maxVal * i) / 5;
    const gx = x(v);
    out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${axisY}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${gx}" y="${axisY + 16}" text-anchor="middle" fill="#555">${fmt(v)}</text>`);
  }
  out.push(`<text x="${left + plotW / 2}" y="${axisY + 34}" text-anchor="middle" fill="#333">${esc(opts.unit)}</text>`);
  opts.series.forEach((s, i) => {
    const cy = top + rowH * i + rowH / 2;
    const sm = s.summary;
    out.push(`<text x="${left - 10}" y="${cy - 4}" text-anchor="end" font-weight="bold">${esc(s.label)}</text>`);
    out.push(`<text x="${left - 10}" y="${cy + 12}" text-anchor="end" fill="#555">median ${fmt(sm.median)} · p90 ${fmt(sm.p90)}</text>`);
    out.push(`<rect x="${left}" y="${cy - 12}" width="${Math.max(1, x(sm.median) - left)}" height="24" fill="${s.color}" fill-opacity="0.35" stroke="${s.color}"/>`);
    out.push(`<line x1="${x(sm.min)}" y1="${cy}" x2="${x(sm.p90)}" y2="${cy}" stroke="#222" stroke-width="1.5"/>`);
    out.push(`<line x1="${x(sm.min)}" y1="${cy - 7}" x2="${x(sm.min)}" y2="${cy + 7}" stroke="#222" stroke-width="1.5"/>`);
    out.push(`<line x1="${x(sm.p90)}" y1="${cy - 7}" x2="${x(sm.p90)}" y2="${cy + 7}" stroke="#222" stroke-width="1.5"/>`);
    for (const r of sm.runs) out.push(`<circle cx="${x(r)}" cy="${cy}" r="2.5" fill="${s.color}" stroke="#000" stroke-width="0.4"/>`);
    if (s.goal) {
      const gx = x(s.goal.value);
      out.push(`<line x1="${gx}" y1="${cy - 18}" x2="${gx}" y2="${cy + 18}" stroke="#c00" stroke-dasharray="4 3" stroke-width="1.5"/>`);
      out.push(`<text x="${gx + 4}" y="${cy - 14}" fill="#c00" font-size="11">${esc(s.goal.label)}</text>`);
    }
  });
  notes.forEach((n, i) => out.push(`<text x="12" y="${axisY + 56 + 16 * i}" fill="#444" font-size="11">${esc(n)}</text>`));
  out.push('</svg>');
  return out.join('\n') + '\n';
}

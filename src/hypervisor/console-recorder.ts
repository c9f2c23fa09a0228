// Console bookkeeping both backends share: the text seen so far (bounded), the first byte's timestamp
// (BootPhases.kernelStarted) and the first time each marker string completed (BootPhases.markers).

import type { BootPhases } from './interface.js';

const MAX_CONSOLE_TEXT = 4 << 20;

export class ConsoleRecorder {
  text = '';
  private readonly pending: Set<string>;

  constructor(
    private readonly phases: BootPhases,
    markers: readonly string[] = [],
    private readonly onMarker: (name: string) => void = () => undefined,
  ) {
    this.pending = new Set(markers.filter((m) => m.length > 0));
  }

  /** Record a chunk that arrived at `now` (CLOCK_MONOTONIC ns). */
  push(bytes: Uint8Array, now: bigint = process.hrtime.bigint()): void {
    if (bytes.length === 0) return;
    this.phases.kernelStarted ??= now;
    const before = this.text.length;
    if (before >= MAX_CONSOLE_TEXT) return;
    this.text += Buffer.from(bytes).toString('latin1');
    for (const m of this.pending) {
      // a marker may straddle chunks: search from where it could have started
      if (this.text.indexOf(m, Math.max(0, before - m.length + 1)) >= 0) {
        this.pending.delete(m);
        this.phases.markers[m] = now;
        this.onMarker(m);
      }
    }
  }
}

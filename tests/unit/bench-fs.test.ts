// bench/fs.ts and bench/fs-guest.ts: the guest's FSBENCH console lines, the host TSC rate read from
// /proc/cpuinfo, the per-workload summary (runs paired by number, warm-up dropped) and the arguments.

import t from 'tap';
import { hostTscKhz, parseFsbench, type GuestBenchResult } from '../../bench/fs-guest.js';
import { parseArgs, summarizeGuest } from '../../bench/fs.js';

const console = [
  '[    0.80] clocksource: Switched to clocksource tsc-early',
  'FSBENCH-START tags=kata-ts,virtiofsd runs=2 clocksource=tsc-early t=1000000000',
  'FSBENCH kata-ts 0 seqread ns=999 bytes=67108864',
  'FSBENCH kata-ts 1 seqread ns=200000000 bytes=67108864\r',
  'FSBENCH virtiofsd 1 seqread ns=100000000 bytes=67108864',
  'FSBENCH virtiofsd 2 seqread ns=150000000 bytes=67108864',
  'FSBENCH kata-ts 2 seqread ns=150000000 bytes=67108864',
  'FSBENCH kata-ts 1 smallfiles ns=3000000 create_ns=1000000 stat_ns=1000000 read_ns=1000000 files=10',
  'FSBENCH virtiofsd 1 smallfiles ns=3000000 create_ns=2000000 stat_ns=500000 read_ns=500000 files=10',
  'FSBENCH kata-ts 1 walk ns=5000000 entries=100 dirs=4',
  'FSBENCH virtiofsd 1 walk ns=10000000 entries=100 dirs=4',
  'FSBENCH other 1 walk ns=1 entries=1',
  'FSBENCH kata-ts x walk ns=1',
  'FSBENCH kata-ts 1 unknown ns=1',
  'FSBENCH kata-ts 1 walk entries=1',
  'FSBENCH-FAIL virtiofsd - mount no such tag',
  'FSBENCH-DONE failed=1 t=3000000000',
].join('\n');

t.test('parseFsbench', async (t) => {
  const p = parseFsbench(console);
  t.equal(p.samples.length, 9, 'well-formed lines only (unknown server, run, workload or no ns= are skipped)');
  t.same(p.samples[1], { server: 'kata-ts', run: 1, workload: 'seqread', ns: 200_000_000, fields: { ns: 200_000_000, bytes: 67108864 } }, 'CR stripped');
  t.same(p.failures, ['virtiofsd - mount no such tag']);
  t.equal(p.done, true);
  t.equal(p.clocksource, 'tsc-early');
  t.equal(p.startNs, 1_000_000_000);
  t.equal(p.doneNs, 3_000_000_000);
  t.equal(parseFsbench('FSBENCH-START tags=a runs=1').done, false, 'no DONE line');
});

t.test('summarizeGuest: paired runs, warm-up dropped, speed ratio = their time / ours', async (t) => {
  const p = parseFsbench(console);
  const g: GuestBenchResult = { samples: p.samples, failures: p.failures, kernel: 'k', initrd: 'i', cmdline: 'c', qemuArgv: [], wallMs: 1, clock: { source: 'tsc' }, serverCpuMs: {} };
  const [seq, small, walk] = summarizeGuest(g);
  t.same(seq!.ms['kata-ts'].runs, [200, 150], 'runs 1 and 2, in run order; run 0 dropped');
  t.same(seq!.speedRatio.runs, [0.5, 1]);
  t.equal(seq!.goalMet, false, 'median 0.75 < 1');
  t.same(small!.detail.virtiofsd, { create_ms: 2, stat_ms: 0.5, read_ms: 0.5, files: 10 }, '_ns fields become _ms');
  t.equal(walk!.speedRatio.median, 2);
  t.equal(walk!.goalMet, true);
  t.throws(() => summarizeGuest({ ...g, samples: p.samples.filter((s) => s.server === 'kata-ts') }), /no run has a result from both servers/);
});

t.test('hostTscKhz', async (t) => {
  const info = (flags: string, mhz = '2096.047'): string => `processor\t: 0\ncpu MHz\t\t: ${mhz}\nflags\t\t: fpu ${flags} sse\n`;
  t.equal(hostTscKhz(info('constant_tsc nonstop_tsc tsc_known_freq')), 2_096_047);
  t.equal(hostTscKhz(info('constant_tsc')), undefined, 'a rate the kernel did not know');
  t.equal(hostTscKhz(info('tsc_known_freq')), undefined, 'a TSC whose rate changes');
  t.equal(hostTscKhz(info('constant_tsc tsc_known_freq', 'x')), undefined);
  t.equal(hostTscKhz(''), undefined);
});

t.test('parseArgs', async (t) => {
  t.same(parseArgs([]), { runs: 5, deviceRuns: 10, files: 1000, guest: true, device: true });
  t.same(parseArgs(['--runs', '3', '--device-runs', '2', '--files', '10', '--no-guest', '--no-device']), { runs: 3, deviceRuns: 2, files: 10, guest: false, device: false });
  t.throws(() => parseArgs(['--runs', '2']), /--runs must be an integer from 3/);
  t.throws(() => parseArgs(['--files', 'x']), /--files/);
  t.throws(() => parseArgs(['--bogus']), /unknown argument --bogus/);
});

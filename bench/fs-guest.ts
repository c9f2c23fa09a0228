// The guest half of bench:fs: one QEMU microVM (TCG here: no /dev/kvm) with the full guest kernel and the
// fsbench initramfs (guest/build-fsbench-initrd.sh; its /init is guest/fsbench/init), two vhost-user-fs
// devices on the SAME host directory: one served by our back-end (`kata-ts vhost-user-backend --device fs`,
// a process of its own, as virtiofsd is) and one by Debian's C virtiofsd from QEMU 7.2. Both use the same
// cache policy and no xattrs. The guest mounts both and runs every workload against each, run after run,
// the servers' order reversed on every other run; it times each workload itself (CLOCK_MONOTONIC) and prints
// `FSBENCH <tag> <run> <workload> ns=... k=v...` lines on the console, which this module parses.
//
// Workloads (guest/fsbench/fsbench.c), each after a drop of the guest's caches so it reaches the server:
//   seqread     read a 64 MiB file to its end in 1 MiB read(2)s
//   smallfiles  create N small files (open O_CREAT|O_EXCL, write, close), then stat each, then read each
//               (a cache drop between the phases; the sum of the three phases is the workload's time)
//   walk        `ls -lR` of a tree: readdir every directory and lstat every entry

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { DEFAULT_CMDLINE } from '../src/cli/boot.js';
import { chooseHypervisor, createHypervisor, type HostFacts } from '../src/hypervisor/factory.js';
import { tieToParent } from '../src/hypervisor/parent-death.js';
import type { StartVhostUserBackend, VhostUserBackendHandle } from '../src/hypervisor/vhost-user.js';
import type { DeviceSpec } from '../src/contract/device-spec.js';
import { guestArtifact } from '../tests/helpers/guest-artifacts.js';

export const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
export const WORKLOADS = ['seqread', 'smallfiles', 'walk'] as const;
export type Workload = (typeof WORKLOADS)[number];
export type ServerId = 'kata-ts' | 'virtiofsd';
/** the mount tags (also the servers' names in the guest's report lines) */
export const SERVERS: readonly ServerId[] = ['kata-ts', 'virtiofsd'];

export interface GuestBenchOptions {
  repoRoot: string;
  host: HostFacts;
  /** the share (created and filled by makeShare) */
  shareDir: string;
  runs: number;
  files: number;
  fileBytes: number;
  cache: 'none' | 'auto' | 'always';
  vcpus: number;
  memoryMiB: number;
  /** progress lines */
  log: (line: string) => void;
}

/** What the share holds (the guest's workloads read it). */
export interface ShareLayout {
  bigBytes: number;
  treeDirs: number;
  treeFiles: number;
}

/** One workload run in the guest: its timed ns and the other fields fsbench printed. */
export interface GuestSample {
  server: ServerId;
  run: number;
  workload: Workload;
  ns: number;
  fields: Record<string, number>;
}

export interface GuestBenchResult {
  samples: GuestSample[];
  failures: string[];
  kernel: string;
  initrd: string;
  cmdline: string;
  qemuArgv: string[];
  /** our back-end's metrics (request counts by opcode), printed by `--json` when it stops */
  ourMetrics?: Record<string, number>;
  /** CPU ms each server process (with its children) used over the whole run */
  serverCpuMs: Partial<Record<ServerId, number>>;
  /** wall time of the whole guest run (boot to power-off) */
  wallMs: number;
  clock: GuestClock;
}

/** The guest's timing clock, checked against the host's over the whole run (FSBENCH-START to -DONE). */
export interface GuestClock {
  /** the guest kernel's clocksource (tsc when the host's TSC rate is known, else a jiffies clock: 10 ms steps) */
  source: string;
  /** tsc_early_khz given to the guest (the host's TSC rate: TCG's rdtsc reads the host TSC), if known */
  tscKhz?: number;
  guestMs?: number;
  hostMs?: number;
  /** guestMs / hostMs: 1 when the guest's clock keeps time */
  ratio?: number;
}

class GuestBenchFailed extends Error {
  constructor(detail: string) {
    super(`the fsbench guest failed: ${detail}`);
    this.name = 'GuestBenchFailed';
  }
}

const SAFETY_MS = 540_000;
const SERVER_READY_MS = 30_000;

/** Fill `dir` with the big file (random bytes), the tree (d/s/f) and an empty work/ directory. */
export function makeShare(dir: string, bigMiB: number, tree: { top: number; sub: number; files: number }): ShareLayout {
  mkdirSync(dir, { recursive: true });
  const chunk = new Uint8Array(1 << 20);
  const fd = openSync(join(dir, 'big.bin'), 'w');
  for (let i = 0; i < bigMiB; i++) {
    randomFillSync(chunk);
    writeSync(fd, chunk, 0, chunk.length, i * chunk.length);
  }
  closeSync(fd);
  // read it once: the host's page cache holds it for both servers alike
  const rfd = openSync(join(dir, 'big.bin'), 'r');
  while (readSync(rfd, chunk, 0, chunk.length, null) > 0);
  closeSync(rfd);
  let dirs = 0;
  let files = 0;
  const body = new TextEncoder().encode('a small file in the walk tree\n');
  for (let a = 0; a < tree.top; a++) {
    for (let b = 0; b < tree.sub; b++) {
      const d = join(dir, 'tree', `d${String(a)}`, `s${String(b)}`);
      mkdirSync(d, { recursive: true });
      for (let c = 0; c < tree.files; c++) {
        const f = openSync(join(d, `f${String(c)}`), 'w');
        writeSync(f, body);
        closeSync(f);
        files++;
      }
      dirs++;
    }
    dirs++;
  }
  mkdirSync(join(dir, 'work'), { recursive: true });
  return { bigBytes: bigMiB << 20, treeDirs: dirs, treeFiles: files };
}

/**
 * The host's TSC rate in kHz when it is constant (/proc/cpuinfo: constant_tsc; "cpu MHz" is the TSC rate where
 * the kernel knows it, tsc_known_freq). QEMU's TCG rdtsc reads the host TSC, but the guest kernel cannot
 * calibrate it without HPET/PM timer (microvm, acpi=off) and falls back to a 10 ms jiffies clock; given the
 * rate (tsc_early_khz) it times with the TSC.
 */
export function hostTscKhz(cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')): number | undefined {
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? [];
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)$/m.exec(cpuinfo)?.[1]);
  if (!flags.includes('constant_tsc') || !flags.includes('tsc_known_freq') || !(mhz > 0)) return undefined;
  return Math.round(mhz * 1000);
}

const num = (s: string | undefined): number | undefined => (s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined);

/** `FSBENCH <tag> <run> <workload> ns=<n> k=v...` lines of a console transcript. */
export function parseFsbench(text: string): { samples: GuestSample[]; failures: string[]; done: boolean; clocksource?: string; startNs?: number; doneNs?: number } {
  const samples: GuestSample[] = [];
  const failures: string[] = [];
  let done = false;
  let clocksource: string | undefined;
  let startNs: number | undefined;
  let doneNs: number | undefined;
  for (const raw of text.replaceAll('\r', '').split('\n')) {
    const line = raw.trim();
    if (line.startsWith('FSBENCH-FAIL ')) failures.push(line.slice('FSBENCH-FAIL '.length));
    else if (line.startsWith('FSBENCH-START ')) {
      clocksource = /clocksource=(\S+)/.exec(line)?.[1];
      startNs = num(/ t=(\d+)/.exec(line)?.[1]);
    } else if (line.startsWith('FSBENCH-DONE')) {
      done = true;
      doneNs = num(/ t=(\d+)/.exec(line)?.[1]);
    } else if (line.startsWith('FSBENCH ')) {
      const [, server, run, workload, ...kv] = line.split(/\s+/);
      if (!SERVERS.includes(server as ServerId) || !(WORKLOADS as readonly string[]).includes(workload ?? '')) continue;
      const fields: Record<string, number> = {};
      for (const p of kv) {
        const m = /^([a-z_]+)=(\d+)$/.exec(p);
        if (m) fields[m[1]!] = Number(m[2]);
      }
      const ns = fields['ns'];
      if (ns === undefined || !/^\d+$/.test(run ?? '')) continue;
      samples.push({ server: server as ServerId, run: Number(run), workload: workload as Workload, ns, fields });
    }
  }
  return {
    samples,
    failures,
    done,
    ...(clocksource !== undefined ? { clocksource } : {}),
    ...(startNs !== undefined ? { startNs } : {}),
    ...(doneNs !== undefined ? { doneNs } : {}),
  };
}

/** A server process: started once QEMU asks for the device, stopped with SIGTERM when the VM is gone. */
interface ServerProcess {
  child: ChildProcess;
  stderr: string;
  exited: Promise<void>;
  /** CPU time (user + system) of the process and its descendants, read just before it was stopped */
  cpuMs?: number;
}

/** USER_HZ: the unit of utime/stime in /proc/PID/stat (100 on x86-64 Linux). */
const USER_HZ = 100;

/** CPU ms (utime + stime) of `pid` and every live descendant (virtiofsd forks into its sandbox). */
export function treeCpuMs(pid: number): number | undefined {
  const stat = new Map<number, { ppid: number; ticks: number }>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const text = readFileSync(`/proc/${e}/stat`, 'utf8');
      // proc(5): pid (comm) state ppid ... utime(14) stime(15); comm may hold spaces and parentheses
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stat.set(Number(e), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // gone meanwhile
    }
  }
  if (!stat.has(pid)) return undefined;
  let ticks = 0;
  const tree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, s] of stat) {
      if (!tree.has(p) && tree.has(s.ppid)) {
        tree.add(p);
        grew = true;
      }
    }
  }
  for (const p of tree) ticks += stat.get(p)!.ticks;
  return (ticks * 1000) / USER_HZ;
}

function startProcess(file: string, args: string[], ready: RegExp, what: string): Promise<ServerProcess> {
  const cmd = tieToParent(file, args); // SIGKILL with us (setpriv --pdeathsig) where util-linux has it
  const child = spawn(cmd.file, cmd.args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const p: ServerProcess = { child, stderr: '', exited: new Promise((r) => child.once('exit', () => r())) };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new GuestBenchFailed(`${what} did not report its socket in ${String(SERVER_READY_MS / 1000)} s: ${p.stderr.slice(-400)}`)), SERVER_READY_MS);
    child.stderr.on('data', (b: Buffer) => {
      p.stderr += b.toString('utf8');
      if (ready.test(p.stderr)) {
        clearTimeout(timer);
        resolve(p);
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new GuestBenchFailed(`${what}: ${e.message}`));
    });
    void p.exited.then(() => {
      clearTimeout(timer);
      reject(new GuestBenchFailed(`${what} exited before it was ready: ${p.stderr.slice(-400)}`));
    });
  });
}

async function stopProcess(p: ServerProcess): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) {
    if (p.child.pid !== undefined) p.cpuMs ??= treeCpuMs(p.child.pid);
    p.child.kill('SIGTERM');
    const t = setTimeout(() => p.child.kill('SIGKILL'), 5000);
    await p.exited;
    clearTimeout(t);
  }
}

/** KATA_TS_BENCH_FS_PROFILE=DIR: run our back-end under `node --cpu-prof` and keep the profile in DIR. */
function profileArgs(): string[] {
  const dir = process.env['KATA_TS_BENCH_FS_PROFILE'];
  return dir !== undefined && dir !== '' ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/** Boot the guest once with both servers attached; every workload, every run. */
export async function runGuestBench(o: GuestBenchOptions): Promise<GuestBenchResult> {
  const kernel = guestArtifact('guest:kernel', o.repoRoot);
  const initrd = guestArtifact('guest:initrd:fsbench', o.repoRoot);
  const cliPath = join(o.repoRoot, 'dist', 'bundle', 'kata-ts.js');
  if (!existsSync(cliPath)) throw new GuestBenchFailed(`${cliPath} is missing: npm run build:ts`);
  if (!existsSync(VIRTIOFSD)) throw new GuestBenchFailed(`${VIRTIOFSD} is missing: apt-get install -y qemu-system-common`);

  const procs = new Map<ServerId, ServerProcess>();
  const startBackend: StartVhostUserBackend = async ({ spec, socketPath }) => {
    if (spec.kind !== 'fs') throw new GuestBenchFailed(`unexpected ${spec.kind} device`);
    const id = spec.tag as ServerId;
    const p =
      id === 'kata-ts'
        ? await startProcess(
            process.execPath,
            [...profileArgs(), cliPath, 'vhost-user-backend', '--device', 'fs', '--socket', socketPath, '--shared-dir', o.shareDir, '--tag', spec.tag, '--cache', o.cache, '--no-xattr', '--json'],
            /serving virtio-fs over vhost-user/,
            'kata-ts vhost-user-backend',
          )
        : await startProcess(
            VIRTIOFSD,
            [`--socket-path=${socketPath}`, '-o', `source=${o.shareDir}`, '-o', `cache=${o.cache}`, '-o', 'no_xattr'],
            /Waiting for vhost-user socket connection/,
            'virtiofsd',
          );
    procs.set(id, p);
    const handle: VhostUserBackendHandle = { close: () => stopProcess(p), metrics: () => ({}) };
    return handle;
  };

  const devices: DeviceSpec[] = SERVERS.map((tag) => ({ kind: 'fs', sharedDir: o.shareDir, tag, cache: o.cache, xattr: false }));
  const params = { tags: SERVERS.join(','), runs: o.runs, files: o.files, file_bytes: o.fileBytes, workloads: WORKLOADS.join(',') };
  const tscKhz = hostTscKhz();
  const clockParams = tscKhz !== undefined ? ` tsc_early_khz=${String(tscKhz)} tsc=reliable clocksource=tsc` : '';
  const cmdline = `${DEFAULT_CMDLINE}${clockParams} ${Object.entries(params)
    .map(([k, v]) => `fsbench.${k}=${String(v)}`)
    .join(' ')}`;
  // TCG: present the host as having no KVM to the chooser (a hardware host would otherwise pick KVM)
  const facts: HostFacts = { ...o.host, virtualization: 'unavailable' };
  const hv = createHypervisor(chooseHypervisor('qemu', facts), { startBackend });
  let seen = 0;
  let hostStart: number | undefined;
  let hostDone: number | undefined;
  hv.on('console', (b: Uint8Array) => {
    // progress: one line per report line, as they come; the host's time of the START and DONE lines
    const now = performance.now();
    if (!Buffer.from(b.buffer, b.byteOffset, b.byteLength).includes('\n')) return;
    const text = hv.consoleText;
    if (hostStart === undefined && /FSBENCH-START [^\n]*\n/.test(text)) hostStart = now;
    if (hostDone === undefined && /FSBENCH-DONE [^\n]*\n/.test(text)) {
      hostDone = now;
      // the servers' CPU time for the whole run, while both still live (virtiofsd exits with QEMU)
      for (const p of procs.values()) if (p.child.pid !== undefined) p.cpuMs = treeCpuMs(p.child.pid);
    }
    const { samples } = parseFsbench(text);
    for (const s of samples.slice(seen)) o.log(`${s.server} run ${String(s.run)} ${s.workload}: ${(s.ns / 1e6).toFixed(1)} ms`);
    seen = samples.length;
  });
  const t0 = performance.now();
  let qemuArgv: string[] = [];
  let ended = false;
  try {
    await hv.createVm({ kernelPath: kernel, initrdPath: initrd, cmdline, vcpus: o.vcpus, memoryMiB: o.memoryMiB, devices });
    const safety = setTimeout(() => void hv.stopVm(), SAFETY_MS);
    await hv.startVm();
    qemuArgv = (hv as { argv?: string[] }).argv ?? [];
    const exit = await hv.wait();
    ended = true;
    clearTimeout(safety);
    const wallMs = performance.now() - t0;
    const text = hv.consoleText;
    const parsed = parseFsbench(text);
    if (!parsed.done || exit.kind !== 'reset') {
      throw new GuestBenchFailed(`the guest ended with ${JSON.stringify(exit)} ${parsed.done ? '' : 'before FSBENCH-DONE'}; console tail: ${text.slice(-1500)}`);
    }
    // stopped by now (the hypervisor closed the back-ends); --json printed our metrics as the last line
    for (const p of procs.values()) await stopProcess(p);
    const ours = procs.get('kata-ts');
    let ourMetrics: Record<string, number> | undefined;
    const last = ours?.stderr.trim().split('\n').pop();
    if (last?.startsWith('{')) {
      try {
        ourMetrics = JSON.parse(last) as Record<string, number>;
      } catch {
        // no metrics: the report says so
      }
    }
    const clock: GuestClock = { source: parsed.clocksource ?? 'unknown', ...(tscKhz !== undefined ? { tscKhz } : {}) };
    if (parsed.startNs !== undefined && parsed.doneNs !== undefined && hostStart !== undefined && hostDone !== undefined) {
      clock.guestMs = (parsed.doneNs - parsed.startNs) / 1e6;
      clock.hostMs = hostDone - hostStart;
      clock.ratio = clock.guestMs / clock.hostMs;
    }
    const serverCpuMs: Partial<Record<ServerId, number>> = {};
    for (const [id, p] of procs) if (p.cpuMs !== undefined) serverCpuMs[id] = p.cpuMs;
    return {
      samples: parsed.samples,
      clock,
      serverCpuMs,
      failures: parsed.failures,
      kernel,
      initrd,
      cmdline,
      qemuArgv,
      ...(ourMetrics !== undefined ? { ourMetrics } : {}),
      wallMs,
    };
  } finally {
    if (!ended) await hv.stopVm().catch(() => undefined);
    for (const p of procs.values()) await stopProcess(p);
  }
}

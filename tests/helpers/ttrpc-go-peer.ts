// containerd's own ttrpc (Go, Debian golang-github-containerd-ttrpc-dev) as a conformance peer: builds
// tests/conformance/go/ttrpc-peer.go offline, caches the binary under os.tmpdir() by source hash, and
// runs it as a server (`serve`) or a one-shot client (`call`). Reusable by any codec under test, e.g. the
// guest agent's: goCall(bin, agentSocket, 'kata_ts.agent.Health', 'Check', new Uint8Array()).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const GOPATH = '/usr/share/gocode';
export const GO_TTRPC_DIR = `${GOPATH}/src/github.com/containerd/ttrpc`;

/** tests/conformance/go/ttrpc-peer.go, from the compiled helper (dist/tests/helpers) or the source tree. */
export function goPeerSource(): string {
  const tried = [new URL('../conformance/go/ttrpc-peer.go', import.meta.url), new URL('../../../tests/conformance/go/ttrpc-peer.go', import.meta.url)].map((u) => fileURLToPath(u));
  for (const p of tried) if (existsSync(p)) return p;
  throw new Error(`ttrpc-peer.go not found (tried ${tried.join(', ')})`);
}

export type GoPeerBuild = { ok: true; binary: string } | { ok: false; reason: string };

/** Builds (or finds cached) ttrpc-peer. `ok: false` only when the Go toolchain is missing. $KATA_TS_GO names go. */
export function buildGoPeer(): GoPeerBuild {
  const go = process.env['KATA_TS_GO'] ?? 'go';
  const version = spawnSync(go, ['version'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) {
    return { ok: false, reason: `${go} is not installed: run guest/install-deps.sh (apt-get install golang-go golang-github-containerd-ttrpc-dev)` };
  }
  if (!existsSync(GO_TTRPC_DIR)) {
    throw new Error(`containerd ttrpc Go sources missing at ${GO_TTRPC_DIR}: apt-get install golang-github-containerd-ttrpc-dev (guest/install-deps.sh)`);
  }
  const src = goPeerSource();
  const hash = createHash('sha256').update(readFileSync(src)).update(version.stdout).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'kata-ts-ttrpc-peer', hash);
  const binary = path.join(dir, 'ttrpc-peer');
  if (existsSync(binary)) return { ok: true, binary };
  mkdirSync(dir, { recursive: true });
  const tmp = `${binary}.${process.pid}.tmp`;
  const build = spawnSync(go, ['build', '-o', tmp, src], {
    cwd: path.dirname(src),
    encoding: 'utf8',
    // GOPATH mode, offline: every import resolves from Debian's /usr/share/gocode.
    env: { ...process.env, GOPATH, GO111MODULE: 'off', GOFLAGS: '', GOPROXY: 'off', CGO_ENABLED: '0', GOCACHE: path.join(os.tmpdir(), 'kata-ts-go-cache') },
  });
  if (build.status !== 0) throw new Error(`building ${src} failed:\n${build.stderr}`);
  renameSync(tmp, binary);
  return { ok: true, binary };
}

export interface GoServer {
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** `ttrpc-peer serve <socket>`; resolves once it printed READY. */
export function startGoServer(binary: string, socket: string): Promise<GoServer> {
  const proc = spawn(binary, ['serve', socket], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return new Promise<GoServer>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('READY')) resolve({ proc, stop: async () => void (proc.exitCode === null && proc.kill('SIGKILL'), await exited) });
    });
    proc.once('exit', (code) => reject(new Error(`ttrpc-peer serve exited (${code}) before READY: ${stderr}`)));
  });
}

export type GoCallResult = { ok: true; payload: Buffer } | { ok: false; code: number; message: string };

/** One call with containerd's Go client: `ttrpc-peer call`. Rejects when the Go side fails outside ttRPC. */
export function goCall(
  binary: string,
  socket: string,
  service: string,
  method: string,
  payload: Uint8Array,
  opts: { timeoutMs?: number; metadata?: Record<string, string> } = {},
): Promise<GoCallResult> {
  const hex = Buffer.from(payload).toString('hex');
  const viaStdin = hex.length > 64 * 1024; // argv strings are limited to 128 KiB (MAX_ARG_STRLEN)
  const args = ['call', socket, service, method, viaStdin ? '-' : hex, String(opts.timeoutMs ?? 10_000)];
  for (const [k, v] of Object.entries(opts.metadata ?? {})) args.push(`${k}=${v}`);
  const proc = spawn(binary, args, { stdio: [viaStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  if (viaStdin) proc.stdin!.end(hex);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise<GoCallResult>((resolve, reject) => {
    proc.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`ttrpc-peer call exited ${code}: ${err.trim()}`));
      const parsed = JSON.parse(out) as { ok: boolean; payload?: string; code?: number; message?: string };
      resolve(parsed.ok ? { ok: true, payload: Buffer.from(parsed.payload ?? '', 'hex') } : { ok: false, code: parsed.code ?? -1, message: parsed.message ?? '' });
    });
  });
}

/**
 * Hook for any ttRPC server under test (the guest agent's C++ codec on a unix socket): containerd's Go client
 * calls kata_ts.agent.Health/Check and an unknown method. Resolves with what it saw; the caller asserts.
 */
export async function goProbeAgentServer(binary: string, socket: string): Promise<{ check: GoCallResult; unknownMethod: GoCallResult; unknownService: GoCallResult }> {
  return {
    check: await goCall(binary, socket, 'kata_ts.agent.Health', 'Check', new Uint8Array()),
    unknownMethod: await goCall(binary, socket, 'kata_ts.agent.AgentService', 'NoSuchMethod', new Uint8Array()),
    unknownService: await goCall(binary, socket, 'kata_ts.nope.Service', 'X', new Uint8Array()),
  };
}

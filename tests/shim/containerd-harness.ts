// A real containerd for the shim tests: Debian's containerd 1.6 started with its own --root, --state and socket
// under a temporary directory, a PATH that finds `containerd-shim-kata-ts-v2` (a wrapper around
// dist/bundle/shim.js) besides Debian's runc shim, and a small OCI image built here by hand from the host's
// static busybox (layer tarball, config, manifest, index) and `ctr images import`ed. `ctr` runs against it.

import { spawn, spawnSync, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import { connect as http2Connect, constants as http2c } from 'node:http2';
import { connect as netConnect } from 'node:net';
import protobuf from 'protobufjs';
import type { Readable, Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { shimRoot, socketAddress, socketPath } from '../../src/shim/address.js';
import { e2eSkipReason, pidsMentioning, repoRoot } from '../helpers/oci-harness.js';

export const KATA = 'io.containerd.kata-ts.v2';
export const RUNC = 'io.containerd.runc.v2';
export const IMAGE = 'docker.io/kata-ts/busybox:test';
export const SHIM_MAIN = join(repoRoot, 'dist', 'bundle', 'shim.js');

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Why the containerd tests cannot run here, or false. */
export function ctrSkipReason(): string | false {
  const e2e = e2eSkipReason();
  if (e2e) return e2e;
  for (const bin of ['containerd', 'ctr', 'containerd-shim-runc-v2']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return `${bin} not found: apt-get install containerd (guest/install-deps.sh)`;
  }
  if (!existsSync(SHIM_MAIN)) return `${SHIM_MAIN} missing: npm run build:ts`;
  return false;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** An OCI image layout tarball holding a busybox-static root file system (every applet linked in /bin). */
export function buildBusyboxImage(dir: string): string {
  const rootfs = join(dir, 'img-rootfs');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root']) mkdirSync(join(rootfs, d), { recursive: true });
  writeFileSync(join(rootfs, 'bin', 'busybox'), readFileSync('/bin/busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  const applets = spawnSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\n');
  const layout = join(dir, 'oci');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer): { digest: string; size: number } => {
    const h = sha256(b);
    writeFileSync(join(blobs, h), b);
    return { digest: `sha256:${h}`, size: b.length };
  };
  const tar = spawnSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', rootfs, '-cf', '-', '.'], { maxBuffer: 64 << 20 });
  if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr.toString()}`);
  const layer = put(tar.stdout);
  const config = put(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
        history: [{ created_by: 'kata-ts tests/shim/containerd-harness.ts' }],
      }),
    ),
  );
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    ),
  );
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'io.containerd.image.name': IMAGE, 'org.opencontainers.image.ref.name': 'test' },
        },
      ],
    }),
  );
  const out = join(dir, 'busybox-oci.tar');
  const t2 = spawnSync('tar', ['-C', layout, '-cf', out, '.']);
  if (t2.status !== 0) throw new Error(`tar failed: ${t2.stderr.toString()}`);
  rmSync(rootfs, { recursive: true, force: true });
  return out;
}

export class Containerd {
  readonly dir: string;
  readonly address: string;
  readonly logs: string;
  readonly kataConfig: string;
  /** the containerd namespace of this instance's containers (runc's state root /run/containerd/runc/<ns> is global) */
  readonly ns: string;
  /** ids given to `ctr run`: their shim sockets are removed at cleanup (runc's shim leaves its own behind) */
  private readonly ids = new Set<string>();
  private proc: ChildProcess | undefined;
  private log = '';

  constructor(kataToml = '') {
    this.dir = mkdtempSync(join(tmpdir(), 'kt-ctrd-'));
    this.address = join(this.dir, 'containerd.sock');
    this.ns = this.dir.split('/').pop()!.toLowerCase().replace(/[^a-z0-9-]/g, '-');
    this.logs = join(this.dir, 'logs');
    mkdirSync(this.logs);
    const bin = join(this.dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'containerd-shim-kata-ts-v2'), `#!/bin/sh\nexec ${process.execPath} ${SHIM_MAIN} "$@"\n`, { mode: 0o755 });
    this.kataConfig = join(this.dir, 'kata-ts.toml');
    writeFileSync(this.kataConfig, kataToml);
    writeFileSync(
      join(this.dir, 'config.toml'),
      [
        'version = 2',
        `root = "${this.dir}/root"`,
        `state = "${this.dir}/state"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${this.address}"`,
        '[debug]',
        '  level = "debug"',
        '[plugins."io.containerd.runtime.v2.task"]',
        '  platforms = ["linux/amd64"]',
        '',
      ].join('\n'),
    );
  }

  /** Starts containerd and waits until `ctr version` answers. */
  async start(): Promise<void> {
    const env = { ...process.env, PATH: `${join(this.dir, 'bin')}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, KATA_TS_SHIM_LOG_DIR: this.logs, KATA_TS_CONFIG: this.kataConfig };
    this.proc = spawn('containerd', ['--config', join(this.dir, 'config.toml')], { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.proc.stdout?.on('data', (b: Buffer) => (this.log += b.toString('utf8')));
    this.proc.stderr?.on('data', (b: Buffer) => (this.log = (this.log + b.toString('utf8')).slice(-200_000)));
    for (let i = 0; i < 200; i++) {
      if (existsSync(this.address) && (await this.ctr(['version'])).code === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`containerd did not start: ${this.log.slice(-2000)}`);
  }

  /** Runs `ctr -a ADDRESS ARGS...` to completion (killed after timeoutMs). */
  ctr(args: string[], o: { timeoutMs?: number; input?: string } = {}): Promise<Result> {
    this.note(args);
    return new Promise((resolve, reject) => {
      const c = spawn('ctr', ['-a', this.address, '-n', this.ns, ...args], { stdio: [o.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout!.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
      c.stderr!.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
      if (o.input !== undefined) c.stdin!.end(o.input);
      const timer = setTimeout(() => c.kill('SIGKILL'), o.timeoutMs ?? 180_000);
      c.once('error', reject);
      c.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /**
   * containerd's Tasks.Update (api/services/tasks/v1/tasks.proto UpdateTaskRequest{container_id 1, resources 2})
   * over its gRPC socket, with the OCI LinuxResources JSON in an Any under typeurl's name, as upstream
   * `ctr task update --memory-limit` and CRI send it: Debian's ctr 1.6.20 has no `task update`. Answers the gRPC
   * status (0 = OK) and message.
   */
  taskUpdate(id: string, resources: object): Promise<{ code: number; message: string }> {
    const any = protobuf.Writer.create().uint32(0x0a).string('types.containerd.io/opencontainers/runtime-spec/1/LinuxResources').uint32(0x12).bytes(Buffer.from(JSON.stringify(resources))).finish();
    const req = protobuf.Writer.create().uint32(0x0a).string(id).uint32(0x12).bytes(any).finish();
    const frame = Buffer.alloc(5 + req.length); // gRPC message: compressed flag 0, u32 big-endian length, bytes
    frame.writeUInt32BE(req.length, 1);
    Buffer.from(req).copy(frame, 5);
    const session = http2Connect('http://localhost', { createConnection: () => netConnect(this.address) });
    return new Promise((resolve, reject) => {
      let code = -1;
      let message = '';
      const status = (h: Record<string, string | string[] | number | undefined>): void => {
        const st = h['grpc-status'];
        if (typeof st !== 'string') return;
        code = Number(st);
        const msg = h['grpc-message'];
        message = typeof msg === 'string' ? decodeURIComponent(msg) : '';
      };
      session.once('error', reject);
      const s = session.request({
        [http2c.HTTP2_HEADER_METHOD]: 'POST',
        [http2c.HTTP2_HEADER_PATH]: '/containerd.services.tasks.v1.Tasks/Update',
        'content-type': 'application/grpc',
        te: 'trailers',
        'containerd-namespace': this.ns,
      });
      s.on('response', status); // a trailers-only answer (an error) carries the status here
      s.on('trailers', status);
      s.on('data', () => undefined);
      s.once('error', reject);
      s.once('close', () => {
        session.close();
        resolve({ code, message });
      });
      s.end(frame);
    });
  }

  /** `ctr` under script(1), which gives it a terminal (for `ctr run -t`); returns what the terminal showed. */
  private note(args: string[]): void {
    const i = args.indexOf(IMAGE);
    if (args[0] === 'run' && i >= 0 && args[i + 1]) this.ids.add(args[i + 1]!);
  }

  ctrTty(args: string[], o: { timeoutMs?: number } = {}): Promise<Result> {
    this.note(args);
    const line = ['ctr', '-a', this.address, '-n', this.ns, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    return new Promise((resolve, reject) => {
      const c = spawn('script', ['-qefc', line, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcessByStdio<Writable, Readable, Readable>;
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
      c.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
      const timer = setTimeout(() => c.kill('SIGKILL'), o.timeoutMs ?? 180_000);
      c.once('error', reject);
      c.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  async importImage(): Promise<void> {
    const tar = buildBusyboxImage(this.dir);
    const r = await this.ctr(['images', 'import', '--platform', 'linux/amd64', tar]);
    if (r.code !== 0) throw new Error(`ctr images import failed: ${r.stderr}`);
  }

  /** The last part of containerd's log and of every shim log, for failure diagnostics. */
  diagnostics(): string {
    let out = `containerd log:\n${this.log.slice(-6000)}\n`;
    for (const f of existsSync(this.logs) ? readdirSync(this.logs) : []) out += `--- ${f}:\n${readFileSync(join(this.logs, f), 'utf8').slice(-6000)}\n`;
    return out;
  }

  /** Stops containerd (its shims keep running: containerd's design), then kills what mentions the temp dir. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  }

  async cleanup(): Promise<void> {
    await this.stop();
    for (const pid of pidsMentioning(this.dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    // snapshots and rootfs mounts of the tasks (containerd's own namespace = the host's)
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(this.dir));
    for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
    // runc's containers of this namespace (the runc shim's state root is global)
    const runcRoot = join('/run/containerd/runc', this.ns);
    for (const id of existsSync(runcRoot) ? readdirSync(runcRoot) : []) spawnSync('runc', ['--root', runcRoot, 'delete', '--force', id]);
    rmSync(runcRoot, { recursive: true, force: true });
    for (const id of this.ids) rmSync(socketPath(socketAddress(this.address, this.ns, id)), { force: true });
    rmSync(shimRoot(this.address, this.ns), { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A started containerd with the image imported; stopped and removed when the test ends (logs on failure). */
export async function containerd(t: Test, kataToml = ''): Promise<Containerd> {
  const c = new Containerd(kataToml);
  t.teardown(async () => {
    if (!t.passing()) t.comment(c.diagnostics().slice(-8000));
    await c.cleanup();
  });
  await c.start();
  await c.importImage();
  return c;
}

/** Polls `ctr task ls` until `id` has `status` ('gone': not listed). */
export async function taskStatus(c: Containerd, id: string, want: string, timeoutMs = 60_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await c.ctr(['task', 'ls']);
    const line = r.stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
    const st = line ? (line.trim().split(/\s+/)[2] ?? '') : 'gone';
    if (st === want || Date.now() > end) return st;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Mount points under `dir` in the host's mount namespace. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(dir));
}

/** True when `path` exists. */
export function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

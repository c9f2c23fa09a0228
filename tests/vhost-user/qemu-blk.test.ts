// Real QEMU (TCG, no KVM needed) as the vhost-user front-end and the real Linux drivers as the guest:
// the smoke kernel mounts an ext4 root from our virtio-blk back-end, seeds its rng from our virtio-rng
// back-end, and activates our virtio-vsock back-end. Skipped (with the reason printed) when qemu or the
// cached smoke kernel is missing. Each QEMU run is bounded (killed once the line we wait for appears).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startVhostUserBackend } from '../../src/vhost-user/index.js';
import type { DeviceSpec } from '../../src/contract/device-spec.js';

const QEMU = 'qemu-system-x86_64';

function smokeKernel(): string | undefined {
  const root = join(process.env['KATA_TS_CACHE'] ?? join(homedir(), '.cache/kata-ts'), 'kernel');
  if (!existsSync(root)) return undefined;
  const dirs = readdirSync(root).filter((d) => d.startsWith('smoke-') && existsSync(join(root, d, 'vmlinux')));
  if (dirs.length === 0) return undefined;
  // the build script prints the path for the current config (a cache hit: no build)
  const r = spawnSync('bash', ['kernel-config/build.sh', 'smoke'], { encoding: 'utf8', timeout: 20_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return r.status === 0 && existsSync(line) ? line : undefined;
}

const qemuOk = spawnSync(QEMU, ['-device', 'help'], { encoding: 'utf8' });
const kernel = qemuOk.status === 0 ? smokeKernel() : undefined;
const skip =
  qemuOk.status !== 0 ? `${QEMU} not found (apt-get install qemu-system-x86)` : kernel === undefined ? 'no cached smoke kernel: run `npm run guest:kernel:smoke`' : false;
if (skip) t.comment(`skipping: ${skip}`);

const dir = mkdtempSync(join(tmpdir(), 'vu-qemu-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Boot QEMU with one vhost-user device until `until` appears on the console (or 90 s pass). */
async function boot(qemuDevice: string, sock: string, append: string, until: RegExp): Promise<string> {
  const args = [
    '-M', 'microvm,acpi=off,memory-backend=mem',
    '-object', 'memory-backend-memfd,id=mem,size=256M,share=on',
    '-m', '256M', '-accel', 'tcg', '-global', 'virtio-mmio.force-legacy=false',
    '-chardev', `socket,id=c0,path=${sock}`, '-device', `${qemuDevice},chardev=c0`,
    '-nographic', '-no-reboot', '-kernel', kernel!, '-append', `console=ttyS0 reboot=k panic=-1 ${append}`,
  ];
  const p = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve) => {
    const timer = setTimeout(() => p.kill('SIGKILL'), 90_000);
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (until.test(out)) p.kill('SIGKILL');
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

async function withBackend(spec: DeviceSpec, f: (sock: string) => Promise<string>) {
  const sock = join(dir, `${spec.kind}.sock`);
  const b = await startVhostUserBackend({ spec, socketPath: sock });
  const console = await f(sock);
  // let the disconnect reach the back-end
  for (let i = 0; i < 200 && b.server.connected; i++) await new Promise((r) => setTimeout(r, 10));
  const m = b.metrics();
  await b.close();
  return { console, m };
}

t.test('vhost-user-blk: the guest mounts an ext4 root served by our back-end', { skip }, async (t) => {
  const root = join(dir, 'root');
  mkdirSync(root);
  writeFileSync(join(root, 'hello.txt'), 'hello from kata-ts\n');
  const img = join(dir, 'root.img');
  const mk = spawnSync('mkfs.ext4', ['-q', '-d', root, img, '16M']);
  if (mk.status !== 0) {
    t.comment('skipping: mkfs.ext4 not available');
    return;
  }
  const { console, m } = await withBackend({ kind: 'blk', path: img, readOnly: false }, (sock) =>
    // stop only once the whole line is in (a console chunk can end mid-line)
    boot('vhost-user-blk', sock, 'root=/dev/vda rw', /EXT4-fs \(vda\): mounted filesystem[^\n]*\n|Kernel panic/),
  );
  t.match(console, /\[vda\] 32768 512-byte logical blocks/, 'vda with the image size (GET_CONFIG capacity)');
  t.match(console, /EXT4-fs \(vda\): mounted filesystem/, 'ext4 root mounted');
  t.equal(m['session.activations'], 1);
  t.ok((m['device.reads'] ?? 0) > 0, `device served ${m['device.reads']} reads`);
  t.equal(m['session.failures'], 0);
});

t.test('vhost-user-rng: the guest driver gets entropy from our back-end', { skip }, async (t) => {
  const help = qemuOk.stdout;
  if (!/"vhost-user-rng"/.test(help)) {
    t.comment('skipping: this QEMU has no vhost-user-rng');
    return;
  }
  const { m } = await withBackend({ kind: 'rng' }, (sock) => boot('vhost-user-rng', sock, '', /crng init done|Kernel panic/));
  t.equal(m['session.activations'], 1);
  t.ok((m['session.calls'] ?? 0) > 0, 'interrupts sent through the call eventfd');
  t.equal(m['session.failures'], 0);
});

t.test('vhost-user-vsock: both rings activated, rx buffers posted by the guest', { skip }, async (t) => {
  if (!/"vhost-user-vsock-device"/.test(qemuOk.stdout)) {
    t.comment('skipping: this QEMU has no vhost-user-vsock-device');
    return;
  }
  const { m } = await withBackend({ kind: 'vsock', cid: 3 }, (sock) =>
    boot('vhost-user-vsock-device', sock, '', /Kernel panic|Run \/init|VFS: Unable/),
  );
  t.equal(m['session.activations'], 1, 'activated with rx and tx');
  t.ok((m['session.kicks'] ?? 0) > 0, 'guest kicked');
  t.equal(m['session.failures'], 0);
});

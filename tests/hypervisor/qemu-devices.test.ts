// Our virtio devices under a real Linux guest: one boot of the full kernel with the device-test initramfs
// (guest/build-devtest-initrd.sh; its /init is guest/devtest/init) and a virtio-blk image, a virtio-vsock
// device and a virtio-rng device. Under the `qemu` backend the devices are our models served over vhost-user
// (TCG here); the same body runs on the `inproc` backend where KVM is hardware-backed (kvm_pvm cannot run
// guest user space: DESIGN.md). The guest reports each check as `DEVTEST <name> OK|FAIL <detail>` on the
// console; the host side checks what it can see for itself: the image file (raw pattern at a known offset,
// ext4 superblock, host e2fsck/debugfs), the bytes echoed over vsock and the guest listener's answer.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import t, { type Test } from 'tap';
import { DEFAULT_CMDLINE } from '../../src/cli/boot.js';
import { chooseHypervisor, createHypervisor, detectHost, findOnPath, type HypervisorPlan } from '../../src/hypervisor/factory.js';
import type { Hypervisor } from '../../src/hypervisor/interface.js';
import { checkHost } from '../../src/host/check.js';
import type { DeviceSpec } from '../../src/contract/device-spec.js';
import { guestArtifact } from '../helpers/guest-artifacts.js';

const SAFETY_NET_MS = 420_000; // only so a broken guest cannot hang CI; never a speed assertion
const MiB = 1 << 20;
const IMAGE_BYTES = 64 * MiB;
const FS_MIB = 32; // mkfs.ext4 in the first 32 MiB
const RAW_MIB = 48; // the guest dd's a pattern here, past the file system
const RAW_BYTES = MiB;
const ECHO_PORT = 5001; // host port (CID 2): the guest connects and echoes ECHO_BYTES
const ECHO_BYTES = 8 * MiB;
const SERVE_PORT = 5000; // guest port: the host connects and gets "pong <line>"
const GUEST_CID = 3;
const READY = `DEVTEST-READY vsock-serve ${String(SERVE_PORT)}`;
/** the checks the init runs, in order (guest/devtest/init) */
const CHECKS = ['rng', 'blk-mkfs', 'blk-rw', 'blk-fsck', 'blk-raw', 'vsock-echo', 'vsock-serve', 'fs-mount', 'fs-read', 'fs-write', 'fs-list', 'all'];
const FS_TAG = 'devtest-share';

/** The xorshift32 byte stream `vsock-tool pattern N SEED` writes (guest/devtest/vsock-tool.c). */
function xorshiftPattern(n: number, seed: number): Buffer {
  let x = seed >>> 0 || 0x9e3779b9;
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** `DEVTEST <name> OK|FAIL <detail>` lines of a console transcript (the last one per name wins). */
function parseDevtest(text: string): Map<string, { ok: boolean; detail: string }> {
  const out = new Map<string, { ok: boolean; detail: string }>();
  for (const m of text.replaceAll('\r', '').matchAll(/^DEVTEST (\S+) (OK|FAIL) ?(.*)$/gm)) {
    out.set(m[1]!, { ok: m[2] === 'OK', detail: m[3]! });
  }
  return out;
}

function readAt(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(length);
    const n = readSync(fd, b, 0, length, offset);
    return b.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Read a stream to its end (or until it fails), bounded by `limit` bytes. */
function collect(s: Duplex, limit: number): Promise<{ data: Buffer; error?: Error }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let n = 0;
    s.on('data', (c: Buffer) => {
      if (n < limit) chunks.push(c);
      n += c.length;
    });
    s.once('end', () => resolve({ data: Buffer.concat(chunks) }));
    s.once('error', (e: Error) => resolve({ data: Buffer.concat(chunks), error: e }));
  });
}

interface EchoResult {
  sent: Buffer;
  received: Buffer;
  error?: Error;
}

/** One boot with blk + vsock + rng; every check the guest and the host can make. */
async function deviceChecks(t: Test, plan: HypervisorPlan): Promise<void> {
  const kernelPath = guestArtifact('guest:kernel');
  const initrdPath = guestArtifact('guest:initrd:devtest');
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-devtest-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const image = join(dir, 'disk.img');
  writeFileSync(image, '');
  truncateSync(image, IMAGE_BYTES);
  const seed = (randomBytes(4).readUInt32LE(0) >>> 1) || 1; // 31 bits: the guest also uses seed + 1

  // virtio-fs: a shared directory with a file to read and one to remove, beside a file outside it
  const share = join(dir, 'share');
  mkdirSync(share);
  writeFileSync(join(share, 'hello.txt'), `hello from the host ${String(seed)}\n`);
  writeFileSync(join(share, 'gone.txt'), 'the guest removes this');
  writeFileSync(join(dir, 'outside.txt'), 'not shared');
  const devices: DeviceSpec[] = [
    { kind: 'blk', path: image, readOnly: false },
    { kind: 'vsock', cid: GUEST_CID },
    { kind: 'rng' },
    { kind: 'fs', sharedDir: share, tag: FS_TAG },
  ];
  const params = {
    seed,
    echo_port: ECHO_PORT,
    echo_bytes: ECHO_BYTES,
    serve_port: SERVE_PORT,
    fs_mib: FS_MIB,
    raw_mib: RAW_MIB,
    raw_bytes: RAW_BYTES,
    checks: 'rng,blk,vsock,fs',
    fs_tag: FS_TAG,
  };
  const cmdline = `${DEFAULT_CMDLINE} ${Object.entries(params)
    .map(([k, v]) => `devtest.${k}=${String(v)}`)
    .join(' ')}`;

  const hv: Hypervisor = createHypervisor(plan);
  const logs: string[] = [];
  hv.on('log', (l: string) => logs.push(l));
  await hv.createVm({ kernelPath, initrdPath, cmdline, vcpus: 1, memoryMiB: 256, devices, markers: [READY] });
  const safety = setTimeout(() => void hv.stopVm(), SAFETY_NET_MS);
  t.teardown(() => clearTimeout(safety));

  // host → guest: once the guest says its listener is up
  const nonce = randomBytes(8).toString('hex');
  const serveResult = new Promise<{ data: Buffer; error?: Error }>((resolve) => {
    hv.on('marker', (m: string) => {
      if (m !== READY) return;
      const host = hv.vsock;
      if (!host) return resolve({ data: Buffer.alloc(0), error: new Error('no vsock host') });
      host.connect(SERVE_PORT, { timeoutMs: 60_000 }).then(
        (s) => {
          const r = collect(s, 4096);
          s.end(`${nonce}\n`);
          void r.then(resolve);
        },
        (e: Error) => resolve({ data: Buffer.alloc(0), error: e }),
      );
    });
    void hv.wait().then(() => resolve({ data: Buffer.alloc(0), error: new Error('the VM stopped before the guest listener was reached') }));
  });

  await hv.startVm();
  t.equal(hv.capabilities().deviceTransport, plan.kind === 'qemu' ? 'vhost-user' : 'in-process');
  const vsock = hv.vsock;
  t.ok(vsock, 'the backend offers the vsock host side');

  // guest → host: the guest connects to ECHO_PORT and sends back the bytes we send it
  const sent = randomBytes(ECHO_BYTES);
  const echo = new Promise<EchoResult>((resolve) => {
    if (!vsock) return resolve({ sent, received: Buffer.alloc(0), error: new Error('no vsock host') });
    let accepted = false;
    vsock.listen(ECHO_PORT, (s) => {
      if (accepted) return void s.destroy();
      accepted = true;
      const chunks: Buffer[] = [];
      let n = 0;
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        n += c.length;
        if (n >= ECHO_BYTES) s.end(); // all came back: close our side (the guest waits for it)
      });
      s.once('error', (e: Error) => resolve({ sent, received: Buffer.concat(chunks), error: e }));
      s.once('close', () => resolve({ sent, received: Buffer.concat(chunks) }));
      s.write(sent);
    });
    void hv.wait().then(() => resolve({ sent, received: Buffer.alloc(0), error: new Error('the VM stopped before the guest connected') }));
  });

  const exit = await hv.wait();
  clearTimeout(safety);
  const text = hv.consoleText;
  const tail = text.slice(-1500);
  t.same(exit, { kind: 'reset' }, 'the init ran its checks and rebooted', { console: tail, logs: logs.slice(-5) });

  // the guest's own reports
  const results = parseDevtest(text);
  for (const name of CHECKS) {
    const r = results.get(name);
    t.ok(r?.ok, `guest: ${name} ${r ? `${r.ok ? 'OK' : 'FAIL'} ${r.detail}` : 'not reported'}`);
  }
  t.match(results.get('rng')?.detail ?? '', /current=virtio_rng/, 'the guest hwrng is virtio-rng');
  t.match(results.get('blk-fsck')?.detail ?? '', /devtest: \d+\/\d+ files/, 'e2fsck -n in the guest read the file system it made');
  t.match(results.get('vsock-echo')?.detail ?? '', new RegExp(`echoed ${String(ECHO_BYTES)}`), `the guest echoed ${String(ECHO_BYTES)} bytes`);

  // vsock, seen from the host
  const e = await echo;
  t.notOk(e.error, `the echo connection ended cleanly${e.error ? `: ${e.error.message}` : ''}`);
  t.equal(e.received.length, ECHO_BYTES, 'all 8 MiB came back over vsock');
  t.ok(e.received.equals(e.sent), 'byte for byte');
  const sr = await serveResult;
  t.notOk(sr.error, `the host reached the guest listener${sr.error ? `: ${sr.error.message}` : ''}`);
  t.equal(sr.data.toString('utf8'), `pong ${nonce}\n`, 'and the guest answered our line');

  // virtio-fs, seen from the host: what the guest wrote, renamed and removed is on the host's disk
  t.equal(readFileSync(join(share, 'guest.txt'), 'utf8'), `guest ${String(seed)}\n`, 'virtio-fs: the file the guest wrote is in the shared directory');
  t.equal(readFileSync(join(share, 'dir', 'b'), 'utf8'), 'moved\n', 'virtio-fs: mkdir and rename reached the host');
  t.notOk(existsSync(join(share, 'dir', 'a')), 'virtio-fs: the old name is gone');
  t.notOk(existsSync(join(share, 'gone.txt')), 'virtio-fs: the unlink reached the host');
  t.ok(readFileSync(join(share, 'big')).equals(xorshiftPattern(MiB, seed)), 'virtio-fs: a 1 MiB file written by the guest holds its pattern');
  t.equal(readFileSync(join(dir, 'outside.txt'), 'utf8'), 'not shared', 'the file beside the share is untouched');

  // blk, seen from the host: the raw pattern at its offset, the superblock, and the file system itself
  t.ok(readAt(image, RAW_MIB * MiB, RAW_BYTES).equals(xorshiftPattern(RAW_BYTES, seed + 1)), `the guest's raw pattern is in the image at ${String(RAW_MIB)} MiB`);
  t.ok(readAt(image, RAW_MIB * MiB - 4096, 4096).equals(Buffer.alloc(4096)), 'and nothing was written just before it');
  // ext4: the superblock at byte 1024, s_magic (le16 0xEF53) at offset 0x38 (fs/ext4/ext4.h struct ext4_super_block)
  t.equal(readAt(image, 1024 + 0x38, 2).readUInt16LE(0), 0xef53, 'the image holds an ext4 superblock');
  const e2fsck = findOnPath('e2fsck', `${process.env.PATH ?? ''}:/usr/sbin:/sbin`);
  const debugfs = findOnPath('debugfs', `${process.env.PATH ?? ''}:/usr/sbin:/sbin`);
  if (e2fsck) {
    const r = spawnSync(e2fsck, ['-n', '-f', image], { encoding: 'utf8' });
    t.equal(r.status, 0, 'host e2fsck -n -f finds the file system clean', { stdout: r.stdout, stderr: r.stderr });
  }
  if (debugfs) {
    const out = join(dir, 'pattern.out');
    spawnSync(debugfs, ['-R', `dump /pattern ${out}`, image], { encoding: 'utf8' });
    let got: Buffer = Buffer.alloc(0);
    try {
      got = readAt(out, 0, RAW_BYTES + 1);
    } catch {
      // no file: the assertion below says so
    }
    t.ok(got.equals(xorshiftPattern(RAW_BYTES, seed)), `the file the guest wrote on ext4 holds its pattern (host debugfs: ${String(got.length)} bytes)`);
  }
}

const host = detectHost();

t.test('devices under a Linux guest: qemu backend (vhost-user)', {
  skip: host.qemuPath === undefined ? 'qemu-system-x86_64 is not installed (apt-get install -y qemu-system-x86)' : false,
}, async (t) => {
  await deviceChecks(t, chooseHypervisor('qemu', host));
});

// the in-process VMM runs guest user space only on hardware KVM (kvm_pvm: the kernel boots to "Run /init")
const hardware = host.virtualization === 'hardware' && checkHost().virtualization === 'hardware';
t.test('devices under a Linux guest: inproc backend', {
  skip: hardware
    ? false
    : `the inproc backend needs hardware KVM to run guest user space (this host: ${host.virtualization === 'software' ? 'kvm_pvm, a software virtualizer' : host.virtualization}); the qemu test covers the devices here`,
}, async (t) => {
  await deviceChecks(t, chooseHypervisor('inproc', host));
});

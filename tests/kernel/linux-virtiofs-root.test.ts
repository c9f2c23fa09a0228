// The smoke kernel, booted by the in-process VMM, mounts its root file system from our virtio-fs device
// (virtio-mmio, served by the in-process FUSE server) and execs /sbin/init from it: no initramfs,
// `root=TAG rootfstype=virtiofs rw` (init/do_mounts.c mount_nodev_root). On the software KVM of the development
// machines (kvm_pvm) that is as far as a Linux guest gets: the kernel reads the init through our device and
// enters user space, whose first syscall faults (DESIGN.md). So the facts asserted are the kernel's: virtio_fs
// probed our device, the root was mounted from it, the init it ran was read through it, and the kernel did not
// fall back to another init. The host side confirms the device served FUSE_INIT, lookups, an open and a read.

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_CMDLINE } from '../../src/cli/boot.js';
import type { DeviceSpec } from '../../src/contract/device-spec.js';
import { checkHost } from '../../src/host/check.js';
import { applyQuirks, loadQuirksProfile } from '../../src/host/quirks.js';
import { VIRTIO_STATUS_DEVICE_NEEDS_RESET, VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_FAILED } from '../../src/virtio/ids.js';
import { createVm, type Vm } from '../../src/vmm/vm.js';
import { busyboxRootSkip, makeBusyboxRoot, ROOT_INIT } from '../helpers/busybox-root.js';
import { guestArtifact } from '../helpers/guest-artifacts.js';

const SAFETY_NET_MS = 400_000; // only so a broken boot cannot hang CI; never a speed assertion
/** after the first READ the device served, how long to watch for a fallback to another init */
const SETTLE_MS = 5_000;
const POLL_MS = 250;
const TAG = 'kata-root';
const FS = 0; // the only device: slot 0
const MOUNTED_RE = /VFS: Mounted root \(virtiofs filesystem\) on device/;
const RUN_INIT = `Run ${ROOT_INIT} as init process`;
// init/main.c kernel_init(): the next candidates after /sbin/init, and its failure lines
const FALLBACK_RE = /Run (\/etc\/init|\/bin\/init|\/bin\/sh) as init process|Starting init: .* exists but couldn't execute it|No working init found/;
const VIRTIO_F_VERSION_1 = 1n << 32n;

// Where hardware KVM lets it run, the init writes a file, prints a marker and sleeps (so that the VM stays up
// until the host stops it, as under kvm_pvm); under kvm_pvm it never gets that far.
const INIT_MARKER = 'VIRTIOFS-ROOT-INPROC-OK';
const WRITTEN = 'from-guest.txt';
const INIT = `#!/bin/sh
export PATH=/bin
echo in-process > /${WRITTEN}
busybox sync
echo ${INIT_MARKER}
while :; do busybox sleep 3600; done
`;

type Metrics = NonNullable<Awaited<ReturnType<Vm['deviceMetrics']>>>;

const host = checkHost({ probe: true });
const noKvm = host.can_create_vms ? false : `needs /dev/kvm for the in-process VMM (${host.consequence})`;
const skip = noKvm || busyboxRootSkip();

t.test('the smoke kernel mounts a virtio-fs root from the in-process device and execs its init', { skip }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'kata-ts-virtiofs-root-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const root = join(work, 'root');
  mkdirSync(root);
  makeBusyboxRoot(root, INIT);

  const devices: DeviceSpec[] = [{ kind: 'fs', sharedDir: root, tag: TAG }];
  const base = `${DEFAULT_CMDLINE} root=${TAG} rootfstype=virtiofs rw`;
  const cmdline = host.quirks_profile === null ? base : applyQuirks(base, loadQuirksProfile(host.quirks_profile));
  const kernel = guestArtifact('guest:kernel:smoke');
  const vm = await createVm({ kernel: readFileSync(kernel), cmdline, memoryMiB: 256, vcpus: 1, devices });
  t.teardown(() => vm.stop().then(() => undefined));
  const deviceLog: string[] = [];
  vm.on('device-log', (l: { device: string; level: string; message: string }) => deviceLog.push(`${l.device} ${l.level}: ${l.message}`));

  // Once the root is mounted, read the device's counters every POLL_MS (the VM may end on its own: a panic
  // after the user-space fault reboots it, and a stopped device answers no more), keeping the last answer.
  let exited = false;
  const exit = vm.wait().then((r) => {
    exited = true;
    return r;
  });
  let last: { metrics: Metrics; status: number; features: bigint } | undefined;
  let firstReadAt: number | undefined;
  let initLine = false;
  const watch = (async (): Promise<string> => {
    const t0 = Date.now();
    for (;;) {
      if (exited) return 'the VM stopped';
      if (Date.now() - t0 > SAFETY_NET_MS) return 'safety net';
      const text = vm.consoleText;
      if (FALLBACK_RE.test(text)) return 'the kernel fell back to another init';
      if (MOUNTED_RE.test(text)) {
        const m = await vm.deviceMetrics(FS);
        const d = vm.devices[FS];
        if (m && d) last = { metrics: m, status: d.state.status, features: d.state.locked(() => d.state.driverFeatures()) };
        initLine ||= vm.consoleText.includes(RUN_INIT);
        if (initLine && firstReadAt === undefined && (m?.device.bytesRead ?? 0) > 0) firstReadAt = Date.now();
        if (firstReadAt !== undefined && Date.now() - firstReadAt >= SETTLE_MS) return 'the init was read and the kernel did not fall back';
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();
  const t0 = process.hrtime.bigint();
  vm.start();
  const why = await watch;
  const bootMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const reason = exited ? await exit : await vm.stop();
  const log = vm.consoleText.replaceAll('\r', '');
  const tail = log.slice(-4000);
  t.comment(`stopped after ${bootMs.toFixed(0)} ms (informational): ${why}; exit ${JSON.stringify(reason)}`);
  for (const line of log.split('\n').filter((l) => /virtio|fuse|VFS|Run |init|panic/i.test(l))) t.comment(`kernel: ${line.trim()}`);
  for (const l of deviceLog) t.comment(`device log: ${l}`);

  // the kernel's side
  t.match(log, MOUNTED_RE, 'the kernel mounted a read-write virtiofs root', { tail });
  t.ok(log.includes(RUN_INIT), `the kernel ran ${ROOT_INIT} from it`, { tail });
  t.notMatch(log, FALLBACK_RE, `the kernel did not fall back past ${ROOT_INIT} (the exec found and read it)`, { tail });
  const beforeInit = log.includes(RUN_INIT) ? log.slice(0, log.indexOf(RUN_INIT)) : log;
  t.notMatch(beforeInit, /virtio-fs: tag .* not found|VFS: Unable to mount root|Kernel panic/, 'no virtio-fs or root-mount error, no panic before init', { tail });
  if (exited && initLine) {
    // the guest ended itself after entering user space: under kvm_pvm that is its first syscall failing (DESIGN.md)
    t.comment(`the guest stopped on its own after the exec: ${JSON.stringify(reason)}`);
  } else {
    t.not(reason.kind, 'error', `the VM stopped without a VMM error (${JSON.stringify(reason)})`);
  }

  // the device's side, as last read while it ran
  t.ok(last, 'the device counters were read while the VM ran');
  if (last) {
    const { metrics: m, status, features } = last;
    t.comment(`virtio-fs metrics: device ${JSON.stringify(m.device)} transport ${JSON.stringify(m.transport)}`);
    t.ok((status & VIRTIO_STATUS_DRIVER_OK) !== 0, `virtio_fs set DRIVER_OK (status 0x${status.toString(16)})`);
    t.equal(status & (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET), 0, 'neither FAILED nor DEVICE_NEEDS_RESET');
    t.ok((features & VIRTIO_F_VERSION_1) !== 0n, `the driver accepted VIRTIO_F_VERSION_1 (features 0x${features.toString(16)})`);
    t.equal(m.transport.broken ?? 0, 0, 'the transport was never broken');
    t.equal(m.transport.bugs ?? 0, 0, 'no device bug');
    t.equal(m.device.broken ?? 0, 0, 'no malformed chain or FUSE request');
    t.ok((m.device['op.init'] ?? 0) >= 1, `the FUSE session began with INIT (${String(m.device['op.init'])})`);
    t.ok((m.device['op.lookup'] ?? 0) >= 1, `the kernel looked names up (${String(m.device['op.lookup'])} LOOKUPs)`);
    t.ok((m.device['op.open'] ?? 0) >= 1, `and opened a file (${String(m.device['op.open'])} OPENs)`);
    t.ok((m.device.bytesRead ?? 0) > 0, `the exec read ${ROOT_INIT} through our device (${String(m.device.bytesRead)} bytes read)`);
  }
  // with hardware KVM the init itself runs: what it printed, it did after writing its file
  if (log.includes(INIT_MARKER)) {
    t.comment('the init ran in user space (hardware KVM) and printed its marker');
    t.equal(readFileSync(join(root, WRITTEN), 'utf8'), 'in-process\n', 'the file the init wrote is in the host directory');
  }
});

// The full guest kernel boots from a virtio-fs root under the qemu backend (TCG here; KVM where `kata-ts check`
// finds hardware virtualization): no initramfs, `root=TAG rootfstype=virtiofs rw`, the share a host directory
// this test fills with busybox and an /sbin/init script (tests/helpers/busybox-root.ts). The device is our
// virtio-fs model served over vhost-user. The init reads a nonce the host put in the root, writes a file back,
// prints a marker with the nonce and what /proc/mounts says the root is, and reboots (-no-reboot: QEMU exits).

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_CMDLINE } from '../../src/cli/boot.js';
import type { DeviceSpec } from '../../src/contract/device-spec.js';
import { chooseHypervisor, createHypervisor, detectHost } from '../../src/hypervisor/factory.js';
import { busyboxRootSkip, makeBusyboxRoot, ROOT_INIT } from '../helpers/busybox-root.js';
import { guestArtifact } from '../helpers/guest-artifacts.js';

const SAFETY_NET_MS = 300_000; // only so a broken boot cannot hang CI; never a speed assertion
const TAG = 'kata-root';
const MARKER = 'VIRTIOFS-ROOT-OK';
const WRITTEN = 'from-guest.txt';

// PID 1 on the shared root. Applets are called through busybox (only /bin/sh is linked); every step that
// fails shows as a missing or wrong marker field or file, and an init that exits panics (panic=1: a reset).
const INIT = `#!/bin/sh
export PATH=/bin
busybox mount -t proc proc /proc
nonce=$(busybox cat /nonce)
root=$(busybox awk '$2 == "/" { r = $1 " " $3 } END { print r }' /proc/mounts)
echo "guest wrote this: $nonce" > /${WRITTEN}
busybox sync
echo "${MARKER} nonce=$nonce root=$root"
busybox reboot -f
`;

const host = detectHost();
const skip =
  (host.qemuPath === undefined ? 'qemu-system-x86_64 is not installed (apt-get install -y qemu-system-x86)' : false) ||
  busyboxRootSkip();

t.test('the full kernel boots from a virtio-fs root under qemu, and its init writes to the share', { skip }, async (t) => {
  const kernelPath = guestArtifact('guest:kernel');
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-virtiofs-root-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  mkdirSync(root);
  makeBusyboxRoot(root, INIT);
  const nonce = randomBytes(8).toString('hex');
  writeFileSync(join(root, 'nonce'), `${nonce}\n`);
  t.notOk(existsSync(join(root, WRITTEN)), 'the file the guest writes does not exist before the boot');

  const devices: DeviceSpec[] = [{ kind: 'fs', sharedDir: root, tag: TAG }];
  const cmdline = `${DEFAULT_CMDLINE} root=${TAG} rootfstype=virtiofs rw`;
  const plan = chooseHypervisor('qemu', host);
  const hv = createHypervisor(plan);
  const logs: string[] = [];
  hv.on('log', (l: string) => logs.push(l));
  await hv.createVm({ kernelPath, cmdline, vcpus: 1, memoryMiB: 256, devices, markers: [MARKER] });
  const safety = setTimeout(() => void hv.stopVm(), SAFETY_NET_MS);
  t.teardown(() => clearTimeout(safety));
  await hv.startVm();
  t.equal(hv.capabilities().deviceTransport, 'vhost-user', 'our virtio-fs model is served over vhost-user');
  const exit = await hv.wait();
  clearTimeout(safety);
  const text = hv.consoleText.replaceAll('\r', '');
  const tail = text.slice(-3000);

  t.same(exit, { kind: 'reset' }, 'the init rebooted and QEMU exited cleanly', { tail, logs: logs.slice(-5) });
  t.match(text, /VFS: Mounted root \(virtiofs filesystem\) on device/, 'the kernel mounted a read-write virtiofs root', { tail });
  t.match(text, new RegExp(`Run ${ROOT_INIT} as init process`), `the kernel ran ${ROOT_INIT} from it`, { tail });
  t.notMatch(text, /Kernel panic/, 'no panic', { tail });
  t.ok(text.includes(`${MARKER} nonce=${nonce} root=${TAG} virtiofs\n`),
    `the init printed the nonce it read from the share and saw "${TAG} virtiofs" as / in /proc/mounts`, { tail });
  t.type(hv.phases.markers[MARKER], 'bigint', 'the marker was timestamped');

  // seen from the host: the guest's write reached the shared directory (and only it)
  const written = join(root, WRITTEN);
  t.ok(existsSync(written), `the guest created /${WRITTEN} in the host directory`);
  if (existsSync(written)) {
    t.same(readFileSync(written), Buffer.from(`guest wrote this: ${nonce}\n`), 'with the bytes the init wrote');
  }
  t.notOk(existsSync(join(dir, WRITTEN)), 'nothing was written beside the share');
});

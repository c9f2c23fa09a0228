// `kata-ts check --json`: the facts a user needs before running, machine-readable.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { accessSync, constants, existsSync } from 'node:fs';
import t from 'tap';
import { findOnPath } from '../../src/hypervisor/factory.js';
import { packageRoot } from '../../src/host/package-root.js';

function canOpen(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

t.test('check --json reports KVM, the kind of virtualization and what --hypervisor auto would pick', async (t) => {
  const r = spawnSync(process.execPath, [join(packageRoot(), 'dist/bundle/kata-ts.js'), 'check', '--json', '--no-probe'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const report = JSON.parse(r.stdout) as Record<string, unknown> & { kvm: { ok: boolean }; can_create_vms: boolean };
  t.equal(r.status, report.can_create_vms ? 0 : 1, 'exit 0 exactly when VMs can be created');
  t.match(report, {
    kvm: { path: '/dev/kvm' },
    virtualization: /^(hardware|software|unavailable)$/,
    tun: Boolean,
    vhost_vsock: Boolean,
    hypervisor_auto: /^(inproc|qemu|none)/,
  });
  t.type(report.consequence, 'string');
  t.ok((report.consequence as string).length > 20, 'the consequence is said in words');
  if (report.virtualization === 'software') t.equal(report.quirks_profile, 'pvm', 'software KVM gets the pvm quirks profile');

  // the report states this host's facts, read here independently of the code under test
  const kvmNode = existsSync('/dev/kvm');
  if (!kvmNode) {
    t.equal(report.kvm.ok, false, 'KVM is not reported usable without /dev/kvm');
    t.equal(report.virtualization, 'unavailable', 'no /dev/kvm: virtualization unavailable');
    t.equal(report.can_create_vms, false, 'no /dev/kvm: no VMs in-process');
    t.match(report.kvm, { error: /\/dev\/kvm does not exist/ }, 'and the report says why');
  } else if (existsSync('/sys/module/kvm_pvm')) {
    t.equal(report.virtualization, 'software', 'the kvm_pvm module: software virtualization');
  }
  t.equal(report.tun, canOpen('/dev/net/tun'), '/dev/net/tun as this host has it');
  t.equal(report.vhost_vsock, existsSync('/dev/vhost-vsock'), '/dev/vhost-vsock as this host has it');
  const qemu = findOnPath('qemu-system-x86_64');
  t.equal(report.qemu_path, qemu ?? null, 'the QEMU binary on PATH');
  const virt = report.virtualization as 'hardware' | 'software' | 'unavailable';
  const expected = qemu === undefined && virt !== 'hardware' ? /^none/ : virt === 'hardware' ? /^inproc/ : /^qemu \(-accel tcg\)/;
  t.match(report.hypervisor_auto, expected, `--hypervisor auto on this host (${virt}, QEMU ${qemu === undefined ? 'absent' : 'present'})`);
});

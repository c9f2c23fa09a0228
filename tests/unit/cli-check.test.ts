// `kata-ts check --json`: the facts a user needs before running, machine-readable.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../src/host/package-root.js';

t.test('check --json reports KVM, the kind of virtualization and what --hypervisor auto would pick', async (t) => {
  const r = spawnSync(process.execPath, [join(packageRoot(), 'dist/src/cli/main.js'), 'check', '--json', '--no-probe'], {
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
});

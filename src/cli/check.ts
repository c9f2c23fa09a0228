// `kata-ts check`: can this host run microVMs, and with what consequences.

import { chooseHypervisor, findOnPath, QEMU_BINARY, type HypervisorPlan } from '../hypervisor/factory.js';
import { checkHost } from '../host/check.js';

/** What `--hypervisor auto` would pick here, or why it cannot pick anything. */
function autoChoice(virtualization: ReturnType<typeof checkHost>['virtualization'], qemuPath: string | undefined): string {
  let plan: HypervisorPlan;
  try {
    plan = chooseHypervisor('auto', { virtualization, qemuPath });
  } catch (e) {
    return `none (${(e as Error).message})`;
  }
  return plan.kind === 'inproc' ? 'inproc (this process, KVM)' : `qemu (-accel ${plan.accel})`;
}

export function checkCommand(o: { json?: boolean; probe: boolean }): number {
  const r = checkHost({ probe: o.probe });
  const qemuPath = findOnPath(QEMU_BINARY);
  const auto = autoChoice(r.virtualization, qemuPath);
  if (o.json) {
    process.stdout.write(JSON.stringify({ ...r, qemu_path: qemuPath ?? null, hypervisor_auto: auto }, null, 2) + '\n');
  } else {
    const yes = (b: boolean | undefined): string => (b ? 'yes' : 'no');
    const lines = [
      `/dev/kvm:          ${r.kvm.ok ? 'ok' : 'NOT USABLE'}${r.kvm.error ? ` (${r.kvm.error})` : ''}`,
      `KVM API version:   ${r.kvm.api_version ?? '-'}`,
      `vCPUs:             recommended ${r.recommended_vcpus ?? '-'}, max ${r.max_vcpus ?? '-'}`,
      `irqchip/irqfd/ioeventfd/pit2: ${yes(r.caps.irqchip)}/${yes(r.caps.irqfd)}/${yes(r.caps.ioeventfd)}/${yes(r.caps.pit2)}`,
      `immediate_exit:    ${yes(r.caps.immediate_exit)}`,
      `/dev/net/tun:      ${yes(r.tun)}`,
      `vhost-vsock/net:   ${yes(r.vhost_vsock)}/${yes(r.vhost_net)}`,
      `virtualization:    ${r.virtualization}` +
        ` (kvm_pvm module: ${yes(r.evidence.kvm_pvm_module)}, cpu flags: ${r.evidence.cpu_flags.join(' ') || 'none'}` +
        (r.evidence.ring0_iterations_per_s !== undefined
          ? `, guest ring-0 loop: ${(r.evidence.ring0_iterations_per_s / 1e6).toFixed(1)} M iterations/s)`
          : ')'),
      `host quirks:       ${r.quirks_profile ?? 'none'}`,
      `qemu:              ${qemuPath ?? `not found (apt-get install qemu-system-x86 for --hypervisor qemu)`}`,
      `--hypervisor auto: ${auto}`,
      '',
      r.consequence,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  return r.can_create_vms ? 0 : 1;
}

// Why a VM stopped. Shared by every layer that can end a VM: the legacy devices and the virtio-mmio
// transport on the vCPU threads (a write that resets or exits), the VMM, and both hypervisor backends.

export type VmExitReason =
  | { kind: 'reset' } // guest asked for a reset (i8042 0xFE, KVM system event) — Linux `reboot` with reboot=k
  | { kind: 'shutdown' } // triple fault or a KVM shutdown system event
  | { kind: 'debug-exit'; status: number } // guest wrote a status to the debug exit port
  | { kind: 'stopped' } // the host called stop()
  | { kind: 'error'; message: string; vcpu: number };

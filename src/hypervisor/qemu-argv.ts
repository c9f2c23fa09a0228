// The qemu-system-x86_64 command line for a kata-ts microVM: `-M microvm` booting the PVH kernel directly,
// guest RAM in a shared memfd (vhost-user backends map it), modern virtio-mmio, COM1 on stdio, the boot
// timer port as an isa-debugcon whose bytes arrive on a socket of ours, QMP on another, devices over
// vhost-user. Pure: argv in, argv out (tested in tests/unit/hypervisor-qemu-argv.test.ts).

// the boot-timer and debug-exit ports are the in-process VMM's (one guest layout, arch/x86_64/layout.ts);
// QEMU's isa-debug-exit exits with (status << 1) | 1
import { BOOT_TIMER_PORT, DEBUG_EXIT_PORT } from '../arch/x86_64/layout.js';
import type { Accelerator } from './interface.js';
import type { DeviceSpec } from '../contract/device-spec.js';


export interface VhostUserAttachment {
  spec: DeviceSpec;
  /** the backend's listening unix socket */
  socketPath: string;
}

export interface QemuArgvOptions {
  kernelPath: string;
  initrdPath?: string;
  cmdline: string;
  vcpus: number;
  memoryMiB: number;
  accel: Accelerator;
  /** unix socket we listen on; QEMU connects to it as a QMP client */
  qmpSocket: string;
  /** unix socket we listen on; the isa-debugcon at the boot-timer port writes there */
  bootTimerSocket: string;
  vhostUser?: VhostUserAttachment[];
  /** isa-debug-exit on 0xf4 (test payloads) */
  debugExit?: boolean;
  /** -S: build the machine but do not run it until QMP `cont` */
  startPaused?: boolean;
}

export class QemuDeviceNotSupported extends Error {
  constructor(kind: string) {
    super(`the qemu backend cannot attach a '${kind}' device over vhost-user (it attaches blk, net, vsock, rng and fs)`);
    this.name = 'QemuDeviceNotSupported';
  }
}

/** QEMU option values (key=value,key=value) escape a comma by doubling it (QEMU docs: "Options"). */
export function qemuOptValue(s: string): string {
  return s.replaceAll(',', ',,');
}

/** The -chardev/-netdev/-device arguments attaching one vhost-user backend. */
export function vhostUserDeviceArgs(a: VhostUserAttachment, index: number): string[] {
  const chardev = `vu${String(index)}`;
  const args = ['-chardev', `socket,id=${chardev},path=${qemuOptValue(a.socketPath)}`];
  const s = a.spec;
  switch (s.kind) {
    case 'blk':
      // QEMU: hw/block/vhost-user-blk.c (config space, read-only flag, come from the backend)
      return [...args, '-device', `vhost-user-blk,chardev=${chardev},num-queues=1`];
    case 'rng':
      return [...args, '-device', `vhost-user-rng,chardev=${chardev}`];
    case 'vsock':
      // QEMU: hw/virtio/vhost-user-vsock.c takes the guest CID from the backend's config space
      return [...args, '-device', `vhost-user-vsock-device,chardev=${chardev}`];
    case 'fs':
      // QEMU: hw/virtio/vhost-user-fs.c answers the config space (tag, queues) itself; DAX stays off
      return [...args, '-device', `vhost-user-fs-device,chardev=${chardev},tag=${qemuOptValue(s.tag)}`];
    case 'net': {
      const netdev = `net${String(index)}`;
      const mac = s.mac !== undefined ? `,mac=${s.mac}` : '';
      return [...args, '-netdev', `vhost-user,id=${netdev},chardev=${chardev}`, '-device', `virtio-net-device,netdev=${netdev}${mac}`];
    }
    default:
      throw new QemuDeviceNotSupported(s.kind);
  }
}

/**
 * The kernel command line QEMU gets. Under TCG with vhost-user devices it gains `init_on_alloc=1` (unless the
 * user's parameters already set init_on_alloc): TCG caches translated guest code per guest-physical page and
 * drops a translation only when the guest CPU (or QEMU itself) writes that page. A vhost-user backend writes
 * guest RAM from another process, so QEMU never hears of it: when the guest frees a page it executed code
 * from (runc re-executes itself from a memfd copy on every create and exec) and the page comes back filled by
 * a device read (virtio-fs READ, virtio-blk), QEMU may run its stale translation of the old code. Seen as
 * busybox dying of SIGSEGV at an ip inside an instruction: in a loop of 20 execs per sandbox, 6 of 20
 * sandboxes were hit (16 of 400 execs failed), and none of 20 (0 of 400) with the parameter, at no measurable
 * cost to `kata-ts run`. With init_on_alloc=1 the guest zeroes every page it allocates, a CPU write that drops
 * the page's translations before the device fills it. KVM runs guest code natively and caches nothing, so it is
 * left alone.
 */
export function qemuCmdline(cmdline: string, accel: Accelerator, vhostUser: boolean): string {
  if (accel !== 'tcg' || !vhostUser) return cmdline;
  if (/(^|\s)init_on_alloc=/.test(cmdline)) return cmdline;
  return `${cmdline} init_on_alloc=1`;
}

export function buildQemuArgv(o: QemuArgvOptions): string[] {
  const mem = `${String(o.memoryMiB)}M`;
  const argv = [
    // acpi=off: QEMU then lists the virtio-mmio transports on the kernel command line (virtio_mmio.device=)
    '-M', 'microvm,acpi=off,x-option-roms=off,memory-backend=mem',
    // vhost-user backends map guest RAM: it must be a shareable fd (DESIGN.md, KVM measured)
    '-object', `memory-backend-memfd,id=mem,size=${mem},share=on`,
    '-m', mem,
    '-smp', String(o.vcpus),
    // vhost-user needs modern (virtio 1.x) virtio-mmio; microvm defaults to legacy
    '-global', 'virtio-mmio.force-legacy=false',
    '-nodefaults', '-no-user-config', '-nographic',
    '-serial', 'stdio',
    // a guest reset (reboot=k) ends QEMU with status 0 instead of rebooting
    '-no-reboot',
    ...(o.accel === 'kvm'
      ? // plain `-cpu host` fails on MSR 0x10a (IA32_ARCH_CAPABILITIES) on kvm_pvm (DESIGN.md)
        ['-accel', 'kvm', '-cpu', 'host,-arch-capabilities']
      : ['-accel', 'tcg']),
    // the i8042 the in-process VMM also has (0xFE to port 0x64 = reset): microvm has none, and the guest's
    // reboot=k then spins in kb_wait() ~1.3 s before falling back to a triple fault
    '-device', 'i8042',
    '-qmp', `unix:${qemuOptValue(o.qmpSocket)}`,
    '-chardev', `socket,id=boottimer,path=${qemuOptValue(o.bootTimerSocket)}`,
    '-device', `isa-debugcon,iobase=0x${BOOT_TIMER_PORT.toString(16)},chardev=boottimer`,
    ...(o.debugExit ? ['-device', `isa-debug-exit,iobase=0x${DEBUG_EXIT_PORT.toString(16)},iosize=4`] : []),
    ...(o.startPaused ? ['-S'] : []),
    '-kernel', o.kernelPath,
    ...(o.initrdPath !== undefined ? ['-initrd', o.initrdPath] : []),
    '-append', qemuCmdline(o.cmdline, o.accel, (o.vhostUser ?? []).length > 0),
  ];
  (o.vhostUser ?? []).forEach((a, i) => argv.push(...vhostUserDeviceArgs(a, i)));
  return argv;
}

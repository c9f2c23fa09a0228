// The sandbox process's launch settings: the CLI (api.ts) writes them as one JSON argument of
// `node sandbox-main.js '<SandboxLaunch JSON>'`; sandbox-main.ts checks them field by field (a bad field is a
// one-line error on the readiness pipe) and hands the Sandbox its part.

import type { HypervisorChoice } from '../hypervisor/factory.js';
import type { HypervisorSection, RuntimeConfig } from './config.js';
import type { PodNetwork } from './pod-network.js';
import type { LogFormat } from './log.js';

/** configuration.toml shared_fs: Kata's key ("virtio-fs", or "none" for a disk image copy per container) */
export type SharedFsKind = 'virtio-fs' | 'none';
import { define, fail, int, nonEmptyString, object, oneOf, optional, parseJson, string, type Check } from './validate.js';

/** What a Sandbox (sandbox.ts) needs to boot its VM and keep its state. */
export interface SandboxSettings {
  /** the state root (runtime option --root) */
  root: string;
  /** the sandbox id: its first container's id */
  sid: string;
  /** the --hypervisor choice, as recorded in sandbox.json */
  hypervisor: HypervisorChoice;
  kernel: string;
  initrd: string;
  /** the kernel command line as configured; the hypervisor adds its host-quirks profile */
  cmdline: string;
  vcpus: number;
  memoryMiB: number;
  /** how container rootfs reach the guest (configuration.toml shared_fs; sandbox.ts) */
  sharedFs: SharedFsKind;
  /** the pod's network namespace interface the VM takes over (pod-network.ts); the sandbox runs in that netns */
  network?: PodNetwork;
  /** linux.cgroupsPath of the sandbox's first container: the sandbox process joins it first (host/cgroup.ts) */
  cgroupsPath?: string;
  /** the mount namespace of the process that started the sandbox's (/proc/self/ns/mnt): with virtio-fs, the
   *  sandbox must be in another one (shared-fs.ts) */
  launcherMountNs?: string;
  /** spare virtio-blk disks, one per container rootfs (shared_fs = "none"; 0 with virtio-fs) */
  slots: number;
  slotSizeMiB: number;
  /** console.log and console.log.1 each hold at most this many MiB ([hypervisor.*] console_log_max_mib) */
  consoleLogMaxMiB: number;
  dialTimeoutMs: number;
  requestTimeoutMs: number;
  /** TMPDIR of the sandbox (QEMU's work dir); removed at shutdown */
  tmpDir: string;
}

/** The launch JSON: the Sandbox's settings and what the entry script uses to pick the hypervisor and log. */
export interface SandboxLaunch extends SandboxSettings {
  /** [hypervisor.qemu] path */
  qemuPath: string;
  logFormat: LogFormat;
}

const positive = int(1);
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** A string matching `re` exactly. */
function pattern(re: RegExp, expected: string): Check<string> {
  return define(expected, (v, p) => (typeof v === 'string' && re.test(v) ? v : fail(p, expected, v)));
}

export const sandboxLaunch: Check<SandboxLaunch> = object({
  root: nonEmptyString,
  sid: nonEmptyString,
  hypervisor: oneOf('inproc', 'qemu', 'auto'),
  qemuPath: string,
  kernel: nonEmptyString,
  initrd: nonEmptyString,
  cmdline: string,
  vcpus: positive,
  memoryMiB: positive,
  sharedFs: oneOf('virtio-fs', 'none'),
  launcherMountNs: optional(string),
  cgroupsPath: optional(nonEmptyString),
  // these reach the guest kernel's command line (ip=): each is checked to its exact form
  network: optional(
    object({
      netns: nonEmptyString,
      ifname: pattern(/^[A-Za-z0-9_.-]{1,15}$/, 'an interface name'),
      mac: pattern(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, 'a MAC address (aa:bb:cc:dd:ee:ff)'),
      address: pattern(IPV4, 'an IPv4 address'),
      prefixLen: int(0, 32),
      gateway: optional(pattern(IPV4, 'an IPv4 address')),
    }),
  ),
  // virtio-blk names vda..vdz (rootfs-image.ts guestDisk)
  slots: int(0, 26),
  slotSizeMiB: positive,
  consoleLogMaxMiB: int(1, 1024),
  dialTimeoutMs: positive,
  requestTimeoutMs: positive,
  logFormat: oneOf('text', 'json'),
  tmpDir: nonEmptyString,
});

/** The launch JSON from argv; InvalidJson naming the bad field otherwise. */
export function parseLaunch(text: string): SandboxLaunch {
  return parseJson(text, sandboxLaunch, 'sandbox launch settings');
}

/** What launchFromConfig needs besides configuration.toml. */
export interface LaunchPlace {
  root: string;
  sid: string;
  hypervisor: HypervisorChoice;
  /** the chosen [hypervisor.*] section with the annotations applied */
  hv: HypervisorSection;
  kernel: string;
  initrd: string;
  tmpDir: string;
  logFormat: LogFormat;
  /** the launcher's mount namespace (virtio-fs needs the sandbox in another one) */
  launcherMountNs?: string;
  cgroupsPath?: string;
  network?: PodNetwork;
}

/** A sandbox's launch settings from configuration.toml: the CLI's sandbox process and the shim both use it. */
export function launchFromConfig(cfg: RuntimeConfig, p: LaunchPlace): SandboxLaunch {
  const hv = p.hv;
  return {
    root: p.root,
    sid: p.sid,
    hypervisor: p.hypervisor,
    qemuPath: cfg.hypervisor.qemu.path,
    kernel: p.kernel,
    initrd: p.initrd,
    cmdline: hv.kernel_params,
    vcpus: hv.default_vcpus,
    memoryMiB: hv.default_memory,
    sharedFs: hv.shared_fs,
    ...(p.launcherMountNs ? { launcherMountNs: p.launcherMountNs } : {}),
    ...(p.cgroupsPath ? { cgroupsPath: p.cgroupsPath } : {}),
    ...(p.network ? { network: p.network } : {}),
    slots: hv.shared_fs === 'none' ? 1 + cfg.runtime.spare_block_devices : 0,
    slotSizeMiB: cfg.runtime.spare_block_size,
    consoleLogMaxMiB: hv.console_log_max_mib,
    dialTimeoutMs: cfg.agent.dial_timeout * 1000,
    requestTimeoutMs: cfg.agent.request_timeout * 1000,
    logFormat: p.logFormat,
    tmpDir: p.tmpDir,
  };
}

// The pod's network when config.json names a network namespace by path (linux.namespaces[].path, as podman and
// CNI set it up: a veth with the pod's address in that namespace). As Kata does:
// - the sandbox process (and so the VMM and its tap) runs in that namespace (`nsenter --net=PATH`, api.ts);
// - a tap is connected to the pod's interface both ways with tc mirred redirects (connectTap);
// - the VM's virtio-net device takes the interface's MAC, and the guest kernel its address, netmask and
//   gateway from the command line (ip=, CONFIG_IP_PNP), so the guest answers for the pod's address;
// - the namespace path is removed from the spec the guest sees (guestSpec): the container uses the VM's own
//   network namespace, which has that interface.

import { execFileSync, spawnSync } from 'node:child_process';
import { findExecutable } from '../hypervisor/parent-death.js';
import { RuntimeError } from './errors.js';

/** The pod interface the guest takes over. */
export interface PodNetwork {
  /** the network namespace path from config.json */
  netns: string;
  /** the pod's interface in it (usually eth0) */
  ifname: string;
  mac: string;
  address: string;
  prefixLen: number;
  gateway?: string;
}

/** The tap the VMM opens in the pod namespace. */
export const POD_TAP = 'tap0_kata';

interface Namespace {
  type?: unknown;
  path?: unknown;
}

/** linux.namespaces' network entry with a path, if any. */
export function networkNamespacePath(spec: Record<string, unknown>): string | undefined {
  const ns = (spec['linux'] as { namespaces?: unknown } | undefined)?.namespaces;
  if (!Array.isArray(ns)) return undefined;
  const e = (ns as Namespace[]).find((n) => n && n.type === 'network' && typeof n.path === 'string' && n.path !== '');
  return e?.path as string | undefined;
}

/**
 * The spec as the guest sees it: a network namespace path names a host namespace, so it goes and the container
 * uses the VM's own network namespace (which is the pod's). runc refuses net.* sysctls outside a namespace of
 * the container's own, so those go too: the VM's network stack is the pod's alone and keeps its defaults.
 */
export function guestSpec(spec: Record<string, unknown>): Record<string, unknown> {
  const linux = spec['linux'] as Record<string, unknown> | undefined;
  if (!linux || networkNamespacePath(spec) === undefined) return spec;
  const namespaces = (linux['namespaces'] as Namespace[]).filter((n) => !(n && n.type === 'network'));
  const out: Record<string, unknown> = { ...linux, namespaces };
  const sysctl = linux['sysctl'];
  if (sysctl && typeof sysctl === 'object') out['sysctl'] = Object.fromEntries(Object.entries(sysctl).filter(([k]) => !k.startsWith('net.')));
  return { ...spec, linux: out };
}

function nsTool(): string {
  const p = findExecutable('nsenter');
  if (!p) throw new RuntimeError('INVALID', 'nsenter(1) is not on PATH: install util-linux (a network namespace path in config.json needs it)');
  return p;
}

/** `nsenter --net=PATH` as an argv prefix. */
export function netnsPrefix(netns: string): string[] {
  return [nsTool(), `--net=${netns}`];
}

function ipJson(netns: string, args: string[]): unknown {
  try {
    return JSON.parse(execFileSync(nsTool(), [`--net=${netns}`, 'ip', '-j', ...args], { encoding: 'utf8', timeout: 10_000 }) || '[]');
  } catch (e) {
    throw new RuntimeError('INVALID', `cannot read the network namespace ${netns} (config.json linux.namespaces): ${(e as Error).message.split('\n')[0]!}`);
  }
}

/**
 * The pod interface in `netns`: the first one, other than loopback, with an IPv4 address; undefined when there is
 * none (a namespace with only lo, e.g. podman --network none: the VM then gets no NIC).
 */
export function readPodNetwork(netns: string): PodNetwork | undefined {
  // `ip -j addr` leaves out the link type and MAC on iproute2 6.1: read the links for those
  const links = ipJson(netns, ['link', 'show']) as { ifname?: string; address?: string; link_type?: string }[];
  const addrs = ipJson(netns, ['-4', 'addr', 'show']) as { ifname?: string; addr_info?: { family?: string; local?: string; prefixlen?: number }[] }[];
  for (const l of links) {
    if (l.link_type !== 'ether' || !l.ifname || !l.address) continue;
    const a = addrs.find((x) => x.ifname === l.ifname)?.addr_info?.find((x) => x.family === 'inet' && typeof x.local === 'string');
    if (!a || a.prefixlen === undefined) continue;
    const routes = ipJson(netns, ['-4', 'route', 'show', 'default']) as { gateway?: string; dev?: string }[];
    const gw = routes.find((r) => r.dev === l.ifname && r.gateway)?.gateway;
    return { netns, ifname: l.ifname, mac: l.address, address: a.local!, prefixLen: a.prefixlen, ...(gw ? { gateway: gw } : {}) };
  }
  return undefined;
}

/** a.b.c.d of a prefix length */
export function netmask(prefixLen: number): string {
  const m = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 0xff).join('.');
}

/** The guest kernel's ip= argument (Documentation/admin-guide/nfs/nfsroot.rst): client::gw:mask::eth0:off */
export function kernelIpArg(n: PodNetwork): string {
  return `ip=${n.address}::${n.gateway ?? ''}:${netmask(n.prefixLen)}::eth0:off`;
}

function run(args: string[]): void {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
}

/**
 * In the pod namespace (this process's), before the VM exists: a persistent tap (the VMM attaches to it by name),
 * up, and every frame redirected between it and the pod interface.
 */
export function connectTap(ifname: string, tap = POD_TAP): void {
  run(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap', 'vnet_hdr']);
  run(['ip', 'link', 'set', tap, 'up']);
  for (const [from, to] of [
    [ifname, tap],
    [tap, ifname],
  ] as const) {
    run(['tc', 'qdisc', 'add', 'dev', from, 'ingress']);
    run(['tc', 'filter', 'add', 'dev', from, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u8', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', to]);
  }
}

/** Undoes connectTap: the redirect on the pod interface and the tap. Best effort (the namespace may be gone). */
export function disconnectTap(ifname: string, tap = POD_TAP): void {
  spawnSync('tc', ['qdisc', 'del', 'dev', ifname, 'ingress'], { stdio: 'ignore', timeout: 10_000 });
  spawnSync('ip', ['link', 'del', tap], { stdio: 'ignore', timeout: 10_000 });
}

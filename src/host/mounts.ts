// Host mounts for the runtime's virtio-fs share: bind mounts (native/mount.cc), the mounts beneath a directory
// (/proc/self/mountinfo), and the check that this process has a mount namespace of its own.
//
// The share's bind mounts must never be made in the host's mount namespace: a crashed sandbox would leave them
// there, and a recursive removal of its directory would walk into the user's rootfs through them. The sandbox
// process therefore runs in a private mount namespace (`unshare --mount --propagation private`, api.ts), where
// the mounts vanish with its last process; privateMountNamespace() lets it refuse to share otherwise.

import { closeSync, constants, fstatSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import { loadNative, type NativeAddon } from '../kvm/native.js';

/** open(2) O_PATH (Node's fs.constants lacks it: 010000000 on x86_64); libuv adds O_CLOEXEC to every open. */
const O_PATH = 0o10000000;

/** This process's mount namespace, as /proc/self/ns/mnt names it ('mnt:[4026531832]'). */
export function mountNamespace(): string {
  return readlinkSync('/proc/self/ns/mnt');
}

/**
 * True when this process's mount namespace differs from `launcherNs` (mountNamespace() of the process that
 * started it under `unshare --mount`): mounts made here stay here. Comparing with pid 1 would not do: in a
 * container pid 1's namespace may be unreadable, or already not the caller's.
 */
export function privateMountNamespace(launcherNs: string | undefined): boolean {
  if (!launcherNs) return false;
  try {
    return mountNamespace() !== launcherNs;
  } catch {
    return false; // cannot tell, so not private
  }
}

/** A mountinfo path field: spaces, tabs, newlines and backslashes come octal-escaped (\040). */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or beneath `dir` in this mount namespace, deepest (and latest) first. */
export function mountsBeneath(dir: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const base = dir.replace(/\/+$/, '');
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = unescapeMountPath(f[4]!);
    if (mp === base || mp.startsWith(`${base}/`)) out.push(mp);
  }
  // later mounts stack on earlier ones, and children come after parents: unmount in reverse order
  return out.reverse().sort((a, b) => b.split('/').length - a.split('/').length);
}

/**
 * Detaches every mount at or beneath `dir` (umount2 MNT_DETACH, deepest first) and returns the mount points
 * still there afterwards (none, unless one could not be unmounted).
 */
export function unmountBeneath(dir: string, native: Pick<NativeAddon, 'unmount'> = loadNative()): string[] {
  for (const mp of mountsBeneath(dir)) {
    try {
      native.unmount(mp, true);
    } catch {
      // reported through what is left below
    }
  }
  return mountsBeneath(dir);
}

/** A bind mount refused before mount(2): a link where none may be followed. */
export class BindRefused extends Error {
  override readonly name = 'BindRefused';
}

export interface BindOptions {
  /** follow a symlink at `source` (a bind mount in config.json does, as runc's); default false: refused */
  followSource?: boolean;
  readOnly?: boolean;
}

/**
 * Bind-mounts `source` (recursively) onto `target`, which must exist and is never followed if it is a link.
 * Both are opened O_PATH first, so what was checked is what gets mounted. Throws BindRefused when either is a
 * symlink that may not be followed (O_PATH | O_NOFOLLOW opens the link itself), the addon's errno error otherwise.
 */
export function bindMount(source: string, target: string, o: BindOptions = {}, native: Pick<NativeAddon, 'bindMount'> = loadNative()): void {
  const src = openSync(source, O_PATH | (o.followSource ? 0 : constants.O_NOFOLLOW));
  try {
    if (fstatSync(src).isSymbolicLink()) throw new BindRefused(`${source} is a symbolic link`);
    const dst = openSync(target, O_PATH | constants.O_NOFOLLOW);
    try {
      if (fstatSync(dst).isSymbolicLink()) throw new BindRefused(`the mount point ${target} is a symbolic link`);
      native.bindMount(src, dst, true, o.readOnly === true);
    } finally {
      closeSync(dst);
    }
  } finally {
    closeSync(src);
  }
}

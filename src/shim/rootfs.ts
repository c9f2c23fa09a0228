// A task's root filesystem as containerd's snapshotter describes it (CreateTaskRequest.rootfs: overlay or bind
// mounts), mounted onto <bundle>/rootfs as containerd's runc shim does (mount.All), here with mount(8). The
// long-lived shim runs in a mount namespace of its own (start.ts: `unshare --mount --propagation private`), so
// these mounts are private to it and vanish when it dies. The sandbox then shares <bundle>/rootfs with the
// guest (virtio-fs, or a disk image copy with shared_fs = "none").

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { mountsBeneath } from '../host/mounts.js';
import { ShimError } from './errors.js';

export interface MountSpec {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

function run(argv: string[]): void {
  try {
    execFileSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 60_000 });
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr?.trim();
    throw new Error(stderr || (e as Error).message);
  }
}

/** Mounts `mounts` in order onto <bundle>/rootfs; on failure unmounts what it mounted. Returns the mount point. */
export function mountRootfs(bundle: string, mounts: readonly MountSpec[]): string {
  const target = join(bundle, 'rootfs');
  try {
    for (const m of mounts) {
      if (m.target) throw new ShimError('INVALID_ARGUMENT', `rootfs mount with a target (${m.target}) is not supported`);
      const bind = m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind');
      const argv = ['mount'];
      if (!bind && m.type) argv.push('-t', m.type);
      if (m.options.length) argv.push('-o', m.options.join(','));
      argv.push(m.source, target);
      run(argv);
    }
  } catch (e) {
    unmountRootfs(bundle);
    if (e instanceof ShimError) throw e;
    throw new ShimError('INTERNAL', `mounting the rootfs of ${bundle} failed: ${(e as Error).message}`);
  }
  return target;
}

/** Unmounts everything at or beneath <bundle>/rootfs (deepest first, lazily); returns what is still mounted. */
export function unmountRootfs(bundle: string): string[] {
  const target = join(bundle, 'rootfs');
  for (const mp of mountsBeneath(target)) {
    try {
      run(['umount', '-l', mp]);
    } catch {
      // reported through what is left
    }
  }
  return mountsBeneath(target);
}

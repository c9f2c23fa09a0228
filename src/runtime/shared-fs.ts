// The sandbox's virtio-fs share (shared_fs = "virtio-fs", Kata's layout): one directory per sandbox,
// <sandbox dir>/shared, exported to the guest under the tag SHARE_TAG; the agent mounts it at GUEST_SHARED when
// the sandbox is created. Each container gets <shared>/<cid>/ with
//   rootfs/         a bind mount of the bundle's rootfs (read-only when root.readonly asks for it)
//   mounts/<i>      a bind mount of the host path of config.json's mounts[i], for each bind mount there
// and its spec is rewritten to name the guest side of those paths. Writes in the container land in the bundle.
//
// The bind mounts exist only in the sandbox process's private mount namespace (api.ts starts it under
// `unshare --mount --propagation private`; open() refuses to share from the host's namespace), so a crashed
// sandbox leaves none behind. Nothing here is ever removed recursively while a mount is beneath it: the user's
// rootfs is on the other side.

import { chmodSync, closeSync, lstatSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bindMount, privateMountNamespace, unmountBeneath, type BindOptions } from '../host/mounts.js';
import { isValidId } from './container-id.js';
import { RuntimeError } from './errors.js';
import { makePrivateDir, makePrivateDirs, openPrivate } from './private-files.js';

/** virtio-fs tag of the sandbox share (Kata's) */
export const SHARE_TAG = 'kataShared';
/** where the agent mounts the share in the guest */
export const GUEST_SHARED = '/run/kata-ts/shared';

/** The mount operations a SharedFs uses (src/host/mounts.ts; a test may pass its own). */
export interface MountOps {
  bind(source: string, target: string, o: BindOptions): void;
  /** detaches every mount at or beneath dir; returns those still there */
  unmountBeneath(dir: string): string[];
}

const HOST_MOUNTS: MountOps = { bind: (s, t, o) => bindMount(s, t, o), unmountBeneath: (d) => unmountBeneath(d) };

interface SpecMount {
  destination?: unknown;
  type?: unknown;
  source?: unknown;
  options?: unknown;
}

/** What the guest sees of one shared container. */
export interface SharedContainer {
  /** the guest path of the rootfs (CreateContainer's rootfs) */
  rootfs: string;
  /** the spec with bind mount sources rewritten to guest paths */
  spec: Record<string, unknown>;
}

/**
 * The share's own directories are 0711: the guest sees their modes, and a user-namespaced container's mapped
 * root must pass them to reach its rootfs. Nobody else on the host reaches them (the sandbox dir is 0700).
 */
function traversable(dir: string): void {
  chmodSync(dir, 0o711);
}

function isBindMount(m: SpecMount): boolean {
  const opts = Array.isArray(m.options) ? m.options : [];
  return m.type === 'bind' || opts.includes('bind') || opts.includes('rbind');
}

export class SharedFs {
  private constructor(
    readonly hostDir: string,
    private readonly ops: MountOps,
  ) {}

  /**
   * Makes <hostDir> (0700). Refuses to work in the mount namespace of the process that launched this one
   * (`launcherNs`, host/mounts.ts mountNamespace()) unless `ops` is given (a test with its own mount operations).
   */
  static open(hostDir: string, launcherNs: string | undefined, ops?: MountOps): SharedFs {
    if (!ops && !privateMountNamespace(launcherNs)) {
      throw new RuntimeError('INTERNAL', 'shared_fs = "virtio-fs" needs the sandbox process in a private mount namespace (it is started under `unshare --mount`): set shared_fs = "none" to share rootfs as disk images');
    }
    makePrivateDirs(hostDir);
    traversable(hostDir);
    return new SharedFs(hostDir, ops ?? HOST_MOUNTS);
  }

  private containerDir(cid: string): string {
    // ids are checked by every caller (container-id.ts); a path must still never leave hostDir
    if (!isValidId(cid)) throw new RuntimeError('INVALID', `cannot share container ${JSON.stringify(cid.slice(0, 64))}: not a valid id`);
    return join(this.hostDir, cid);
  }

  /**
   * Shares a container's rootfs and the host paths of its bind mounts, and returns what the guest sees. On
   * failure nothing of the container stays shared.
   */
  shareContainer(cid: string, rootfs: string, spec: Record<string, unknown>): SharedContainer {
    const dir = this.containerDir(cid);
    makePrivateDir(dir, true);
    traversable(dir);
    try {
      const root = spec['root'] as { readonly?: unknown } | undefined;
      makePrivateDir(join(dir, 'rootfs'));
      // the rootfs is never a link (bundle.ts refuses one; O_NOFOLLOW here closes the race)
      this.ops.bind(rootfs, join(dir, 'rootfs'), { followSource: false, readOnly: root?.readonly === true });
      const out = { ...spec };
      if (Array.isArray(spec['mounts'])) out['mounts'] = (spec['mounts'] as SpecMount[]).map((m, i) => this.shareMount(cid, dir, m, i));
      return { rootfs: `${GUEST_SHARED}/${cid}/rootfs`, spec: out };
    } catch (e) {
      this.unshareContainer(cid);
      throw e;
    }
  }

  /** One entry of config.json's mounts: bind mounts of host paths are shared and renamed, others pass as they are. */
  private shareMount(cid: string, dir: string, m: SpecMount, i: number): SpecMount {
    if (typeof m !== 'object' || m === null || !isBindMount(m)) return m;
    if (m.destination === '/dev/shm') {
      // host shared memory cannot cross into a VM: the container gets the guest's own (as Kata does)
      return { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] };
    }
    const source = m.source;
    if (typeof source !== 'string' || !source.startsWith('/')) {
      throw new RuntimeError('INVALID', `config.json mounts[${i}] (bind to ${String(m.destination)}) needs an absolute host source path`);
    }
    let isDir: boolean;
    try {
      isDir = statSync(source).isDirectory(); // a bind mount follows links at its source, as runc's does
    } catch (e) {
      throw new RuntimeError('INVALID', `config.json mounts[${i}]: the host path ${source} cannot be shared (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): create it or remove the mount`);
    }
    if (makePrivateDir(join(dir, 'mounts'))) traversable(join(dir, 'mounts'));
    const target = join(dir, 'mounts', String(i));
    if (isDir) makePrivateDir(target);
    else closeSync(openPrivate(target, 'w'));
    const opts = Array.isArray(m.options) ? (m.options as unknown[]) : [];
    try {
      this.ops.bind(source, target, { followSource: true, readOnly: opts.includes('ro') });
    } catch (e) {
      throw new RuntimeError('INVALID', `config.json mounts[${i}]: cannot share the host path ${source}: ${(e as Error).message}`);
    }
    return { ...m, source: `${GUEST_SHARED}/${cid}/mounts/${i}` };
  }

  /** Unmounts a container's shares and removes its directory; RuntimeError if a mount would not go. */
  unshareContainer(cid: string): void {
    this.removeTree(this.containerDir(cid));
  }

  /** Unmounts everything shared and removes hostDir (the sandbox is going). */
  close(): void {
    this.removeTree(this.hostDir);
  }

  private removeTree(dir: string): void {
    try {
      lstatSync(dir);
    } catch {
      return; // never made
    }
    const left = this.ops.unmountBeneath(dir);
    if (left.length > 0) {
      // never rm -r through a mount: the user's files are on the other side
      throw new RuntimeError('INTERNAL', `cannot unshare ${dir}: still mounted at ${left.join(', ')}; it stays until the sandbox process exits`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

// Host cgroups for config.json's linux.cgroupsPath (cgroupfs driver, as runc without --systemd-cgroup): the
// sandbox's host processes (the sandbox process, the VMM, its helpers) join that cgroup in every mounted
// hierarchy (cgroup v1 controllers, named v1 hierarchies and the v2 tree), so tools reading the container's
// cgroup (containerd's runc shim for `ctr task metrics`, podman stats) see what the sandbox uses. An absolute
// path is beneath each hierarchy's root; a relative one beneath this process's own cgroup there (runc's rule).

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** A cgroupsPath this host cannot use. */
export class CgroupPathRefused extends Error {
  override readonly name = 'CgroupPathRefused';
}

interface Hierarchy {
  /** mount point */
  dir: string;
  /** the /proc/self/cgroup controller field it matches: 'cpu,cpuacct', 'name=systemd', '' for v2 */
  key: string;
}

/** Mounted cgroup hierarchies, one per hierarchy (a second mount of one is skipped). */
export function hierarchies(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): Hierarchy[] {
  const out: Hierarchy[] = [];
  const seen = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const [fstype, , superOpts = ''] = line.slice(sep + 3).split(' ');
    const dir = pre[4];
    if (dir === undefined || pre[3] !== '/') continue; // only hierarchies mounted at their root
    let key: string;
    if (fstype === 'cgroup2') key = '';
    else if (fstype === 'cgroup') key = superOpts.split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('xattr') && o !== 'clone_children' && !o.startsWith('release_agent')).sort().join(',');
    else continue;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ dir, key });
  }
  return out;
}

/** This process's cgroup in each hierarchy, by /proc/self/cgroup's controller field. */
function ownCgroups(text = readFileSync('/proc/self/cgroup', 'utf8')): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    m.set(line.slice(a + 1, b).split(',').sort().join(','), line.slice(b + 1));
  }
  return m;
}

/** cgroupsPath checked: no '..' component, not the systemd slice:prefix:name form, not empty. */
export function checkCgroupsPath(p: string): void {
  if (p === '' || p === '/') throw new CgroupPathRefused(`linux.cgroupsPath ${JSON.stringify(p)} names no cgroup of its own`);
  if (p.split('/').includes('..')) throw new CgroupPathRefused(`linux.cgroupsPath ${JSON.stringify(p)} must not contain '..'`);
  if (p.includes(':')) throw new CgroupPathRefused(`linux.cgroupsPath ${JSON.stringify(p)} is in the systemd form (slice:prefix:name), which kata-ts does not drive: use a cgroupfs path such as /kata-ts/<id>`);
}

/** The directory of cgroupsPath in each hierarchy. */
export function cgroupDirs(p: string, hs = hierarchies(), own = ownCgroups()): string[] {
  checkCgroupsPath(p);
  return hs.map((h) => join(h.dir, p.startsWith('/') ? p : join(own.get(h.key) ?? '/', p)));
}

/** Creates cgroupsPath in every hierarchy and moves `pid` into it; returns the directories (for removeCgroups). */
export function joinCgroups(p: string, pid = process.pid): string[] {
  const hs = hierarchies();
  const dirs = cgroupDirs(p, hs);
  for (const [i, d] of dirs.entries()) {
    mkdirSync(d, { recursive: true });
    fillCpuset(hs[i]!.dir, d);
    writeFileSync(join(d, 'cgroup.procs'), String(pid));
  }
  return dirs;
}

/**
 * cgroup v1 cpuset: a new cgroup starts with empty cpuset.cpus and cpuset.mems, and joining it fails (ENOSPC)
 * until they are set; copy them down from the parent at each level below the hierarchy's root, as runc does.
 */
function fillCpuset(root: string, leaf: string): void {
  const levels: string[] = [];
  for (let d = leaf; d.length > root.length; d = dirname(d)) levels.unshift(d);
  for (const d of levels) {
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      const file = join(d, f);
      if (!existsSync(file) || readFileSync(file, 'utf8').trim() !== '') continue;
      writeFileSync(file, readFileSync(join(dirname(d), f), 'utf8').trim());
    }
  }
}

/**
 * Removes the cgroup directories `dirs` (each must lie beneath a mounted hierarchy): first moves `pid` (when
 * given: the caller itself) up to each parent, then rmdir. A cgroup that still has members stays. Returns the
 * directories that could not be removed.
 */
export function removeCgroups(dirs: readonly string[], pid?: number, hs = hierarchies()): string[] {
  const left: string[] = [];
  for (const d of dirs) {
    const h = hs.find((x) => d.startsWith(`${x.dir}/`));
    if (!h || d.split('/').includes('..')) {
      left.push(d);
      continue;
    }
    try {
      if (pid !== undefined && existsSync(join(dirname(d), 'cgroup.procs'))) writeFileSync(join(dirname(d), 'cgroup.procs'), String(pid));
      rmdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') left.push(d);
    }
  }
  return left;
}

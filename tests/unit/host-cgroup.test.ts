// Host cgroups of linux.cgroupsPath (src/host/cgroup.ts): which hierarchies are mounted, where a path lands in
// each (absolute beneath the root, relative beneath this process's own cgroup), and the paths refused.

import t from 'tap';
import { cgroupDirs, checkCgroupsPath, CgroupPathRefused, hierarchies, removeCgroups } from '../../src/host/cgroup.js';

const MOUNTINFO = [
  '30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
  '34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '35 30 0:31 / /mnt/memory-again rw,relatime - cgroup cgroup rw,memory',
  '36 30 0:32 /sub /mnt/not-at-root rw - cgroup cgroup rw,pids',
  '39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd',
  '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');

t.test('hierarchies: one per hierarchy, mounted at its root, keyed as /proc/self/cgroup names it', async (t) => {
  t.same(hierarchies(MOUNTINFO), [
    { dir: '/sys/fs/cgroup/cpu,cpuacct', key: 'cpu,cpuacct' },
    { dir: '/sys/fs/cgroup/memory', key: 'memory' },
    { dir: '/sys/fs/cgroup/systemd', key: 'name=systemd' },
    { dir: '/sys/fs/cgroup/unified', key: '' },
  ]);
});

t.test('where a path lands', async (t) => {
  const hs = hierarchies(MOUNTINFO);
  const own = new Map([
    ['cpu,cpuacct', '/'],
    ['memory', '/jail/7'],
    ['name=systemd', '/'],
    ['', '/user.slice'],
  ]);
  t.same(cgroupDirs('/kata/c1', hs, own), ['/sys/fs/cgroup/cpu,cpuacct/kata/c1', '/sys/fs/cgroup/memory/kata/c1', '/sys/fs/cgroup/systemd/kata/c1', '/sys/fs/cgroup/unified/kata/c1'], 'absolute: beneath each root');
  t.same(cgroupDirs('kata/c1', hs, own), ['/sys/fs/cgroup/cpu,cpuacct/kata/c1', '/sys/fs/cgroup/memory/jail/7/kata/c1', '/sys/fs/cgroup/systemd/kata/c1', '/sys/fs/cgroup/unified/user.slice/kata/c1'], "relative: beneath this process's cgroup");
});

t.test('refused paths', async (t) => {
  for (const p of ['', '/', '/a/../../b', '../x', 'system.slice:kata:c1']) t.throws(() => checkCgroupsPath(p), CgroupPathRefused, JSON.stringify(p));
  t.doesNotThrow(() => checkCgroupsPath('/default/c1'));
  t.same(removeCgroups(['/etc/passwd', '/sys/fs/cgroup/memory/../../etc'], undefined, hierarchies(MOUNTINFO)), ['/etc/passwd', '/sys/fs/cgroup/memory/../../etc'], 'remove touches nothing outside a hierarchy');
});

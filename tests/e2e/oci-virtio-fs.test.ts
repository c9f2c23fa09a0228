// End to end: container rootfs and host bind mounts shared over virtio-fs (shared_fs = "virtio-fs", the default),
// against runc on the same bundles: what the container writes lands in the bundle's rootfs and in the bind-mounted
// host directory, a read-only bind stays read-only, more containers join one sandbox than the old disk slots
// allowed, and shared_fs = "none" still copies the rootfs into a disk image.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { chooseHypervisor, detectHost } from '../../src/hypervisor/factory.js';
import { RUNTIMES, cli, e2eSkipReason, pidsMentioning, waitStatus, workdir, type Runtime } from '../helpers/oci-harness.js';

const skip = e2eSkipReason();
const TIMEOUT = 300_000;
const ANNOTATION = 'io.kubernetes.cri.sandbox-id';

t.test('run: the rootfs and host bind mounts are the host files themselves (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const res: Record<Runtime, unknown> = { kata: undefined, runc: undefined };
  for (const rt of RUNTIMES) {
    const data = join(w.dir, `data-${rt}`);
    mkdirSync(data);
    writeFileSync(join(data, 'in.txt'), 'from the host\n');
    const roFile = join(w.dir, `motd-${rt}`);
    writeFileSync(roFile, 'read-only host file\n');
    const script = [
      'echo written-in-container > /written.txt',
      'cat /data/in.txt',
      'echo back-to-host > /data/out.txt',
      'cat /etc/motd',
      'if echo x > /etc/motd 2>/dev/null; then echo motd-writable; else echo motd-read-only; fi',
      'exit 7',
    ].join('; ');
    const bundle = w.bundle(`b-${rt}`, ['sh', '-c', script], (s) => {
      const mounts = s['mounts'] as unknown[];
      mounts.push({ destination: '/data', type: 'bind', source: data, options: ['rbind', 'rw'] });
      mounts.push({ destination: '/etc/motd', type: 'bind', source: roFile, options: ['bind', 'ro'] });
    });
    const r = await cli(w, rt, ['run', '--bundle', bundle, `vfs-${rt}`]);
    t.equal(r.code, 7, `${rt} run exits 7: ${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    t.same(lines, ['from the host', 'read-only host file', 'motd-read-only'], `${rt}: the container reads the host files; the ro bind refuses writes`);
    t.equal(readFileSync(join(bundle, 'rootfs', 'written.txt'), 'utf8'), 'written-in-container\n', `${rt}: the container's write is in the bundle's rootfs`);
    t.equal(readFileSync(join(data, 'out.txt'), 'utf8'), 'back-to-host\n', `${rt}: the write to the bind mount is in the host directory`);
    t.equal(readFileSync(roFile, 'utf8'), 'read-only host file\n', `${rt}: the read-only host file is unchanged`);
    t.ok(existsSync(join(bundle, 'rootfs', 'bin', 'busybox')), `${rt}: the bundle's rootfs is intact after the container is gone`);
    t.same(w.leftovers(rt), [], `${rt}: nothing left under --root`);
    res[rt] = [r.code, lines];
  }
  t.same(res.kata, res.runc, 'kata-ts and runc agree');
  t.same(pidsMentioning(w.roots.kata), [], 'no process left behind');
});

t.test('the root file system in the guest is the virtio-fs share', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const bundle = w.bundle('b', ['sh', '-c', "awk '$2 == \"/\" { print $1, $3 }' /proc/mounts; cat /proc/cmdline"]);
  const r = await cli(w, 'kata', ['run', '--bundle', bundle, 'vfs-root']);
  t.equal(r.code, 0, `run: ${r.stderr}`);
  const [root, cmdline = ''] = r.stdout.trim().split('\n');
  t.equal(root, 'kataShared virtiofs', 'the container root is the kataShared virtiofs mount');
  // Under TCG the guest must zero the pages it allocates, or QEMU may run stale translations of code that
  // once lived in a page the virtio-fs backend (another process) has since filled (qemuCmdline()).
  // the harness leaves the hypervisor at 'auto': what it picks on this host (in-process on hardware KVM)
  const plan = chooseHypervisor('auto', detectHost());
  const tcg = plan.kind === 'qemu' && plan.accel === 'tcg';
  t.equal(/(^| )init_on_alloc=1( |$)/.test(cmdline), tcg, `init_on_alloc=1 is on the guest command line iff QEMU runs TCG (${tcg ? 'tcg' : 'not tcg'}): ${cmdline}`);
});

t.test('six containers in one sandbox (more than the disk slots allowed)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const pod = 'pod';
  const ids = [pod, 'c1', 'c2', 'c3', 'c4', 'c5'];
  for (const id of ids) {
    const b = w.bundle(`b-${id}`, ['sh', '-c', `echo ${id} > /whoami; exec sleep 1000`], (s) => {
      s['annotations'] = { [ANNOTATION]: pod, 'io.kubernetes.cri.container-type': id === pod ? 'sandbox' : 'container' };
    });
    const c = await cli(w, 'kata', ['create', '--bundle', b, id], { stdout: 'ignore', stderr: 'ignore' });
    t.equal(c.code, 0, `create ${id}`);
    t.equal((await cli(w, 'kata', ['start', id])).code, 0, `start ${id}`);
  }
  for (const id of ids) {
    t.equal(await waitStatus(w, 'kata', id, 'running'), 'running', `${id} running`);
    const e = await cli(w, 'kata', ['exec', id, 'cat', '/whoami']);
    t.equal(e.stdout.trim(), id, `${id} sees its own rootfs`);
  }
  const sandboxes = pidsMentioning(w.roots.kata).filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('sandbox-main'));
  t.equal(sandboxes.length, 1, 'one sandbox process for all six');
  for (const id of [...ids].reverse()) t.equal((await cli(w, 'kata', ['delete', '--force', id])).code, 0, `delete --force ${id}`);
  t.same(w.leftovers('kata'), [], 'nothing left under --root');
  for (const id of ids) t.equal(readFileSync(join(w.dir, `b-${id}`, 'rootfs', 'whoami'), 'utf8'), `${id}\n`, `${id}'s write is in its bundle`);
});

t.test('shared_fs = "none": the rootfs is a copy on a disk image', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  const config = join(w.dir, 'configuration.toml');
  writeFileSync(config, '[hypervisor.qemu]\nshared_fs = "none"\n[hypervisor.inproc]\nshared_fs = "none"\n');
  const bundle = w.bundle('b', ['sh', '-c', "echo copy > /written.txt; awk '$2 == \"/\" { print $3 }' /proc/mounts"]);
  const r = await cli(w, 'kata', ['run', '--bundle', bundle, 'vfs-none'], { env: { ...process.env, KATA_TS_CONFIG: config } });
  t.equal(r.code, 0, `run: ${r.stderr}`);
  t.equal(r.stdout.trim(), 'ext4', 'the container root is the ext4 disk image');
  t.notOk(existsSync(join(bundle, 'rootfs', 'written.txt')), 'the write stayed in the copy');
  t.same(w.leftovers('kata'), [], 'nothing left under --root');
});

t.test('a container with a user namespace reaches its shared rootfs (kata-ts and runc)', { skip, timeout: TIMEOUT }, async (t) => {
  const w = workdir(t);
  chmodSync(w.dir, 0o711); // runc's mapped root must pass the bundle's parents on the host too
  const res: Record<Runtime, unknown> = { kata: undefined, runc: undefined };
  for (const rt of RUNTIMES) {
    const bundle = w.bundle(`u-${rt}`, ['sh', '-c', 'id -u; cat /proc/self/uid_map; echo ok > /tmp/in-userns && cat /tmp/in-userns'], (s) => {
      const linux = s['linux'] as Record<string, unknown>;
      (linux['namespaces'] as unknown[]).push({ type: 'user' });
      linux['uidMappings'] = [{ containerID: 0, hostID: 100000, size: 65536 }];
      linux['gidMappings'] = [{ containerID: 0, hostID: 100000, size: 65536 }];
    });
    // the mapped root owns the rootfs, as a user-namespaced container's files are owned
    const chown = spawnSync('chown', ['-R', '100000:100000', join(bundle, 'rootfs')]);
    t.equal(chown.status, 0, 'chown the rootfs to the mapped root');
    const r = await cli(w, rt, ['run', '--bundle', bundle, `userns-${rt}`]);
    t.equal(r.code, 0, `${rt} run: ${r.stderr}`);
    const out = r.stdout.replace(/[ \t]+/g, ' ').trim();
    t.equal(out, '0\n 0 100000 65536\nok'.replace(/[ \t]+/g, ' '), `${rt}: root inside, mapped to 100000 outside, and it writes its rootfs`);
    res[rt] = [r.code, out];
  }
  t.same(res.kata, res.runc, 'kata-ts and runc agree');
});

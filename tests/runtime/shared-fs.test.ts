// The virtio-fs share's host side (src/runtime/shared-fs.ts, src/host/mounts.ts): real bind mounts, made in a
// private mount namespace by a child process (tests/support/runtime/shared-fs-child.ts), and the logic that
// must never remove a directory while a mount is beneath it (checked with mount operations that fail).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { mountNamespace, mountsBeneath, privateMountNamespace } from '../../src/host/mounts.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { SharedFs, type MountOps } from '../../src/runtime/shared-fs.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, '..', 'support', 'runtime', 'shared-fs-child.js');

function tempDir(t: Test): string {
  const d = mkdtempSync(join(tmpdir(), 'kata-ts-share-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

t.test('mountinfo parsing: mounts at or beneath a directory, deepest first, escapes undone', async (t) => {
  const info = [
    '22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw',
    '30 22 0:30 / /run/x/shared/c1/rootfs rw - ext4 /dev/vda rw',
    '31 30 0:31 / /run/x/shared/c1/rootfs/proc rw - proc proc rw',
    '32 22 0:32 / /run/x/shared/c1/mounts/0 rw - ext4 /dev/vda rw',
    '33 22 0:33 / /run/x/shared-other rw - ext4 /dev/vda rw',
    '34 22 0:34 / /run/x/shared/my\\040dir rw - ext4 /dev/vda rw',
    '35 22 0:35 / /run/x/shared rw - tmpfs tmpfs rw',
  ].join('\n');
  t.same(mountsBeneath('/run/x/shared', info), ['/run/x/shared/c1/mounts/0', '/run/x/shared/c1/rootfs/proc', '/run/x/shared/c1/rootfs', '/run/x/shared/my dir', '/run/x/shared']);
  t.same(mountsBeneath('/run/x/shared/', info).length, 5, 'a trailing slash names the same directory');
  t.same(mountsBeneath('/elsewhere', info), []);
});

t.test("SharedFs refuses the launcher's own mount namespace", async (t) => {
  const d = tempDir(t);
  t.notOk(privateMountNamespace(mountNamespace()), 'the same namespace is not private');
  t.notOk(privateMountNamespace(undefined), 'an unknown launcher namespace is not private');
  t.throws(() => SharedFs.open(join(d, 'shared'), mountNamespace()), { name: 'RuntimeError', message: /private mount namespace.*shared_fs = "none"/ });
  t.notOk(existsSync(join(d, 'shared')), 'nothing made');
});

t.test('a mount that will not go: nothing is removed beneath it', async (t) => {
  const d = tempDir(t);
  const rootfs = join(d, 'rootfs');
  mkdirSync(rootfs);
  writeFileSync(join(rootfs, 'precious'), 'x');
  const binds: string[] = [];
  const stuck: MountOps = {
    bind: (s, target) => binds.push(`${s} -> ${target}`),
    unmountBeneath: (dir) => [join(dir, 'rootfs')],
  };
  const shared = SharedFs.open(join(d, 'shared'), undefined, stuck);
  const r = shared.shareContainer('c1', rootfs, { mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }] });
  t.equal(r.rootfs, '/run/kata-ts/shared/c1/rootfs');
  t.same(r.spec['mounts'], [{ destination: '/proc', type: 'proc', source: 'proc' }], 'a non-bind mount passes unchanged');
  t.same(binds, [`${rootfs} -> ${join(d, 'shared', 'c1', 'rootfs')}`]);
  t.throws(() => shared.unshareContainer('c1'), RuntimeError, 'unshare reports the mount left');
  t.ok(existsSync(join(d, 'shared', 'c1', 'rootfs')), 'the directory with the mount stays');
  t.throws(() => shared.close(), { message: /still mounted/ });
  t.ok(existsSync(join(d, 'shared')), 'the share stays');
  t.ok(existsSync(join(rootfs, 'precious')));
});

t.test('real bind mounts in a private mount namespace', { skip: process.getuid?.() !== 0 ? 'needs root (mount(2))' : false }, async (t) => {
  const d = tempDir(t);
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, CHILD, d, mountNamespace()], { encoding: 'utf8' });
  t.equal(r.status, 0, `child: ${r.stderr}`);
  const rep = JSON.parse(r.stdout) as Record<string, unknown>;
  const share = rep['share'] as { ok: { rootfs: string; spec: { mounts: { source: string; destination: string; type: string }[] } } };
  t.equal(share.ok.rootfs, '/run/kata-ts/shared/c1/rootfs', 'the guest path of the rootfs');
  const m = share.ok.spec.mounts;
  t.same(m[0], { destination: '/proc', type: 'proc', source: 'proc' }, 'proc passes through');
  t.equal(m[1]!.source, '/run/kata-ts/shared/c1/mounts/1', 'the bind source is renamed to its guest path');
  t.same(m[2], { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] }, '/dev/shm becomes the guest tmpfs');
  t.equal(rep['throughShare'], 'bundle\n', 'the share shows the bundle rootfs');
  t.equal(rep['writeLandsInBundle'], 'via share\n', 'a write through the share lands in the bundle');
  t.match(rep['writeReadOnlyBind'], { code: 'EROFS' }, "a bind with 'ro' is read-only on the host side too");
  t.equal(rep['mountsWhileShared'], 2, 'two mounts: rootfs and /data');
  t.match(rep['shareSymlinkRootfs'], { error: /symbolic link/ }, 'a symlinked rootfs is refused');
  t.equal(rep['c2Left'], false, 'and leaves nothing');
  t.match(rep['shareMissingBindSource'], { code: 'INVALID', error: /mounts\[0\].*nope.*ENOENT/ }, 'a missing bind source is a clear error');
  t.equal(rep['c3Left'], false, 'and leaves nothing (its rootfs bind undone)');
  t.match(rep['shareBadId'], { code: 'INVALID' }, 'an id that is no id is refused');
  t.match(rep['shareTwice'], { code: 'EEXIST' }, 'sharing a container twice is refused');
  t.same(rep['unshare'], { ok: true });
  t.equal(rep['mountsAfterUnshare'], 0, 'unshare leaves no mount');
  t.equal(rep['bundleIntact'], 'bundle\n', 'the bundle survives unshare');
  t.equal(rep['hostDataIntact'], 'data\n', 'the bind-mounted host directory survives unshare');
  t.same(rep['reshareAndClose'], { ok: 2 });
  t.equal(rep['shareGone'], true, 'close removes the share');
  t.equal(rep['mountsAfterClose'], 0);
  t.equal(rep['bundleIntactAfterClose'], true, 'the bundle and host data survive close');
  t.equal(readFileSync(join(d, 'bundle', 'rootfs', 'etc', 'written'), 'utf8'), 'via share\n', 'the host namespace sees the write');
  t.same(mountsBeneath(d), [], 'the host namespace never saw a mount');
});

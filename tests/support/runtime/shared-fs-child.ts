// Runs SharedFs with real bind mounts inside a private mount namespace: tests/runtime/shared-fs.test.ts starts it
// as `unshare --mount --propagation private node shared-fs-child.js DIR LAUNCHER_NS` and checks the JSON report
// it prints (what the share showed, what was refused, what was left). The host's namespace never sees a mount.

import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountsBeneath } from '../../../src/host/mounts.js';
import { SharedFs } from '../../../src/runtime/shared-fs.js';

const [dir, launcherNs] = process.argv.slice(2) as [string, string];
const report: Record<string, unknown> = {};
const attempt = (name: string, f: () => unknown): void => {
  try {
    report[name] = { ok: f() ?? true };
  } catch (e) {
    report[name] = { error: (e as Error).message, code: (e as { code?: string }).code };
  }
};

const rootfs = join(dir, 'bundle', 'rootfs');
mkdirSync(join(rootfs, 'etc'), { recursive: true });
writeFileSync(join(rootfs, 'etc', 'hostname'), 'bundle\n');
const hostData = join(dir, 'data');
mkdirSync(hostData);
writeFileSync(join(hostData, 'f'), 'data\n');
symlinkSync(rootfs, join(dir, 'link-rootfs'));

const share = join(dir, 'sandbox', 'shared');
const shared = SharedFs.open(share, launcherNs);
attempt('share', () => {
  const spec = {
    root: { path: 'rootfs' },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/data', type: 'bind', source: hostData, options: ['rbind', 'ro'] },
      { destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind'] },
    ],
  };
  return shared.shareContainer('c1', rootfs, spec);
});
report['throughShare'] = readFileSync(join(share, 'c1', 'rootfs', 'etc', 'hostname'), 'utf8');
writeFileSync(join(share, 'c1', 'rootfs', 'etc', 'written'), 'via share\n');
report['writeLandsInBundle'] = readFileSync(join(rootfs, 'etc', 'written'), 'utf8');
attempt('writeReadOnlyBind', () => writeFileSync(join(share, 'c1', 'mounts', '1', 'g'), 'x'));
report['mountsWhileShared'] = mountsBeneath(share).length;
attempt('shareSymlinkRootfs', () => shared.shareContainer('c2', join(dir, 'link-rootfs'), {}));
report['c2Left'] = existsSync(join(share, 'c2'));
attempt('shareMissingBindSource', () => shared.shareContainer('c3', rootfs, { mounts: [{ destination: '/x', type: 'bind', source: join(dir, 'nope'), options: ['bind'] }] }));
report['c3Left'] = existsSync(join(share, 'c3'));
attempt('shareBadId', () => shared.shareContainer('../evil', rootfs, {}));
attempt('shareTwice', () => shared.shareContainer('c1', rootfs, {}));
attempt('unshare', () => shared.unshareContainer('c1'));
report['mountsAfterUnshare'] = mountsBeneath(share).length;
report['bundleIntact'] = readFileSync(join(rootfs, 'etc', 'hostname'), 'utf8');
report['hostDataIntact'] = readFileSync(join(hostData, 'f'), 'utf8');
attempt('reshareAndClose', () => {
  shared.shareContainer('c4', rootfs, { mounts: [{ destination: '/data', type: 'bind', source: hostData, options: ['bind'] }] });
  const n = mountsBeneath(share).length;
  shared.close();
  return n;
});
report['shareGone'] = !existsSync(share);
report['mountsAfterClose'] = mountsBeneath(share).length;
report['bundleIntactAfterClose'] = existsSync(join(rootfs, 'etc', 'hostname')) && existsSync(join(hostData, 'f'));
process.stdout.write(JSON.stringify(report));

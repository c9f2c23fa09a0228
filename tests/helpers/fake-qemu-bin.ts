// Installs the fake QEMU (fake-qemu.ts, run by node) as an executable `qemu-system-x86_64` in a directory,
// for tests that hand the qemu backend a binary path.

import { chmodSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const fakeJs = join(dirname(fileURLToPath(import.meta.url)), 'fake-qemu.js');

/** Write `<dir>/qemu-system-x86_64` (a shell wrapper that execs the fake); returns its path. */
export function installFakeQemu(dir: string): string {
  const bin = join(dir, 'qemu-system-x86_64');
  writeFileSync(bin, `#!/bin/sh\nexec "${process.execPath}" "${fakeJs}" "$@"\n`);
  chmodSync(bin, 0o755);
  return bin;
}

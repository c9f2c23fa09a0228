// The cached guest artifacts (kernels, images) the tests and benchmarks boot. Each is built by its npm
// script the first time (cached outside the repo, keyed by the hash of its inputs, with progress on
// stderr) and found in the cache afterwards; the script prints the artifact's path as its last line.

import { execFileSync } from 'node:child_process';
import { packageRoot } from '../../src/host/package-root.js';

export type GuestArtifact = 'guest:kernel' | 'guest:kernel:smoke' | 'guest:initrd' | 'guest:initrd:test' | 'guest:initrd:devtest' | 'guest:initrd:fsbench';

const built = new Map<GuestArtifact, string>();

/** The artifact's path, building it first if the cache does not hold it. */
export function guestArtifact(script: GuestArtifact, root = packageRoot()): string {
  const known = built.get(script);
  if (known !== undefined) return known;
  const out = execFileSync('npm', ['run', '--silent', script], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const path = out.trim().split('\n').pop();
  if (path === undefined || path === '') throw new Error(`npm run ${script} printed no artifact path`);
  built.set(script, path);
  return path;
}

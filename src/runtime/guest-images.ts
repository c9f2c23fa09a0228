// The guest kernel and agent initrd a sandbox boots: the configured paths, or (empty in configuration.toml) the
// cached builds of kernel-config/build.sh and guest/build-agent-initrd.sh, which build them if missing. The CLI's
// sandbox process (api.ts) and the containerd shim (src/shim/settings.ts) both resolve them here.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ArtifactMemo } from './artifact-memo.js';
import type { HypervisorSection } from './config.js';
import { RuntimeError } from './errors.js';

const execFileP = promisify(execFile);
const PKG_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Last stdout line of a cached guest build script (kernel-config/build.sh full, guest/build-agent-initrd.sh). */
async function artifact(script: string[], what: string, hint: string, signal: AbortSignal | undefined): Promise<string> {
  // nothing the script reads has changed since it last resolved: skip its input hashing (artifact-memo.ts)
  const memo = new ArtifactMemo(PKG_ROOT, script);
  const known = memo.lookup();
  if (known !== undefined) return known;
  const fingerprint = memo.fingerprint();
  let out: string;
  try {
    out = (await execFileP('bash', script, { cwd: PKG_ROOT, encoding: 'utf8', timeout: 3_600_000, maxBuffer: 64 * 1024 * 1024, ...(signal ? { signal } : {}) })).stdout;
  } catch (e) {
    if (signal?.aborted) throw e; // the caller reports the interruption
    throw new RuntimeError('INVALID', `no guest ${what}: ${script.join(' ')} failed (${(e as Error).message.split('\n')[0]!}): ${hint}`);
  }
  const last = out.trim().split('\n').pop() ?? '';
  if (!last || !existsSync(last)) throw new RuntimeError('INVALID', `no guest ${what}: ${script.join(' ')} printed no artifact path: ${hint}`);
  memo.save(last, fingerprint);
  return last;
}

/** The kernel and initrd paths for `hv` (configuration `source` names the file in errors); RuntimeError INVALID. */
export async function guestImages(hv: Pick<HypervisorSection, 'kernel' | 'initrd'>, source: string, signal?: AbortSignal): Promise<{ kernel: string; initrd: string }> {
  // both at once: each is fast once built
  const [kernel, initrd] = await Promise.all([
    hv.kernel || artifact(['kernel-config/build.sh', 'full'], 'kernel', 'run `npm run guest:kernel` or set kernel in configuration.toml', signal),
    hv.initrd || artifact(['guest/build-agent-initrd.sh'], 'initrd', 'run `npm run guest:initrd` or set initrd in configuration.toml', signal),
  ]);
  signal?.throwIfAborted();
  for (const [what, p] of [['kernel', kernel], ['initrd', initrd]] as const) {
    if (!existsSync(p)) throw new RuntimeError('INVALID', `the guest ${what} ${p} (configuration ${source}) does not exist: fix the path or clear it to use the built one`);
  }
  return { kernel, initrd };
}

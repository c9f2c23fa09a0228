// The sandbox settings of a shim's VM, from configuration.toml as the kata-ts CLI reads it (src/runtime/config.ts:
// the runtime option ConfigPath, else $KATA_TS_CONFIG, else /etc/kata-ts/configuration.toml, else the package
// default) and the first container's annotations (io.katacontainers.config.hypervisor.*), built the way the CLI's
// spawnSandbox (src/runtime/api.ts) builds a sandbox process's launch settings.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyAnnotations, ConfigError, loadConfig, type RuntimeConfig } from '../runtime/config.js';
import { RuntimeError } from '../runtime/errors.js';
import { guestImages } from '../runtime/guest-images.js';
import { launchFromConfig, type SandboxLaunch } from '../runtime/launch.js';
import { ShimError } from './errors.js';
import { PARENT_MNTNS_ENV } from './start.js';

/** configuration.toml (`configPath` from the runtime options when given); ShimError InvalidArgument if bad. */
export function shimConfig(configPath: string | undefined): RuntimeConfig {
  try {
    return loadConfig(configPath ? { config: configPath } : {});
  } catch (e) {
    if (e instanceof ConfigError) throw new ShimError('INVALID_ARGUMENT', `bad kata-ts configuration: ${e.message}`);
    throw e;
  }
}

/** The launch settings of the sandbox `sid` kept under `root` (its temp dir is made here, kata-ts-sb-XXXXXX). */
export async function sandboxLaunch(cfg: RuntimeConfig, root: string, sid: string, annotations: Record<string, string>): Promise<SandboxLaunch> {
  const choice = cfg.runtime.hypervisor;
  const section = choice === 'inproc' ? cfg.hypervisor.inproc : cfg.hypervisor.qemu;
  let hv;
  try {
    hv = applyAnnotations(section, cfg, annotations);
  } catch (e) {
    throw new ShimError('INVALID_ARGUMENT', (e as Error).message);
  }
  let images: { kernel: string; initrd: string };
  try {
    images = await guestImages(hv, cfg.source);
  } catch (e) {
    if (e instanceof RuntimeError) throw new ShimError('FAILED_PRECONDITION', e.message);
    throw e;
  }
  const { kernel, initrd } = images;
  return launchFromConfig(cfg, {
    root,
    sid,
    hypervisor: choice,
    hv,
    kernel,
    initrd,
    logFormat: 'text',
    // the same prefix the CLI uses, so that a dead sandbox's temp dir is recognised (delete.ts)
    tmpDir: mkdtempSync(join(tmpdir(), 'kata-ts-sb-')),
    // start.ts ran us under `unshare --mount` and passed its own namespace: the share's bind mounts stay here
    ...(process.env[PARENT_MNTNS_ENV] ? { launcherMountNs: process.env[PARENT_MNTNS_ENV] } : {}),
  });
}

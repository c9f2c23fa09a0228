// Reading an OCI bundle (runtime-spec bundle.md): <bundle>/config.json and the root filesystem it names.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { RuntimeError } from './errors.js';

export interface Bundle {
  /** absolute bundle directory */
  dir: string;
  spec: Record<string, unknown>;
  /** absolute host path of the root filesystem */
  rootfs: string;
  annotations: Record<string, string>;
  terminal: boolean;
}

export interface OciProcess {
  terminal?: boolean;
  args?: string[];
  env?: string[];
  cwd?: string;
  user?: { uid: number; gid: number; additionalGids?: number[] };
}

export function readBundle(bundleArg: string): Bundle {
  const dir = resolve(bundleArg);
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new RuntimeError('INVALID', `bundle ${dir} has no config.json: create one (e.g. \`runc spec\`) or pass the right --bundle`);
  let spec: unknown;
  try {
    spec = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new RuntimeError('INVALID', `${cfgPath} is not valid JSON (${(e as Error).message}): fix the file`);
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new RuntimeError('INVALID', `${cfgPath} must hold a JSON object (the OCI runtime spec)`);
  const s = spec as Record<string, unknown>;
  // config.md: root.path is required on Linux; relative paths are relative to the bundle
  const root = s['root'] as { path?: unknown } | undefined;
  if (typeof root?.path !== 'string' || root.path === '') throw new RuntimeError('INVALID', `${cfgPath}: root.path is missing: name the bundle's root filesystem directory (usually "rootfs")`);
  const rootfs = isAbsolute(root.path) ? root.path : join(dir, root.path);
  if (!existsSync(rootfs) || !statSync(rootfs).isDirectory()) throw new RuntimeError('INVALID', `the bundle's root filesystem ${rootfs} does not exist or is not a directory: create it or fix root.path in ${cfgPath}`);
  const proc = s['process'] as OciProcess | undefined;
  if (typeof proc !== 'object' || proc === null) throw new RuntimeError('INVALID', `${cfgPath}: process is missing: the container needs process.args`);
  if (!Array.isArray(proc.args) || proc.args.length === 0 || !proc.args.every((a) => typeof a === 'string')) {
    throw new RuntimeError('INVALID', `${cfgPath}: process.args must be a non-empty array of strings`);
  }
  const ann = s['annotations'];
  const annotations: Record<string, string> = {};
  if (ann !== undefined) {
    if (typeof ann !== 'object' || ann === null || Array.isArray(ann)) throw new RuntimeError('INVALID', `${cfgPath}: annotations must be an object of strings`);
    for (const [k, v] of Object.entries(ann)) {
      if (typeof v !== 'string') throw new RuntimeError('INVALID', `${cfgPath}: annotation ${k} must be a string`);
      annotations[k] = v;
    }
  }
  return { dir, spec: s, rootfs, annotations, terminal: proc.terminal === true };
}

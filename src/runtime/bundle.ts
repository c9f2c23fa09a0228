// Reading an OCI bundle (runtime-spec bundle.md): <bundle>/config.json and the root filesystem it names. The
// fields the host uses are checked (validate.ts) with messages that name the file and the field.

import { existsSync, lstatSync, readFileSync, realpathSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { RuntimeError } from './errors.js';
import { checkCgroupsPath } from '../host/cgroup.js';
import { hooksCheck, type Hooks } from './hooks.js';
import { array, boolean, define, int, InvalidField, isPlainObject, object, optional, record, string, type Check } from './validate.js';

/**
 * The rootfs must be a real directory, never a symlink (runc refuses one too: following it would hand a host
 * directory to the guest), and a relative root.path must not leave the bundle through a linked component.
 */
function checkRootfs(rootfs: string, bundleDir: string | undefined, cfgPath: string): void {
  let st;
  try {
    st = lstatSync(rootfs);
  } catch {
    throw new RuntimeError('INVALID', `the bundle's root filesystem ${rootfs} does not exist or is not a directory: create it or fix root.path in ${cfgPath}`);
  }
  if (st.isSymbolicLink()) {
    throw new RuntimeError('INVALID', `the bundle's root filesystem ${rootfs} is a symbolic link: point root.path in ${cfgPath} at the directory itself`);
  }
  if (!st.isDirectory()) {
    throw new RuntimeError('INVALID', `the bundle's root filesystem ${rootfs} does not exist or is not a directory: create it or fix root.path in ${cfgPath}`);
  }
  if (bundleDir !== undefined) {
    const rel = relative(realpathSync(bundleDir), realpathSync(rootfs));
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw new RuntimeError('INVALID', `the bundle's root filesystem ${rootfs} resolves outside the bundle ${bundleDir} through a symbolic link: fix root.path in ${cfgPath}`);
    }
  }
}

export interface Bundle {
  /** absolute bundle directory */
  dir: string;
  spec: Record<string, unknown>;
  /** absolute host path of the root filesystem */
  rootfs: string;
  annotations: Record<string, string>;
  terminal: boolean;
  /** config.json's hooks, checked (hooks.ts runs them on the host) */
  hooks?: Hooks;
  /** linux.cgroupsPath: the sandbox's host processes join it (host/cgroup.ts) */
  cgroupsPath?: string;
  /** the checked process fields the host uses (exec takes env, cwd and user from it) */
  process: OciProcess;
}

export interface OciProcess {
  terminal?: boolean;
  args?: string[];
  env?: string[];
  cwd?: string;
  user?: { uid: number; gid: number; additionalGids?: number[] };
}

const uint32 = int(0, 0xffffffff);
const userSchema = object({ uid: uint32, gid: uint32, additionalGids: optional(array(uint32)) });

/** The parts of config.json (runtime-spec config.md) the host reads; the rest goes to the guest agent as it is. */
const processSchema = object({
  terminal: optional(boolean),
  args: define('a non-empty array of strings', (v, p) => {
    if (!Array.isArray(v) || v.length === 0 || !v.every((a) => typeof a === 'string')) throw new InvalidField(p, 'must be a non-empty array of strings');
    return v;
  }),
  env: optional(array(string)),
  cwd: optional(string),
  // checked, then passed on whole (username, umask... reach the agent as written)
  user: optional(define(userSchema.expected, (v, p) => (userSchema(v, p), v as OciProcess['user']))),
});
const rootSchema = object({ path: optional(string), readonly: optional(boolean) });

/** `spec[key]` checked by `c`; an InvalidField becomes `<config.json>: <field> <problem>[: hint]`. */
function field<T>(cfgPath: string, spec: Record<string, unknown>, key: string, c: Check<T>, hint = ''): T {
  try {
    return c(spec[key], key);
  } catch (e) {
    if (e instanceof InvalidField) throw new RuntimeError('INVALID', `${cfgPath}: ${e.path} ${e.problem}${hint}`);
    throw e;
  }
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
  if (!isPlainObject(spec)) throw new RuntimeError('INVALID', `${cfgPath} must hold a JSON object (the OCI runtime spec)`);
  // config.md: root.path is required on Linux; relative paths are relative to the bundle
  const root = field(cfgPath, spec, 'root', optional(rootSchema));
  if (root?.path === undefined || root.path === '') throw new RuntimeError('INVALID', `${cfgPath}: root.path is missing: name the bundle's root filesystem directory (usually "rootfs")`);
  const rootfs = isAbsolute(root.path) ? root.path : join(dir, root.path);
  checkRootfs(rootfs, isAbsolute(root.path) ? undefined : dir, cfgPath);
  if (spec['process'] === undefined || spec['process'] === null) throw new RuntimeError('INVALID', `${cfgPath}: process is missing: the container needs process.args`);
  const proc = field(cfgPath, spec, 'process', processSchema);
  const annotations = field(cfgPath, spec, 'annotations', optional(record(string))) ?? {};
  const hooks = field(cfgPath, spec, 'hooks', optional(hooksCheck));
  const linux = field(cfgPath, spec, 'linux', optional(object({ cgroupsPath: optional(string) })));
  const cgroupsPath = linux?.cgroupsPath;
  if (cgroupsPath !== undefined) {
    try {
      checkCgroupsPath(cgroupsPath);
    } catch (e) {
      throw new RuntimeError('INVALID', `${cfgPath}: ${(e as Error).message}`);
    }
  }
  return { dir, spec, rootfs, annotations, terminal: proc.terminal === true, process: proc, ...(hooks ? { hooks } : {}), ...(cgroupsPath ? { cgroupsPath } : {}) };
}

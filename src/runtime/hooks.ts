// OCI hooks (runtime-spec config.md "POSIX-platform Hooks"), run on the host as runc runs them: each hook is
// path + args (args[0] is argv[0]) + env (exactly that environment) + an optional timeout in seconds, and gets
// the container's state JSON on stdin. Where they run in kata-ts (api.ts):
//   create: prestart, createRuntime, createContainer, once the container exists in the guest (status creating);
//           a failure fails create, which removes everything it made
//   start:  startContainer before the process starts (a failure fails start); poststart after (a failure is a
//           warning)
//   delete: poststop once the container is gone (a failure is a warning)
// The guest agent drops `hooks` from the spec it hands runc in the VM, so none runs twice.

import { spawn } from 'node:child_process';
import { RuntimeError } from './errors.js';
import { array, define, fail, int, object, optional, string, type Check } from './validate.js';

export const HOOK_KINDS = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
export type HookKind = (typeof HOOK_KINDS)[number];

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  /** seconds */
  timeout?: number;
}

export type Hooks = Partial<Record<HookKind, Hook[]>>;

/** The state JSON a hook reads on stdin (runtime-spec runtime.md "State"). */
export interface HookState {
  ociVersion: string;
  id: string;
  status: string;
  pid: number;
  bundle: string;
  annotations?: Record<string, string>;
}

const hook: Check<Hook> = object({
  path: define('an absolute path', (v, p) => (typeof v === 'string' && v.startsWith('/') ? v : fail(p, 'an absolute path', v))),
  args: optional(array(string)),
  env: optional(array(string)),
  timeout: optional(int(1, 86_400)),
});

/** config.json's `hooks`, checked: every kind is an array of hooks with an absolute path. */
export const hooksCheck: Check<Hooks> = object({
  prestart: optional(array(hook)),
  createRuntime: optional(array(hook)),
  createContainer: optional(array(hook)),
  startContainer: optional(array(hook)),
  poststart: optional(array(hook)),
  poststop: optional(array(hook)),
});

/** Default bound of a hook without a timeout: a hung hook must not hang create forever. */
const DEFAULT_TIMEOUT_S = 120;

function runOne(h: Hook, kind: HookKind, state: HookState): Promise<void> {
  return new Promise((resolve, reject) => {
    const argv = h.args && h.args.length > 0 ? h.args : [h.path];
    // exactly the hook's environment (KEY=VALUE entries; one without '=' is skipped)
    const env = Object.fromEntries((h.env ?? []).filter((kv) => kv.indexOf('=') > 0).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const child = spawn(h.path, argv.slice(1), { argv0: argv[0]!, env, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
    child.stdin.on('error', () => undefined); // a hook that does not read its stdin
    child.stdin.end(JSON.stringify(state));
    const seconds = h.timeout ?? DEFAULT_TIMEOUT_S;
    const timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000);
    const what = `${kind} hook ${h.path}`;
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new RuntimeError('INVALID', `${what} cannot run: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const why = signal === 'SIGKILL' && code === null ? `timed out after ${seconds} s` : code !== null ? `exit status ${code}` : `signal ${signal ?? '?'}`;
      const tail = stderr.trim().split('\n').pop();
      reject(new RuntimeError('INTERNAL', `${what} failed (${why})${tail ? `: ${tail}` : ''}`));
    });
  });
}

/** Runs the hooks of `kind` in order, each with `state` on stdin; the first failure is thrown (RuntimeError). */
export async function runHooks(hooks: Hooks | undefined, kind: HookKind, state: HookState): Promise<void> {
  for (const h of hooks?.[kind] ?? []) await runOne(h, kind, state);
}

// Helper processes die with their owner: a child spawned through `setpriv --pdeathsig KILL --` (util-linux
// 2.33 and later; Debian 12 has 2.38) gets PR_SET_PDEATHSIG(SIGKILL) before it execs the real program, so
// the kernel kills it when the thread that spawned it dies, however that happens (SIGKILL included). Node
// spawns from the calling thread: spawn from the main thread (a worker thread's exit would fire it too).
// The deathsig survives execve (not across a set-user-ID program) and is kept by `exec` in a shell script.
// One window stays open: an owner that dies before setpriv's prctl leaves the child orphaned; callers close
// it themselves (QEMU connects to sockets its owner listens on, and exits when they are gone).

import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const SETPRIV = 'setpriv';

let setprivPath: string | null | undefined;

/** Largest setpriv binary read for its option table (util-linux's is about 80 KiB). */
const MAX_SETPRIV_BYTES = 4 << 20;

/**
 * `setpriv` on PATH when it knows --pdeathsig, else null (probed once per process). The probe reads the binary for
 * the option's name (util-linux keeps its long options as strings) instead of running `setpriv --help`: that
 * spawn cost about 20 ms of every sandbox start.
 */
export function pdeathsigWrapper(): string | null {
  if (setprivPath === undefined) {
    const path = findExecutable(SETPRIV);
    setprivPath = path !== undefined && knowsPdeathsig(path) ? path : null;
  }
  return setprivPath;
}

/** Whether the executable at `path` names the pdeathsig option; false when it cannot be read or is too large. */
export function knowsPdeathsig(path: string): boolean {
  try {
    if (statSync(path).size > MAX_SETPRIV_BYTES) return false;
    return readFileSync(path).includes('pdeathsig');
  } catch {
    return false;
  }
}

/** The absolute path `name` runs as (a path with a slash as is, if executable; else searched on PATH). */
export function findExecutable(name: string, pathEnv = process.env['PATH'] ?? ''): string | undefined {
  const candidates = name.includes('/') ? [name] : pathEnv.split(delimiter).filter((d) => d !== '').map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface TiedCommand {
  file: string;
  args: string[];
  /** false: no setpriv with --pdeathsig here, the command runs as given and may outlive its owner */
  tied: boolean;
}

/**
 * The command line that runs `file args` with SIGKILL as its parent-death signal. `file` must already be
 * resolved (findExecutable): setpriv would report a missing program as its own exit status 127.
 */
export function tieToParent(file: string, args: readonly string[], wrapper = pdeathsigWrapper()): TiedCommand {
  if (wrapper === null) return { file, args: [...args], tied: false };
  return { file: wrapper, args: ['--pdeathsig', 'KILL', '--', file, ...args], tied: true };
}

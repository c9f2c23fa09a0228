// Helper processes die with their owner: a child spawned through `setpriv --pdeathsig KILL --` (util-linux
// 2.33 and later; Debian 12 has 2.38) gets PR_SET_PDEATHSIG(SIGKILL) before it execs the real program, so
// the kernel kills it when the thread that spawned it dies, however that happens (SIGKILL included). Node
// spawns from the calling thread: spawn from the main thread (a worker thread's exit would fire it too).
// The deathsig survives execve (not across a set-user-ID program) and is kept by `exec` in a shell script.
// One window stays open: an owner that dies before setpriv's prctl leaves the child orphaned; callers close
// it themselves (QEMU connects to sockets its owner listens on, and exits when they are gone).

import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const SETPRIV = 'setpriv';

let setprivPath: string | null | undefined;

/** `setpriv` on PATH when it knows --pdeathsig, else null (probed once). */
export function pdeathsigWrapper(): string | null {
  if (setprivPath === undefined) {
    const path = findExecutable(SETPRIV);
    const help = path === undefined ? undefined : spawnSync(path, ['--help'], { encoding: 'utf8', timeout: 5000 });
    setprivPath = path !== undefined && help?.status === 0 && help.stdout.includes('--pdeathsig') ? path : null;
  }
  return setprivPath;
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

// A memo of which cached guest artifact a build script resolved to, so that starting a sandbox does not rerun
// the script's input hashing (bash, dpkg-query, sha256sum of runc and the agent sources: 0.3–0.8 s, most of the
// time before the VM exists in `kata-ts run`).
//
// The memo is conservative: it is used only while nothing the scripts could read has changed since it was
// written, judged by a fingerprint of every file under the package's guest/ and kernel-config/ (path, size,
// mtime), the dpkg status database's mtime (a package install or upgrade: linux-source, runc, busybox) and the
// cache root; and the artifact must still be there. Anything else reruns the script, which writes a new memo.
// It lives under the cache root (<cache>/resolved/), private to the user, one file per package root and script.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, statSync, type Dirent } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { makePrivateDirs, writePrivate } from './private-files.js';

/** Directories (relative to the package root) holding every input of the guest build scripts. */
const INPUT_DIRS = ['guest', 'kernel-config'];
const DPKG_STATUS = '/var/lib/dpkg/status';

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env['KATA_TS_CACHE'] || join(homedir(), '.cache', 'kata-ts');
}

/** size and mtime of every file beneath `dir`, sorted, plus the dpkg database's mtime: one hash. */
export function inputFingerprint(pkgRoot: string, dpkgStatus = DPKG_STATUS): string {
  const h = createHash('sha256');
  const walk = (dir: string): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      h.update(`missing ${dir}\n`);
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        try {
          const st = statSync(p);
          h.update(`${p} ${st.size} ${st.mtimeMs} ${st.ino}\n`);
        } catch {
          h.update(`gone ${p}\n`);
        }
      }
    }
  };
  for (const d of INPUT_DIRS) walk(join(pkgRoot, d));
  try {
    h.update(`dpkg ${statSync(dpkgStatus).mtimeMs}\n`);
  } catch {
    h.update('dpkg none\n');
  }
  return h.digest('hex');
}

interface Memo {
  fingerprint: string;
  artifact: string;
  size: number;
  mtimeMs: number;
}

export class ArtifactMemo {
  private readonly file: string;

  constructor(
    private readonly pkgRoot: string,
    script: readonly string[],
    private readonly cache = cacheRoot(),
  ) {
    const key = createHash('sha256').update(`${pkgRoot}\0${script.join('\0')}\0${cache}`).digest('hex').slice(0, 16);
    this.file = join(cache, 'resolved', `${key}.json`);
  }

  /** The memoised artifact path when nothing has changed since it was written; undefined otherwise. */
  lookup(): string | undefined {
    let m: Memo;
    try {
      m = JSON.parse(readFileSync(this.file, 'utf8')) as Memo;
      const st = statSync(m.artifact);
      if (st.size !== m.size || st.mtimeMs !== m.mtimeMs || st.size === 0) return undefined;
    } catch {
      return undefined;
    }
    return m.fingerprint === inputFingerprint(this.pkgRoot) ? m.artifact : undefined;
  }

  /**
   * Records `artifact` as what the script resolved to, with the fingerprint taken BEFORE the script ran
   * (`fingerprint`): an input changed while it ran makes the memo miss next time, never hit wrongly.
   */
  save(artifact: string, fingerprint: string): void {
    try {
      const st = statSync(artifact);
      const memo: Memo = { fingerprint, artifact, size: st.size, mtimeMs: st.mtimeMs };
      makePrivateDirs(join(this.cache, 'resolved'));
      const tmp = `${this.file}.${process.pid}.tmp`;
      writePrivate(tmp, JSON.stringify(memo));
      renameSync(tmp, this.file);
    } catch {
      // no memo: the next start runs the script again
    }
  }

  /** The current fingerprint (take it before running the script, pass it to save()). */
  fingerprint(): string {
    return inputFingerprint(this.pkgRoot);
  }
}

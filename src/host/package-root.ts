// Where the kata-ts package lives on disk (for files shipped beside the code, like kernel-config/).

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The `name` of a package.json's text, or undefined when it is not JSON or has no string name. */
function packageName(text: string): string | undefined {
  try {
    const pj: unknown = JSON.parse(text);
    if (typeof pj !== 'object' || pj === null || !('name' in pj)) return undefined;
    return typeof pj.name === 'string' ? pj.name : undefined;
  } catch {
    return undefined; // not ours: keep looking upwards
  }
}

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj) && packageName(readFileSync(pj, 'utf8')) === 'kata-ts') {
      root = dir;
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the kata-ts package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

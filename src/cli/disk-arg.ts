// `--disk PATH[:ro]`, as `kata-ts boot` and `kata-ts vhost-user-backend` take it.

import { existsSync } from 'node:fs';

/** The image path and mode a --disk value names; errors say what to pass instead. */
export function parseDiskArg(arg: string): { path: string; readOnly: boolean } {
  const m = /^(.*?)(?::(ro|rw))?$/.exec(arg);
  const path = m?.[1] ?? '';
  if (path === '') throw new Error(`--disk '${arg}': give an image path, optionally followed by :ro`);
  if (!existsSync(path)) throw new Error(`disk image not found: ${path} (--disk PATH[:ro] takes a raw image file)`);
  return { path, readOnly: m?.[2] === 'ro' };
}

// Everything the runtime creates under its state root is private to the runtime's user: files 0600, directories
// 0700, sockets 0600 inside them. Nobody else needs to traverse the state root: the CLI, the sandbox process,
// QEMU and the stdio relays all run as the runtime's user. A mode given to open(2)/mkdir(2)/bind(2) is masked by
// the umask, so each helper also sets the mode explicitly after creating: `umask 000` cannot widen it, and a file
// left over from an earlier run (a stale temp file) gets it too.

import { chmodSync, closeSync, fchmodSync, mkdirSync, openSync, writeSync } from 'node:fs';
import type { Server } from 'node:net';

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/** open(2) with `flags` ('w', 'a', ...), creating the file 0600; the mode is set on the fd even if it existed. */
export function openPrivate(path: string, flags: string): number {
  const fd = openSync(path, flags, FILE_MODE);
  try {
    fchmodSync(fd, FILE_MODE);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/** Writes `data` to `path` (truncating it), as a 0600 file. */
export function writePrivate(path: string, data: string | Uint8Array): void {
  const fd = openPrivate(path, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
  } finally {
    closeSync(fd);
  }
}

/**
 * mkdir(2) of one directory, 0700. `exclusive`: EEXIST is thrown (the directory is a lock); otherwise an existing
 * directory is kept as it is. Returns whether it was created.
 */
export function makePrivateDir(path: string, exclusive = false): boolean {
  try {
    mkdirSync(path, { mode: DIR_MODE });
  } catch (e) {
    if (!exclusive && (e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  chmodSync(path, DIR_MODE);
  return true;
}

/** mkdir -p, each directory it creates 0700 (existing ones are kept as they are). */
export function makePrivateDirs(path: string): void {
  const first = mkdirSync(path, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return;
  // mkdirSync returns the first directory it created: fix the mode of it and of every one below it
  for (let p = path; p.length >= first.length; p = p.slice(0, p.lastIndexOf('/'))) {
    chmodSync(p, DIR_MODE);
    if (p === first) break;
  }
}

/** server.listen(path), then the socket file 0600 (bind(2) gives it 0777 minus the umask). */
export function listenPrivate(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      try {
        chmodSync(path, FILE_MODE);
        resolve();
      } catch (e) {
        server.close();
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

// The guest console's log under the state root (<root>/<sid>/console.log), bounded: the state root is usually
// /run, a RAM file system, and a guest can write its console as fast as the host reads it (~350 KB/s measured
// from a flooding guest under QEMU TCG). A ring of two files: console.log takes writes until the next one would
// take it past maxBytes; then it becomes console.log.1 (replacing the older one) and a new console.log starts.
// At most 2 × maxBytes are kept, the newest output is at the end of console.log, and of a single write larger
// than maxBytes only its last maxBytes are kept. [hypervisor.*] console_log_max_mib sets maxBytes.
// Writes are synchronous (small appends to a local file); the files are 0600 (private-files.ts).

import { closeSync, renameSync, writeSync } from 'node:fs';
import { openPrivate } from './private-files.js';

export class ConsoleRing {
  private fd: number | undefined;
  private size = 0;

  /** Starts an empty console.log at `path` (truncating an old one). `onError` hears of the first failed write. */
  constructor(
    readonly path: string,
    readonly maxBytes: number,
    private readonly onError: (e: Error) => void,
  ) {
    if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new RangeError(`console ring size ${maxBytes} must be a positive integer`);
    this.fd = openPrivate(path, 'w');
  }

  /** The older half of the ring. */
  get previousPath(): string {
    return `${this.path}.1`;
  }

  write(bytes: Uint8Array): void {
    if (this.fd === undefined) return;
    const chunk = bytes.length > this.maxBytes ? bytes.subarray(bytes.length - this.maxBytes) : bytes;
    try {
      if (this.size + chunk.length > this.maxBytes) this.rotate();
      for (let off = 0; off < chunk.length; ) off += writeSync(this.fd, chunk, off, chunk.length - off);
      this.size += chunk.length;
    } catch (e) {
      this.close();
      this.onError(e as Error); // the console keeps running; only its log stops
    }
  }

  private rotate(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    renameSync(this.path, this.previousPath);
    this.fd = openPrivate(this.path, 'w');
    this.size = 0;
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      closeSync(fd);
    } catch {
      // already closed: nothing to flush (writes are synchronous)
    }
  }
}

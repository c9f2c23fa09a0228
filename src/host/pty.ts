// Pseudo-terminals for `create --console-socket` (native/pty.cc), as runc's contract has it: the runtime makes a
// pty, sends the master to the caller's unix socket (SCM_RIGHTS, the payload a name) and keeps the slave as the
// container's terminal. Policy (when a pty is made, who holds the slave) is the runtime's.

import { closeSync } from 'node:fs';
import { loadNative, type NativeAddon } from '../kvm/native.js';

export interface Pty {
  master: number;
  slave: number;
  /** the slave's /dev/pts path */
  name: string;
}

export function openPty(native: Pick<NativeAddon, 'openPty'> = loadNative()): Pty {
  return native.openPty();
}

/** fd's terminal becomes this session leader's controlling terminal (SIGWINCH on resize). */
export function setControllingTty(fd: number, native: Pick<NativeAddon, 'setControllingTty'> = loadNative()): void {
  native.setControllingTty(fd);
}

export function setWindowSize(fd: number, rows: number, cols: number, native: Pick<NativeAddon, 'setWindowSize'> = loadNative()): void {
  native.setWindowSize(fd, rows, cols);
}

/** The terminal at fd in raw mode, input and output (cfmakeraw); returns what restoreTty needs. */
export function makeRawTty(fd: number, native: Pick<NativeAddon, 'ttyMakeRaw'> = loadNative()): Uint8Array {
  return native.ttyMakeRaw(fd);
}

export function restoreTty(fd: number, saved: Uint8Array, native: Pick<NativeAddon, 'ttyRestore'> = loadNative()): void {
  native.ttyRestore(fd, saved);
}

/**
 * Sends `master` to the unix socket at `socketPath` with the name `name` as the payload (what runc sends and
 * containerd's console.RecvFd / conmon read). Throws the addon's errno error (ENOENT, ECONNREFUSED...).
 */
export function sendConsole(socketPath: string, master: number, name: string, native: Pick<NativeAddon, 'unixConnect' | 'sendmsgFds'> = loadNative()): void {
  const fd = native.unixConnect(socketPath);
  try {
    const sent = native.sendmsgFds(fd, Buffer.from(name), [master]);
    if (sent === null) throw new Error(`the console socket ${socketPath} accepts no data (its buffer is full)`);
  } finally {
    closeSync(fd);
  }
}

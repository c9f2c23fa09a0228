// Kernel command line: checked, then written NUL-terminated at CMDLINE_START (its address goes in
// hvm_start_info.cmdline_paddr). Linux x86 copies at most COMMAND_LINE_SIZE (2048) bytes by default; our
// limit is the space reserved in the layout.
import type { GuestMemory } from '../memory/guest-memory.js';
import { CMDLINE_MAX_SIZE, CMDLINE_START } from '../arch/x86_64/layout.js';
import { InvalidCmdline } from './errors.js';

/** The command line as NUL-terminated bytes; throws InvalidCmdline unless it is printable ASCII and short enough. */
export function encodeCmdline(cmdline: string): Uint8Array {
  if (cmdline.length + 1 > CMDLINE_MAX_SIZE) {
    throw new InvalidCmdline(
      `kernel command line is ${String(cmdline.length)} characters; at most ${String(CMDLINE_MAX_SIZE - 1)} fit: shorten it`,
    );
  }
  const out = new Uint8Array(cmdline.length + 1);
  for (let i = 0; i < cmdline.length; i++) {
    const c = cmdline.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) {
      throw new InvalidCmdline(
        `kernel command line has character code 0x${c.toString(16)} at position ${String(i)}: ` +
          'use printable ASCII only (no control characters, NUL or non-ASCII)',
      );
    }
    out[i] = c;
  }
  return out; // out[length] is the NUL
}

/** Write the command line at `addr` (default CMDLINE_START). */
export function writeCmdline(mem: GuestMemory, cmdline: string, addr = CMDLINE_START): { addr: number; size: number } {
  const bytes = encodeCmdline(cmdline);
  mem.write(addr, bytes);
  return { addr, size: bytes.length };
}

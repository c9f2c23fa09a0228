// Just enough of the i8042 keyboard controller for a guest to reset the machine: Linux with `reboot=k`
// polls the status port until the input buffer is empty, then sends command 0xFE (pulse reset line).
// Registered at port 0x60 with length 5, so offset 0 is the data port and offset 4 the command/status port.

import type { VmExitReason } from '../../contract/exit-reason.js';
import type { IoDevice } from '../../contract/io-device.js';

const DATA = 0; // port 0x60
const COMMAND = 4; // port 0x64
const CMD_RESET_CPU = 0xfe;

export class I8042 implements IoDevice {
  read(offset: number, data: Uint8Array): void {
    // status: output buffer empty, input buffer empty (bit 1 clear), so the guest never waits on us
    data.fill(offset === COMMAND || offset === DATA ? 0 : 0xff);
  }

  write(offset: number, data: Uint8Array): VmExitReason | undefined {
    if (offset === COMMAND && data[0] === CMD_RESET_CPU) return { kind: 'reset' };
    return undefined;
  }
}

// The boot timer: the guest writes a magic byte to a port as soon as it is up (our init does it first thing;
// test payloads as their first instruction). The first such write is timestamped on the vCPU thread itself
// with CLOCK_MONOTONIC (process.hrtime is CLOCK_MONOTONIC) and the process's CPU time, then reported.

import { BOOT_TIMER_MAGIC } from '../../arch/x86_64/layout.js';
import type { EventSink } from './io-device.js';
import type { VmExitReason } from '../../contract/exit-reason.js';
import type { IoDevice } from '../../contract/io-device.js';

export class BootTimer implements IoDevice {
  private fired = false;
  constructor(private readonly sink: EventSink) {}

  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  write(_offset: number, data: Uint8Array): VmExitReason | undefined {
    if (data[0] === BOOT_TIMER_MAGIC && !this.fired) {
      const monotonicNs = process.hrtime.bigint();
      const cpu = process.cpuUsage();
      this.fired = true;
      this.sink({ type: 'boot-timer', monotonicNs, processCpuUs: cpu.user + cpu.system });
    }
    return undefined;
  }
}

// Test and debugging ports: a byte console (0xe9, as Bochs/QEMU debugcon), a 32-bit value port (0xea) that
// test payloads use to report what they saw, and a debug exit port (0xf4) that stops the VM with a status.

import { type EventSink } from './io-device.js';
import type { VmExitReason } from '../../contract/exit-reason.js';
import { type IoDevice, accessValue } from '../../contract/io-device.js';

export class DebugCon implements IoDevice {
  constructor(private readonly sink: EventSink) {}
  read(_offset: number, data: Uint8Array): void {
    data.fill(0xe9); // what QEMU's debugcon returns, so a guest can detect it
  }
  write(_offset: number, data: Uint8Array): VmExitReason | undefined {
    this.sink({ type: 'debugcon', bytes: data.slice(0, 1) });
    return undefined;
  }
}

export class TestValuePort implements IoDevice {
  constructor(private readonly sink: EventSink) {}
  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }
  write(_offset: number, data: Uint8Array): VmExitReason | undefined {
    this.sink({ type: 'test-value', value: accessValue(data) >>> 0 });
    return undefined;
  }
}

export class DebugExit implements IoDevice {
  read(_offset: number, data: Uint8Array): void {
    data.fill(0xff);
  }
  write(_offset: number, data: Uint8Array): VmExitReason | undefined {
    return { kind: 'debug-exit', status: accessValue(data) >>> 0 };
  }
}

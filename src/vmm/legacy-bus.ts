// The port-I/O bus every vCPU worker builds: COM1, the i8042 reset line, the boot timer and (when asked)
// the test/debug ports. Devices with shared state (the UART) share it through SharedArrayBuffers.

import {
  BOOT_TIMER_PORT,
  COM1_PORT,
  DEBUGCON_PORT,
  DEBUG_EXIT_PORT,
  I8042_DATA_PORT,
  TEST_VALUE_PORT,
} from '../arch/x86_64/layout.js';
import { Bus } from './bus.js';
import { BootTimer } from './devices/boot-timer.js';
import { DebugCon, DebugExit, TestValuePort } from './devices/debug-ports.js';
import { I8042 } from './devices/i8042.js';
import type { EventSink } from './devices/io-device.js';
import { Serial8250, SerialState } from './devices/serial.js';
import type { IoDevice } from '../contract/io-device.js';

export interface LegacyBusOptions {
  serial: SharedArrayBuffer;
  raiseSerialIrq: () => void;
  /** debugcon (0xe9), test value port (0xea), debug exit (0xf4) */
  debugPorts: boolean;
  sink: EventSink;
}

export function buildLegacyPioBus(o: LegacyBusOptions): Bus<IoDevice> {
  const bus = new Bus<IoDevice>();
  bus.insert(COM1_PORT, 8, 'com1', new Serial8250(new SerialState(o.serial), o.sink, o.raiseSerialIrq));
  bus.insert(I8042_DATA_PORT, 5, 'i8042', new I8042());
  bus.insert(BOOT_TIMER_PORT, 1, 'boot-timer', new BootTimer(o.sink));
  if (o.debugPorts) {
    bus.insert(DEBUGCON_PORT, 1, 'debugcon', new DebugCon(o.sink));
    bus.insert(TEST_VALUE_PORT, 4, 'test-value', new TestValuePort(o.sink));
    bus.insert(DEBUG_EXIT_PORT, 4, 'debug-exit', new DebugExit());
  }
  return bus;
}

// Entry point of a device worker thread: one per virtio device. It builds the device from its spec, owns
// its queues, its view of guest memory and its eventfds, and runs the device whenever the control eventfd
// or a queue's ioeventfd becomes readable (native.watchReadable on this thread's event loop). Interrupts
// leave by InterruptStatus (Atomics) + irqfd. See DESIGN decision 3.

import { parentPort, workerData } from 'node:worker_threads';
import { loadNative } from '../../kvm/native.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { TransportState } from '../mmio/state.js';
import { instantiateDevice } from '../registry.js';
import { DeviceRunner } from './device-runner.js';
import type { DeviceWorkerCommand, DeviceWorkerEvent, DeviceWorkerInit } from './protocol.js';

if (!parentPort) throw new Error('device-worker must run as a worker thread');
const parent = parentPort;
const post = (ev: DeviceWorkerEvent): void => parent.postMessage(ev);
const native = loadNative();
const init = workerData as DeviceWorkerInit;

async function main(): Promise<void> {
  const mem = new GuestMemory(
    init.regions.map((r) => {
      if (r.buffer) return { base: r.base, size: r.size, buffer: r.buffer };
      if (r.addr === undefined) throw new Error(`guest region at 0x${r.base.toString(16)} has neither a mapping nor a buffer`);
      return { base: r.base, size: r.size, buffer: native.wrapMapping(r.addr, r.size) };
    }),
  );
  const state = new TransportState(init.state);
  const device = await instantiateDevice(init.spec, init.hostPort ? { hostPort: init.hostPort } : {});
  const runner = new DeviceRunner(
    device,
    state,
    mem,
    () => native.eventfdWrite(init.irqFd, 1n),
    (level, message) => post({ type: 'log', level, message }),
  );
  runner.publishIdentity();

  const watches: number[] = [];
  watches.push(
    native.watchReadable(init.controlFd, () => {
      native.eventfdRead(init.controlFd); // clear it first: a change made while we run signals again
      runner.onControl();
    }),
  );

  parent.on('message', (cmd: DeviceWorkerCommand) => {
    switch (cmd.type) {
      case 'start':
        cmd.queueFds.forEach((fd, i) => {
          watches.push(
            native.watchReadable(fd, () => {
              native.eventfdRead(fd);
              runner.onQueue(i);
            }),
          );
        });
        break;
      case 'metrics':
        post({ type: 'metrics', device: runner.device.metrics(), transport: { ...runner.counters } });
        break;
      case 'stop':
        for (const id of watches.splice(0)) native.unwatch(id);
        runner.shutdown();
        post({ type: 'stopped' });
        parent.close();
        init.hostPort?.close();
        break;
    }
  });
  post({ type: 'ready', queues: device.queueMaxSizes.length, deviceType: device.deviceType });
}

main().catch((e: unknown) => {
  const err = e instanceof Error ? e : new Error(String(e));
  post({ type: 'failed', message: err.message });
  parent.close();
});

// The vCPU run loop, executed on a worker thread. It is an explicit state machine driven by the control
// word the owner writes (Idle -> Run <-> Pause -> Stop): the worker blocks in KVM_RUN, the owner kicks it
// out with immediate_exit + a real-time signal (DESIGN decision 4), and the loop acts on the control word.
// Every exit is decoded into a tagged union and routed through the port-I/O or MMIO bus.

import { VIRTIO_MMIO_SLOT_SIZE } from '../arch/x86_64/layout.js';
import type { NativeAddon } from '../kvm/native.js';
import { decodeExit, setImmediateExit, writeMmioReadData } from '../kvm/run.js';
import { MmioTransport } from '../virtio/mmio/transport.js';
import { Bus } from './bus.js';
import { Control, CONTROL_STATE, CONTROL_THREAD_SLOT, type VcpuEvent } from './events.js';
import { buildLegacyPioBus } from './legacy-bus.js';
import type { VcpuRunRequest } from './vcpu-protocol.js';
import type { VmExitReason } from '../contract/exit-reason.js';
import type { IoDevice } from '../contract/io-device.js';

const EINTR = 4;
const EAGAIN = 11;

/** KVM_SYSTEM_EVENT_* (include/uapi/linux/kvm.h) */
const SYSTEM_EVENT_SHUTDOWN = 1;
const SYSTEM_EVENT_RESET = 2;

export class UnhandledExit extends Error {
  constructor(what: string) {
    super(what);
    this.name = 'UnhandledExit';
  }
}

export function runVcpu(native: NativeAddon, req: VcpuRunRequest): void {
  const post = (ev: VcpuEvent): void => req.port.postMessage(ev);
  const ctl = new Int32Array(req.control);
  const run = new DataView(native.wrapMapping(req.runAddr, req.runSize));
  const runBytes = new Uint8Array(run.buffer);
  const pio = buildLegacyPioBus({
    serial: req.serial,
    raiseSerialIrq: () => native.eventfdWrite(req.serialIrqFd, 1n),
    debugPorts: req.debugPorts,
    sink: post,
  });
  const mmio = new Bus<IoDevice>();
  for (const d of req.virtio) {
    // register model only: status/config changes and missed notifies are eventfd writes to the device worker
    const transport = new MmioTransport(d.state, {
      control: () => native.eventfdWrite(d.controlFd, 1n),
      queue: (i) => {
        const fd = d.queueFds[i];
        if (fd !== undefined) native.eventfdWrite(fd, 1n);
      },
    });
    mmio.insert(d.base, VIRTIO_MMIO_SLOT_SIZE, d.name, transport);
  }

  const thread = native.threadSelf();
  Atomics.store(new BigInt64Array(req.control), CONTROL_THREAD_SLOT, BigInt.asIntN(64, thread));
  post({ type: 'ready', vcpuId: req.vcpuId, thread });

  let exits = 0;
  const requestStop = (reason: VmExitReason): void => {
    post({ type: 'stop-request', vcpuId: req.vcpuId, reason });
    // stop ourselves at once; the owner stops the other vCPUs
    Atomics.compareExchange(ctl, CONTROL_STATE, Control.Run, Control.Stop);
  };

  for (;;) {
    const state = Atomics.load(ctl, CONTROL_STATE) as Control; // only the owner and this loop store it, always a Control
    if (state === Control.Stop) break;
    if (state === Control.Idle) {
      Atomics.wait(ctl, CONTROL_STATE, Control.Idle);
      continue;
    }
    if (state === Control.Pause) {
      post({ type: 'paused', vcpuId: req.vcpuId });
      Atomics.wait(ctl, CONTROL_STATE, Control.Pause);
      continue;
    }

    let rc: number;
    try {
      rc = native.run(req.vcpuFd);
    } catch (e) {
      requestStop({ kind: 'error', message: `KVM_RUN failed: ${(e as Error).message}`, vcpu: req.vcpuId });
      continue;
    }
    if (rc === EINTR || rc === EAGAIN) {
      // kicked: clear the request and look at the control word again
      setImmediateExit(run, false);
      continue;
    }
    exits++;

    try {
      const exit = decodeExit(run);
      switch (exit.kind) {
        case 'io-out':
        case 'io-in': {
          const hit = pio.find(exit.port, exit.size);
          for (let i = 0; i < exit.count; i++) {
            // BOUNDS: decodeExit checked dataOffset + size*count against the kvm_run mapping
            const data = runBytes.subarray(exit.dataOffset + i * exit.size, exit.dataOffset + (i + 1) * exit.size);
            if (exit.kind === 'io-in') {
              if (hit) hit.device.read(hit.offset, data);
              else data.fill(0xff); // nothing there: an open bus reads all ones
            } else if (hit) {
              const stop = hit.device.write(hit.offset, data);
              if (stop) {
                requestStop(stop);
                break;
              }
            }
          }
          break;
        }
        case 'mmio-read': {
          const data = new Uint8Array(exit.len);
          const hit = mmio.find(exit.addr, exit.len);
          if (hit) hit.device.read(hit.offset, data);
          else data.fill(0xff);
          writeMmioReadData(run, data);
          break;
        }
        case 'mmio-write': {
          const hit = mmio.find(exit.addr, exit.len);
          if (hit) {
            const stop = hit.device.write(hit.offset, exit.data);
            if (stop) requestStop(stop);
          }
          break;
        }
        case 'hlt':
          // only reachable without an in-kernel LAPIC; treat a halted vCPU as powered off
          requestStop({ kind: 'shutdown' });
          break;
        case 'shutdown':
          requestStop({ kind: 'shutdown' });
          break;
        case 'system-event':
          if (exit.type === SYSTEM_EVENT_RESET) requestStop({ kind: 'reset' });
          else if (exit.type === SYSTEM_EVENT_SHUTDOWN) requestStop({ kind: 'shutdown' });
          else requestStop({ kind: 'shutdown' });
          break;
        case 'intr':
          break;
        case 'fail-entry':
          throw new UnhandledExit(`KVM_EXIT_FAIL_ENTRY, hardware reason 0x${exit.reason.toString(16)}`);
        case 'internal-error':
          throw new UnhandledExit(`KVM_EXIT_INTERNAL_ERROR, suberror ${exit.suberror}`);
        case 'unknown':
          throw new UnhandledExit(`unhandled KVM exit reason ${exit.reason}`);
      }
    } catch (e) {
      requestStop({ kind: 'error', message: (e as Error).message, vcpu: req.vcpuId });
    }
  }
  post({ type: 'stopped', vcpuId: req.vcpuId, exits });
}

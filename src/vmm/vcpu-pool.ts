// A pool of vCPU worker threads. Starting a worker thread costs milliseconds (a new V8 isolate plus module
// loading), which would dominate a microVM's start; the pool keeps finished workers idle and reuses them,
// so a warm process starts a VM's vCPUs without starting threads. Idle workers are unref'd and never keep
// the process alive.

import { Worker } from 'node:worker_threads';
import type { PoolMessage } from './vcpu-protocol.js';
import { entryUrl } from '../contract/entry-point.js';

interface Slot {
  worker: Worker;
  busy: boolean;
}

export class VcpuPool {
  private readonly idle: Slot[] = [];
  private readonly slots = new Map<Worker, Slot>();
  private closed = false;

  constructor(private readonly script: URL = entryUrl('vcpu-worker', new URL('./vcpu-worker.js', import.meta.url))) {}

  /** Start workers until `n` are idle; resolves when they are ready. */
  async prewarm(n: number): Promise<void> {
    const need = n - this.idle.length;
    const started: Promise<Slot>[] = [];
    for (let i = 0; i < need; i++) started.push(this.spawn());
    const slots = await Promise.all(started);
    for (const s of slots) this.release(s);
  }

  /** A worker ready to take a vCPU (ref'd while busy). */
  async acquire(): Promise<Worker> {
    const s = this.idle.pop() ?? (await this.spawn());
    s.busy = true;
    s.worker.ref();
    return s.worker;
  }

  get size(): number {
    return this.slots.size;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** Terminate every worker (idle or not). */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.slots.values()];
    this.idle.length = 0;
    this.slots.clear();
    // an unref'd worker would let the process exit before terminate() settles
    await Promise.all(all.map((s) => (s.worker.ref(), s.worker.terminate())));
  }

  /**
   * Return a worker whose vCPU has stopped (its loop posted 'stopped' as its last act). A run request sent
   * to it right away simply queues until its event loop takes it.
   */
  giveBack(worker: Worker): void {
    const s = this.slots.get(worker);
    if (s?.busy) this.release(s);
  }

  private release(s: Slot): void {
    if (this.closed) return; // being terminated: stay ref'd until it is gone
    s.busy = false;
    s.worker.unref();
    this.idle.push(s);
  }

  private spawn(): Promise<Slot> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(this.script);
      const slot: Slot = { worker, busy: true };
      let first = true;
      worker.on('message', (m: PoolMessage) => {
        if (m.type !== 'idle') return;
        if (first) {
          first = false;
          this.slots.set(worker, slot);
          resolve(slot);
        }
      });
      worker.on('error', (e) => {
        if (first) reject(e);
      });
      worker.on('exit', () => {
        this.slots.delete(worker);
        const i = this.idle.indexOf(slot);
        if (i >= 0) this.idle.splice(i, 1);
      });
    });
  }
}

/** The process-wide pool used by createVm() unless one is given. */
export const defaultVcpuPool = new VcpuPool();

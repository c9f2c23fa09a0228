// One container of a sandbox: its record (what state.json holds), its processes (the init process, exec id
// '', and each `exec`), and the lifecycle transitions with the checks the OCI runtime spec (runtime.md) asks for:
//   created --start--> running --init exits--> stopped;  kill: created or running;  delete: created or stopped
//   (or --force);  exec: running.
// It knows no agent, VM or state store: the Sandbox (sandbox.ts) asks it whether a transition is allowed,
// does the work, then records the transition here and persists `record`.

import { RuntimeError } from './errors.js';
import { OCI_VERSION, type ContainerRecord, type ContainerStatus } from './state.js';

/** The exec id of a container's init process. */
export const INIT = '';

/** One process of a container, as the sandbox tracks it. */
export interface ContainerProcess {
  /** exit code once the process has exited */
  exit: number | undefined;
  tty: boolean;
}

export interface NewContainer {
  id: string;
  sandboxId: string;
  bundle: string;
  annotations: Record<string, string>;
  /** block slot of its rootfs image in the sandbox VM (shared_fs = "none"); undefined when shared over virtio-fs */
  slot?: number;
  /** process.terminal of its init process */
  tty: boolean;
}

export class Container {
  readonly id: string;
  readonly slot: number | undefined;
  /** what state.json holds; the Sandbox writes it after each transition */
  readonly record: ContainerRecord;
  private readonly procs = new Map<string, ContainerProcess>();
  private readonly waiters = new Map<string, ((code: number) => void)[]>();

  constructor(n: NewContainer, now = new Date()) {
    this.id = n.id;
    this.slot = n.slot;
    this.record = {
      ociVersion: OCI_VERSION,
      id: n.id,
      status: 'created',
      pid: 0,
      pidStart: 0,
      bundle: n.bundle,
      annotations: n.annotations,
      sandboxId: n.sandboxId,
      created: now.toISOString(),
      ...(n.slot !== undefined ? { slot: n.slot } : {}),
    };
    this.procs.set(INIT, { exit: undefined, tty: n.tty });
  }

  get status(): ContainerStatus {
    return this.record.status;
  }

  /** The process `exec` ('' = init); RuntimeError NOT_FOUND when the container has none by that id. */
  process(exec: string): ContainerProcess {
    const p = this.procs.get(exec);
    if (!p) throw new RuntimeError('NOT_FOUND', `no process '${exec}' in container '${this.id}'`);
    return p;
  }

  /** Exec ids of every process, init first. */
  get execIds(): string[] {
    return [...this.procs.keys()];
  }

  checkStart(): void {
    if (this.status !== 'created') throw new RuntimeError('STATE', `container '${this.id}' is ${this.status}, not created: only a created container can be started`);
  }

  /** created → running: the agent started the init process (checkStart() passed before the call). */
  started(): void {
    this.record.status = 'running';
  }

  /** running → paused (`pause`: the agent froze the container's cgroup in the guest). */
  checkPause(): void {
    if (this.status !== 'running') throw new RuntimeError('STATE', `container '${this.id}' is ${this.status}: only a running container can be paused`);
  }

  paused(): void {
    this.record.status = 'paused';
  }

  checkResume(): void {
    if (this.status !== 'paused') throw new RuntimeError('STATE', `container '${this.id}' is ${this.status}, not paused: nothing to resume`);
  }

  resumed(): void {
    this.record.status = 'running';
  }

  checkKill(): void {
    if (this.status === 'stopped') throw new RuntimeError('STATE', `container '${this.id}' is stopped: nothing to signal`);
  }

  checkDelete(force: boolean): void {
    if (this.status !== 'stopped' && this.status !== 'created' && !force) {
      throw new RuntimeError('STATE', `container '${this.id}' is ${this.status}: stop it first (kata-ts kill) or use delete --force`);
    }
  }

  checkExec(): void {
    if (this.status !== 'running') throw new RuntimeError('STATE', `container '${this.id}' is ${this.status}: exec needs a running container`);
  }

  /** A process the agent started with ExecProcess (checkExec() passed before the call). */
  addExec(exec: string, tty: boolean): void {
    if (this.procs.has(exec)) throw new RuntimeError('EXISTS', `process '${exec}' exists in container '${this.id}'`);
    this.procs.set(exec, { exit: undefined, tty });
  }

  /** The stdio relay of `exec` announced its host pid; for init it becomes state.pid (`pidStart` its start time). */
  setRelay(exec: string, pid: number, pidStart: number): void {
    this.process(exec);
    if (exec === INIT) {
      this.record.pid = pid;
      this.record.pidStart = pidStart;
    }
  }

  /**
   * Records that `exec` exited with `code` and wakes its waiters. The init process's exit stops the container
   * (running or created → stopped, with its exit code). Returns false when it had exited already.
   */
  exited(exec: string, code: number): boolean {
    const p = this.procs.get(exec);
    if (!p || p.exit !== undefined) return false;
    p.exit = code;
    for (const w of this.waiters.get(exec)?.splice(0) ?? []) w(code);
    if (exec === INIT) {
      this.record.status = 'stopped';
      this.record.exitCode = code;
    }
    return true;
  }

  /** Calls `fn` with the exit code of `exec` once it has exited (at once if it has). */
  onExit(exec: string, fn: (code: number) => void): void {
    const p = this.process(exec);
    if (p.exit !== undefined) return fn(p.exit);
    const list = this.waiters.get(exec) ?? [];
    list.push(fn);
    this.waiters.set(exec, list);
  }

  /** The exit code of `exec`, once it has exited. */
  waitExit(exec: string): Promise<number> {
    this.process(exec);
    return new Promise((resolve) => this.onExit(exec, resolve));
  }
}

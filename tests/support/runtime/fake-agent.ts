// A fake guest agent for in-process runtime tests: a real ttRPC AgentService + Health server (src/agent) on the
// FakeHypervisor's vsock port 1024, and the stdio protocol (agent.proto "Process stdio") on port 1025. It keeps
// containers and processes in memory; the test makes a process exit (exit()) or gives it output (output()).
// SIGKILL/SIGTERM end a process as a real one would (exit 128+signal); DestroySandbox powers the VM off.

import type { Duplex } from 'node:stream';
import {
  AGENT_SERVICE,
  AGENT_STDIO_PORT,
  AGENT_TTRPC_PORT,
  Code,
  HEALTH_SERVICE,
  ServingStatus,
  StreamKind,
  TtrpcServer,
  TtrpcStatusError,
  agentCodecs,
  readStdioHeader,
  writeStdioAck,
  type CallContext,
  type CreateContainerRequest,
  type WaitProcessResponse,
} from '../../../src/agent/index.js';
import type { FakeHypervisor } from './fake-hypervisor.js';

export interface AgentCall {
  method: string;
  container_id?: string;
  exec_id?: string;
  signal?: number;
}

interface FakeProcess {
  result: WaitProcessResponse | undefined;
  exited: Promise<WaitProcessResponse>;
  resolve: (r: WaitProcessResponse) => void;
  output: Record<'stdout' | 'stderr', string>;
  stdin: string;
}

const key = (cid: string, exec = ''): string => `${cid}/${exec}`;

export class FakeAgent {
  /** every AgentService/Health call, in arrival order */
  readonly calls: AgentCall[] = [];
  readonly created = new Map<string, CreateContainerRequest>();
  /** ExecProcess process_json, parsed, by exec id */
  readonly execs = new Map<string, Record<string, unknown>>();
  private readonly procs = new Map<string, FakeProcess>();
  private readonly server = new TtrpcServer();

  /** @param o.ignoreDestroy DestroySandbox answers but the guest does not power off */
  constructor(
    private readonly hv: FakeHypervisor,
    private readonly o: { ignoreDestroy?: boolean } = {},
  ) {
    const empty = agentCodecs.Empty().encode({});
    const c = agentCodecs;
    this.server.register(HEALTH_SERVICE, {
      Check: () => {
        this.calls.push({ method: 'Check' });
        return c.HealthCheckResponse().encode({ status: ServingStatus.SERVING });
      },
    });
    this.server.register(AGENT_SERVICE, {
      CreateContainer: (p) => {
        const r = c.CreateContainerRequest().decode(p);
        this.calls.push({ method: 'CreateContainer', container_id: r.container_id });
        if (this.created.has(r.container_id)) throw new TtrpcStatusError(Code.ALREADY_EXISTS, `container ${r.container_id} exists`);
        this.created.set(r.container_id, r);
        this.addProcess(r.container_id, '');
        return empty;
      },
      StartContainer: (p) => {
        const r = c.StartContainerRequest().decode(p);
        this.calls.push({ method: 'StartContainer', container_id: r.container_id });
        this.mustHave(r.container_id);
        return empty;
      },
      ExecProcess: (p) => {
        const r = c.ExecProcessRequest().decode(p);
        this.calls.push({ method: 'ExecProcess', container_id: r.container_id, exec_id: r.exec_id });
        this.mustHave(r.container_id);
        this.execs.set(r.exec_id, JSON.parse(Buffer.from(r.process_json).toString('utf8')) as Record<string, unknown>);
        this.addProcess(r.container_id, r.exec_id);
        return empty;
      },
      SignalProcess: (p) => {
        const r = c.SignalProcessRequest().decode(p);
        this.calls.push({ method: 'SignalProcess', container_id: r.container_id, exec_id: r.exec_id ?? '', signal: r.signal });
        this.mustHave(r.container_id);
        // SIGKILL and SIGTERM end the fake process as they would end a shell
        if (r.signal === 9 || r.signal === 15) this.exit(r.container_id, r.exec_id ?? '', 128 + r.signal, r.signal);
        return empty;
      },
      WaitProcess: async (p, ctx: CallContext) => {
        const r = c.WaitProcessRequest().decode(p);
        this.calls.push({ method: 'WaitProcess', container_id: r.container_id, exec_id: r.exec_id ?? '' });
        const proc = this.procs.get(key(r.container_id, r.exec_id));
        if (!proc) throw new TtrpcStatusError(Code.NOT_FOUND, `process ${key(r.container_id, r.exec_id)} not found`);
        const res = await Promise.race([
          proc.exited,
          new Promise<never>((_, reject) => ctx.signal.addEventListener('abort', () => reject(new TtrpcStatusError(Code.CANCELLED, 'connection closed')), { once: true })),
        ]);
        return c.WaitProcessResponse().encode(res);
      },
      ListProcesses: (p) => {
        const r = c.ListProcessesRequest().decode(p);
        this.calls.push({ method: 'ListProcesses', container_id: r.container_id });
        this.mustHave(r.container_id);
        // one guest process per live process of the container, pid = 1 + its index among them
        const live = [...this.procs.entries()].filter(([k, v]) => k.startsWith(key(r.container_id)) && v.result === undefined);
        const now = Math.floor(Date.now() / 1000);
        return c.ListProcessesResponse().encode({
          processes: live.map(([k], i) => ({ pid: i + 1, ppid: 0, uid: 0, start_time: now, cpu_millis: 0, tty: '', cmd: `fake ${k}` })),
        });
      },
      RemoveContainer: (p) => {
        const r = c.RemoveContainerRequest().decode(p);
        this.calls.push({ method: 'RemoveContainer', container_id: r.container_id });
        this.mustHave(r.container_id);
        for (const k of this.procs.keys()) if (k.startsWith(key(r.container_id))) this.exit(r.container_id, k.slice(r.container_id.length + 1), 137, 9);
        this.created.delete(r.container_id);
        return empty;
      },
      DestroySandbox: () => {
        this.calls.push({ method: 'DestroySandbox' });
        if (!this.o.ignoreDestroy) setImmediate(() => this.hv.powerOff());
        return empty;
      },
    });
    hv.vsock.guestListen(AGENT_TTRPC_PORT, (s) => this.server.serve(s));
    hv.vsock.guestListen(AGENT_STDIO_PORT, (s) => void this.serveStdio(s));
  }

  /** The method names of `calls`, optionally only those about one container. */
  methods(containerId?: string): string[] {
    return this.calls.filter((x) => containerId === undefined || x.container_id === containerId).map((x) => x.method);
  }

  /** The process exits (its WaitProcess answers; its output streams end). */
  exit(cid: string, exec: string, exitCode: number, signal = 0): void {
    const p = this.procs.get(key(cid, exec));
    if (!p || p.result) return;
    p.result = { exit_code: exitCode, signal };
    p.resolve(p.result);
  }

  /** What the process writes to stdout or stderr (sent when the stream is attached). */
  output(cid: string, exec: string, stream: 'stdout' | 'stderr', text: string): void {
    this.procs.get(key(cid, exec))!.output[stream] = text;
  }

  /** What arrived on the process's stdin. */
  stdin(cid: string, exec = ''): string {
    return this.procs.get(key(cid, exec))?.stdin ?? '';
  }

  private addProcess(cid: string, exec: string): void {
    let resolve!: (r: WaitProcessResponse) => void;
    const exited = new Promise<WaitProcessResponse>((r) => (resolve = r));
    this.procs.set(key(cid, exec), { result: undefined, exited, resolve, output: { stdout: '', stderr: '' }, stdin: '' });
  }

  private mustHave(cid: string): void {
    if (!this.created.has(cid)) throw new TtrpcStatusError(Code.NOT_FOUND, `container ${cid} not found`);
  }

  private async serveStdio(s: Duplex): Promise<void> {
    s.on('error', () => undefined);
    const h = await readStdioHeader(s).catch(() => undefined);
    if (!h) return void s.destroy();
    const p = this.procs.get(key(h.container_id, h.exec_id));
    if (!p) {
      writeStdioAck(s, { code: Code.NOT_FOUND, message: `no process ${key(h.container_id, h.exec_id)}` });
      return void s.end();
    }
    writeStdioAck(s, { code: 0, message: '' });
    if (h.kind === StreamKind.STDIN) {
      s.on('data', (b: Buffer) => (p.stdin += b.toString('utf8')));
      s.resume();
      return;
    }
    s.write(p.output[h.kind === StreamKind.STDOUT ? 'stdout' : 'stderr']);
    await p.exited;
    s.end();
  }
}

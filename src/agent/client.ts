// Typed client of the guest agent (agent.proto) over one ttRPC connection: a Duplex such as the in-process
// vsock stream to guest port 1024, or a unix socket in tests. Knows no VMM.
import type { Duplex } from 'node:stream';
import { agentCodecs } from './agent-codecs.js';
import {
  AGENT_SERVICE,
  HEALTH_SERVICE,
  type CheckRequest,
  type CloseStdinRequest,
  type CreateContainerRequest,
  type CreateSandboxRequest,
  type ExecProcessRequest,
  type GuestDetailsResponse,
  type HealthCheckResponse,
  type OOMEvent,
  type PauseContainerRequest,
  type ResumeContainerRequest,
  type RemoveContainerRequest,
  type SignalProcessRequest,
  type StartContainerRequest,
  type StatsContainerRequest,
  type StatsContainerResponse,
  type ListProcessesRequest,
  type ProcessStatus,
  type TtyWinResizeRequest,
  type UpdateContainerRequest,
  type WaitProcessRequest,
  type WaitProcessResponse,
} from './agent-types.js';
import type { MessageCodec } from './proto-codec.js';
import { TtrpcClient, type CallOptions, type TtrpcClientOptions } from './ttrpc-client.js';
import { MalformedMessage, PeerGone } from './ttrpc-errors.js';

export type AgentCallOptions = Omit<CallOptions, 'metadata'>;

/** agent.proto header: ids are 1..64 bytes of [A-Za-z0-9_.-], not starting with '.'. */
const AGENT_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;
/** ListProcessesResponse bounds: the agent lists at most 4096; PID_MAX_LIMIT is 2^22 on 64-bit Linux. */
const MAX_LISTED_PROCESSES = 4096;
const PID_MAX = 1 << 22;

export class AgentClient {
  private readonly rpc: TtrpcClient;

  /** `options.timeoutMs` is the default per call (30 s); WaitProcess waits without one unless given. */
  constructor(conn: Duplex, options: TtrpcClientOptions = {}) {
    this.rpc = new TtrpcClient(conn, options);
  }

  get closed(): boolean {
    return this.rpc.closed;
  }

  close(): void {
    this.rpc.close();
  }

  check(req: CheckRequest = {}, opts?: AgentCallOptions): Promise<HealthCheckResponse> {
    return this.call(HEALTH_SERVICE, 'Check', agentCodecs.CheckRequest(), agentCodecs.HealthCheckResponse(), req, opts);
  }

  async createSandbox(req: CreateSandboxRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('CreateSandbox', agentCodecs.CreateSandboxRequest(), req, opts);
  }

  /** The agent answers, then powers the VM off; expect the connection to drop afterwards. */
  /**
   * Stop every container and power the VM off. The agent replies before it powers off, but the VM can go down
   * before the reply crosses vsock (the guest's transport or the device is torn down first): a connection lost
   * during this call means the sandbox is going away, which is what was asked, so it is not an error.
   */
  async destroySandbox(opts?: AgentCallOptions): Promise<void> {
    try {
      await this.agent('DestroySandbox', agentCodecs.DestroySandboxRequest(), {}, opts);
    } catch (e) {
      if (!(e instanceof PeerGone)) throw e;
    }
  }

  async createContainer(req: CreateContainerRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('CreateContainer', agentCodecs.CreateContainerRequest(), req, opts);
  }

  async startContainer(req: StartContainerRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('StartContainer', agentCodecs.StartContainerRequest(), req, opts);
  }

  async removeContainer(req: RemoveContainerRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('RemoveContainer', agentCodecs.RemoveContainerRequest(), req, opts);
  }

  async execProcess(req: ExecProcessRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('ExecProcess', agentCodecs.ExecProcessRequest(), req, opts);
  }

  async signalProcess(req: SignalProcessRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('SignalProcess', agentCodecs.SignalProcessRequest(), req, opts);
  }

  /** Blocks until the process exits; no timeout unless `opts.timeoutMs` is given. */
  async waitProcess(req: WaitProcessRequest, opts: AgentCallOptions = {}): Promise<WaitProcessResponse> {
    const res = await this.call(AGENT_SERVICE, 'WaitProcess', agentCodecs.WaitProcessRequest(), agentCodecs.WaitProcessResponse(), req, { timeoutMs: 0, ...opts });
    // agent.proto WaitProcessResponse: exit_code 0..255 (128 + signal when killed), signal 0..64. Guest-controlled.
    if (res.exit_code < 0 || res.exit_code > 255 || res.signal > 64) {
      throw new MalformedMessage('kata_ts.agent.WaitProcessResponse', `exit_code ${res.exit_code} / signal ${res.signal} out of range (0..255 / 0..64)`);
    }
    return res;
  }

  statsContainer(req: StatsContainerRequest, opts?: AgentCallOptions): Promise<StatsContainerResponse> {
    return this.call(AGENT_SERVICE, 'StatsContainer', agentCodecs.StatsContainerRequest(), agentCodecs.StatsContainerResponse(), req, opts);
  }

  /** The container's processes (guest pids). The guest's answer is checked: at most 4096, pids 1..2^22, short strings, exact times. */
  async listProcesses(req: ListProcessesRequest, opts?: AgentCallOptions): Promise<ProcessStatus[]> {
    const res = await this.call(AGENT_SERVICE, 'ListProcesses', agentCodecs.ListProcessesRequest(), agentCodecs.ListProcessesResponse(), req, opts);
    const name = 'kata_ts.agent.ListProcessesResponse';
    if (res.processes.length > MAX_LISTED_PROCESSES) throw new MalformedMessage(name, `${res.processes.length} processes (at most ${MAX_LISTED_PROCESSES})`);
    for (const p of res.processes) {
      // PID_MAX_LIMIT is 2^22 on 64-bit Linux; ppid 0 is the kernel's
      if (p.pid < 1 || p.pid > PID_MAX || p.ppid > PID_MAX) throw new MalformedMessage(name, `pid ${p.pid} / ppid ${p.ppid} out of range (1..${PID_MAX})`);
      if (p.tty.length > 32 || p.cmd.length > 8192) throw new MalformedMessage(name, `pid ${p.pid}: tty or command line too long`);
      // uint64 fields arrive as numbers: past 2^53 they are not exact (and no clock or CPU time is that large)
      if (!Number.isSafeInteger(p.start_time) || !Number.isSafeInteger(p.cpu_millis)) throw new MalformedMessage(name, `pid ${p.pid}: start_time ${p.start_time} / cpu_millis ${p.cpu_millis} beyond 2^53`);
    }
    return res.processes;
  }

  async ttyWinResize(req: TtyWinResizeRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('TtyWinResize', agentCodecs.TtyWinResizeRequest(), req, opts);
  }

  async closeStdin(req: CloseStdinRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('CloseStdin', agentCodecs.CloseStdinRequest(), req, opts);
  }

  /** Freezes every process of a running container (`runc pause` in the guest). */
  async pauseContainer(req: PauseContainerRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('PauseContainer', agentCodecs.PauseContainerRequest(), req, opts);
  }

  /** Thaws a paused container (`runc resume`). */
  async resumeContainer(req: ResumeContainerRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('ResumeContainer', agentCodecs.ResumeContainerRequest(), req, opts);
  }

  /** New cgroup limits for a container (`runc update --resources` in the guest); `resources_json` is OCI LinuxResources. */
  async updateContainer(req: UpdateContainerRequest, opts?: AgentCallOptions): Promise<void> {
    await this.agent('UpdateContainer', agentCodecs.UpdateContainerRequest(), req, opts);
  }

  /**
   * Long poll: the next container whose cgroup saw an OOM kill. Blocks until there is one; no timeout unless
   * `opts.timeoutMs` is given (cancel with `opts.signal`). The id comes from the guest and is checked here.
   */
  async getOomEvent(opts: AgentCallOptions = {}): Promise<OOMEvent> {
    const res = await this.call(AGENT_SERVICE, 'GetOOMEvent', agentCodecs.GetOOMEventRequest(), agentCodecs.OOMEvent(), {}, { timeoutMs: 0, ...opts });
    if (!AGENT_ID.test(res.container_id)) {
      throw new MalformedMessage('kata_ts.agent.OOMEvent', `container_id ${JSON.stringify(res.container_id.slice(0, 80))} is not 1..64 characters of [A-Za-z0-9_.-]`);
    }
    return res;
  }

  getGuestDetails(opts?: AgentCallOptions): Promise<GuestDetailsResponse> {
    return this.call(AGENT_SERVICE, 'GetGuestDetails', agentCodecs.GuestDetailsRequest(), agentCodecs.GuestDetailsResponse(), {}, opts);
  }

  private agent<Req extends object>(method: string, reqCodec: MessageCodec<Req>, req: Req, opts?: AgentCallOptions): Promise<object> {
    return this.call(AGENT_SERVICE, method, reqCodec, agentCodecs.Empty(), req, opts);
  }

  private async call<Req extends object, Res extends object>(
    service: string,
    method: string,
    reqCodec: MessageCodec<Req>,
    resCodec: MessageCodec<Res>,
    req: Req,
    opts: AgentCallOptions = {},
  ): Promise<Res> {
    return resCodec.decode(await this.rpc.call(service, method, reqCodec.encode(req), opts));
  }
}

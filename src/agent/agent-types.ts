// TypeScript shapes of the agent.proto messages (field names as in the .proto). Decoded messages have every
// field (proto3 defaults); request fields marked optional may be left out and go on the wire as defaults.

export const AGENT_SERVICE = 'kata_ts.agent.AgentService';
export const HEALTH_SERVICE = 'kata_ts.agent.Health';
/** vsock port of the agent's ttRPC server (agent.proto header). */
export const AGENT_TTRPC_PORT = 1024;
/** vsock port of the agent's stdio streams (agent.proto header). */
export const AGENT_STDIO_PORT = 1025;

export type Empty = Record<string, never>;

export interface Storage {
  /** "blk" | "virtio-fs" | "tmpfs" | "bind" (agent.proto Storage.driver). */
  driver: string;
  source: string;
  mount_point: string;
  fstype?: string;
  options?: string[];
  driver_options?: string[];
}

export interface CreateSandboxRequest {
  sandbox_id: string;
  hostname?: string;
  dns?: string[];
  storages?: Storage[];
}

export type DestroySandboxRequest = Empty;

export interface CreateContainerRequest {
  container_id: string;
  /** The OCI runtime spec as UTF-8 JSON bytes. */
  oci_spec_json: Uint8Array;
  storages?: Storage[];
  rootfs: string;
}

export interface StartContainerRequest {
  container_id: string;
}

export interface RemoveContainerRequest {
  container_id: string;
  timeout_seconds?: number;
}

export interface ExecProcessRequest {
  container_id: string;
  exec_id: string;
  /** An OCI Process object as UTF-8 JSON bytes. */
  process_json: Uint8Array;
}

export interface SignalProcessRequest {
  container_id: string;
  exec_id?: string;
  signal: number;
  all?: boolean;
}

export interface WaitProcessRequest {
  container_id: string;
  exec_id?: string;
}

export interface WaitProcessResponse {
  exit_code: number;
  signal: number;
}

export interface StatsContainerRequest {
  container_id: string;
}

export interface CgroupStats {
  cpu_usage_usec: number;
  cpu_user_usec: number;
  cpu_system_usec: number;
  memory_current: number;
  memory_max: number;
  pids_current: number;
  pids_max: number;
}

export interface StatsContainerResponse {
  cgroup: CgroupStats | null;
}

export interface ListProcessesRequest {
  container_id: string;
}

/** One process as `ps -ef` shows it (agent.proto ProcessStatus); guest pids and the guest's clock. */
export interface ProcessStatus {
  pid: number;
  ppid: number;
  uid: number;
  /** seconds since the epoch */
  start_time: number;
  cpu_millis: number;
  /** "pts/N", "ttyN", "ttySN", "console" or "" (none) */
  tty: string;
  cmd: string;
}

export interface ListProcessesResponse {
  processes: ProcessStatus[];
}

export interface TtyWinResizeRequest {
  container_id: string;
  exec_id?: string;
  rows: number;
  columns: number;
}

export interface CloseStdinRequest {
  container_id: string;
  exec_id?: string;
}

export interface PauseContainerRequest {
  container_id: string;
}

export interface ResumeContainerRequest {
  container_id: string;
}

export interface UpdateContainerRequest {
  container_id: string;
  /** An OCI LinuxResources object (config.json's linux.resources) as UTF-8 JSON bytes. */
  resources_json: Uint8Array;
}

export type GetOOMEventRequest = Empty;

export interface OOMEvent {
  container_id: string;
}

export type GuestDetailsRequest = Empty;

export interface GuestDetailsResponse {
  agent_version: string;
  kernel_release: string;
  mem_total_bytes: number;
  cpus: number;
  runc_version: string;
  stdio_port: number;
}

export interface CheckRequest {
  service?: string;
}

export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2 } as const;

export interface HealthCheckResponse {
  status: number;
}

export const StreamKind = { STREAM_UNSPECIFIED: 0, STDIN: 1, STDOUT: 2, STDERR: 3 } as const;
export type StreamKindValue = (typeof StreamKind)[keyof typeof StreamKind];

export interface StdioStreamHeader {
  container_id: string;
  exec_id?: string;
  kind: StreamKindValue;
}

export interface StdioStreamAck {
  code: number;
  message: string;
}

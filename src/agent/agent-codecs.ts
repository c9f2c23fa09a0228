// One protobufjs codec per agent.proto message, created on first use.
import { MessageCodec } from './proto-codec.js';
import type * as T from './agent-types.js';

const cache = new Map<string, MessageCodec<object>>();

function codec<M extends object>(name: string): MessageCodec<M> {
  let c = cache.get(name);
  if (!c) {
    c = new MessageCodec<object>('agent.proto', `kata_ts.agent.${name}`);
    cache.set(name, c);
  }
  return c as MessageCodec<M>;
}

export const agentCodecs = {
  Empty: () => codec<T.Empty>('Empty'),
  Storage: () => codec<T.Storage>('Storage'),
  CreateSandboxRequest: () => codec<T.CreateSandboxRequest>('CreateSandboxRequest'),
  DestroySandboxRequest: () => codec<T.DestroySandboxRequest>('DestroySandboxRequest'),
  CreateContainerRequest: () => codec<T.CreateContainerRequest>('CreateContainerRequest'),
  StartContainerRequest: () => codec<T.StartContainerRequest>('StartContainerRequest'),
  RemoveContainerRequest: () => codec<T.RemoveContainerRequest>('RemoveContainerRequest'),
  ExecProcessRequest: () => codec<T.ExecProcessRequest>('ExecProcessRequest'),
  SignalProcessRequest: () => codec<T.SignalProcessRequest>('SignalProcessRequest'),
  WaitProcessRequest: () => codec<T.WaitProcessRequest>('WaitProcessRequest'),
  WaitProcessResponse: () => codec<T.WaitProcessResponse>('WaitProcessResponse'),
  StatsContainerRequest: () => codec<T.StatsContainerRequest>('StatsContainerRequest'),
  StatsContainerResponse: () => codec<T.StatsContainerResponse>('StatsContainerResponse'),
  ListProcessesRequest: () => codec<T.ListProcessesRequest>('ListProcessesRequest'),
  ListProcessesResponse: () => codec<T.ListProcessesResponse>('ListProcessesResponse'),
  TtyWinResizeRequest: () => codec<T.TtyWinResizeRequest>('TtyWinResizeRequest'),
  CloseStdinRequest: () => codec<T.CloseStdinRequest>('CloseStdinRequest'),
  PauseContainerRequest: () => codec<T.PauseContainerRequest>('PauseContainerRequest'),
  ResumeContainerRequest: () => codec<T.ResumeContainerRequest>('ResumeContainerRequest'),
  UpdateContainerRequest: () => codec<T.UpdateContainerRequest>('UpdateContainerRequest'),
  GetOOMEventRequest: () => codec<T.GetOOMEventRequest>('GetOOMEventRequest'),
  OOMEvent: () => codec<T.OOMEvent>('OOMEvent'),
  GuestDetailsRequest: () => codec<T.GuestDetailsRequest>('GuestDetailsRequest'),
  GuestDetailsResponse: () => codec<T.GuestDetailsResponse>('GuestDetailsResponse'),
  CheckRequest: () => codec<T.CheckRequest>('CheckRequest'),
  HealthCheckResponse: () => codec<T.HealthCheckResponse>('HealthCheckResponse'),
  StdioStreamHeader: () => codec<T.StdioStreamHeader>('StdioStreamHeader'),
  StdioStreamAck: () => codec<T.StdioStreamAck>('StdioStreamAck'),
};

// The task service on ttRPC: decodes each containerd.task.v2.Task request, calls TaskService and encodes the
// answer; errors become ttRPC statuses containerd maps to its errdefs (errors.ts).

import { Code, TtrpcServer, TtrpcStatusError, type UnaryHandler } from '../agent/index.js';
import type { RuntimeLogger } from '../runtime/log.js';
import { toStatus } from './errors.js';
import { codec } from './proto.js';
import type { TaskService } from './service.js';

export const TASK_SERVICE = 'containerd.task.v2.Task';

type Req = Record<string, never> & { id: string; exec_id: string };

/** One method: request type, response type ('' = google.protobuf.Empty) and the call. */
function method<Q extends object>(reqType: string, resType: string, fn: (req: Q) => Promise<object | void> | object | void, log: RuntimeLogger, name: string): UnaryHandler {
  return async (payload) => {
    let req: Q;
    try {
      req = codec<Q>(`containerd.task.v2.${reqType}`).decode(payload);
    } catch (e) {
      throw new TtrpcStatusError(Code.INVALID_ARGUMENT, `malformed ${reqType}: ${(e as Error).message}`);
    }
    try {
      const res = await fn(req);
      return codec(resType ? `containerd.task.v2.${resType}` : 'google.protobuf.Empty').encode((res ?? {}));
    } catch (e) {
      const st = toStatus(e);
      if (st.code === Code.INTERNAL) log.error(`${name} failed`, { error: st.details });
      throw st;
    }
  };
}

export function taskServer(svc: TaskService, log: RuntimeLogger): TtrpcServer {
  const server = new TtrpcServer({ onHandlerError: (e, ctx) => log.error('handler error', { method: ctx.method, error: String(e) }) });
  const m = <Q extends object>(name: string, reqType: string, resType: string, fn: (req: Q) => Promise<object | void> | object | void): [string, UnaryHandler] => [name, method<Q>(reqType, resType, fn, log, name)];
  server.register(
    TASK_SERVICE,
    Object.fromEntries([
      m<Req>('State', 'StateRequest', 'StateResponse', (r) => svc.state(r.id, r.exec_id)),
      m<Parameters<TaskService['create']>[0]>('Create', 'CreateTaskRequest', 'CreateTaskResponse', (r) => svc.create(r)),
      m<Req>('Start', 'StartRequest', 'StartResponse', (r) => svc.start(r.id, r.exec_id)),
      m<Req>('Delete', 'DeleteRequest', 'DeleteResponse', (r) => svc.delete(r.id, r.exec_id)),
      m<Req>('Pids', 'PidsRequest', 'PidsResponse', (r) => svc.pids(r.id)),
      m<Req>('Pause', 'PauseRequest', '', (r) => svc.pause(r.id)),
      m<Req>('Resume', 'ResumeRequest', '', (r) => svc.resume(r.id)),
      m<Req>('Checkpoint', 'CheckpointTaskRequest', '', () => {
        throw new TtrpcStatusError(Code.UNIMPLEMENTED, 'checkpoint is not supported by kata-ts: a VM sandbox has no CRIU checkpoint (use VM templates/snapshots instead)');
      }),
      m<Req & { signal: number; all: boolean }>('Kill', 'KillRequest', '', (r) => svc.kill(r.id, r.exec_id, r.signal, r.all)),
      m<Parameters<TaskService['exec']>[0]>('Exec', 'ExecProcessRequest', '', (r) => svc.exec(r)),
      m<Req & { width: number; height: number }>('ResizePty', 'ResizePtyRequest', '', (r) => svc.resizePty(r.id, r.exec_id, r.width, r.height)),
      m<Req & { stdin: boolean }>('CloseIO', 'CloseIORequest', '', (r) => svc.closeIo(r.id, r.exec_id, r.stdin)),
      m<Parameters<TaskService['update']>[0]>('Update', 'UpdateTaskRequest', '', (r) => svc.update(r)),
      m<Req>('Wait', 'WaitRequest', 'WaitResponse', (r) => svc.wait(r.id, r.exec_id)),
      m<Req>('Stats', 'StatsRequest', 'StatsResponse', (r) => svc.stats(r.id)),
      m<Req>('Connect', 'ConnectRequest', 'ConnectResponse', (r) => svc.connect(r.id)),
      m<Req>('Shutdown', 'ShutdownRequest', '', () => svc.shutdown()),
    ]),
  );
  return server;
}

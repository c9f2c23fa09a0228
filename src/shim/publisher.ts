// Events to containerd: each is forwarded over ttRPC to containerd's TTRPC_ADDRESS with
// containerd.services.events.ttrpc.v1.Events/Forward (containerd 1.6 runtime/v2/shim/publisher.go), one at a
// time and in the order they were published; a failed forward is retried (after 1, 2, ... 5 s, as containerd's
// publisher does) before later events go, then dropped with a log line.

import { connect, type Socket } from 'node:net';
import { TtrpcClient } from '../agent/index.js';
import type { RuntimeLogger } from '../runtime/log.js';
import { codec, timestamp, type Any, type Timestamp } from './proto.js';
import { socketPath } from './address.js';

export const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';
/** ttRPC metadata key of the containerd namespace (namespaces/ttrpc.go TTRPCHeader) */
export const NAMESPACE_HEADER = 'containerd-namespace-ttrpc';

/** runtime/events.go topics, by event message name */
export const TOPICS = {
  TaskCreate: '/tasks/create',
  TaskStart: '/tasks/start',
  TaskExit: '/tasks/exit',
  TaskDelete: '/tasks/delete',
  TaskExecAdded: '/tasks/exec-added',
  TaskExecStarted: '/tasks/exec-started',
  TaskPaused: '/tasks/paused',
  TaskResumed: '/tasks/resumed',
  TaskOOM: '/tasks/oom',
} as const;
export type EventName = keyof typeof TOPICS;

interface Envelope {
  timestamp: Timestamp;
  namespace: string;
  topic: string;
  event: Any;
}

const MAX_TRIES = 6;

export class Publisher {
  private client: TtrpcClient | undefined;
  private sock: Socket | undefined;
  private tail: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly address: string,
    private readonly namespace: string,
    private readonly log: RuntimeLogger,
  ) {}

  /** Queues one event (containerd.events.<name>); returns at once. */
  publish(name: EventName, event: object): void {
    if (!this.address) return; // containerd gave no TTRPC_ADDRESS (a shim run by hand): nowhere to send
    const env: Envelope = { timestamp: timestamp(new Date()), namespace: this.namespace, topic: TOPICS[name], event: codec(`containerd.events.${name}`).any(event) };
    this.tail = this.tail.then(() => this.forward(env));
  }

  /** Resolves when every queued event was sent or dropped. */
  flush(): Promise<void> {
    return this.tail;
  }

  close(): void {
    this.closed = true;
    this.client?.close();
  }

  private connection(): Promise<TtrpcClient> {
    if (this.client && !this.client.closed) return Promise.resolve(this.client);
    return new Promise((resolve, reject) => {
      const s = connect(socketPath(this.address));
      s.once('connect', () => {
        s.off('error', reject);
        s.on('error', () => undefined);
        this.sock = s;
        this.client = new TtrpcClient(s, { timeoutMs: 5000 });
        resolve(this.client);
      });
      s.once('error', reject);
    });
  }

  private async forward(env: Envelope): Promise<void> {
    const payload = codec('containerd.services.events.ttrpc.v1.ForwardRequest').encode({ envelope: env });
    for (let attempt = 1; attempt <= MAX_TRIES && !this.closed; attempt++) {
      try {
        const c = await this.connection();
        await c.call(EVENTS_SERVICE, 'Forward', payload, { metadata: { [NAMESPACE_HEADER]: this.namespace } });
        return;
      } catch (e) {
        this.sock?.destroy();
        this.client = undefined;
        if (attempt === MAX_TRIES) break;
        this.log.error('forwarding an event failed; retrying', { topic: env.topic, attempt, error: (e as Error).message });
        await new Promise((r) => setTimeout(r, attempt * 1000));
      }
    }
    this.log.error('event dropped', { topic: env.topic });
  }
}

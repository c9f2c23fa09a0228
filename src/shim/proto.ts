// containerd's shim v2 protocol files (src/shim/proto/, vendored and trimmed from containerd 1.6), loaded with
// protobufjs, and typed codecs for the messages the shim reads and writes. google.protobuf.{Any,Empty,Timestamp}
// come with protobufjs. Field names keep the .proto's snake_case.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const FILES = ['shim.proto', 'events.proto', 'ttrpc-events.proto', 'cgroups-v2-metrics.proto', 'runtimeoptions.proto'] as const;

/** The shim's proto directory: beside the compiled module, else src/shim/proto (dist/src/shim → src/shim). */
export function protoDir(): string {
  const tried = [new URL('./proto/', import.meta.url), new URL('../../../src/shim/proto/', import.meta.url)].map((u) => fileURLToPath(u));
  for (const d of tried) if (existsSync(join(d, 'shim.proto'))) return d;
  throw new Error(`cannot find containerd's shim.proto (tried ${tried.join(', ')}); it ships in src/shim/proto/ of the kata-ts package`);
}

let root: protobuf.Root | undefined;

function protoRoot(): protobuf.Root {
  if (!root) {
    const dir = protoDir();
    root = new protobuf.Root().loadSync(FILES.map((f) => join(dir, f)), { keepCase: true });
    root.resolveAll();
  }
  return root;
}

/** A protobuf Timestamp; numbers, as toObject gives them with longs: Number. */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

/** google.protobuf.Any */
export interface Any {
  type_url: string;
  value: Uint8Array;
}

export function timestamp(d: Date): Timestamp {
  const ms = d.getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

/** Encode/decode of one message type by its full name. */
export class Codec<T extends object> {
  private readonly type: protobuf.Type;
  constructor(readonly fullName: string) {
    this.type = protoRoot().lookupType(fullName);
  }
  encode(value: T): Uint8Array {
    const problem = this.type.verify(value);
    if (problem) throw new Error(`cannot encode ${this.fullName}: ${problem}`);
    return this.type.encode(this.type.fromObject(value)).finish();
  }
  /** Throws for bytes that are not this message. */
  decode(bytes: Uint8Array): T {
    return this.type.toObject(this.type.decode(bytes), { defaults: true, arrays: true, longs: Number, enums: Number }) as T;
  }
  /** An Any holding `value` (type URL: the message's full name, as containerd's typeurl writes it). */
  any(value: T): Any {
    return { type_url: this.fullName, value: this.encode(value) };
  }
}

const cache = new Map<string, Codec<object>>();
/** The codec of a message, made on first use. */
export function codec<T extends object>(fullName: string): Codec<T> {
  let c = cache.get(fullName);
  if (!c) {
    c = new Codec<object>(fullName);
    cache.set(fullName, c);
  }
  return c as Codec<T>;
}

/** containerd.v1.types.Status */
export const TaskStatus = { UNKNOWN: 0, CREATED: 1, RUNNING: 2, STOPPED: 3, PAUSED: 4, PAUSING: 5 } as const;

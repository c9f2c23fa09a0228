// Loads the .proto files that sit next to this module's source (src/agent/) with protobufjs.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export type ProtoFileName = 'agent.proto' | 'ttrpc.proto';

export class ProtoFileMissing extends Error {
  constructor(name: string, tried: string[]) {
    super(`cannot find ${name} (tried ${tried.join(', ')}); it ships in src/agent/ of the kata-ts package`);
    this.name = 'ProtoFileMissing';
  }
}

/** Absolute path of a proto file: beside the compiled module, else in src/agent/ (dist/src/agent → src/agent). */
export function protoPath(name: ProtoFileName): string {
  const tried = [new URL(`./${name}`, import.meta.url), new URL(`../../../src/agent/${name}`, import.meta.url)].map((u) => fileURLToPath(u));
  for (const p of tried) if (existsSync(p)) return p;
  throw new ProtoFileMissing(name, tried);
}

const roots = new Map<ProtoFileName, protobuf.Root>();

/** The parsed file (cached). Field names keep the .proto's snake_case. */
export function protoRoot(name: ProtoFileName): protobuf.Root {
  let root = roots.get(name);
  if (!root) {
    root = protobuf.parse(readFileSync(protoPath(name), 'utf8'), { keepCase: true }).root;
    root.resolveAll();
    roots.set(name, root);
  }
  return root;
}

// The shim's command line, as containerd 1.6 builds it (runtime/v2/shim/util.go Command, binary.go):
//   containerd-shim-kata-ts-v2 -namespace NS -address ADDR -publish-binary BIN [-id ID] [-bundle DIR] [-debug] ACTION
// ACTION is `start` (launch or find the shim, print its address), `delete` (clean up after a dead shim) or none
// (the long-lived shim itself). Go's flag package rules: `-name value`, `-name=value`, `--name`; flags stop at
// the first argument that is not one. Environment: TTRPC_ADDRESS (where events go), GRPC_ADDRESS, NAMESPACE.

export type Action = 'start' | 'delete' | 'serve';

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  debug: boolean;
  action: Action;
  /** containerd's ttRPC address (TTRPC_ADDRESS), where events are forwarded */
  ttrpcAddress: string;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const STRING_FLAGS: Record<string, keyof ShimFlags> = {
  namespace: 'namespace',
  address: 'address',
  'publish-binary': 'publishBinary',
  id: 'id',
  bundle: 'bundle',
  socket: 'address', // containerd 1.2's name; accepted and ignored as address only when -address is absent
};

export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ShimFlags {
  const f: ShimFlags = {
    namespace: env['NAMESPACE'] ?? '',
    address: env['GRPC_ADDRESS'] ?? '',
    publishBinary: '',
    id: '',
    bundle: '',
    debug: false,
    action: 'serve',
    ttrpcAddress: env['TTRPC_ADDRESS'] ?? '',
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (name === 'debug' || name === 'v') {
      if (name === 'debug') f.debug = eq < 0 || body.slice(eq + 1) !== 'false';
      continue;
    }
    const key = STRING_FLAGS[name];
    if (!key) throw new UsageError(`flag provided but not defined: -${name}`);
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`flag needs an argument: -${name}`);
      value = next;
      i++;
    }
    (f as unknown as Record<string, string>)[key] = value;
  }
  const action = argv[i];
  if (action !== undefined) {
    if (action !== 'start' && action !== 'delete') throw new UsageError(`unknown action '${action}': expected start or delete`);
    f.action = action;
  }
  if (!f.namespace) throw new UsageError('shim namespace cannot be empty (-namespace)');
  if (f.action !== 'serve' && !f.id) throw new UsageError(`-id is required for ${f.action}`);
  return f;
}

/** The argv that re-runs the shim with the same flags and no action (the long-lived shim). */
export function serveArgs(f: ShimFlags): string[] {
  const out = ['-namespace', f.namespace, '-id', f.id, '-address', f.address];
  if (f.publishBinary) out.push('-publish-binary', f.publishBinary);
  if (f.debug) out.push('-debug');
  return out;
}

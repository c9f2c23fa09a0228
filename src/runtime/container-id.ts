// The one rule for container ids, used by the runtime (state directories, the control protocol) and the
// command line alike: [A-Za-z0-9_.-], 1..64 characters, not starting with '.'. The OCI runtime spec leaves the
// rule to the runtime; runc's `[\w+.-]` is narrowed by the agent (agent.proto), which limits ids to 64 bytes,
// and by the id naming a directory under the state root (no '.', '..', '/', no hidden names).

import { RuntimeError } from './errors.js';

/** The longest id, and the most of a rejected id an error message repeats. */
export const MAX_ID_LENGTH = 64;

export function isValidId(id: string): boolean {
  return /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/.test(id);
}

/** `id` as an error message shows it: quoted and escaped, cut to its first 64 characters + '...'. */
export function idForMessage(id: string): string {
  return JSON.stringify(id.length > MAX_ID_LENGTH ? `${id.slice(0, MAX_ID_LENGTH)}...` : id);
}

/** The id itself, or RuntimeError INVALID with the one message every command gives. */
export function checkContainerId(id: string): string {
  if (!isValidId(id)) {
    throw new RuntimeError('INVALID', `invalid container id ${idForMessage(id)}: use 1..${MAX_ID_LENGTH} characters of [A-Za-z0-9_.-], not starting with '.'`);
  }
  return id;
}

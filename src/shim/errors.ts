// Errors the task service answers with: a google.rpc code that containerd maps to its errdefs (errdefs/grpc.go:
// NotFound, AlreadyExists, FailedPrecondition, InvalidArgument, Unimplemented; anything else Unknown/Internal).

import { Code, TtrpcStatusError } from '../agent/index.js';
import { RuntimeError, type RuntimeErrorCode } from '../runtime/errors.js';

export type ShimErrorCode = 'NOT_FOUND' | 'ALREADY_EXISTS' | 'FAILED_PRECONDITION' | 'INVALID_ARGUMENT' | 'UNIMPLEMENTED' | 'INTERNAL';

export class ShimError extends Error {
  constructor(
    readonly code: ShimErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ShimError';
  }
}

const FROM_RUNTIME: Record<RuntimeErrorCode, ShimErrorCode> = {
  NOT_FOUND: 'NOT_FOUND',
  EXISTS: 'ALREADY_EXISTS',
  INVALID: 'INVALID_ARGUMENT',
  STATE: 'FAILED_PRECONDITION',
  INTERNAL: 'INTERNAL',
};

/** Any error of a handler as the ttRPC status containerd gets. */
export function toStatus(e: unknown): TtrpcStatusError {
  if (e instanceof TtrpcStatusError) return e;
  if (e instanceof ShimError) return new TtrpcStatusError(Code[e.code], e.message);
  if (e instanceof RuntimeError) return new TtrpcStatusError(Code[FROM_RUNTIME[e.code]], e.message);
  return new TtrpcStatusError(Code.INTERNAL, e instanceof Error ? e.message : String(e));
}

// Errors of the typed KVM layer. The addon throws NativeError-shaped Errors; wrapNative() turns them
// into KvmError so callers can `instanceof` them. Argument TypeErrors/RangeErrors pass through.

import type { NativeError } from './native.js';

/** A KVM ioctl or related syscall failed. */
export class KvmError extends Error {
  override name = 'KvmError';
  /** errno name, e.g. 'EINVAL' */
  readonly code: string;
  /** positive errno */
  readonly errno: number;
  /** the ioctl or syscall name, e.g. 'KVM_CREATE_VCPU' */
  readonly syscall: string;
  constructor(message: string, code: string, errno: number, syscall: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** KVM_SET_MSRS stopped early: the MSR at `index` (the first one not set) was rejected. */
export class MsrWriteError extends Error {
  override name = 'MsrWriteError';
  constructor(
    readonly index: number,
    readonly written: number,
    readonly requested: number,
  ) {
    super(`KVM_SET_MSRS set ${written} of ${requested} MSRs; MSR 0x${index.toString(16)} was rejected (check the CPUID/MSR setup)`);
  }
}

/** A method was called on a KVM fd wrapper after close(). */
export class FdClosedError extends Error {
  override name = 'FdClosedError';
  constructor(what: string) {
    super(`${what} is closed`);
  }
}

export function isNativeError(e: unknown): e is NativeError {
  if (!(e instanceof Error)) return false;
  const r = e as Partial<NativeError>;
  return typeof r.code === 'string' && typeof r.errno === 'number' && typeof r.syscall === 'string';
}

/** Run a native call, converting syscall failures into KvmError. */
export function wrapNative<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isNativeError(e) && !(e instanceof KvmError)) throw new KvmError(e.message, e.code, e.errno, e.syscall, { cause: e });
    throw e;
  }
}

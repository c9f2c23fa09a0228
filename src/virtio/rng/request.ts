// virtio-rng request parsing (virtio 1.2 §5.4): a request is a chain of device-writable buffers that the
// device fills with random bytes. The chain is checked here, before any byte is produced.

import type { Descriptor } from '../queue.js';

/**
 * Most bytes one request gets. virtio 1.2 §5.4.6.1: the device MAY use less than the whole buffer; the cap
 * bounds the work a guest can ask for per chain (Linux's virtio-rng posts 32..64-byte buffers).
 */
export const RNG_MAX_BYTES_PER_REQUEST = 64 * 1024;

/** Why a chain is not an rng request; the chain is returned with used length 0. */
export class RngRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** virtio 1.2 §5.4.6.2: the driver MUST NOT place device-readable buffers on the request queue. */
export class UnexpectedReadableDescriptor extends RngRequestError {
  constructor(bytes: number) {
    super(`rng request carries ${String(bytes)} device-readable bytes; rng buffers are device-writable only`);
  }
}

/** A chain with no writable byte has nowhere to put entropy. */
export class NoWritableBuffer extends RngRequestError {
  constructor() {
    super('rng request has no device-writable bytes');
  }
}

export interface RngRequest {
  /** the chain's writable descriptors, in order */
  writable: Descriptor[];
  /** bytes to produce: min(writable bytes, RNG_MAX_BYTES_PER_REQUEST) */
  bytes: number;
}

/** Parse a chain's checked descriptors into an rng request; throws an RngRequestError subclass. */
export function parseRngRequest(descs: readonly Descriptor[]): RngRequest {
  const writable: Descriptor[] = [];
  let readableBytes = 0;
  let writableBytes = 0;
  let readableCount = 0;
  for (const d of descs) {
    if (d.writable) {
      writable.push(d);
      writableBytes += d.len; // no overflow: the queue bounded the chain's total length
    } else {
      readableCount++;
      readableBytes += d.len;
    }
  }
  if (readableCount > 0) throw new UnexpectedReadableDescriptor(readableBytes);
  if (writableBytes === 0) throw new NoWritableBuffer();
  return { writable, bytes: Math.min(writableBytes, RNG_MAX_BYTES_PER_REQUEST) };
}

// Where virtio-rng's bytes come from. The real source is the kernel CSPRNG (getrandom(2) through
// crypto.randomFillSync); tests inject a deterministic fake so their assertions can name exact bytes.

import { randomFillSync } from 'node:crypto';

export interface EntropySource {
  /** Fill all of `buf` with random bytes (buf may be a live view of guest memory). */
  fill(buf: Uint8Array): void;
}

/** The host kernel's CSPRNG: Node's randomFillSync reads getrandom(2) (via OpenSSL's seeded DRBG). */
export class CryptoEntropySource implements EntropySource {
  fill(buf: Uint8Array): void {
    randomFillSync(buf);
  }
}

/**
 * Deterministic bytes for tests: a xorshift32 stream from `seed`. NOT random; never use it for a guest.
 * The stream continues across calls, so two fills of 4 bytes equal one fill of 8.
 */
export class FakeEntropySource implements EntropySource {
  private state: number;
  /** total bytes handed out */
  produced = 0;

  constructor(seed = 0x1234_5678) {
    this.state = seed >>> 0 || 1;
  }

  fill(buf: Uint8Array): void {
    let s = this.state;
    for (let i = 0; i < buf.length; i++) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      buf[i] = s & 0xff;
    }
    this.state = s;
    this.produced += buf.length;
  }
}

// A small deterministic PRNG for tests and benchmarks, so a failing fuzz input or a benchmark's random
// workload can be reproduced from its seed.

/** A deterministic PRNG returning floats in [0, 1). */
export type Rng = () => number;

/** mulberry32: small, fast, deterministic PRNG (public domain, Tommy Ettinger). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer in [0, n). */
export function randInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

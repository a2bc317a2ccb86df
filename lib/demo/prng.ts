// Seeded randomness for the demo dataset. mulberry32 is tiny, fast and identical on every platform, so
// a seed gives the same geometry (and therefore byte-identical files) everywhere.

import { mulberry32 } from '../data/random';

// One generator and one string hash for all of hgad's seeded randomness (lib/data/random.ts).
export { hashString, mulberry32 } from '../data/random';

/**
 * Mixes integers into one 32-bit seed (murmur3's finaliser after each word), so every image gets its own
 * independent stream: the files do not depend on the order or concurrency in which they are rendered.
 */
export function mixSeed(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    h = Math.imul(h ^ (w >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** Convenience draws on top of one mulberry32 stream. */
export class Rng {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next();
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer uniform in [lo, hi] (both included). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** -1 or +1. */
  sign(): number {
    return this.next() < 0.5 ? -1 : 1;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new RangeError('pick from an empty list');
    return item;
  }

  /** A seed for an SVG feTurbulence primitive (librsvg rounds it to an integer). */
  turbulenceSeed(): number {
    return this.int(1, 99999);
  }
}

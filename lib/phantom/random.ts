import { createHash } from 'node:crypto';

/**
 * Everything random in the phantom is derived from the seed through these two functions, so that
 * the same seed gives byte-identical files on every run and every machine.
 */

function digestOf(parts: ReadonlyArray<string | number>): Buffer {
  return createHash('sha256').update(['clara-dicom-phantom', ...parts].join('\u0000')).digest();
}

/**
 * A UID under the "2.25." root (ISO/IEC 9834-8) whose 128-bit value is a hash of the parts, e.g.
 * (seed, "series", 4, "instance", 17). Deterministic, yet as collision-free as a random UUID-derived UID.
 */
export function derivedUid(...parts: Array<string | number>): string {
  const value = BigInt('0x' + digestOf(parts).subarray(0, 16).toString('hex'));
  // 0 would be a legal component, but a zero hash only happens in theory.
  return `2.25.${value === 0n ? 1n : value}`;
}

/** A 32-bit value hashed from the parts: the seed of one stream of the generator below. */
export function derivedSeed(...parts: Array<string | number>): number {
  return digestOf(parts).readUInt32LE(0) || 1;
}

/** Hex characters of a hash of the parts, for names that must look unordered (file names). */
export function derivedHex(length: number, ...parts: Array<string | number>): string {
  return digestOf(parts).toString('hex').slice(0, length);
}

/**
 * Mulberry32: a small, fast 32-bit generator. Good enough for placing a tumour and for image noise;
 * not for anything cryptographic.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes integers into one 32-bit seed (murmur3 finaliser), cheaply enough to call once per slice. */
export function mixSeed(...values: number[]): number {
  let h = 0x9e3779b9;
  for (const v of values) {
    h = Math.imul(h ^ (v | 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return (h >>> 0) || 1;
}

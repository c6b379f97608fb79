/**
 * A seeded, reproducible mutator of DICOM files for the reliability tests. It knows just enough of the
 * encoding to aim at element headers (lengths, VRs) and to inject nested sequences; it deliberately
 * shares no code with lib/dicom, so a blind spot of the reader is not a blind spot of the mutator.
 * The same (file, seed, kind) always gives the same bytes: a failing case is replayed from its seed.
 */

/** A small, fast PRNG (mulberry32): 32 bits of state, enough for test inputs, identical on every platform. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [min, max] (both included). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }
}

export const MUTATION_KINDS = ['bit-flip', 'truncate', 'bad-length', 'huge-length', 'bad-vr', 'nested-sequence', 'splice'] as const;
export type MutationKind = (typeof MUTATION_KINDS)[number];

export interface Mutant {
  bytes: Buffer;
  kind: MutationKind | 'none';
  seed: number;
  /** What was done, e.g. "length of element at byte 812 set to 0xFFFFFFF0". */
  detail: string;
}

const VRS = [
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW',
  'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
];
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const VR_SET = new Set(VRS);
const HUGE_LENGTHS = [0xffffffff, 0xfffffffe, 0xfffffff0, 0x7fffffff, 0x80000000, 0x10000000];
const BAD_VRS = ['ZZ', '\0\0', 'SQ', 'UN', 'OB', 'OW', 'UT', 'ox', '  ', 'sq', 'US', 'UL', 'FD', 'AT'];

/**
 * Offsets of what look like explicit-VR little-endian element headers from `start` on: an even group, a
 * known VR. That finds elements inside sequences too. Implicit-VR data sets have no VR to recognise;
 * for them the top level is walked by tag and 32-bit length instead.
 */
export function elementHeaders(buf: Buffer, start: number): number[] {
  const found: number[] = [];
  for (let p = start; p + 8 <= buf.length; p += 2) {
    const group = buf.readUInt16LE(p);
    if (group < 0x0008 || group > 0x7fe0 || group % 2 !== 0) continue;
    if (VR_SET.has(buf.toString('latin1', p + 4, p + 6))) found.push(p);
  }
  if (found.length >= 3) return found;
  const implicit: number[] = [];
  for (let p = start; p + 8 <= buf.length; ) {
    implicit.push(p);
    const length = buf.readUInt32LE(p + 4);
    if (length === 0xffffffff) break;
    p += 8 + length;
  }
  return implicit;
}

/** A sequence nested `depth` deep (undefined lengths), optionally with its closing delimiters cut off. */
export function nestedSequence(depth: number, closed = true): Buffer {
  const open = Buffer.alloc(20);
  open.writeUInt16LE(0x0040, 0);
  open.writeUInt16LE(0xa730, 2); // Content Sequence
  open.write('SQ', 4, 'latin1');
  open.writeUInt32LE(0xffffffff, 8);
  open.writeUInt16LE(0xfffe, 12);
  open.writeUInt16LE(0xe000, 14); // Item
  open.writeUInt32LE(0xffffffff, 16);
  const close = Buffer.alloc(16);
  close.writeUInt16LE(0xfffe, 0);
  close.writeUInt16LE(0xe00d, 2); // Item Delimitation
  close.writeUInt16LE(0xfffe, 8);
  close.writeUInt16LE(0xe0dd, 10); // Sequence Delimitation
  const parts: Buffer[] = [];
  for (let i = 0; i < depth; i++) parts.push(open);
  if (closed) for (let i = 0; i < depth; i++) parts.push(close);
  return Buffer.concat(parts);
}

/**
 * One mutant of `file`. Only bytes from `from` on are touched (pass the data set's offset to keep a
 * Part 10 meta header intact, 0 to mutate everything). `kind` defaults to one chosen by the seed.
 */
export function mutate(file: Buffer, from: number, seed: number, kind?: MutationKind): Mutant {
  const rng = new Rng(seed);
  const chosen = kind ?? rng.pick(MUTATION_KINDS);
  const out = Buffer.from(file);
  const span = out.length - from;
  if (span < 16) return { bytes: out.subarray(0, Math.max(from, out.length - 1)), kind: 'truncate', seed, detail: 'too short to aim at: last byte dropped' };
  const headers = () => elementHeaders(out, from);
  const pickHeader = (): number | undefined => {
    const list = headers();
    return list.length ? rng.pick(list) : undefined;
  };
  switch (chosen) {
    case 'bit-flip': {
      const flips = rng.int(1, 16);
      const at: number[] = [];
      for (let i = 0; i < flips; i++) {
        const p = from + rng.int(0, span - 1);
        out[p] ^= 1 << rng.int(0, 7);
        at.push(p);
      }
      return { bytes: out, kind: chosen, seed, detail: `${flips} bit(s) flipped at ${at.slice(0, 4).join(', ')}${flips > 4 ? ', …' : ''}` };
    }
    case 'truncate': {
      // Half the cuts land near the end (inside pixel data), half anywhere.
      const length = rng.chance(0.5) ? out.length - rng.int(1, Math.min(span, 64)) : from + rng.int(0, span - 1);
      return { bytes: out.subarray(0, length), kind: chosen, seed, detail: `cut to ${length} of ${out.length} bytes` };
    }
    case 'bad-length':
    case 'huge-length': {
      const p = pickHeader();
      if (p === undefined) return mutate(file, from, seed, 'bit-flip');
      const vr = out.toString('latin1', p + 4, p + 6);
      const long = LONG_VRS.has(vr) && p + 12 <= out.length;
      const at = long ? p + 8 : VR_SET.has(vr) ? p + 6 : p + 4;
      const wide = long || !VR_SET.has(vr);
      const old = wide ? out.readUInt32LE(at) : out.readUInt16LE(at);
      let value: number;
      if (chosen === 'huge-length') value = wide ? rng.pick(HUGE_LENGTHS) : rng.pick([0xffff, 0xfffe, 0xfff0]);
      else value = rng.pick([old + 1, old - 1, old + 2, old - 2, old * 2, 0, rng.int(0, 0xffff), old ^ 0x8000]);
      value = Math.max(0, wide ? value >>> 0 : value & 0xffff);
      if (wide) out.writeUInt32LE(value, at);
      else out.writeUInt16LE(value, at);
      return { bytes: out, kind: chosen, seed, detail: `length of the element at byte ${p} (${vr}) set from ${old} to 0x${value.toString(16).toUpperCase()}` };
    }
    case 'bad-vr': {
      const p = pickHeader();
      if (p === undefined) return mutate(file, from, seed, 'bit-flip');
      const vr = rng.chance(0.3) ? String.fromCharCode(rng.int(0x20, 0x7e), rng.int(0x20, 0x7e)) : rng.pick(BAD_VRS);
      const old = out.toString('latin1', p + 4, p + 6);
      out.write(vr, p + 4, 'latin1');
      return { bytes: out, kind: chosen, seed, detail: `VR of the element at byte ${p} changed from ${JSON.stringify(old)} to ${JSON.stringify(vr)}` };
    }
    case 'nested-sequence': {
      const list = headers();
      const p = list.length ? rng.pick(list) : from;
      const depth = rng.pick([1, 2, 8, 63, 64, 65, 200, rng.int(1, 5000)]);
      const closed = rng.chance(0.7);
      const seq = nestedSequence(depth, closed);
      return { bytes: Buffer.concat([out.subarray(0, p), seq, out.subarray(p)]), kind: chosen, seed, detail: `sequence nested ${depth} deep${closed ? '' : ' without delimiters'} inserted at byte ${p}` };
    }
    case 'splice': {
      const p = from + rng.int(0, span - 1);
      const length = rng.int(1, Math.min(64, out.length - p));
      if (rng.chance(0.5)) return { bytes: Buffer.concat([out.subarray(0, p), out.subarray(p + length)]), kind: chosen, seed, detail: `${length} byte(s) deleted at ${p}` };
      return { bytes: Buffer.concat([out.subarray(0, p + length), out.subarray(p, p + length), out.subarray(p + length)]), kind: chosen, seed, detail: `${length} byte(s) repeated at ${p}` };
    }
  }
}

/**
 * A copy of `file` whose UID `uid` is replaced, everywhere it occurs, by `replacement` of the same length
 * (so that no length field changes): every mutant can then carry its own SOP Instance UID.
 */
export function replaceUid(file: Buffer, uid: string, replacement: string): Buffer {
  if (replacement.length !== uid.length) throw new RangeError(`replacement UID has ${replacement.length} characters, not ${uid.length}`);
  const out = Buffer.from(file);
  const needle = Buffer.from(uid, 'latin1');
  for (let at = out.indexOf(needle); at >= 0; at = out.indexOf(needle, at + needle.length)) out.write(replacement, at, 'latin1');
  return out;
}

/** A valid UID of exactly `length` characters (12 to 64) that is unique for each `n`: "1.2.9000…n". */
export function uniqueUid(length: number, n: number): string {
  const digits = String(n);
  const room = length - 5;
  if (room < digits.length) throw new RangeError(`no ${length}-character UID holds ${n}`);
  return `1.2.9${digits.padStart(room, '0')}`;
}

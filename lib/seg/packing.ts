/**
 * Pixel data of a Segmentation. BINARY frames are 1 bit per pixel and, as PS3.5 8.1.1 says for
 * BitsAllocated 1, packed as one bit stream over the whole Pixel Data: pixel n of the stream is bit n mod 8
 * (least significant first) of byte n div 8, frames follow each other with no padding between them, so a
 * frame whose pixel count is not a multiple of 8 starts in the middle of a byte, and only the end of the
 * value is padded to an even length. FRACTIONAL frames are one byte per pixel.
 */

/** Bytes of BINARY Pixel Data for `frames` frames of `pixelsPerFrame`: whole bytes, then even. */
export function binaryPixelDataLength(frames: number, pixelsPerFrame: number): number {
  const bytes = Math.ceil((frames * pixelsPerFrame) / 8);
  return bytes + (bytes % 2);
}

/** Appends frames to one BINARY Pixel Data value. */
export class BitPacker {
  readonly bytes: Uint8Array;
  private bit = 0;

  constructor(
    frames: number,
    private readonly pixelsPerFrame: number,
  ) {
    this.bytes = new Uint8Array(binaryPixelDataLength(frames, pixelsPerFrame));
  }

  /** Adds one frame: pixel p is set where `values[p] === value` (a label map's slice, for one segment). */
  addFrame(values: ArrayLike<number>, value: number): void {
    const n = this.pixelsPerFrame;
    if (values.length !== n) throw new RangeError(`frame of ${values.length} pixels, expected ${n}`);
    const out = this.bytes;
    let bit = this.bit;
    let p = 0;
    // Up to the first byte boundary one bit at a time, then eight pixels per byte.
    for (; p < n && (bit & 7) !== 0; p++, bit++) if (values[p] === value) out[bit >>> 3] |= 1 << (bit & 7);
    if (p < n) {
      // Aligned now: whole bytes while eight pixels remain, then the tail bit by bit.
      let byte = bit >>> 3;
      for (; p + 8 <= n; p += 8, byte++) {
        out[byte] =
          (values[p] === value ? 1 : 0) |
          (values[p + 1] === value ? 2 : 0) |
          (values[p + 2] === value ? 4 : 0) |
          (values[p + 3] === value ? 8 : 0) |
          (values[p + 4] === value ? 16 : 0) |
          (values[p + 5] === value ? 32 : 0) |
          (values[p + 6] === value ? 64 : 0) |
          (values[p + 7] === value ? 128 : 0);
      }
      bit = byte << 3;
      for (; p < n; p++, bit++) if (values[p] === value) out[bit >>> 3] |= 1 << (bit & 7);
    }
    this.bit = bit;
  }

  /** Frames added so far. */
  get frames(): number {
    return this.bit / this.pixelsPerFrame;
  }
}

/** The inverse, for tests and read-back: frame `f` of BINARY Pixel Data as 0/1 bytes. */
export function unpackBinaryFrame(pixelData: Uint8Array, frame: number, pixelsPerFrame: number): Uint8Array {
  const out = new Uint8Array(pixelsPerFrame);
  const start = frame * pixelsPerFrame;
  for (let p = 0; p < pixelsPerFrame; p++) {
    const bit = start + p;
    out[p] = (pixelData[bit >>> 3] >> (bit & 7)) & 1;
  }
  return out;
}

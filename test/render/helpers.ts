import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Decoded by test/render/png_decode.py: Python's zlib and struct, not our encoder's own code. */
export interface DecodedPng {
  width: number;
  height: number;
  colorType: number;
  bitDepth: number;
  chunks: string[];
  pixels: Buffer;
  channels: number;
}

const DECODER = join(__dirname, '..', '..', '..', 'test', 'render', 'png_decode.py');

export function decodePng(file: string): DecodedPng {
  const out = JSON.parse(execFileSync('/usr/bin/python3', [DECODER, file], { encoding: 'utf8', maxBuffer: 64 << 20 })) as Omit<DecodedPng, 'pixels' | 'channels'> & { pixels: string };
  return { ...out, pixels: Buffer.from(out.pixels, 'base64'), channels: out.colorType === 6 ? 4 : 3 };
}

export function pixel(png: DecodedPng, x: number, y: number): number[] {
  const p = (y * png.width + x) * png.channels;
  return [...png.pixels.subarray(p, p + png.channels)];
}

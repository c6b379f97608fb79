import { closeSync, openSync, readSync } from 'node:fs';
import { DicomDataset } from './dataset';
import { DicomFile, DicomParseError, syntaxOf } from './reader';
import { Tag } from './tags';
import { TransferSyntax } from './uids';

export interface PixelModule {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  pixelRepresentation: number;
  photometricInterpretation: string;
  planarConfiguration: number;
  numberOfFrames: number;
}

export function pixelModuleOf(ds: DicomDataset): PixelModule {
  const rows = ds.number(Tag.Rows);
  const columns = ds.number(Tag.Columns);
  const bitsAllocated = ds.number(Tag.BitsAllocated);
  if (!rows || !columns) throw new DicomParseError('image has no Rows/Columns');
  if (!bitsAllocated || ![1, 8, 16, 32, 64].includes(bitsAllocated)) throw new DicomParseError(`unsupported BitsAllocated ${bitsAllocated}`);
  const bitsStored = ds.number(Tag.BitsStored) ?? bitsAllocated;
  return {
    rows,
    columns,
    samplesPerPixel: ds.number(Tag.SamplesPerPixel) ?? 1,
    bitsAllocated,
    bitsStored,
    highBit: ds.number(Tag.HighBit) ?? bitsStored - 1,
    pixelRepresentation: ds.number(Tag.PixelRepresentation) ?? 0,
    photometricInterpretation: ds.string(Tag.PhotometricInterpretation) ?? 'MONOCHROME2',
    planarConfiguration: ds.number(Tag.PlanarConfiguration) ?? 0,
    numberOfFrames: Math.max(1, Math.floor(ds.number(Tag.NumberOfFrames) ?? 1)),
  };
}

export function frameByteLength(pm: PixelModule): number {
  return Math.ceil((pm.rows * pm.columns * pm.samplesPerPixel * pm.bitsAllocated) / 8);
}

const NATIVE_SYNTAXES = new Set<string>([
  TransferSyntax.ImplicitVRLittleEndian,
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.DeflatedExplicitVRLittleEndian,
  TransferSyntax.ExplicitVRBigEndian,
]);

type CodecName = 'decodeJpeg' | 'decodeJpegLs' | 'decodeJpeg2000' | 'decodeHtJpeg2000';
const CODEC_BY_SYNTAX: Record<string, CodecName> = {
  [TransferSyntax.JpegBaseline]: 'decodeJpeg',
  [TransferSyntax.JpegExtended]: 'decodeJpeg',
  [TransferSyntax.JpegLossless]: 'decodeJpeg',
  [TransferSyntax.JpegLosslessSV1]: 'decodeJpeg',
  [TransferSyntax.JpegLsLossless]: 'decodeJpegLs',
  [TransferSyntax.JpegLsNearLossless]: 'decodeJpegLs',
  [TransferSyntax.Jpeg2000Lossless]: 'decodeJpeg2000',
  [TransferSyntax.Jpeg2000]: 'decodeJpeg2000',
  [TransferSyntax.HtJpeg2000Lossless]: 'decodeHtJpeg2000',
  [TransferSyntax.HtJpeg2000LosslessRpcl]: 'decodeHtJpeg2000',
  [TransferSyntax.HtJpeg2000]: 'decodeHtJpeg2000',
};

/**
 * Whether decoding gives back the stored pixel cells byte for byte, high bits and all (uncompressed
 * syntaxes and RLE), rather than values a codec has already reduced to BitsStored.
 */
export function decodesToStoredCells(uid: string): boolean {
  return NATIVE_SYNTAXES.has(uid) || uid === TransferSyntax.RleLossless;
}

export function isSupportedTransferSyntax(uid: string): boolean {
  return NATIVE_SYNTAXES.has(uid) || uid === TransferSyntax.RleLossless || uid in CODEC_BY_SYNTAX;
}

interface CodecsModule {
  Context: new (attrs: Record<string, unknown>) => { getDecodedBuffer(): Uint8Array | undefined };
  NativeCodecs: Record<CodecName, (ctx: unknown, params?: Record<string, unknown>) => { getDecodedBuffer(): Uint8Array | undefined }> & {
    initializeAsync(opts?: Record<string, unknown>): Promise<void>;
    isInitialized(): boolean;
  };
}
let codecs: Promise<CodecsModule> | undefined;

/** Loads the WebAssembly codecs once, on first use: most studies are uncompressed and never pay for them. */
export function loadCodecs(): Promise<CodecsModule> {
  if (!codecs) {
    codecs = (async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require('dcmjs-codecs') as CodecsModule;
      if (!mod.NativeCodecs.isInitialized()) await mod.NativeCodecs.initializeAsync();
      return mod;
    })();
  }
  return codecs;
}

/** Reads the raw bytes of the pixel data value (native) or the whole encapsulated sequence. */
function readPixelDataBytes(path: string, file: DicomFile): Buffer {
  const loc = file.pixelData;
  if (!loc) throw new DicomParseError('no pixel data');
  if (file.inflated) {
    if (loc.encapsulated) return file.inflated.subarray(loc.offset);
    return file.inflated.subarray(loc.offset, loc.offset + loc.length);
  }
  const fd = openSync(path, 'r');
  try {
    if (!loc.encapsulated) {
      const out = Buffer.allocUnsafe(loc.length);
      const got = readSync(fd, out, 0, loc.length, loc.offset);
      if (got < loc.length) throw new DicomParseError(`truncated pixel data: ${got} of ${loc.length} bytes`);
      return out;
    }
    const chunks: Buffer[] = [];
    let pos = loc.offset;
    for (;;) {
      const chunk = Buffer.allocUnsafe(1 << 20);
      const got = readSync(fd, chunk, 0, chunk.length, pos);
      if (got <= 0) break;
      chunks.push(chunk.subarray(0, got));
      pos += got;
    }
    return Buffer.concat(chunks);
  } finally {
    closeSync(fd);
  }
}

/** Splits encapsulated pixel data into frames (PS3.5 A.4), using the offset tables where present. */
export function splitFrames(encapsulated: Buffer, numberOfFrames: number, extendedOffsets?: number[]): Buffer[] {
  const fragments: Array<{ offset: number; data: Buffer }> = [];
  let pos = 0;
  let offsetTable: Buffer | undefined;
  let firstFragmentStart = 0;
  for (;;) {
    if (pos + 8 > encapsulated.length) throw new DicomParseError('truncated encapsulated pixel data: no sequence delimiter');
    const tag = ((encapsulated.readUInt16LE(pos) << 16) | encapsulated.readUInt16LE(pos + 2)) >>> 0;
    const length = encapsulated.readUInt32LE(pos + 4);
    if (tag === Tag.SequenceDelimitationItem) break;
    if (tag !== Tag.Item) throw new DicomParseError(`malformed encapsulated pixel data at byte ${pos}`);
    if (pos + 8 + length > encapsulated.length) throw new DicomParseError('truncated encapsulated pixel data fragment');
    const data = encapsulated.subarray(pos + 8, pos + 8 + length);
    if (offsetTable === undefined) {
      offsetTable = data;
      firstFragmentStart = pos + 8 + length;
    } else fragments.push({ offset: pos - firstFragmentStart, data });
    pos += 8 + length;
  }
  if (fragments.length === 0) throw new DicomParseError('encapsulated pixel data has no fragments');
  if (numberOfFrames === 1) return [fragments.length === 1 ? fragments[0].data : Buffer.concat(fragments.map((f) => f.data))];
  let starts: number[] | undefined = extendedOffsets;
  if (!starts && offsetTable && offsetTable.length >= 4 * numberOfFrames) {
    starts = [];
    for (let i = 0; i < numberOfFrames; i++) starts.push(offsetTable.readUInt32LE(4 * i));
  }
  if (starts) {
    const frames: Buffer[] = [];
    for (let i = 0; i < numberOfFrames; i++) {
      const from = starts[i];
      const to = i + 1 < numberOfFrames ? starts[i + 1] : Infinity;
      const parts = fragments.filter((f) => f.offset >= from && f.offset < to).map((f) => f.data);
      if (!parts.length) throw new DicomParseError(`offset table points frame ${i + 1} at no fragment`);
      frames.push(parts.length === 1 ? parts[0] : Buffer.concat(parts));
    }
    return frames;
  }
  if (fragments.length === numberOfFrames) return fragments.map((f) => f.data);
  // No usable offset table: a frame starts at each fragment that opens with a JPEG SOI or J2K SOC marker.
  const frames: Buffer[][] = [];
  for (const f of fragments) {
    const startsFrame = f.data.length >= 2 && f.data[0] === 0xff && (f.data[1] === 0xd8 || f.data[1] === 0x4f);
    if (startsFrame || frames.length === 0) frames.push([f.data]);
    else frames[frames.length - 1].push(f.data);
  }
  if (frames.length !== numberOfFrames) {
    throw new DicomParseError(`cannot split ${fragments.length} fragments into ${numberOfFrames} frames`);
  }
  return frames.map((parts) => (parts.length === 1 ? parts[0] : Buffer.concat(parts)));
}

/** Decodes one RLE Lossless frame (PS3.5 G) into little-endian, pixel-interleaved samples. */
export function decodeRleFrame(frame: Buffer, pm: PixelModule): Buffer {
  if (frame.length < 64) throw new DicomParseError('RLE frame shorter than its header');
  const segments = frame.readUInt32LE(0);
  const bytesPerSample = pm.bitsAllocated / 8;
  const expected = pm.samplesPerPixel * bytesPerSample;
  if (segments !== expected) throw new DicomParseError(`RLE frame has ${segments} segments, expected ${expected}`);
  const pixels = pm.rows * pm.columns;
  const out = Buffer.alloc(pixels * expected);
  for (let s = 0; s < segments; s++) {
    const start = frame.readUInt32LE(4 + 4 * s);
    const end = s + 1 < segments ? frame.readUInt32LE(8 + 4 * s) : frame.length;
    if (start > end || end > frame.length) throw new DicomParseError('RLE segment offsets out of range');
    // Segments hold the most significant byte plane first; output is little endian, pixel-interleaved.
    const sample = Math.floor(s / bytesPerSample);
    const byteInSample = bytesPerSample - 1 - (s % bytesPerSample);
    const stride = expected;
    let outIndex = 0;
    let out0 = sample * bytesPerSample + byteInSample;
    let p = start;
    while (p < end && outIndex < pixels) {
      const n = (frame[p++] << 24) >> 24;
      if (n >= 0) {
        for (let i = 0; i <= n && p < end && outIndex < pixels; i++, outIndex++, out0 += stride) out[out0] = frame[p++];
      } else if (n !== -128) {
        const value = frame[p++];
        for (let i = 0; i < 1 - n && outIndex < pixels; i++, outIndex++, out0 += stride) out[out0] = value;
      }
    }
    if (outIndex < pixels) throw new DicomParseError(`RLE segment ${s + 1} decodes to ${outIndex} of ${pixels} pixels`);
  }
  return out;
}

function swapBytes(buf: Buffer, bitsAllocated: number): Buffer {
  if (bitsAllocated === 16) return buf.swap16();
  if (bitsAllocated === 32) return buf.swap32();
  if (bitsAllocated === 64) return buf.swap64();
  return buf;
}

/**
 * Decodes every frame of an instance into little-endian native samples, whatever its transfer syntax.
 * 1-bit data is returned packed, as stored.
 */
export async function decodeFrames(path: string, file: DicomFile): Promise<Buffer[]> {
  const pm = pixelModuleOf(file.dataset);
  const ts = file.transferSyntaxUID;
  const frameLength = frameByteLength(pm);
  if (NATIVE_SYNTAXES.has(ts)) {
    const all = readPixelDataBytes(path, file);
    if (all.length < frameLength * pm.numberOfFrames) {
      throw new DicomParseError(`pixel data holds ${all.length} bytes, ${pm.numberOfFrames} frame(s) need ${frameLength * pm.numberOfFrames}`);
    }
    const littleEndian = syntaxOf(ts).littleEndian;
    const frames: Buffer[] = [];
    for (let f = 0; f < pm.numberOfFrames; f++) {
      const frame = all.subarray(f * frameLength, (f + 1) * frameLength);
      // OB pixel data is a byte stream in either byte order; only OW/OF words need swapping.
      frames.push(littleEndian || file.pixelData?.vr === 'OB' ? frame : swapBytes(Buffer.from(frame), pm.bitsAllocated));
    }
    return frames;
  }
  if (!file.pixelData?.encapsulated) throw new DicomParseError(`transfer syntax ${ts} needs encapsulated pixel data`);
  const encoded = splitFrames(readPixelDataBytes(path, file), pm.numberOfFrames);
  if (ts === TransferSyntax.RleLossless) return encoded.map((f) => decodeRleFrame(f, pm));
  const codecName = CODEC_BY_SYNTAX[ts];
  if (!codecName) throw new DicomParseError(`unsupported transfer syntax ${ts}`);
  const mod = await loadCodecs();
  return encoded.map((data, i) => {
    const context = new mod.Context({
      width: pm.columns,
      height: pm.rows,
      bitsAllocated: pm.bitsAllocated,
      bitsStored: pm.bitsStored,
      samplesPerPixel: pm.samplesPerPixel,
      pixelRepresentation: pm.pixelRepresentation,
      planarConfiguration: pm.planarConfiguration,
      photometricInterpretation: pm.photometricInterpretation,
      encodedBuffer: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    let decoded: Uint8Array | undefined;
    try {
      decoded = mod.NativeCodecs[codecName](context, { convertColorspaceToRgb: false }).getDecodedBuffer();
    } catch (err) {
      throw new DicomParseError(`frame ${i + 1} does not decode (${ts}): ${(err as Error).message ?? err}`);
    }
    if (!decoded || decoded.length < frameLength) {
      throw new DicomParseError(`frame ${i + 1} decoded to ${decoded?.length ?? 0} bytes, expected ${frameLength}`);
    }
    // Copy out: the decoded view lies in WebAssembly memory that the next decode reuses.
    return Buffer.from(decoded.subarray(0, frameLength));
  });
}

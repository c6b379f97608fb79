import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { DicomDataset, DicomElement } from './dataset';
import { entryForTag } from './dictionary';
import { Tag, formatTag } from './tags';
import { TransferSyntax } from './uids';

/** Raised for any input that is not a readable DICOM file; the message says what and where. */
export class DicomParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DicomParseError';
  }
}

/** Raised inside the parser when a partial read ended before the wanted part; the caller reads more. */
class NeedMoreData extends Error {}

const UNDEFINED_LENGTH = 0xffffffff;
const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const KNOWN_VRS = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW',
  'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);
/**
 * VRs by their two bytes read as one 16-bit number, with whether the VR has a 32-bit length: one table
 * look-up per element instead of a string per element.
 */
const VR_BY_CODE = new Map<number, { vr: string; long: boolean }>(
  [...KNOWN_VRS].map((vr) => [(vr.charCodeAt(0) << 8) | vr.charCodeAt(1), { vr, long: LONG_LENGTH_VRS.has(vr) }]),
);
const PIXEL_DATA_TAGS = new Set<number>([Tag.PixelData, Tag.FloatPixelData, Tag.DoubleFloatPixelData]);
/** Nesting deeper than this is treated as malformed input rather than risking the stack. */
const MAX_SEQUENCE_DEPTH = 64;

export interface PixelDataLocation {
  tag: number;
  vr: string;
  /** Offset of the value within the file (or within the inflated data set, for deflated files). */
  offset: number;
  /** Declared length; UNDEFINED_LENGTH for encapsulated pixel data. */
  length: number;
  encapsulated: boolean;
}

export interface DicomFile {
  /** Group 0002; empty for files without a Part 10 header. */
  meta: DicomDataset;
  dataset: DicomDataset;
  transferSyntaxUID: string;
  /** True when the file had the 128-byte preamble and "DICM" magic. */
  hasPart10Header: boolean;
  pixelData?: PixelDataLocation;
  /** For deflated files the inflated data set; pixel data offsets then refer to it. */
  inflated?: Buffer;
  /** Where the data set starts in the file (or in the inflated buffer). */
  datasetOffset: number;
}

export interface ParseOptions {
  /** Stop at the top-level pixel data element and record where it is, without reading it. */
  stopAtPixelData?: boolean;
  /** The whole file is in the buffer, so running out of bytes means a truncated file. */
  complete?: boolean;
  /** File size, to check that pixel data left on disk is really there. */
  fileSize?: number;
  /** Transfer syntax to assume when a file has no meta header. */
  fallbackTransferSyntax?: string;
}

interface Syntax {
  explicit: boolean;
  littleEndian: boolean;
}

export function syntaxOf(transferSyntaxUID: string): Syntax & { deflated: boolean } {
  switch (transferSyntaxUID) {
    case TransferSyntax.ImplicitVRLittleEndian:
      return { explicit: false, littleEndian: true, deflated: false };
    case TransferSyntax.ExplicitVRBigEndian:
      return { explicit: true, littleEndian: false, deflated: false };
    case TransferSyntax.DeflatedExplicitVRLittleEndian:
      return { explicit: true, littleEndian: true, deflated: true };
    default:
      return { explicit: true, littleEndian: true, deflated: false };
  }
}

class Parser {
  private stopped: PixelDataLocation | undefined;

  constructor(
    private readonly buf: Buffer,
    private readonly options: ParseOptions,
  ) {}

  get pixelData(): PixelDataLocation | undefined {
    return this.stopped;
  }

  /** `what` names the element for the error; a tag is formatted only when the error is raised (hot path). */
  private need(pos: number, count: number, what: string, tag?: number): void {
    if (pos + count > this.buf.length) {
      if (!this.options.complete) throw new NeedMoreData();
      const subject = tag === undefined ? what : `${what} ${formatTag(tag)}`;
      throw new DicomParseError(`truncated: ${subject} at byte ${pos} needs ${count} bytes, file ends at ${this.buf.length}`);
    }
  }

  /**
   * Reads elements from pos until end (exclusive), or until an item/sequence delimiter when end is
   * undefined. Returns the position after the last byte consumed.
   */
  parse(ds: DicomDataset, pos: number, end: number | undefined, syntax: Syntax, depth: number, topLevel: boolean): number {
    const buf = this.buf;
    const le = syntax.littleEndian;
    const limit = end ?? buf.length;
    while (pos < limit) {
      if (topLevel && this.options.complete && pos + 8 > buf.length) break; // trailing padding
      this.need(pos, 8, 'element header');
      if (pos + 8 > limit) throw new DicomParseError(`element header at byte ${pos} overruns its item`);
      const group = le ? buf.readUInt16LE(pos) : buf.readUInt16BE(pos);
      const elem = le ? buf.readUInt16LE(pos + 2) : buf.readUInt16BE(pos + 2);
      const tag = ((group << 16) | elem) >>> 0;

      if (tag === Tag.ItemDelimitationItem || tag === Tag.SequenceDelimitationItem) {
        this.need(pos, 8, 'delimiter');
        return pos + 8;
      }
      // Delimiters and items are always encoded implicitly (PS3.5 7.5).
      if (group === 0xfffe) throw new DicomParseError(`unexpected item tag ${formatTag(tag)} at byte ${pos}`);

      let vr: string;
      let length: number;
      let headerSize: number;
      const explicitHere = syntax.explicit;
      const explicitVr = explicitHere ? VR_BY_CODE.get((buf[pos + 4] << 8) | buf[pos + 5]) : undefined;
      if (explicitVr) {
        vr = explicitVr.vr;
        if (explicitVr.long) {
          this.need(pos, 12, 'element', tag);
          length = le ? buf.readUInt32LE(pos + 8) : buf.readUInt32BE(pos + 8);
          headerSize = 12;
        } else {
          length = le ? buf.readUInt16LE(pos + 6) : buf.readUInt16BE(pos + 6);
          headerSize = 8;
        }
      } else {
        // Implicit VR, or an explicit file with a bogus VR here: take the VR from the dictionary,
        // which is what tolerant readers (dcmtk, pydicom) do with such files.
        length = le ? buf.readUInt32LE(pos + 4) : buf.readUInt32BE(pos + 4);
        headerSize = 8;
        const known = entryForTag(tag)?.vr;
        vr = known === undefined ? 'UN' : known === 'ox' ? 'OW' : known === 'xs' ? 'US' : known.split(' or ')[0];
        if (vr.length !== 2) vr = 'UN';
      }
      const valueOffset = pos + headerSize;

      if (topLevel && this.options.stopAtPixelData && PIXEL_DATA_TAGS.has(tag)) {
        this.stopped = { tag, vr, offset: valueOffset, length, encapsulated: length === UNDEFINED_LENGTH };
        if (length !== UNDEFINED_LENGTH && this.options.fileSize !== undefined && valueOffset + length > this.options.fileSize) {
          throw new DicomParseError(
            `truncated: pixel data declares ${length} bytes at byte ${valueOffset} but the file has ${this.options.fileSize - valueOffset}`,
          );
        }
        ds.elements.set(tag, { tag, vr, valueOffset, valueLength: length });
        return limit;
      }

      const element: DicomElement = { tag, vr, valueOffset, valueLength: length };
      if (vr === 'SQ' || (length === UNDEFINED_LENGTH && vr === 'UN')) {
        if (depth >= MAX_SEQUENCE_DEPTH) throw new DicomParseError(`sequences nested deeper than ${MAX_SEQUENCE_DEPTH} at byte ${pos}`);
        // UN with undefined length is an implicit-VR little endian sequence (PS3.5 6.2.2).
        const itemSyntax = vr === 'UN' ? { explicit: false, littleEndian: true } : syntax;
        element.vr = 'SQ';
        pos = this.parseSequence(element, valueOffset, length, itemSyntax, depth + 1, ds);
      } else if (length === UNDEFINED_LENGTH) {
        if (!PIXEL_DATA_TAGS.has(tag)) throw new DicomParseError(`undefined length on non-sequence element ${formatTag(tag)} at byte ${pos}`);
        pos = this.skipEncapsulated(valueOffset);
        element.bytes = buf.subarray(valueOffset, pos);
        if (topLevel) this.stopped = { tag, vr, offset: valueOffset, length, encapsulated: true };
      } else {
        if (valueOffset + length > limit) {
          if (!this.options.complete && valueOffset + length > buf.length) throw new NeedMoreData();
          throw new DicomParseError(
            `truncated: element ${formatTag(tag)} declares ${length} bytes at byte ${valueOffset}, but only ${limit - valueOffset} remain`,
          );
        }
        element.bytes = buf.subarray(valueOffset, valueOffset + length);
        if (topLevel && PIXEL_DATA_TAGS.has(tag)) this.stopped = { tag, vr, offset: valueOffset, length, encapsulated: false };
        pos = valueOffset + length;
      }
      ds.elements.set(tag, element);
      if (tag === Tag.SpecificCharacterSet && element.bytes && /ISO_IR 192/.test(element.bytes.toString())) {
        ds.textEncoding = 'utf8';
      }
    }
    if (topLevel && !this.options.complete) throw new NeedMoreData();
    if (end === undefined) {
      if (!this.options.complete) throw new NeedMoreData();
      throw new DicomParseError(`truncated: missing delimiter before byte ${pos}`);
    }
    return pos;
  }

  private parseSequence(element: DicomElement, start: number, length: number, syntax: Syntax, depth: number, parent: DicomDataset): number {
    const buf = this.buf;
    const le = syntax.littleEndian;
    const end = length === UNDEFINED_LENGTH ? undefined : start + length;
    if (end !== undefined && end > buf.length) {
      if (!this.options.complete) throw new NeedMoreData();
      throw new DicomParseError(`truncated: sequence ${formatTag(element.tag)} declares ${length} bytes at byte ${start}`);
    }
    const items: DicomDataset[] = [];
    let pos = start;
    for (;;) {
      if (end !== undefined && pos >= end) break;
      this.need(pos, 8, 'item of', element.tag);
      const tag = ((le ? buf.readUInt16LE(pos) : buf.readUInt16BE(pos)) << 16 | (le ? buf.readUInt16LE(pos + 2) : buf.readUInt16BE(pos + 2))) >>> 0;
      const itemLength = le ? buf.readUInt32LE(pos + 4) : buf.readUInt32BE(pos + 4);
      pos += 8;
      if (tag === Tag.SequenceDelimitationItem) break;
      if (tag !== Tag.Item) throw new DicomParseError(`expected an item in sequence ${formatTag(element.tag)} at byte ${pos - 8}, found ${formatTag(tag)}`);
      const item = new DicomDataset(syntax.littleEndian, parent.textEncoding);
      if (itemLength === UNDEFINED_LENGTH) {
        pos = this.parse(item, pos, undefined, syntax, depth, false);
      } else {
        const itemEnd = pos + itemLength;
        if (end !== undefined && itemEnd > end) throw new DicomParseError(`item of ${formatTag(element.tag)} overruns its sequence at byte ${pos}`);
        this.need(pos, itemLength, 'item of', element.tag);
        pos = this.parse(item, pos, itemEnd, syntax, depth, false);
      }
      items.push(item);
    }
    element.items = items;
    return pos;
  }

  private skipEncapsulated(pos: number): number {
    const buf = this.buf;
    for (;;) {
      this.need(pos, 8, 'pixel data fragment');
      const tag = ((buf.readUInt16LE(pos) << 16) | buf.readUInt16LE(pos + 2)) >>> 0;
      const length = buf.readUInt32LE(pos + 4);
      pos += 8;
      if (tag === Tag.SequenceDelimitationItem) return pos;
      if (tag !== Tag.Item) throw new DicomParseError(`expected a pixel data fragment at byte ${pos - 8}, found ${formatTag(tag)}`);
      this.need(pos, length, 'pixel data fragment');
      pos += length;
    }
  }
}

function parseMetaHeader(buf: Buffer, options: ParseOptions): { meta: DicomDataset; end: number } {
  const meta = new DicomDataset(true);
  const parser = new Parser(buf, options);
  let pos = 132;
  // Read group 0002 element by element: the group length is sometimes missing or wrong.
  while (pos + 8 <= buf.length && buf.readUInt16LE(pos) === 0x0002) {
    const next = new DicomDataset(true);
    const vrText = buf.toString('latin1', pos + 4, pos + 6);
    const headerSize = LONG_LENGTH_VRS.has(vrText) ? 12 : 8;
    if (pos + headerSize > buf.length) break;
    const length = LONG_LENGTH_VRS.has(vrText) ? buf.readUInt32LE(pos + 8) : buf.readUInt16LE(pos + 6);
    const elementEnd = pos + headerSize + length;
    if (length === UNDEFINED_LENGTH || elementEnd > buf.length) {
      if (!options.complete) throw new NeedMoreData();
      throw new DicomParseError(`truncated file meta information at byte ${pos}`);
    }
    parser.parse(next, pos, elementEnd, { explicit: true, littleEndian: true }, 0, false);
    for (const [tag, el] of next.elements) meta.elements.set(tag, el);
    pos = elementEnd;
  }
  if (pos + 8 > buf.length && !options.complete) throw new NeedMoreData();
  return { meta, end: pos };
}

/** Guesses the encoding of a data set that has no meta header, from its first element. */
function guessSyntax(buf: Buffer, pos: number): string {
  if (pos + 8 > buf.length) throw new DicomParseError('not DICOM: file too short');
  const groupLE = buf.readUInt16LE(pos);
  const groupBE = buf.readUInt16BE(pos);
  const vr = buf.toString('latin1', pos + 4, pos + 6);
  const plausibleGroup = (g: number) => g === 0x0008 || g === 0x0002 || g === 0x0010 || g === 0x0018 || g === 0x0020 || g === 0x0028;
  if (plausibleGroup(groupLE)) return KNOWN_VRS.has(vr) ? TransferSyntax.ExplicitVRLittleEndian : TransferSyntax.ImplicitVRLittleEndian;
  if (plausibleGroup(groupBE) && KNOWN_VRS.has(vr)) return TransferSyntax.ExplicitVRBigEndian;
  throw new DicomParseError('not DICOM: no "DICM" magic and no recognisable data set at the start of the file');
}

/** Parses a DICOM file held in memory (whole, or a leading part when `complete` is false). */
export function parseDicom(buf: Buffer, options: ParseOptions = {}): DicomFile {
  const hasPart10Header = buf.length >= 132 && buf.toString('latin1', 128, 132) === 'DICM';
  let meta = new DicomDataset(true);
  let pos = 0;
  let transferSyntaxUID: string;
  if (hasPart10Header) {
    const header = parseMetaHeader(buf, options);
    meta = header.meta;
    pos = header.end;
    transferSyntaxUID = meta.string(Tag.TransferSyntaxUID) ?? options.fallbackTransferSyntax ?? TransferSyntax.ExplicitVRLittleEndian;
  } else {
    transferSyntaxUID = options.fallbackTransferSyntax ?? guessSyntax(buf, 0);
  }
  const syntax = syntaxOf(transferSyntaxUID);
  let body = buf;
  let inflated: Buffer | undefined;
  if (syntax.deflated) {
    if (!options.complete) throw new NeedMoreData();
    try {
      inflated = inflateRawSync(buf.subarray(pos));
    } catch (err) {
      throw new DicomParseError(`deflated data set does not inflate: ${(err as Error).message}`);
    }
    body = inflated;
    pos = 0;
  }
  const dataset = new DicomDataset(syntax.littleEndian);
  // Offsets in a deflated file refer to the inflated data set, so the file's size says nothing about them.
  const parser = new Parser(body, { ...options, complete: syntax.deflated ? true : options.complete, fileSize: syntax.deflated ? body.length : options.fileSize });
  const datasetOffset = pos;
  parser.parse(dataset, pos, body.length, syntax, 0, true);
  return { meta, dataset, transferSyntaxUID, hasPart10Header, pixelData: parser.pixelData, inflated, datasetOffset };
}

/**
 * Hands out header read buffers from large shared slabs. A scan keeps hundreds of headers alive (their
 * values are views on the bytes read), and one 16 KB allocation per file made the garbage collector
 * a tenth of the parse time.
 */
class Slab {
  private slab = Buffer.allocUnsafeSlow(0);
  private used = 0;
  private lent = 0;

  take(size: number): Buffer {
    if (this.slab.length - this.used < size) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(size, 1 << 20));
      this.used = 0;
    }
    this.lent = size;
    return this.slab.subarray(this.used, this.used + size);
  }

  /** Keeps the first `bytes` of the last buffer taken; the rest is handed out again. */
  commit(bytes: number): void {
    this.used += Math.min(this.lent, (bytes + 7) & ~7);
    this.lent = 0;
  }
}
const headerSlab = new Slab();

/**
 * Reads a DICOM file's header and the location of its pixel data, without reading the pixel data.
 * Starts with a small read and grows it only when the header is larger.
 */
export function readDicomHeader(path: string, options: Omit<ParseOptions, 'complete' | 'stopAtPixelData' | 'fileSize'> = {}): DicomFile {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    let chunk = Math.min(size, 16384);
    for (;;) {
      const buf = headerSlab.take(chunk);
      const got = readSync(fd, buf, 0, chunk, 0);
      const complete = got >= size;
      try {
        const file = parseDicom(buf.subarray(0, got), { ...options, stopAtPixelData: true, complete, fileSize: size });
        // Keep only the bytes up to the pixel data (what the data set's values point into).
        headerSlab.commit(file.pixelData && !file.inflated ? Math.min(got, file.pixelData.offset) : got);
        return file;
      } catch (err) {
        if (!(err instanceof NeedMoreData) || complete) throw err;
        chunk = Math.min(size, chunk * 4);
      }
    }
  } finally {
    closeSync(fd);
  }
}

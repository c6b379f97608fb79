import { randomBytes } from 'node:crypto';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { entryForTag, resolveTag } from './dictionary';
import { Tag, formatTag } from './tags';
import { ImplementationClassUID, ImplementationVersionName, TransferSyntax } from './uids';

/**
 * A value to write. Plain values take their VR from the dictionary; `{ vr, value }` sets it
 * explicitly (private tags, and attributes whose VR depends on context, such as US/SS or OB/OW).
 */
export type WriteScalar = string | number;
export type WriteValue =
  | WriteScalar
  | WriteScalar[]
  | Uint8Array
  | WriteDataset[]
  | null
  | undefined
  | { vr: string; value: WriteScalar | WriteScalar[] | Uint8Array | WriteDataset[] | null };
/** A data set to write, keyed by keyword or by "(gggg,eeee)". Undefined values are left out; null writes an empty value. */
export type WriteDataset = { [keywordOrTag: string]: WriteValue };

const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** Formats a decimal string in at most 16 characters, as DS requires. */
export function formatDecimalString(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`DS value ${n} is not finite`);
  if (Object.is(n, -0)) n = 0;
  let text = String(n);
  if (text.length <= 16) return text;
  for (let precision = 15; precision > 0; precision--) {
    text = n.toPrecision(precision);
    if (text.includes('e')) text = text.replace(/\.?0+e/, 'e');
    else if (text.includes('.')) text = text.replace(/\.?0+$/, '');
    if (text.length <= 16) return text;
  }
  throw new Error(`DS value ${n} does not fit in 16 characters`);
}

function isDatasetArray(value: unknown): value is WriteDataset[] {
  return Array.isArray(value) && value.length > 0 && typeof value[0] === 'object' && value[0] !== null;
}

function encodeValue(vr: string, value: WriteScalar | WriteScalar[] | Uint8Array | null, tag: number): Buffer {
  if (value === null) return Buffer.alloc(0);
  if (value instanceof Uint8Array) {
    const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return b.length % 2 ? Buffer.concat([b, Buffer.alloc(1)]) : b;
  }
  const values = Array.isArray(value) ? value : [value];
  const binary = (size: number, put: (b: Buffer, v: number, o: number) => void): Buffer => {
    const b = Buffer.alloc(values.length * size);
    values.forEach((v, i) => put(b, Number(v), i * size));
    return b;
  };
  switch (vr) {
    case 'US': return binary(2, (b, v, o) => b.writeUInt16LE(v, o));
    case 'SS': return binary(2, (b, v, o) => b.writeInt16LE(v, o));
    case 'UL': return binary(4, (b, v, o) => b.writeUInt32LE(v, o));
    case 'SL': return binary(4, (b, v, o) => b.writeInt32LE(v, o));
    case 'FL': case 'OF': return binary(4, (b, v, o) => b.writeFloatLE(v, o));
    case 'FD': case 'OD': return binary(8, (b, v, o) => b.writeDoubleLE(v, o));
    case 'AT': return binary(4, (b, v, o) => { b.writeUInt16LE(v >>> 16, o); b.writeUInt16LE(v & 0xffff, o + 2); });
    default: {
      const text = values
        .map((v) => (vr === 'DS' && typeof v === 'number' ? formatDecimalString(v) : vr === 'IS' && typeof v === 'number' ? String(Math.round(v)) : String(v)))
        .join('\\');
      const bytes = Buffer.from(text, vr === 'UI' ? 'latin1' : 'utf8');
      if (bytes.length % 2 === 0) return bytes;
      return Buffer.concat([bytes, Buffer.from(vr === 'UI' ? [0] : [0x20])]);
    }
  }
  throw new Error(`cannot encode ${formatTag(tag)}`);
}

function header(tag: number, vr: string, length: number, implicitVR = false): Buffer {
  if (implicitVR) {
    // Implicit VR: no VR field, and a 32-bit length for every element, whatever its VR.
    const b = Buffer.alloc(8);
    b.writeUInt16LE(tag >>> 16, 0);
    b.writeUInt16LE(tag & 0xffff, 2);
    b.writeUInt32LE(length, 4);
    return b;
  }
  const long = LONG_LENGTH_VRS.has(vr);
  const b = Buffer.alloc(long ? 12 : 8);
  b.writeUInt16LE(tag >>> 16, 0);
  b.writeUInt16LE(tag & 0xffff, 2);
  b.write(vr, 4, 'latin1');
  if (long) b.writeUInt32LE(length, 8);
  else {
    if (length > 0xffff) throw new Error(`value of ${formatTag(tag)} (${vr}) is ${length} bytes, more than its VR allows`);
    b.writeUInt16LE(length, 6);
  }
  return b;
}

export interface EncodeOptions {
  /**
   * Implicit VR Little Endian instead of Explicit: every value length is 32 bits, so a value of a 16-bit-length
   * VR (a long DS such as ContourData) past 64 KiB fits; every DICOM application accepts this transfer syntax.
   */
  implicitVR?: boolean;
}

/** Encodes a data set as Explicit (or, asked, Implicit) VR Little Endian, elements in ascending tag order. */
export function encodeDataset(dataset: WriteDataset, options: EncodeOptions = {}): Buffer {
  const implicitVR = options.implicitVR === true;
  const entries: Array<{ tag: number; key: string; value: WriteValue }> = [];
  for (const [key, value] of Object.entries(dataset)) {
    if (value === undefined) continue;
    const tag = resolveTag(key);
    if (tag === undefined) throw new Error(`unknown attribute "${key}"`);
    entries.push({ tag, key, value });
  }
  entries.sort((a, b) => a.tag - b.tag);
  const parts: Buffer[] = [];
  for (const { tag, key, value } of entries) {
    let vr: string | undefined;
    let raw: WriteValue = value;
    if (raw !== null && typeof raw === 'object' && !Array.isArray(raw) && !(raw instanceof Uint8Array)) {
      vr = raw.vr;
      raw = raw.value;
    }
    if (!vr) {
      const known = entryForTag(tag)?.vr;
      if (!known) throw new Error(`attribute "${key}" needs an explicit VR`);
      vr = known === 'ox' ? 'OW' : known === 'xs' ? 'US' : known.split(' or ')[0];
    }
    if (vr === 'SQ' || isDatasetArray(raw)) {
      const items = (Array.isArray(raw) ? raw : []) as WriteDataset[];
      const encodedItems = items.map((item) => {
        const body = encodeDataset(item, options);
        const itemHeader = Buffer.alloc(8);
        itemHeader.writeUInt16LE(0xfffe, 0);
        itemHeader.writeUInt16LE(0xe000, 2);
        itemHeader.writeUInt32LE(body.length, 4);
        return Buffer.concat([itemHeader, body]);
      });
      const length = encodedItems.reduce((n, b) => n + b.length, 0);
      parts.push(header(tag, 'SQ', length, implicitVR), ...encodedItems);
      continue;
    }
    const bytes = encodeValue(vr, raw as WriteScalar | WriteScalar[] | Uint8Array | null, tag);
    parts.push(header(tag, vr, bytes.length, implicitVR), bytes);
  }
  return Buffer.concat(parts);
}

export interface Part10Identity {
  sopClassUID: string;
  sopInstanceUID: string;
  transferSyntaxUID?: string;
  sourceAETitle?: string;
}

/** The 128-byte preamble, "DICM" and the group 0002 file meta information. */
export function encodeFileMeta(identity: Part10Identity): Buffer {
  const group = encodeDataset({
    FileMetaInformationVersion: { vr: 'OB', value: new Uint8Array([0, 1]) },
    MediaStorageSOPClassUID: identity.sopClassUID,
    MediaStorageSOPInstanceUID: identity.sopInstanceUID,
    TransferSyntaxUID: identity.transferSyntaxUID ?? TransferSyntax.ExplicitVRLittleEndian,
    ImplementationClassUID,
    ImplementationVersionName,
    SourceApplicationEntityTitle: identity.sourceAETitle,
  });
  const groupLength = encodeDataset({ [formatTag(Tag.FileMetaInformationGroupLength)]: { vr: 'UL', value: group.length } });
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, groupLength, group]);
}

/** Encodes a whole Part 10 file in Explicit (or, asked, Implicit) VR Little Endian; the identity comes from the data set. */
export function encodePart10(dataset: WriteDataset, options: EncodeOptions = {}): Buffer {
  const sopClassUID = dataset.SOPClassUID;
  const sopInstanceUID = dataset.SOPInstanceUID;
  if (typeof sopClassUID !== 'string' || typeof sopInstanceUID !== 'string') {
    throw new Error('a Part 10 file needs SOPClassUID and SOPInstanceUID');
  }
  const transferSyntaxUID = options.implicitVR ? TransferSyntax.ImplicitVRLittleEndian : TransferSyntax.ExplicitVRLittleEndian;
  return Buffer.concat([encodeFileMeta({ sopClassUID, sopInstanceUID, transferSyntaxUID }), encodeDataset(dataset, options)]);
}

/** Writes a file so that readers see either nothing or the whole file: a temporary name, then rename. */
export function writeFileAtomic(path: string, data: Buffer | Uint8Array): void {
  const temp = `${path}.${randomBytes(6).toString('hex')}.part`;
  try {
    writeFileSync(temp, data);
    renameSync(temp, path);
  } catch (err) {
    try {
      unlinkSync(temp);
    } catch {
      // the temporary file was never created
    }
    throw err;
  }
}

/** Writes a metadata file (job.json, dicom-metadata.json, ...) as indented JSON, atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, Buffer.from(JSON.stringify(value, null, 2) + '\n'));
}

export function writeDicomFile(path: string, dataset: WriteDataset, options: EncodeOptions = {}): void {
  writeFileAtomic(path, encodePart10(dataset, options));
}

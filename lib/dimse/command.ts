import { Dataset } from 'dcmjs-dimse';
import { entryForKeyword, entryForTag } from '../dicom/dictionary';

/**
 * DIMSE command sets (group 0000, always Implicit VR Little Endian, PS3.7 6.3.1) encoded and decoded
 * directly. dcmjs-dimse runs every command through dcmjs's general-purpose reader and writer, which
 * cost about 0.45 ms per C-STORE (a third of the SCP's time per instance); command sets are a dozen
 * small elements, so this does the same in a few microseconds. Anything outside that simple shape
 * (unknown tags, multi-valued or empty values, AT) returns undefined and dcmjs handles it as before.
 */

type CommandElements = Record<string, unknown>;

const TEXT_PADDING: Record<string, number> = { UI: 0x00, AE: 0x20, LO: 0x20, SH: 0x20, CS: 0x20, ST: 0x20 };

interface Spec {
  tag: number;
  vr: string;
}

const specByKeyword = new Map<string, Spec | null>();

function specOf(keyword: string): Spec | null {
  let spec = specByKeyword.get(keyword);
  if (spec === undefined) {
    const entry = entryForKeyword(keyword);
    spec = entry && entry.tag >>> 16 === 0 && (entry.vr === 'US' || entry.vr === 'UL' || entry.vr in TEXT_PADDING) ? { tag: entry.tag, vr: entry.vr } : null;
    specByKeyword.set(keyword, spec);
  }
  return spec;
}

/** Encodes a naturalized command set (keyword → value), with its group length. Undefined when unsupported. */
export function encodeCommandSet(elements: CommandElements): Buffer | undefined {
  const parts: Array<{ tag: number; value: Buffer }> = [];
  for (const [keyword, value] of Object.entries(elements)) {
    if (keyword.startsWith('_') || keyword === 'CommandGroupLength' || value === undefined || value === null) continue;
    const spec = specOf(keyword);
    if (!spec) return undefined;
    let bytes: Buffer;
    if (spec.vr === 'US' || spec.vr === 'UL') {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) return undefined;
      bytes = Buffer.allocUnsafe(spec.vr === 'US' ? 2 : 4);
      if (spec.vr === 'US') {
        if (value > 0xffff) return undefined;
        bytes.writeUInt16LE(value, 0);
      } else {
        if (value > 0xffffffff) return undefined;
        bytes.writeUInt32LE(value, 0);
      }
    } else {
      if (typeof value !== 'string' || value.includes('\\') || /[^\x20-\x7e]/.test(value)) return undefined;
      const odd = value.length % 2;
      bytes = Buffer.alloc(value.length + odd, TEXT_PADDING[spec.vr]);
      bytes.write(value, 0, 'latin1');
    }
    parts.push({ tag: spec.tag, value: bytes });
  }
  parts.sort((a, b) => a.tag - b.tag);
  let length = 0;
  for (const p of parts) length += 8 + p.value.length;
  const out = Buffer.allocUnsafe(12 + length);
  out.writeUInt32LE(0x00000000, 0); // (0000,0000) CommandGroupLength
  out.writeUInt32LE(4, 4);
  out.writeUInt32LE(length, 8);
  let pos = 12;
  for (const p of parts) {
    out.writeUInt16LE(0x0000, pos);
    out.writeUInt16LE(p.tag & 0xffff, pos + 2);
    out.writeUInt32LE(p.value.length, pos + 4);
    p.value.copy(out, pos + 8);
    pos += 8 + p.value.length;
  }
  return out;
}

/**
 * Decodes a command set into the naturalized form dcmjs gives (`{ _vrMap: {}, Keyword: value }`, single
 * values as scalars, text trimmed). Undefined when the buffer holds anything this does not handle.
 */
export function decodeCommandSet(buf: Buffer): CommandElements | undefined {
  const out: CommandElements = { _vrMap: {} };
  let pos = 0;
  while (pos < buf.length) {
    if (pos + 8 > buf.length) return undefined;
    const group = buf.readUInt16LE(pos);
    if (group !== 0) return undefined;
    const tag = buf.readUInt16LE(pos + 2);
    const length = buf.readUInt32LE(pos + 4);
    const start = pos + 8;
    const end = start + length;
    if (end > buf.length || length === 0) return undefined;
    const entry = entryForTag(tag);
    if (!entry || (entry.keyword === 'GroupLength' && tag !== 0)) return undefined;
    const keyword = tag === 0 ? 'CommandGroupLength' : entry.keyword;
    const vr = entry.vr;
    if (vr === 'US') {
      if (length !== 2) return undefined;
      out[keyword] = buf.readUInt16LE(start);
    } else if (vr === 'UL') {
      if (length !== 4) return undefined;
      out[keyword] = buf.readUInt32LE(start);
    } else if (vr in TEXT_PADDING) {
      const text = buf.toString('latin1', start, end);
      if (text.includes('\\') || /[^\x20-\x7e\x00]/.test(text)) return undefined;
      const trimmed = vr === 'UI' ? text.replace(/[\0 ]+$/, '') : text.replace(/[\0 ]+$/, '').replace(/^ +/, '');
      if (trimmed.length === 0) return undefined;
      out[keyword] = trimmed;
    } else {
      return undefined;
    }
    pos = end;
  }
  return out;
}

interface DatasetInternals {
  _fromElementsBuffer(buffer: Buffer, transferSyntaxUid: string, readOptions: unknown): CommandElements;
  getDenaturalizedCommandDataset(writeOptions?: unknown): Buffer;
  getElements(): CommandElements;
}

const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
let installed = false;

/**
 * Routes dcmjs-dimse's command-set reading and writing through the codec above, keeping dcmjs as the
 * fallback for anything else. Data sets are never touched: their first group is never 0000.
 */
export function installFastCommandCodec(): void {
  if (installed) return;
  installed = true;
  const proto = Dataset.prototype as unknown as DatasetInternals;
  const originalRead = proto._fromElementsBuffer;
  const originalWrite = proto.getDenaturalizedCommandDataset;
  if (typeof originalRead !== 'function' || typeof originalWrite !== 'function') return; // a dcmjs-dimse that changed: leave it be
  proto._fromElementsBuffer = function (this: DatasetInternals, buffer: Buffer, transferSyntaxUid: string, readOptions: unknown) {
    if (transferSyntaxUid === IMPLICIT_VR_LITTLE_ENDIAN && Buffer.isBuffer(buffer) && buffer.length >= 8 && buffer.readUInt16LE(0) === 0) {
      const fast = decodeCommandSet(buffer);
      if (fast) return fast;
    }
    return originalRead.call(this, buffer, transferSyntaxUid, readOptions);
  };
  proto.getDenaturalizedCommandDataset = function (this: DatasetInternals, writeOptions?: unknown) {
    if (writeOptions === undefined) {
      const fast = encodeCommandSet(this.getElements());
      if (fast) return fast;
    }
    return originalWrite.call(this, writeOptions);
  };
}

/** Where a value lies in the source buffer; bulk values (pixel data) are never copied out of it. */
export interface DicomElement {
  tag: number;
  vr: string;
  /** The value bytes, a view on the parsed buffer. Absent for sequences and for bulk data left on disk. */
  bytes?: Uint8Array;
  /** Items of a sequence (VR SQ, or UN with undefined length). */
  items?: DicomDataset[];
  /** Values decoded by the first `strings()`/`numbers()` call: geometry is read many times per slice. */
  decodedStrings?: string[];
  decodedNumbers?: number[];
  /** Offset of the value in the parsed buffer (after inflation, for deflated files). */
  valueOffset: number;
  /** Declared value length; 0xFFFFFFFF means undefined length (encapsulated or delimited). */
  valueLength: number;
}

const TEXT_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT']);
const MULTI_VALUE_TEXT_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'PN', 'SH', 'TM', 'UC', 'UI']);

/** A parsed data set. Values are decoded on access, so parsing a header costs one pass over its bytes. */
export class DicomDataset {
  readonly elements = new Map<number, DicomElement>();

  constructor(
    readonly littleEndian: boolean,
    /** Text decoding: 'utf8' when SpecificCharacterSet says ISO_IR 192, else latin1. */
    public textEncoding: BufferEncoding = 'latin1',
  ) {}

  has(tag: number): boolean {
    return this.elements.has(tag);
  }

  get(tag: number): DicomElement | undefined {
    return this.elements.get(tag);
  }

  /** All values of a text or numeric element as strings (multi-valued text is split on "\"). */
  strings(tag: number): string[] {
    const el = this.elements.get(tag);
    if (!el || !el.bytes) return [];
    if (!el.decodedStrings) el.decodedStrings = this.decodeStrings(el, el.bytes);
    return el.decodedStrings.slice();
  }

  private decodeStrings(el: DicomElement, bytes: Uint8Array): string[] {
    const tag = el.tag;
    if (TEXT_VRS.has(el.vr) || el.vr === 'UN') {
      const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(this.textEncoding);
      const trimmed = text.replace(/[\0 ]+$/, '');
      if (trimmed === '') return [];
      const parts = MULTI_VALUE_TEXT_VRS.has(el.vr) ? trimmed.split('\\') : [trimmed];
      return parts.map((p) => (el.vr === 'UT' || el.vr === 'LT' || el.vr === 'ST' ? p : p.trim()));
    }
    return this.numbers(tag).map((n) => String(n));
  }

  string(tag: number): string | undefined {
    const values = this.strings(tag);
    return values.length ? values[0] : undefined;
  }

  /** All values as numbers: decimal strings (DS, IS) are parsed; binary VRs are read in the data set's byte order. */
  numbers(tag: number): number[] {
    const el = this.elements.get(tag);
    if (!el || !el.bytes) return [];
    if (!el.decodedNumbers) el.decodedNumbers = this.decodeNumbers(el, el.bytes);
    return el.decodedNumbers.slice();
  }

  private decodeNumbers(el: DicomElement, b: Uint8Array): number[] {
    const tag = el.tag;
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const le = this.littleEndian;
    const out: number[] = [];
    const read = (size: number, get: (o: number) => number): number[] => {
      for (let o = 0; o + size <= b.byteLength; o += size) out.push(get(o));
      return out;
    };
    switch (el.vr) {
      case 'US': return read(2, (o) => view.getUint16(o, le));
      case 'SS': return read(2, (o) => view.getInt16(o, le));
      case 'UL': return read(4, (o) => view.getUint32(o, le));
      case 'SL': return read(4, (o) => view.getInt32(o, le));
      case 'FL': return read(4, (o) => view.getFloat32(o, le));
      case 'FD': return read(8, (o) => view.getFloat64(o, le));
      case 'UV': return read(8, (o) => Number(view.getBigUint64(o, le)));
      case 'SV': return read(8, (o) => Number(view.getBigInt64(o, le)));
      case 'AT': return read(4, (o) => ((view.getUint16(o, le) << 16) | view.getUint16(o + 2, le)) >>> 0);
      default: {
        if (!TEXT_VRS.has(el.vr)) return [];
        for (const s of this.strings(tag)) {
          const n = Number(s);
          if (s !== '' && Number.isFinite(n)) out.push(n);
          else out.push(NaN);
        }
        return out;
      }
    }
  }

  number(tag: number): number | undefined {
    const values = this.numbers(tag);
    return values.length && !Number.isNaN(values[0]) ? values[0] : undefined;
  }

  sequence(tag: number): DicomDataset[] {
    return this.elements.get(tag)?.items ?? [];
  }
}

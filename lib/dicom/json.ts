import { DicomDataset } from './dataset';
import { Tag } from './tags';

/** One attribute in the DICOM JSON model (PS3.18 F.2). */
export interface DicomJsonAttribute {
  vr: string;
  Value?: Array<string | number | DicomJsonObject | { Alphabetic: string }>;
}
export type DicomJsonObject = Record<string, DicomJsonAttribute>;

const NUMERIC_VRS = new Set(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'UV', 'SV', 'DS', 'IS']);
const BULK_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
/** Text values longer than this (free-text reports, embedded XML) are treated as bulk. */
const MAX_INLINE_TEXT = 4096;

/** The DICOM JSON model's key for a tag (PS3.18 F.2): "GGGGEEEE". */
export function dicomJsonKey(tag: number): string {
  return (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
}

/**
 * Converts a data set to the DICOM JSON model, leaving out pixel data and the values of other bulk
 * attributes, so that metadata files stay small and never carry images.
 */
export function toDicomJson(ds: DicomDataset): DicomJsonObject {
  const out: DicomJsonObject = {};
  const tags = [...ds.elements.keys()].sort((a, b) => a - b);
  for (const tag of tags) {
    const el = ds.elements.get(tag)!;
    if (tag === Tag.PixelData || tag === Tag.FloatPixelData || tag === Tag.DoubleFloatPixelData || (tag >>> 16) === 0x0002) continue;
    const key = dicomJsonKey(tag);
    if (el.vr === 'SQ') {
      out[key] = { vr: 'SQ', Value: (el.items ?? []).map(toDicomJson) };
      continue;
    }
    if (BULK_VRS.has(el.vr) || !el.bytes || el.bytes.length > MAX_INLINE_TEXT) {
      // Bulk values stay in the instance: the attribute is listed with its VR and no value.
      out[key] = { vr: el.vr };
      continue;
    }
    if (el.vr === 'AT') {
      out[key] = { vr: 'AT', Value: ds.numbers(tag).map(dicomJsonKey) };
      continue;
    }
    const values: Array<string | number | { Alphabetic: string }> = NUMERIC_VRS.has(el.vr)
      ? ds.numbers(tag).filter((n) => !Number.isNaN(n))
      : el.vr === 'PN'
        ? ds.strings(tag).map((name) => ({ Alphabetic: name }))
        : ds.strings(tag);
    out[key] = values.length ? { vr: el.vr, Value: values } : { vr: el.vr };
  }
  return out;
}

/**
 * The ROIs of a structure set, from the label list Clara's NVIDIA_SEG_LABELS gives (a JSON list: item i
 * names mask value i + 1) and optional per-label styles (display colour, RT ROI Interpreted Type).
 */

export type Rgb = [number, number, number];

export interface RoiLabel {
  /** The mask value, and the ROI Number. */
  value: number;
  /** ROI Name (LO: at most 64 characters). */
  name: string;
  color: Rgb;
  /** RT ROI Interpreted Type (CS): GTV, ORGAN, CONTROL, ... */
  interpretedType: string;
}

/** What a style may set, per label: `color` as [r, g, b] (0–255) or "#rrggbb", `type` the interpreted type. */
export interface RoiStyle {
  color?: Rgb | string;
  type?: string;
}

export class LabelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabelConfigError';
  }
}

export const DEFAULT_LABELS = '["Tumor-seg"]';

/**
 * RT ROI Interpreted Type defined terms (PS3.3 C.8.8.8). Others are accepted as long as they are valid CS
 * (a site's own terms), but a typo of one of these is better caught.
 */
export const INTERPRETED_TYPES = [
  'EXTERNAL', 'PTV', 'CTV', 'GTV', 'TREATED_VOLUME', 'IRRAD_VOLUME', 'OAR', 'BOLUS', 'AVOIDANCE', 'ORGAN', 'MARKER', 'REGISTRATION',
  'ISOCENTER', 'CONTRAST_AGENT', 'CAVITY', 'BRACHY_CHANNEL', 'BRACHY_ACCESSORY', 'BRACHY_SRC_APP', 'BRACHY_CHNL_SHLD', 'SUPPORT',
  'FIXATION', 'DOSE_REGION', 'CONTROL', 'DOSE_MEASUREMENT',
] as const;

/** Distinct, saturated colours in turn: the first is the red that tumour contours usually get. */
const PALETTE: Rgb[] = [
  [255, 0, 0], [0, 200, 0], [0, 120, 255], [255, 200, 0], [255, 0, 255], [0, 220, 220], [255, 128, 0], [160, 80, 255],
  [128, 255, 128], [255, 128, 160],
];

/** A tumour-like name is a gross tumour volume by default; anything else an organ. Styles override both. */
function defaultType(name: string): string {
  return /tumou?r|lesion|gtv|cancer|metasta|neoplas|carcinom/i.test(name) ? 'GTV' : 'ORGAN';
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new LabelConfigError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function colorOf(value: unknown, where: string): Rgb {
  if (typeof value === 'string') {
    const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(value.trim());
    if (!m) throw new LabelConfigError(`${where}: colour ${JSON.stringify(value)} is not "#rrggbb"`);
    return [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)];
  }
  if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
    throw new LabelConfigError(`${where}: colour must be [r, g, b] with integers from 0 to 255, or "#rrggbb", not ${JSON.stringify(value)}`);
  }
  return value as Rgb;
}

function typeOf(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new LabelConfigError(`${where}: interpreted type must be a string, not ${JSON.stringify(value)}`);
  const type = value.trim().toUpperCase();
  // CS: upper-case letters, digits, space and underscore, at most 16 characters; empty means unknown (type 2).
  if (!/^[A-Z0-9_ ]{0,16}$/.test(type)) throw new LabelConfigError(`${where}: interpreted type ${JSON.stringify(value)} is not a DICOM code string (A–Z, 0–9, _ and space, at most 16)`);
  return type;
}

function styleOf(value: unknown, where: string): RoiStyle {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new LabelConfigError(`${where} must be an object like {"color": [255, 0, 0], "type": "GTV"}`);
  const style = value as Record<string, unknown>;
  for (const key of Object.keys(style)) {
    if (!['color', 'colour', 'type', 'name'].includes(key)) throw new LabelConfigError(`${where}: unknown key ${JSON.stringify(key)} (color, type)`);
  }
  return { color: (style.color ?? style.colour) as RoiStyle['color'], type: style.type as string | undefined };
}

/**
 * Reads the label list (JSON text or an already parsed list) and the optional styles: a list aligned with
 * the labels, or an object keyed by label name. A label may also be an object `{ name, color, type }`.
 */
export function parseLabels(labels: string | unknown[], styles?: string | unknown): RoiLabel[] {
  const list = typeof labels === 'string' ? parseJson(labels.trim() || DEFAULT_LABELS, 'the label list') : labels;
  if (!Array.isArray(list) || list.length === 0) throw new LabelConfigError('the label list must be a non-empty JSON list of names, like ["Tumor-seg"] (item i is mask value i + 1)');
  if (list.length > 255) throw new LabelConfigError(`the label list has ${list.length} labels; at most 255`);
  const styleValue = typeof styles === 'string' ? (styles.trim() ? parseJson(styles, 'the label styles') : undefined) : styles;
  if (styleValue !== undefined && styleValue !== null && typeof styleValue !== 'object') throw new LabelConfigError('the label styles must be a JSON list (one per label) or an object keyed by label name');
  const seen = new Set<string>();
  const out = list.map((item, index): RoiLabel => {
    const where = `label ${index + 1}`;
    const own: RoiStyle & { name?: unknown } = typeof item === 'object' && item !== null ? { ...styleOf(item, where), name: (item as { name?: unknown }).name } : { name: item };
    if (typeof own.name !== 'string' || own.name.trim() === '') throw new LabelConfigError(`${where}: a label is a non-empty name, not ${JSON.stringify(own.name ?? item)}`);
    const name = own.name.trim();
    if (name.length > 64) throw new LabelConfigError(`${where}: the name "${name.slice(0, 20)}…" is longer than the 64 characters of an ROI Name`);
    if (/[\\\n\r\f\x1b]/.test(name)) throw new LabelConfigError(`${where}: the name "${name}" holds a backslash or control character`);
    if (seen.has(name)) throw new LabelConfigError(`${where}: "${name}" is named twice; ROI names must be unique`);
    seen.add(name);
    let style: RoiStyle | undefined;
    if (Array.isArray(styleValue)) style = styleValue[index] === undefined || styleValue[index] === null ? undefined : styleOf(styleValue[index], `style ${index + 1}`);
    else if (styleValue && typeof styleValue === 'object') {
      const entry = (styleValue as Record<string, unknown>)[name];
      style = entry === undefined ? undefined : styleOf(entry, `style of "${name}"`);
    }
    const color = own.color ?? style?.color;
    const type = own.type ?? style?.type;
    return {
      value: index + 1,
      name,
      color: color === undefined ? PALETTE[index % PALETTE.length] : colorOf(color, where),
      interpretedType: type === undefined ? defaultType(name) : typeOf(type, where),
    };
  });
  if (styleValue && typeof styleValue === 'object' && !Array.isArray(styleValue)) {
    const unknown = Object.keys(styleValue).filter((k) => !seen.has(k));
    if (unknown.length) throw new LabelConfigError(`the label styles name ${unknown.map((k) => JSON.stringify(k)).join(', ')}, which is not in the label list`);
  }
  if (Array.isArray(styleValue) && styleValue.length > list.length) throw new LabelConfigError(`the label styles list has ${styleValue.length} items for ${list.length} labels`);
  return out;
}

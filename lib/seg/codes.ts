/**
 * Coded concepts and colours of segments: the SNOMED CT codes a DICOM Segmentation describes each segment
 * with (PS3.16 CID 7150 categories, CID 7151/7159 types), and RecommendedDisplayCIELabValue from sRGB.
 */

/** A code as DICOM's Code Sequence Macro has it; the keys are the attribute keywords. */
export interface CodedConcept {
  CodeValue: string;
  CodingSchemeDesignator: string;
  CodeMeaning: string;
  CodingSchemeVersion?: string;
}

const sct = (CodeValue: string, CodeMeaning: string): CodedConcept => ({ CodeValue, CodingSchemeDesignator: 'SCT', CodeMeaning });
const dcm = (CodeValue: string, CodeMeaning: string): CodedConcept => ({ CodeValue, CodingSchemeDesignator: 'DCM', CodeMeaning });

/** The codes this package writes, each checked against the PS3.16 context group it comes from. */
export const Codes = {
  /** CID 7150 Segmentation Property Category. */
  MorphologicallyAbnormalStructure: sct('49755003', 'Morphologically Abnormal Structure'),
  Tissue: sct('85756007', 'Tissue'),
  AnatomicalStructure: sct('91723000', 'Anatomical Structure'),
  /** CID 7159 Lesion Segmentation Type (via CID 7194 under Morphologically Abnormal Structure). */
  Neoplasm: sct('108369006', 'Neoplasm'),
  Necrosis: sct('6574001', 'Necrosis'),
  Edema: sct('79654002', 'Edema'),
  Lesion: sct('52988006', 'Lesion'),
  Mass: sct('4147007', 'Mass'),
  /** CID 7162 Surface Processing Algorithm Family: the family of a segmentation algorithm. */
  ArtificialIntelligence: dcm('123110', 'Artificial Intelligence'),
  /** CID 7203 Image Derivation. */
  Segmentation: dcm('113076', 'Segmentation'),
  /** CID 7202 Source Image Purposes of Reference. */
  SourceImageForImageProcessingOperation: dcm('121322', 'Source image for image processing operation'),
} as const;

/**
 * Default category and type for a label, from its name: Clara's and MONAI's brain-tumour labels name the
 * tumour core ("Tumor-seg", "TC"), necrosis and oedema, so those map to their CID 7159 codes; anything
 * else is described as a neoplasm, the closest general concept for what a tumour model segments.
 */
export function defaultCodesFor(label: string): { category: CodedConcept; type: CodedConcept } {
  const name = label.toLowerCase();
  const type = /necro|\bncr\b/.test(name) ? Codes.Necrosis : /o?edema|\bed\b/.test(name) ? Codes.Edema : Codes.Neoplasm;
  return { category: Codes.MorphologicallyAbnormalStructure, type };
}

/** Distinct sRGB colours for segments 1, 2, 3, ... (tumour core red, then the usual BraTS greens and blues). */
const PALETTE: Array<[number, number, number]> = [
  [230, 40, 40], [40, 200, 80], [50, 110, 240], [250, 200, 30], [200, 60, 220], [30, 210, 220], [245, 130, 40], [150, 150, 150],
];

export function defaultColor(segmentIndex: number): [number, number, number] {
  return PALETTE[segmentIndex % PALETTE.length];
}

/**
 * sRGB (0–255) to DICOM's CIELab encoding (PS3.3 C.10.7.1.1): L* 0–100 scaled to 0–65535, a* and b*
 * −128–127 offset by 128 and scaled to 0–65535. DICOM's CIELab is the ICC profile connection space,
 * relative to D50, so sRGB's D65 white is adapted with the Bradford transform first (white maps to
 * L* 100, a* = b* = 0).
 */
export function srgbToDicomLab(rgb: readonly [number, number, number]): [number, number, number] {
  const linear = rgb.map((v) => {
    const c = Math.min(Math.max(v, 0), 255) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  // sRGB → XYZ (D65), IEC 61966-2-1.
  const x65 = 0.4124564 * linear[0] + 0.3575761 * linear[1] + 0.1804375 * linear[2];
  const y65 = 0.2126729 * linear[0] + 0.7151522 * linear[1] + 0.072175 * linear[2];
  const z65 = 0.0193339 * linear[0] + 0.119192 * linear[1] + 0.9503041 * linear[2];
  // Bradford chromatic adaptation D65 → D50.
  const x = 1.0478112 * x65 + 0.0228866 * y65 - 0.050127 * z65;
  const y = 0.0295424 * x65 + 0.9904844 * y65 - 0.0170491 * z65;
  const z = -0.0092345 * x65 + 0.0150436 * y65 + 0.7521316 * z65;
  const white = [0.96422, 1, 0.82521];
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116);
  const [fx, fy, fz] = [x / white[0], y / white[1], z / white[2]].map(f);
  const l = 116 * fy - 16;
  const a = 500 * (fx - fy);
  const b = 200 * (fy - fz);
  const scale = (v: number, lo: number, hi: number) => Math.round((Math.min(Math.max(v, lo), hi) - lo) * 65535 / (hi - lo));
  return [scale(l, 0, 100), scale(a, -128, 127), scale(b, -128, 127)];
}

/** Why a code cannot be written (SH code value, LO meaning), or undefined when it can. */
export function codeProblem(code: CodedConcept): string | undefined {
  if (!code || typeof code !== 'object') return 'not a code';
  for (const key of ['CodeValue', 'CodingSchemeDesignator', 'CodeMeaning'] as const) {
    if (typeof code[key] !== 'string' || code[key].trim() === '') return `${key} is missing`;
    if (code[key].includes('\\')) return `${key} contains a backslash`;
  }
  if (code.CodeValue.length > 16) return `CodeValue ${JSON.stringify(code.CodeValue)} is longer than 16 characters`;
  if (code.CodingSchemeDesignator.length > 16) return `CodingSchemeDesignator ${JSON.stringify(code.CodingSchemeDesignator)} is longer than 16 characters`;
  if (code.CodeMeaning.length > 64) return `CodeMeaning is longer than 64 characters`;
  return undefined;
}

import { type Contrast, Contrasts, type PixelEncoding } from './anatomy';
import { type StackGrid, type Vec3, rotateXThenZ } from './geometry';

/**
 * The exam as a scanner and a PACS would hold it: which series, in which planes, with which sequence
 * parameters and pixel encodings. The set is chosen so that the Clara selection rule
 *   Modality "(?i)^MR", StudyDescription "(?i)Brain", ImageType ["ORIGINAL","PRIMARY"],
 *   SeriesDescription "^(?=.*T1c)(?!.*(ref|rfmt|[0-9]x[0-9])).*"
 * picks the 3D T1c alone, and every other series fails it for a different reason: the localizer, T1
 * and FLAIR by description, the "2x2 ref" by its exclusion pattern although ORIGINAL\PRIMARY, the
 * reformat by both, and the MPR by ImageType alone although its description names T1c.
 */

export type OrientationKind = 'axial' | 'coronal' | 'sagittal' | 'oblique' | 'three-plane';
/** Acquisition order, which InstanceNumber follows; parsers must sort by position regardless. */
export type InstanceOrder = 'ascending' | 'descending' | 'interleaved';

/** The MR Image module attributes of one pulse sequence. */
export interface MrSequence {
  contrast: Contrast;
  scanningSequence: string[];
  sequenceVariant: string[];
  scanOptions: string[] | null;
  acquisitionType: '2D' | '3D';
  sequenceName: string;
  repetitionTime: number;
  echoTime: number;
  inversionTime?: number;
  echoTrainLength: number;
  flipAngle: number;
  pixelBandwidth: number;
  averages: number;
}

export interface SeriesPlan {
  /** Folder name under dicom/. */
  folder: string;
  seriesNumber: number;
  description: string;
  protocolName: string;
  imageType: string[];
  orientationKind: OrientationKind;
  stacks: StackGrid[];
  sequence: MrSequence;
  encoding: PixelEncoding;
  /** Localizers from many scanners carry no rescale attributes; readers must default to 1 and 0. */
  writeRescale: boolean;
  order: InstanceOrder;
  isTarget: boolean;
  /** Slices of 2D series are thinner than their spacing (a gap), as on real scanners. */
  sliceThickness: number;
  /** The percentage of the frequency-direction field of view covered in the phase direction. */
  percentPhaseFov: number;
  window: { center: number; width: number };
  minutesAfterStart: number;
  contrastAgent: boolean;
  derivation?: string;
}

const Sequences: Record<'localizer' | 't1' | 't1c' | 'flair', MrSequence> = {
  localizer: {
    contrast: Contrasts.localizer, scanningSequence: ['GR'], sequenceVariant: ['SP', 'OSP'], scanOptions: null,
    acquisitionType: '2D', sequenceName: '*fl2d1', repetitionTime: 8.6, echoTime: 4, echoTrainLength: 1,
    flipAngle: 20, pixelBandwidth: 320, averages: 1,
  },
  t1: {
    contrast: Contrasts.t1, scanningSequence: ['SE'], sequenceVariant: ['SK', 'SP'], scanOptions: null,
    acquisitionType: '2D', sequenceName: '*se2d1', repetitionTime: 550, echoTime: 11, echoTrainLength: 1,
    flipAngle: 90, pixelBandwidth: 150, averages: 2,
  },
  flair: {
    contrast: Contrasts.flair, scanningSequence: ['SE', 'IR'], sequenceVariant: ['SK', 'SP', 'MP'], scanOptions: null,
    acquisitionType: '2D', sequenceName: '*tir2d1_16', repetitionTime: 9000, echoTime: 118, inversionTime: 2500,
    echoTrainLength: 16, flipAngle: 150, pixelBandwidth: 287, averages: 1,
  },
  t1c: {
    contrast: Contrasts.t1c, scanningSequence: ['GR', 'IR'], sequenceVariant: ['SK', 'SP', 'MP'], scanOptions: null,
    acquisitionType: '3D', sequenceName: '*tfl3d1_16ns', repetitionTime: 2300, echoTime: 2.98, inversionTime: 900,
    echoTrainLength: 1, flipAngle: 9, pixelBandwidth: 240, averages: 1,
  },
};

const AXIAL = { rowCosine: [1, 0, 0] as Vec3, columnCosine: [0, 1, 0] as Vec3 };
const CORONAL = { rowCosine: [1, 0, 0] as Vec3, columnCosine: [0, 0, -1] as Vec3 };
const SAGITTAL = { rowCosine: [0, 1, 0] as Vec3, columnCosine: [0, 0, -1] as Vec3 };
/** The 3D slab is tilted like an AC-PC aligned acquisition, and twisted a little: a double oblique. */
const TARGET_TILT_DEGREES = 15;
const TARGET_TWIST_DEGREES = 6;
const TARGET_ORIENTATION = {
  rowCosine: rotateXThenZ([1, 0, 0], TARGET_TILT_DEGREES, TARGET_TWIST_DEGREES),
  columnCosine: rotateXThenZ([0, 1, 0], TARGET_TILT_DEGREES, TARGET_TWIST_DEGREES),
};

// Fields of view and coverages are fixed in millimetres, so the head fits whatever the matrix size;
// the default 256 × 160 gives the 1 mm isotropic target of a real MPRAGE.
const TARGET_FOV_MM = 256;
const TARGET_SLAB_MM = 160;
const AXIAL_2D_FOV_MM = 240;
const AXIAL_2D_COVERAGE_MM = 160;
const LOCALIZER_FOV_MM = 280;
const LOCALIZER_GAP_MM = 20;
const REFORMAT_FOV_MM = 256;
const CORONAL_COVERAGE_MM = 200;
const SAGITTAL_COVERAGE_MM = 160;

function stack(
  orientation: { rowCosine: Vec3; columnCosine: Vec3 },
  rows: number, columns: number, pixelSpacing: number, sliceCount: number, sliceStep: number, centre: Vec3,
): StackGrid {
  return { ...orientation, rows, columns, rowSpacing: pixelSpacing, columnSpacing: pixelSpacing, sliceCount, sliceStep, centre };
}

const SIGNED_T1C: PixelEncoding = { signed: true, bitsStored: 16, slope: 0.75, intercept: 400 };

/** The series of the exam for a matrix size and a target slice count, in series-number order. */
export function planSeries(size: number, slices: number): SeriesPlan[] {
  const twoDSlices = Math.max(4, Math.round(slices / 5));
  const twoDStep = AXIAL_2D_COVERAGE_MM / twoDSlices;
  const twoDSpacing = AXIAL_2D_FOV_MM / size;
  const refMatrix = Math.max(8, Math.round(size / 2));
  const refSlices = Math.max(4, Math.round(slices / 2));
  const reformatSlices = Math.max(4, Math.round(slices / 4));
  const slabCentre: Vec3 = [0, 0, 5];
  const headCentre: Vec3 = [0, 0, 0];
  // Off the midline, so the middle sagittal localizer cuts a hemisphere rather than the fissure.
  const localizerCentre: Vec3 = [3, 4, 8];
  const locSpacing = LOCALIZER_FOV_MM / size;
  const reformatSpacing = REFORMAT_FOV_MM / size;
  const plainUnsigned: PixelEncoding = { signed: false, bitsStored: 12, slope: 1, intercept: 0 };
  return [
    {
      folder: 's001-3plane-loc', seriesNumber: 1, description: '3Plane Loc', protocolName: 'localizer',
      imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'], orientationKind: 'three-plane',
      stacks: [AXIAL, CORONAL, SAGITTAL].map((o) => stack(o, size, size, locSpacing, 3, LOCALIZER_GAP_MM, localizerCentre)),
      sequence: Sequences.localizer, encoding: plainUnsigned, writeRescale: false, order: 'ascending', isTarget: false,
      sliceThickness: 7, percentPhaseFov: 100, window: { center: 400, width: 800 }, minutesAfterStart: 0, contrastAgent: false,
    },
    {
      folder: 's002-ax-t1-se', seriesNumber: 2, description: 'Ax T1 SE', protocolName: 'Ax T1 SE',
      imageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'], orientationKind: 'axial',
      stacks: [stack(AXIAL, size, size, twoDSpacing, twoDSlices, twoDStep, slabCentre)],
      sequence: Sequences.t1, encoding: plainUnsigned, writeRescale: true, order: 'interleaved', isTarget: false,
      sliceThickness: twoDStep * 0.8, percentPhaseFov: 100, window: { center: 500, width: 1000 }, minutesAfterStart: 2,
      contrastAgent: false,
    },
    {
      // A rectangular field of view (fewer columns than rows) catches row/column mix-ups.
      folder: 's003-ax-t2-flair', seriesNumber: 3, description: 'Ax T2 FLAIR', protocolName: 'Ax T2 FLAIR',
      imageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'], orientationKind: 'axial',
      stacks: [stack(AXIAL, size, Math.max(8, Math.round(size * 0.75)), twoDSpacing, twoDSlices, twoDStep, slabCentre)],
      sequence: Sequences.flair, encoding: { signed: false, bitsStored: 12, slope: 0.5, intercept: 0 }, writeRescale: true,
      order: 'ascending', isTarget: false, sliceThickness: twoDStep * 0.8, percentPhaseFov: 75,
      window: { center: 450, width: 900 }, minutesAfterStart: 6, contrastAgent: false,
    },
    {
      folder: 's004-ax-3d-t1c-mprage', seriesNumber: 4, description: 'Ax 3D T1c MPRAGE', protocolName: 'Ax 3D T1 MPRAGE post',
      imageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'], orientationKind: 'oblique',
      stacks: [stack(TARGET_ORIENTATION, size, size, TARGET_FOV_MM / size, slices, TARGET_SLAB_MM / slices, slabCentre)],
      sequence: Sequences.t1c, encoding: SIGNED_T1C, writeRescale: true, order: 'descending', isTarget: true,
      sliceThickness: TARGET_SLAB_MM / slices, percentPhaseFov: 100, window: { center: 550, width: 1200 }, minutesAfterStart: 13,
      contrastAgent: true,
    },
    {
      folder: 's005-ax-t1c-2x2-ref', seriesNumber: 5, description: 'Ax T1c 2x2 ref', protocolName: 'Ax 3D T1 ref 2x2',
      imageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'], orientationKind: 'oblique',
      stacks: [stack(TARGET_ORIENTATION, refMatrix, refMatrix, TARGET_FOV_MM / refMatrix, refSlices, TARGET_SLAB_MM / refSlices, slabCentre)],
      sequence: Sequences.t1c, encoding: SIGNED_T1C, writeRescale: true, order: 'ascending', isTarget: false,
      sliceThickness: TARGET_SLAB_MM / refSlices, percentPhaseFov: 100, window: { center: 550, width: 1200 }, minutesAfterStart: 19,
      contrastAgent: true,
    },
    {
      folder: 's401-cor-t1c-rfmt', seriesNumber: 401, description: 'Cor T1c rfmt', protocolName: 'Ax 3D T1 MPRAGE post',
      imageType: ['DERIVED', 'SECONDARY', 'REFORMATTED'], orientationKind: 'coronal',
      stacks: [stack(CORONAL, size, size, reformatSpacing, reformatSlices, CORONAL_COVERAGE_MM / reformatSlices, headCentre)],
      sequence: Sequences.t1c, encoding: { signed: false, bitsStored: 16, slope: 1, intercept: 0 }, writeRescale: true,
      order: 'ascending', isTarget: false, sliceThickness: CORONAL_COVERAGE_MM / reformatSlices, percentPhaseFov: 100,
      window: { center: 550, width: 1200 }, minutesAfterStart: 21, contrastAgent: true,
      derivation: 'Coronal reformat of series 4',
    },
    {
      folder: 's402-sag-t1c-mpr', seriesNumber: 402, description: 'Sag T1c MPR', protocolName: 'Ax 3D T1 MPRAGE post',
      imageType: ['DERIVED', 'SECONDARY', 'MPR'], orientationKind: 'sagittal',
      stacks: [stack(SAGITTAL, size, size, reformatSpacing, reformatSlices, SAGITTAL_COVERAGE_MM / reformatSlices, headCentre)],
      sequence: Sequences.t1c, encoding: { signed: true, bitsStored: 16, slope: 2, intercept: -1024 }, writeRescale: true,
      order: 'ascending', isTarget: false, sliceThickness: SAGITTAL_COVERAGE_MM / reformatSlices, percentPhaseFov: 100,
      window: { center: 550, width: 1200 }, minutesAfterStart: 21, contrastAgent: true,
      derivation: 'Sagittal multiplanar reconstruction of series 4',
    },
  ];
}

/** Slice indices (along the normal) in acquisition order. */
export function acquisitionOrder(count: number, order: InstanceOrder): number[] {
  const ascending = Array.from({ length: count }, (_, k) => k);
  if (order === 'ascending') return ascending;
  if (order === 'descending') return ascending.reverse();
  // Interleaved 2D acquisition: every other slice, then the ones between (limits crosstalk).
  return [...ascending.filter((k) => k % 2 === 0), ...ascending.filter((k) => k % 2 === 1)];
}

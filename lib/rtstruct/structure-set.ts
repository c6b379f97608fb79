/**
 * The RT Structure Set IOD (PS3.3 A.19) of a label volume on its source series: one ROI per label, on every
 * slice each label's boundaries traced by marching squares (contours.ts), taken to patient coordinates
 * through each slice's ImagePositionPatient, the series' ImageOrientationPatient and PixelSpacing, and each
 * contour pointing at the exact source image it lies on.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DicomDataset } from '../dicom/dataset';
import { resolveTag } from '../dicom/dictionary';
import { SopClass, TransferSyntax, generateUid } from '../dicom/uids';
import { type WriteDataset, writeDicomFile } from '../dicom/writer';
import { instanceFileName } from '../job';
import { type NativeLayout, nativeSlice } from '../volume/native';
import { type SourceSeries, SourceSeriesError, layoutOnSource } from '../volume/source';
import type { Volume, VoxelArray } from '../volume/types';
import { forEachNonZeroVoxel } from '../volume/voxels';
import { MAX_TOLERANCE_PX, type PixelBox, simplifyContour, traceContours } from './contours';
import type { RoiLabel } from './labels';

/** The structure set cannot be written from these inputs (mask values, grid, source series): exit code 1, no file. */
export class RtStructInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RtStructInputError';
  }
}

/** Detached Study Management SOP Class: what RT Referenced Study Sequence items customarily reference. */
export const DETACHED_STUDY_MANAGEMENT_SOP_CLASS = '1.2.840.10008.3.1.2.3.1';
export const MANUFACTURER = 'node-red-contrib-clara-dicom';
export const MODEL_NAME = 'clara-rtstruct-writer';
export const DEFAULT_STRUCTURE_SET_LABEL = 'CLARA_AI';
export const DEFAULT_SERIES_DESCRIPTION = 'AI contours (not for diagnostic use)';
/**
 * The longest value (bytes, even) an Explicit VR DS element can hold. A file with a longer ContourData is
 * written in Implicit VR Little Endian instead, where lengths are 32 bits (docs/rtstruct.md says why not UN).
 */
const SHORT_VALUE_LIMIT = 0xfffe;

export interface StructureSetOptions {
  labels: RoiLabel[];
  /** Structure Set Label (SH, at most 16 characters). */
  structureSetLabel?: string;
  /** Series Description (LO, at most 64). */
  seriesDescription?: string;
  /** Series Number; default the source's plus 1000, as many modalities number derived series. */
  seriesNumber?: number;
  /** UID root for the new series and instance; default the UUID-derived 2.25 root. */
  uidRoot?: string;
  /** Point reduction tolerance in pixels, 0 (collinear points only) to 0.25. */
  tolerance?: number;
  /** ROI Generation Description: the model (and version) that made the mask. */
  algorithm?: string;
  /** When the structure set is created (tests fix it). */
  now?: Date;
}

export interface RoiSummary {
  /** ROI Number: the label's mask value. */
  number: number;
  name: string;
  interpretedType: string;
  color: [number, number, number];
  contours: number;
  points: number;
  /** Slices with at least one contour. */
  slices: number;
  /** Contours that bound holes. */
  holes: number;
  voxels: number;
}

export interface StructureSetSummary {
  /** The transfer syntax of the file: Explicit VR Little Endian, or Implicit where a contour needs it. */
  transferSyntaxUID: string;
  sopInstanceUID: string;
  seriesInstanceUID: string;
  studyInstanceUID: string;
  sourceSeriesInstanceUID: string;
  frameOfReferenceUID: string;
  rois: RoiSummary[];
}

export interface BuiltStructureSet extends StructureSetSummary {
  dataset: WriteDataset;
  /** Some ContourData is longer than Explicit VR allows: encode the file in Implicit VR Little Endian. */
  implicitVR: boolean;
}

export type StructureSetResult =
  | (StructureSetSummary & { written: true; file: string })
  | { written: false; reason: string; sourceSeriesInstanceUID: string; rois: RoiSummary[] };

let packageVersion: string | undefined;
/** This package's version, for Software Versions: the nearest package.json of ours above this module. */
function softwareVersion(): string {
  if (packageVersion !== undefined) return packageVersion;
  packageVersion = '0';
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    try {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === MANUFACTURER && pkg.version) {
        packageVersion = pkg.version;
        break;
      }
    } catch {
      // not ours; keep looking
    }
  }
  return packageVersion;
}

function dicomDate(d: Date): string {
  return `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, '0')}${String(d.getDate()).padStart(2, '0')}`;
}
function dicomTime(d: Date): string {
  return `${String(d.getHours()).padStart(2, '0')}${String(d.getMinutes()).padStart(2, '0')}${String(d.getSeconds()).padStart(2, '0')}`;
}

/** The source's value of an attribute, as text (undefined when absent or empty). */
function copied(header: DicomDataset, keyword: string): string | undefined {
  const tag = resolveTag(keyword);
  if (tag === undefined) return undefined;
  const values = header.strings(tag);
  return values.length ? values.join('\\') : undefined;
}

/** A coordinate in mm as a DS value: 0.1 µm steps, without trailing zeros (built from integers: it runs per point). */
function ds(v: number): string {
  let r = Math.round(v * 1e4);
  if (r === 0) return '0';
  const sign = r < 0 ? '-' : '';
  if (r < 0) r = -r;
  const whole = Math.floor(r / 1e4);
  let fraction = r - whole * 1e4;
  if (fraction === 0) return `${sign}${whole}`;
  let digits = 4;
  while (fraction % 10 === 0) {
    fraction /= 10;
    digits--;
  }
  return `${sign}${whole}.${String(fraction).padStart(digits, '0')}`;
}


/**
 * One pass over the whole mask, in file order: every voxel must be 0 or a label value (else the error names the
 * voxel); counts each label's voxels and marks which native slices hold any, so that only those are taken out
 * and traced. One long loop on its own, so the engine optimizes it at once.
 */
function scanMask(mask: Volume, layout: NativeLayout, labels: RoiLabel[]): { counts: Float64Array; occupied: Uint8Array } {
  const data = mask.data;
  const [nx, ny] = mask.dims;
  const max = labels.length;
  const counts = new Float64Array(max + 1);
  const occupied = new Uint8Array(layout.slices);
  const { axis, reversed } = layout.fileAxis.slice;
  const last = layout.slices - 1;
  const visit = (n: number, v: number) => {
    const i = n % nx;
    const j = Math.floor(n / nx) % ny;
    const k = Math.floor(n / (nx * ny));
    if (!(v >= 1 && v <= max) || v !== Math.floor(v)) {
      throw new RtStructInputError(
        `mask value ${v} at voxel (${i}, ${j}, ${k}) is beyond the label list: ${max} label(s) (${labels.map((l) => `${l.value} ${l.name}`).join(', ')}), so only 0–${max} may occur`,
      );
    }
    counts[v]++;
    const index = axis === 0 ? i : axis === 1 ? j : k;
    occupied[reversed ? last - index : index] = 1;
  };
  forEachNonZeroVoxel(data, visit);
  return { counts, occupied };
}

/** Each label's bounding box on a native slice: x0, y0, x1, y1 at 4·(value − 1); x1 < 0 where the label is absent. */
function sliceBoxes(plane: VoxelArray, columns: number, rows: number, boxes: Int32Array): void {
  for (let b = 0; b < boxes.length; b += 4) {
    boxes[b] = columns;
    boxes[b + 1] = rows;
    boxes[b + 2] = -1;
    boxes[b + 3] = -1;
  }
  for (let y = 0, n = 0; y < rows; y++) {
    for (let x = 0; x < columns; x++, n++) {
      const v = plane[n];
      if (v === 0) continue;
      const b = (v - 1) * 4;
      if (x < boxes[b]) boxes[b] = x;
      if (y < boxes[b + 1]) boxes[b + 1] = y;
      if (x > boxes[b + 2]) boxes[b + 2] = x;
      boxes[b + 3] = y;
    }
  }
}

interface Contoured {
  /** Contour Sequence items per label. */
  items: WriteDataset[][];
  summaries: RoiSummary[];
  implicitVR: boolean;
}

/** Every label's contours on every slice that holds it, as Contour Sequence items, after every voxel is checked. */
function contourSlices(mask: Volume, layout: NativeLayout, source: SourceSeries, labels: RoiLabel[], tolerance: number): Contoured {
  const { rows, columns } = source;
  const [rowSpacing, columnSpacing] = source.pixelSpacing;
  // Patient position of pixel (x = column, y = row): IPP + x·Δcolumn·rowCosine + y·Δrow·columnCosine.
  const dx = source.orientation.slice(0, 3).map((v) => v * columnSpacing);
  const dy = source.orientation.slice(3, 6).map((v) => v * rowSpacing);
  const { counts, occupied } = scanMask(mask, layout, labels);
  const items: WriteDataset[][] = labels.map(() => []);
  const summaries: RoiSummary[] = labels.map((l) => ({
    number: l.value, name: l.name, interpretedType: l.interpretedType, color: l.color, contours: 0, points: 0, slices: 0, holes: 0, voxels: 0,
  }));
  let implicitVR = false;
  const plane = new (mask.data.constructor as new (n: number) => VoxelArray)(rows * columns);
  const boxes = new Int32Array(labels.length * 4);
  const box: PixelBox = { x0: 0, y0: 0, x1: 0, y1: 0 };
  for (let s = 0; s < source.slices.length; s++) {
    if (!occupied[s]) continue;
    nativeSlice(layout, mask.data, s, plane);
    sliceBoxes(plane, columns, rows, boxes);
    const origin = source.slices[s].position;
    const image: WriteDataset = { ReferencedSOPClassUID: source.slices[s].sopClassUID, ReferencedSOPInstanceUID: source.slices[s].sopInstanceUID };
    for (const l of labels) {
      const b = (l.value - 1) * 4;
      if (boxes[b + 2] < 0) continue;
      [box.x0, box.y0, box.x1, box.y1] = [boxes[b], boxes[b + 1], boxes[b + 2], boxes[b + 3]];
      const summary = summaries[l.value - 1];
      summary.slices++;
      for (const contour of traceContours(plane, columns, rows, l.value, box)) {
        const points = simplifyContour(contour.points, tolerance);
        const count = points.length / 2;
        const values: string[] = new Array(count * 3);
        for (let k = 0; k < count; k++) {
          const x = points[2 * k];
          const y = points[2 * k + 1];
          values[3 * k] = ds(origin[0] + x * dx[0] + y * dy[0]);
          values[3 * k + 1] = ds(origin[1] + x * dx[1] + y * dy[1]);
          values[3 * k + 2] = ds(origin[2] + x * dx[2] + y * dy[2]);
        }
        const text = values.join('\\');
        if (text.length + (text.length % 2) > SHORT_VALUE_LIMIT) implicitVR = true;
        summary.contours++;
        summary.points += count;
        if (contour.hole) summary.holes++;
        items[l.value - 1].push({
          ContourImageSequence: [image],
          ContourGeometricType: 'CLOSED_PLANAR',
          NumberOfContourPoints: count,
          ContourNumber: summary.contours,
          ContourData: { vr: 'DS', value: text },
        });
      }
    }
  }
  for (const summary of summaries) summary.voxels = counts[summary.number];
  return { items, summaries, implicitVR };
}

/**
 * Builds the RT Structure Set of `mask` (a label volume on the source series' grid, as the inference node
 * writes it) without writing it. Throws RtStructInputError for a mask on another grid, values beyond the
 * label list or a source without a frame of reference. An empty mask gives ROIs without contours.
 */
export function buildStructureSet(mask: Volume, source: SourceSeries, options: StructureSetOptions): BuiltStructureSet {
  const { labels } = options;
  const tolerance = options.tolerance ?? 0;
  if (!(tolerance >= 0 && tolerance <= MAX_TOLERANCE_PX)) throw new RtStructInputError(`the point reduction tolerance must be from 0 to ${MAX_TOLERANCE_PX} pixel, not ${options.tolerance}`);
  if (!source.frameOfReferenceUID) throw new RtStructInputError(`source series ${source.seriesInstanceUID} has no Frame of Reference UID: contours in patient coordinates need one`);
  const label = (options.structureSetLabel ?? DEFAULT_STRUCTURE_SET_LABEL).trim() || DEFAULT_STRUCTURE_SET_LABEL;
  if (label.length > 16 || /[\\\x00-\x1f]/.test(label)) throw new RtStructInputError(`the structure set label must be at most 16 characters, without backslash or control characters (SH): ${JSON.stringify(label)}`);
  const seriesDescription = options.seriesDescription ?? DEFAULT_SERIES_DESCRIPTION;
  if (seriesDescription.length > 64 || /[\\\x00-\x1f]/.test(seriesDescription)) throw new RtStructInputError('the series description must be at most 64 characters, without backslash or control characters (LO)');
  let layout;
  try {
    layout = layoutOnSource(mask, source);
  } catch (err) {
    if (err instanceof SourceSeriesError) {
      // Fewer slices than the mask has, in a folder of instances: most often an instance that did not arrive.
      const fewer = /(\d+) voxels along [ijk] for (\d+) slices/.exec(err.message);
      const hint = fewer && Number(fewer[2]) < Number(fewer[1]) ? ` (is a source instance missing? ${Number(fewer[1]) - Number(fewer[2])} slice(s) short)` : '';
      throw new RtStructInputError(err.message + hint);
    }
    throw err;
  }
  const { items: contourItems, summaries, implicitVR } = contourSlices(mask, layout, source, labels, tolerance);
  const imageRef = (slice: SourceSeries['slices'][number]): WriteDataset => ({ ReferencedSOPClassUID: slice.sopClassUID, ReferencedSOPInstanceUID: slice.sopInstanceUID });

  const now = options.now ?? new Date();
  const date = dicomDate(now);
  const time = dicomTime(now);
  const header = source.header;
  const sopInstanceUID = generateUid(options.uidRoot);
  const seriesInstanceUID = generateUid(options.uidRoot);
  const sourceSeriesNumber = Number(copied(header, 'SeriesNumber'));
  const frameOfReferenceUID = source.frameOfReferenceUID;
  const dataset: WriteDataset = {
    // The writer encodes text as UTF-8, whatever character set the source declared.
    SpecificCharacterSet: 'ISO_IR 192',
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    SOPClassUID: SopClass.RtStructureSetStorage,
    SOPInstanceUID: sopInstanceUID,
    // Patient and General Study: the source's, so the structure set files into the same patient and study.
    PatientName: copied(header, 'PatientName') ?? null,
    PatientID: copied(header, 'PatientID') ?? null,
    IssuerOfPatientID: copied(header, 'IssuerOfPatientID'),
    PatientBirthDate: copied(header, 'PatientBirthDate') ?? null,
    PatientSex: copied(header, 'PatientSex') ?? null,
    PatientAge: copied(header, 'PatientAge'),
    PatientSize: copied(header, 'PatientSize'),
    PatientWeight: copied(header, 'PatientWeight'),
    StudyInstanceUID: source.studyInstanceUID,
    StudyDate: copied(header, 'StudyDate') ?? null,
    StudyTime: copied(header, 'StudyTime') ?? null,
    ReferringPhysicianName: copied(header, 'ReferringPhysicianName') ?? null,
    StudyID: copied(header, 'StudyID') ?? null,
    AccessionNumber: copied(header, 'AccessionNumber') ?? null,
    StudyDescription: copied(header, 'StudyDescription'),
    // RT Series: a new series in the source study.
    Modality: 'RTSTRUCT',
    SeriesInstanceUID: seriesInstanceUID,
    SeriesNumber: options.seriesNumber ?? (Number.isInteger(sourceSeriesNumber) ? sourceSeriesNumber + 1000 : null),
    SeriesDate: date,
    SeriesTime: time,
    SeriesDescription: seriesDescription || undefined,
    OperatorsName: null,
    // Frame of Reference: the source's (dicom3tools' RT Structure Set IOD expects the module).
    FrameOfReferenceUID: frameOfReferenceUID,
    PositionReferenceIndicator: copied(header, 'PositionReferenceIndicator') ?? null,
    // General Equipment: this software made the structure set.
    Manufacturer: MANUFACTURER,
    ManufacturerModelName: MODEL_NAME,
    SoftwareVersions: softwareVersion(),
    // Structure Set.
    StructureSetLabel: label,
    InstanceNumber: 1,
    StructureSetDate: date,
    StructureSetTime: time,
    ReferencedFrameOfReferenceSequence: [
      {
        FrameOfReferenceUID: frameOfReferenceUID,
        RTReferencedStudySequence: [
          {
            ReferencedSOPClassUID: DETACHED_STUDY_MANAGEMENT_SOP_CLASS,
            ReferencedSOPInstanceUID: source.studyInstanceUID,
            RTReferencedSeriesSequence: [{ SeriesInstanceUID: source.seriesInstanceUID, ContourImageSequence: source.slices.map(imageRef) }],
          },
        ],
      },
    ],
    StructureSetROISequence: labels.map((l) => ({
      ROINumber: l.value,
      ReferencedFrameOfReferenceUID: frameOfReferenceUID,
      ROIName: l.name,
      ROIGenerationAlgorithm: 'AUTOMATIC',
      ROIGenerationDescription: options.algorithm ? options.algorithm.slice(0, 64) : undefined,
    })),
    // ROI Contour: an ROI without voxels has no Contour Sequence (type 3), so its number still names its label.
    ROIContourSequence: labels.map((l, index) => ({
      ROIDisplayColor: l.color,
      ContourSequence: contourItems[index].length ? contourItems[index] : undefined,
      ReferencedROINumber: l.value,
    })),
    RTROIObservationsSequence: labels.map((l) => ({
      ObservationNumber: l.value,
      ReferencedROINumber: l.value,
      RTROIInterpretedType: l.interpretedType || null,
      ROIInterpreter: null,
    })),
    // Approval: contours a model drew wait for a person's review.
    ApprovalStatus: 'UNAPPROVED',
  };
  return {
    dataset,
    implicitVR,
    transferSyntaxUID: implicitVR ? TransferSyntax.ImplicitVRLittleEndian : TransferSyntax.ExplicitVRLittleEndian,
    sopInstanceUID,
    seriesInstanceUID,
    studyInstanceUID: source.studyInstanceUID,
    sourceSeriesInstanceUID: source.seriesInstanceUID,
    frameOfReferenceUID,
    rois: summaries,
  };
}

/**
 * Builds and writes the structure set into `outDir` as `<SOPInstanceUID>.dcm` (Explicit VR Little Endian,
 * or Implicit where a contour is longer than Explicit VR allows; written atomically). A mask without a labelled voxel writes nothing, and the result says so.
 */
export function writeStructureSet(mask: Volume, source: SourceSeries, outDir: string, options: StructureSetOptions): StructureSetResult {
  const built = buildStructureSet(mask, source, options);
  if (built.rois.every((r) => r.voxels === 0)) {
    return { written: false, reason: 'the mask has no labelled voxel: no structure set written', sourceSeriesInstanceUID: source.seriesInstanceUID, rois: built.rois };
  }
  const file = join(outDir, instanceFileName(built.sopInstanceUID));
  writeDicomFile(file, built.dataset, { implicitVR: built.implicitVR });
  const { dataset: _dataset, implicitVR: _implicitVR, ...summary } = built;
  return { ...summary, written: true, file };
}

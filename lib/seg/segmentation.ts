/**
 * DICOM Segmentation Storage (PS3.3 A.51) from a label volume on the grid of its source series.
 *
 * One segment per label (list item i is mask value i + 1), frames in segment order and, within a segment,
 * ascending along the slice normal; each frame points at the source instance of its slice. The mask's
 * voxels are mapped onto the source slices from geometry (lib/volume/source), so anything that does not
 * lie exactly on the series is refused before a byte is written.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { resolveTag } from '../dicom/dictionary';
import { Tag } from '../dicom/tags';
import { SopClass, generateUid, isValidUid } from '../dicom/uids';
import { type WriteDataset, encodePart10, writeFileAtomic } from '../dicom/writer';
import { insideDir } from '../job';
import { dot } from '../volume/geometry';
import { type NativeLayout, nativeSlice } from '../volume/native';
import { type SourceSeries, layoutOnSource } from '../volume/source';
import type { Volume, VoxelArray } from '../volume/types';
import { forEachNonZeroVoxel } from '../volume/voxels';
import { type CodedConcept, Codes, codeProblem, defaultCodesFor, defaultColor, srgbToDicomLab } from './codes';
import { copyElement, copyPatientAndStudy, hasNonAscii } from './modules';
import { BitPacker } from './packing';

/** The input cannot be written as a Segmentation (labels, values, options): nothing was written. */
export class SegmentationInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SegmentationInputError';
  }
}

export interface SegmentDefinition {
  /** SegmentLabel (LO, at most 64 characters). */
  label: string;
  /** SegmentDescription (ST). */
  description?: string;
  /** SegmentedPropertyCategoryCodeSequence; default from the label (see defaultCodesFor). */
  category?: CodedConcept;
  /** SegmentedPropertyTypeCodeSequence; default from the label. */
  type?: CodedConcept;
  typeModifier?: CodedConcept;
  anatomicRegion?: CodedConcept;
  /** sRGB 0–255, written as RecommendedDisplayCIELabValue; default a palette colour per segment. */
  color?: [number, number, number];
}

export interface SegmentationOptions {
  /** Folder the file goes into, as `<SOPInstanceUID>.dcm`. */
  outDir: string;
  /** Root for the new Series, SOP Instance and dimension organization UIDs; default "2.25" (UUID-derived). */
  uidRoot?: string;
  /** The model: SegmentAlgorithmName and, in the algorithm identification, its version. */
  algorithm: { name: string; version?: string };
  /** 8-bit FRACTIONAL (PROBABILITY, maximum 255) instead of 1-bit BINARY. */
  fractional?: boolean;
  /** Leave out frames where a segment has no pixel (default true). */
  omitEmptyFrames?: boolean;
  seriesDescription?: string;
  /** Default: the source's SeriesNumber + 1000. */
  seriesNumber?: number;
  instanceNumber?: number;
  /** ContentLabel: CS, upper case letters, digits, space and underscore, at most 16 (default "SEGMENTATION"). */
  contentLabel?: string;
  contentDescription?: string;
  /** PN, e.g. "CLARA^AI". */
  contentCreatorName?: string;
  /** Enhanced General Equipment of the SEG: this software, not the scanner. */
  equipment?: { manufacturer?: string; modelName?: string; deviceSerialNumber?: string; softwareVersions?: string };
  /** Creation time (tests); default now. */
  now?: Date;
}

export interface WriteSegmentationInput {
  /** Label volume (integer values; 0 background, i + 1 for segments[i]) on the source series' grid. */
  mask: Volume;
  source: SourceSeries;
  segments: SegmentDefinition[];
  /** FRACTIONAL only: one probability volume (0–1) per segment on the same grid; default the mask's labels as 0 or 1. */
  probabilities?: Volume[];
  options: SegmentationOptions;
}

export interface SegmentSummary {
  number: number;
  label: string;
  /** Frames written for this segment. */
  frames: number;
  /** Voxels of the segment (non-zero probability for FRACTIONAL). */
  voxels: number;
}

export interface WrittenSegmentation {
  empty: false;
  file: string;
  sopInstanceUID: string;
  seriesInstanceUID: string;
  segmentationType: 'BINARY' | 'FRACTIONAL';
  frames: number;
  bytes: number;
  segments: SegmentSummary[];
}

export interface EmptySegmentation {
  empty: true;
  segments: SegmentSummary[];
}

export type SegmentationResult = WrittenSegmentation | EmptySegmentation;

const CONTENT_LABEL = /^[A-Z0-9 _]{1,16}$/;
const DEFAULT_MANUFACTURER = 'node-red-contrib-clara-dicom';
const DEFAULT_MODEL_NAME = 'clara-seg-writer';

let packageVersion: string | undefined;
function softwareVersion(): string {
  if (packageVersion === undefined) {
    try {
      packageVersion = String((JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown');
    } catch {
      packageVersion = 'unknown';
    }
  }
  return packageVersion;
}

/** A stable serial number for this installation: software has none, and the module requires one. */
function defaultDeviceSerialNumber(): string {
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 16).toUpperCase();
}

function dicomDate(d: Date): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}`;
}

function dicomTime(d: Date): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function codeItem(code: CodedConcept, extra: WriteDataset = {}): WriteDataset {
  return { CodeValue: code.CodeValue, CodingSchemeDesignator: code.CodingSchemeDesignator, CodingSchemeVersion: code.CodingSchemeVersion, CodeMeaning: code.CodeMeaning, ...extra };
}

function checkText(what: string, value: string | undefined, max: number): void {
  if (value === undefined) return;
  if (typeof value !== 'string') throw new SegmentationInputError(`${what} must be text`);
  if (value.length > max) throw new SegmentationInputError(`${what} is ${value.length} characters, at most ${max} are allowed`);
  if (value.includes('\\')) throw new SegmentationInputError(`${what} must not contain a backslash`);
}

/** Every option and segment definition checked, so a bad one fails before any pixel is touched (and a node at deploy). */
export function checkSegmentationSettings(segments: SegmentDefinition[], options: SegmentationOptions): void {
  if (!Array.isArray(segments) || segments.length === 0) throw new SegmentationInputError('no segments: give at least one label');
  if (segments.length > 65535) throw new SegmentationInputError(`${segments.length} segments: at most 65535 fit SegmentNumber`);
  segments.forEach((s, i) => {
    const what = `label ${i + 1}`;
    if (!s || typeof s.label !== 'string' || s.label.trim() === '') throw new SegmentationInputError(`${what}: SegmentLabel is empty`);
    checkText(`${what} (${s.label}): SegmentLabel`, s.label, 64);
    if (s.description !== undefined && (typeof s.description !== 'string' || s.description.length > 1024)) throw new SegmentationInputError(`${what}: SegmentDescription must be text of at most 1024 characters`);
    for (const key of ['category', 'type', 'typeModifier', 'anatomicRegion'] as const) {
      const code = s[key];
      if (code === undefined) continue;
      const problem = codeProblem(code);
      if (problem) throw new SegmentationInputError(`${what} (${s.label}): ${key} code: ${problem}`);
    }
    if (s.color !== undefined && (!Array.isArray(s.color) || s.color.length !== 3 || s.color.some((v) => typeof v !== 'number' || !(v >= 0 && v <= 255)))) {
      throw new SegmentationInputError(`${what} (${s.label}): color must be [r, g, b] with values 0–255`);
    }
  });
  if (!options || typeof options.outDir !== 'string' || !options.outDir) throw new SegmentationInputError('options.outDir is required');
  if (!options.algorithm || typeof options.algorithm.name !== 'string' || options.algorithm.name.trim() === '') {
    throw new SegmentationInputError('the algorithm name is required: SegmentAlgorithmType AUTOMATIC needs SegmentAlgorithmName');
  }
  checkText('algorithm name', options.algorithm.name, 64);
  checkText('algorithm version', options.algorithm.version, 64);
  if (options.uidRoot !== undefined && options.uidRoot !== '' && !isValidUid(options.uidRoot.replace(/\.$/, ''))) throw new SegmentationInputError(`UID root ${JSON.stringify(options.uidRoot)} is not a UID (digits and dots)`);
  if (options.uidRoot && options.uidRoot.replace(/\.$/, '').length > 54) throw new SegmentationInputError(`UID root ${JSON.stringify(options.uidRoot)} is too long: at most 54 characters leave room for unique UIDs`);
  if (options.contentLabel !== undefined && !CONTENT_LABEL.test(options.contentLabel)) {
    throw new SegmentationInputError(`ContentLabel ${JSON.stringify(options.contentLabel)} must be 1–16 upper case letters, digits, spaces or underscores (VR CS)`);
  }
  checkText('SeriesDescription', options.seriesDescription, 64);
  checkText('ContentDescription', options.contentDescription, 64);
  checkText('ContentCreatorName', options.contentCreatorName, 64);
  for (const [what, n] of [['SeriesNumber', options.seriesNumber], ['InstanceNumber', options.instanceNumber]] as const) {
    if (n !== undefined && (!Number.isInteger(n) || n < 0 || n > 2147483647)) throw new SegmentationInputError(`${what} must be a whole number from 0 to 2147483647`);
  }
  const equipment = options.equipment ?? {};
  checkText('Manufacturer', equipment.manufacturer, 64);
  checkText('ManufacturerModelName', equipment.modelName, 64);
  checkText('DeviceSerialNumber', equipment.deviceSerialNumber, 64);
  checkText('SoftwareVersions', equipment.softwareVersions, 64);
}

/** Per slice and segment whether any pixel is set, and voxels per segment; refuses values that are not labels. */
interface Occupancy {
  /** present[segment * slices + slice] */
  present: Uint8Array;
  voxels: number[];
}

/**
 * One pass over a label volume in file order: which (segment, slice) frames hold a pixel. Values must be
 * 0 or a whole number 1..segments; anything else is counted and refused with the first offenders.
 */
function labelOccupancy(mask: Volume, layout: NativeLayout, segments: SegmentDefinition[]): Occupancy {
  const [nx, ny] = mask.dims;
  const slices = layout.slices;
  const n = segments.length;
  const present = new Uint8Array(n * slices);
  const voxels = new Array<number>(n).fill(0);
  const bad = new Map<number, number>();
  const { axis: sliceAxis, reversed } = layout.fileAxis.slice;
  forEachNonZeroVoxel(mask.data, (index, v) => {
    if (v >= 1 && v <= n && Math.floor(v) === v) {
      const fileSlice = sliceAxis === 0 ? index % nx : sliceAxis === 1 ? Math.floor(index / nx) % ny : Math.floor(index / (nx * ny));
      const s = reversed ? slices - 1 - fileSlice : fileSlice;
      voxels[v - 1]++;
      present[(v - 1) * slices + s] = 1;
    } else {
      bad.set(v, (bad.get(v) ?? 0) + 1);
    }
  });
  if (bad.size > 0) {
    const listed = [...bad.entries()].sort((a, b) => a[0] - b[0]).slice(0, 5).map(([v, c]) => `${v} (${c} voxel${c === 1 ? '' : 's'})`).join(', ');
    const names = segments.map((s) => JSON.stringify(s.label)).join(', ');
    throw new SegmentationInputError(
      `the mask holds value${bad.size === 1 ? '' : 's'} ${listed}${bad.size > 5 ? ` and ${bad.size - 5} more` : ''} beyond the ${n} label${n === 1 ? '' : 's'} [${names}]: ` +
        'list item i is mask value i+1, and values must be whole numbers',
    );
  }
  return { present, voxels };
}

/** FRACTIONAL from probability volumes: values 0–1 (a little rounding slack), quantised to 0–255. */
function probabilityOccupancy(volumes: Volume[], layouts: NativeLayout[], segments: SegmentDefinition[]): Occupancy {
  const slices = layouts[0].slices;
  const present = new Uint8Array(segments.length * slices);
  const voxels = new Array<number>(segments.length).fill(0);
  volumes.forEach((volume, segment) => {
    const layout = layouts[segment];
    const [nx, ny, nz] = volume.dims;
    const { axis: sliceAxis, reversed } = layout.fileAxis.slice;
    let index = 0;
    let outside = 0;
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        const fixed = sliceAxis === 2 ? k : sliceAxis === 1 ? j : -1;
        for (let i = 0; i < nx; i++, index++) {
          const v = volume.data[index];
          if (!(v >= -1e-3 && v <= 1 + 1e-3)) {
            outside++;
            continue;
          }
          if (Math.round(v * 255) <= 0) continue;
          const fileSlice = fixed >= 0 ? fixed : i;
          voxels[segment]++;
          present[segment * slices + (reversed ? slices - 1 - fileSlice : fileSlice)] = 1;
        }
      }
    }
    if (outside > 0) throw new SegmentationInputError(`probability volume of label ${segment + 1} (${segments[segment].label}) has ${outside} voxel(s) outside 0–1 (or not a number)`);
  });
  return { present, voxels };
}

export interface BuiltSegmentation {
  dataset: WriteDataset;
  sopInstanceUID: string;
  seriesInstanceUID: string;
  segmentationType: 'BINARY' | 'FRACTIONAL';
  frames: number;
  segments: SegmentSummary[];
}

/**
 * The Segmentation as a data set for the writer, or `{ empty: true }` when no segment has a voxel. Throws
 * SegmentationInputError for bad labels, values or options and SourceSeriesError for a mask off the
 * source grid.
 */
export function buildSegmentation(input: WriteSegmentationInput): BuiltSegmentation | EmptySegmentation {
  const { mask, source, segments, options } = input;
  checkSegmentationSettings(segments, options);
  const fractional = options.fractional === true;
  const omitEmpty = options.omitEmptyFrames !== false;
  if (input.probabilities && !fractional) throw new SegmentationInputError('probability volumes are for FRACTIONAL segmentations: set fractional');
  if (input.probabilities && input.probabilities.length !== segments.length) {
    throw new SegmentationInputError(`${input.probabilities.length} probability volume(s) for ${segments.length} label(s): give one per label`);
  }
  if (source.slices.length === 0) throw new SegmentationInputError('the source series has no slices');
  const layout = layoutOnSource(mask, source);
  const probabilityLayouts = input.probabilities?.map((v) => layoutOnSource(v, source));
  const occupancy = input.probabilities ? probabilityOccupancy(input.probabilities, probabilityLayouts!, segments) : labelOccupancy(mask, layout, segments);
  const slices = source.slices.length;
  const summaries: SegmentSummary[] = segments.map((s, i) => ({ number: i + 1, label: s.label, frames: 0, voxels: occupancy.voxels[i] }));
  if (occupancy.voxels.every((v) => v === 0)) return { empty: true, segments: summaries };

  const frameList: Array<{ segment: number; slice: number }> = [];
  for (let segment = 0; segment < segments.length; segment++) {
    for (let slice = 0; slice < slices; slice++) {
      if (omitEmpty && !occupancy.present[segment * slices + slice]) continue;
      frameList.push({ segment, slice });
      summaries[segment].frames++;
    }
  }

  const pixels = source.rows * source.columns;
  let pixelData: Uint8Array;
  if (!fractional) {
    // Each native slice is cut out of the volume once, then serves every segment's frame of that slice.
    const cache = new Map<number, VoxelArray>();
    const sliceOf = (s: number) => {
      let values = cache.get(s);
      if (!values) cache.set(s, (values = nativeSlice(layout, mask.data, s)));
      return values;
    };
    const packer = new BitPacker(frameList.length, pixels);
    for (const { segment, slice } of frameList) packer.addFrame(sliceOf(slice), segment + 1);
    pixelData = packer.bytes;
  } else {
    pixelData = new Uint8Array(frameList.length * pixels);
    const cache = new Map<number, VoxelArray>();
    frameList.forEach(({ segment, slice }, f) => {
      const out = pixelData.subarray(f * pixels, (f + 1) * pixels);
      if (input.probabilities) {
        const values = nativeSlice(probabilityLayouts![segment], input.probabilities[segment].data, slice);
        for (let p = 0; p < pixels; p++) {
          const q = Math.round(values[p] * 255);
          out[p] = q <= 0 ? 0 : q >= 255 ? 255 : q;
        }
        return;
      }
      let values = cache.get(slice);
      if (!values) cache.set(slice, (values = nativeSlice(layout, mask.data, slice)));
      const label = segment + 1;
      for (let p = 0; p < pixels; p++) if (values[p] === label) out[p] = 255;
    });
  }

  const uidRoot = options.uidRoot ? options.uidRoot.replace(/\.$/, '') : undefined;
  const sopInstanceUID = generateUid(uidRoot);
  const seriesInstanceUID = generateUid(uidRoot);
  const dimensionOrganizationUID = generateUid(uidRoot);
  const now = options.now ?? new Date();
  const date = dicomDate(now);
  const time = dicomTime(now);
  const header = source.header;
  const equipment = options.equipment ?? {};
  const algorithmVersion = options.algorithm.version?.trim() || 'unspecified';
  const step = slices > 1 ? Math.abs(dot(source.normal, source.slices[1].position.map((v, i) => v - source.slices[0].position[i]))) : undefined;
  const sourceSeriesNumber = header.number(Tag.SeriesNumber);

  const segmentItems: WriteDataset[] = segments.map((s, i) => {
    const defaults = defaultCodesFor(s.label);
    return {
      SegmentNumber: i + 1,
      SegmentLabel: s.label,
      SegmentDescription: s.description,
      SegmentAlgorithmType: 'AUTOMATIC',
      SegmentAlgorithmName: options.algorithm.name,
      SegmentationAlgorithmIdentificationSequence: [
        { AlgorithmFamilyCodeSequence: [codeItem(Codes.ArtificialIntelligence)], AlgorithmName: options.algorithm.name, AlgorithmVersion: algorithmVersion },
      ],
      SegmentedPropertyCategoryCodeSequence: [codeItem(s.category ?? defaults.category)],
      SegmentedPropertyTypeCodeSequence: [
        codeItem(s.type ?? defaults.type, s.typeModifier ? { SegmentedPropertyTypeModifierCodeSequence: [codeItem(s.typeModifier)] } : {}),
      ],
      AnatomicRegionSequence: s.anatomicRegion ? [codeItem(s.anatomicRegion)] : undefined,
      RecommendedDisplayCIELabValue: srgbToDicomLab(s.color ?? defaultColor(i)),
    };
  });

  const sopClassOf = (s: number) => source.slices[s].sopClassUID || SopClass.MrImageStorage;
  const segmentPointer = resolveTag('ReferencedSegmentNumber')!;
  const segmentGroup = resolveTag('SegmentIdentificationSequence')!;
  const perFrame: WriteDataset[] = frameList.map(({ segment, slice }) => ({
    DerivationImageSequence: [
      {
        DerivationCodeSequence: [codeItem(Codes.Segmentation)],
        SourceImageSequence: [
          {
            ReferencedSOPClassUID: sopClassOf(slice),
            ReferencedSOPInstanceUID: source.slices[slice].sopInstanceUID,
            PurposeOfReferenceCodeSequence: [codeItem(Codes.SourceImageForImageProcessingOperation)],
          },
        ],
      },
    ],
    // Dimension values: the segment, then the slice's rank along the normal (1 = lowest), as the index sequence says.
    FrameContentSequence: [{ DimensionIndexValues: [segment + 1, slice + 1] }],
    PlanePositionSequence: [{ ImagePositionPatient: [...source.slices[slice].position] }],
    SegmentIdentificationSequence: [{ ReferencedSegmentNumber: segment + 1 }],
  }));

  const dataset: WriteDataset = {
    ImageType: ['DERIVED', 'PRIMARY'],
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    SOPClassUID: SopClass.SegmentationStorage,
    SOPInstanceUID: sopInstanceUID,
    ...copyPatientAndStudy(header),
    SeriesDate: date,
    SeriesTime: time,
    ContentDate: date,
    ContentTime: time,
    Modality: 'SEG',
    Manufacturer: equipment.manufacturer ?? DEFAULT_MANUFACTURER,
    ManufacturerModelName: equipment.modelName ?? DEFAULT_MODEL_NAME,
    DeviceSerialNumber: equipment.deviceSerialNumber ?? defaultDeviceSerialNumber(),
    SoftwareVersions: equipment.softwareVersions ?? softwareVersion(),
    SeriesDescription: options.seriesDescription,
    BodyPartExamined: copyElement(header, Tag.BodyPartExamined),
    ReferencedSeriesSequence: [
      {
        SeriesInstanceUID: source.seriesInstanceUID,
        ReferencedInstanceSequence: source.slices.map((s, i) => ({ ReferencedSOPClassUID: sopClassOf(i), ReferencedSOPInstanceUID: s.sopInstanceUID })),
      },
    ],
    StudyInstanceUID: source.studyInstanceUID,
    SeriesInstanceUID: seriesInstanceUID,
    SeriesNumber: options.seriesNumber ?? (sourceSeriesNumber !== undefined ? sourceSeriesNumber + 1000 : 1000),
    InstanceNumber: options.instanceNumber ?? 1,
    FrameOfReferenceUID: source.frameOfReferenceUID,
    PositionReferenceIndicator: copyElement(header, resolveTag('PositionReferenceIndicator')!) ?? null,
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUID }],
    DimensionIndexSequence: [
      { DimensionOrganizationUID: dimensionOrganizationUID, DimensionIndexPointer: { vr: 'AT', value: segmentPointer }, FunctionalGroupPointer: { vr: 'AT', value: segmentGroup }, DimensionDescriptionLabel: 'ReferencedSegmentNumber' },
      { DimensionOrganizationUID: dimensionOrganizationUID, DimensionIndexPointer: { vr: 'AT', value: Tag.ImagePositionPatient }, FunctionalGroupPointer: { vr: 'AT', value: Tag.PlanePositionSequence }, DimensionDescriptionLabel: 'ImagePositionPatient' },
    ],
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    NumberOfFrames: frameList.length,
    Rows: source.rows,
    Columns: source.columns,
    BitsAllocated: fractional ? 8 : 1,
    BitsStored: fractional ? 8 : 1,
    HighBit: fractional ? 7 : 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    ContentLabel: options.contentLabel ?? 'SEGMENTATION',
    ContentDescription: options.contentDescription ?? null,
    ContentCreatorName: options.contentCreatorName ?? null,
    SegmentationType: fractional ? 'FRACTIONAL' : 'BINARY',
    SegmentationFractionalType: fractional ? 'PROBABILITY' : undefined,
    MaximumFractionalValue: fractional ? 255 : undefined,
    // A label map cannot overlap; separate probability maps may.
    SegmentsOverlap: input.probabilities ? 'UNDEFINED' : 'NO',
    SegmentSequence: segmentItems,
    SharedFunctionalGroupsSequence: [
      {
        PixelMeasuresSequence: [{ PixelSpacing: [...source.pixelSpacing], SliceThickness: source.sliceThickness ?? step ?? 1, SpacingBetweenSlices: step }],
        PlaneOrientationSequence: [{ ImageOrientationPatient: [...source.orientation] }],
      },
    ],
    PerFrameFunctionalGroupsSequence: perFrame,
    PixelData: { vr: 'OB', value: pixelData },
  };
  // The writer encodes text as UTF-8: declare it when any string needs it, else keep the source's declaration.
  dataset.SpecificCharacterSet = hasNonAscii(dataset) ? 'ISO_IR 192' : copyElement(header, Tag.SpecificCharacterSet);
  return { dataset, sopInstanceUID, seriesInstanceUID, segmentationType: fractional ? 'FRACTIONAL' : 'BINARY', frames: frameList.length, segments: summaries };
}

/**
 * Writes the Segmentation into `options.outDir` as `<SOPInstanceUID>.dcm` (Explicit VR Little Endian, a
 * temporary name then rename), or nothing when the mask is empty.
 */
export function writeSegmentation(input: WriteSegmentationInput): SegmentationResult {
  const built = buildSegmentation(input);
  if ('empty' in built) return built;
  const bytes = encodePart10(built.dataset);
  mkdirSync(input.options.outDir, { recursive: true });
  const file = insideDir(input.options.outDir, `${built.sopInstanceUID}.dcm`);
  writeFileAtomic(file, bytes);
  return {
    empty: false,
    file,
    sopInstanceUID: built.sopInstanceUID,
    seriesInstanceUID: built.seriesInstanceUID,
    segmentationType: built.segmentationType,
    frames: built.frames,
    bytes: bytes.length,
    segments: built.segments,
  };
}

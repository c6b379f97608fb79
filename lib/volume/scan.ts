import { readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { DicomDataset } from '../dicom/dataset';
import { type PixelModule, isSupportedTransferSyntax, pixelModuleOf } from '../dicom/pixels';
import { type DicomFile, type PixelDataLocation, readDicomHeader } from '../dicom/reader';
import { Tag } from '../dicom/tags';
import type { Vec3 } from './geometry';

/** One frame's geometry and value mapping: the unit that becomes a slice of a volume. */
export interface FrameInfo {
  /** 0-based frame index within its instance. */
  frame: number;
  position: Vec3;
  /** ImageOrientationPatient: row cosine then column cosine, LPS. */
  orientation: number[];
  /** PixelSpacing: [between rows, between columns] mm. */
  pixelSpacing: [number, number];
  sliceThickness?: number;
  spacingBetweenSlices?: number;
  slope: number;
  intercept: number;
  /** Echo (EchoNumbers, or the effective echo time of an enhanced frame); splits multi-echo series. */
  echo?: number;
  /** Temporal position (TemporalPositionIdentifier / TemporalPositionIndex); splits dynamic series. */
  temporal?: number;
}

/** An instance whose pixels can become slices. Pixel data stays on disk until its stack is converted. */
export interface ImageInstance {
  path: string;
  /** Path relative to the scanned folder, with "/" separators. */
  file: string;
  sopInstanceUID: string;
  sopClassUID: string;
  instanceNumber?: number;
  acquisitionNumber?: number;
  transferSyntaxUID: string;
  pixel: PixelModule;
  pixelData: PixelDataLocation;
  modality: string;
  imageType: string[];
  /** MRAcquisitionType "2D" / "3D" (MR only). */
  acquisitionType?: string;
  /** Echo-planar: dcm2niix never reorients those, so neither do we. */
  echoPlanar: boolean;
  frames: FrameInfo[];
  enhanced: boolean;
}

export interface SkippedInstance {
  file: string;
  sopInstanceUID?: string;
  reason: string;
}

export interface ScannedSeries {
  seriesInstanceUID: string;
  studyInstanceUID: string;
  modality?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  /** Every instance of the series, image or not, in file order. */
  instances: Array<{ sopInstanceUID: string; file: string }>;
  images: ImageInstance[];
  /** Instances of the series that cannot become slices, each with the reason. */
  skipped: SkippedInstance[];
  /** The instance whose attributes describe the series (lowest InstanceNumber; file order breaks ties). */
  representativePath: string;
  representativeNumber: number;
}

export interface ScanResult {
  root: string;
  files: number;
  /** In order of first appearance (files are read in sorted path order). */
  series: ScannedSeries[];
  /** Files that are not readable DICOM instances, or lack the UIDs needed to place them. */
  skippedFiles: SkippedInstance[];
}

const MEDIA_STORAGE_DIRECTORY = '1.2.840.10008.1.3.10';

/** Non-image storage classes by UID prefix, so that the report names what they are. */
const NON_IMAGE_CLASSES: Array<[string, string]> = [
  ['1.2.840.10008.5.1.4.1.1.88.59', 'key object selection (KO)'],
  ['1.2.840.10008.5.1.4.1.1.88.', 'structured report (SR)'],
  ['1.2.840.10008.5.1.4.1.1.11.', 'presentation state (PR)'],
  ['1.2.840.10008.5.1.4.1.1.66.4', 'segmentation (SEG)'],
  ['1.2.840.10008.5.1.4.1.1.66.', 'raw data, registration or fiducials'],
  ['1.2.840.10008.5.1.4.1.1.481.2', 'RT dose (a dose grid, not an image series)'],
  ['1.2.840.10008.5.1.4.1.1.481.3', 'RT structure set (RTSTRUCT)'],
  ['1.2.840.10008.5.1.4.1.1.481.5', 'RT plan'],
  ['1.2.840.10008.5.1.4.1.1.481.', 'RT object'],
  ['1.2.840.10008.5.1.4.1.1.9.', 'waveform'],
  ['1.2.840.10008.5.1.4.1.1.104.', 'encapsulated document'],
  ['1.2.840.10008.5.1.4.1.1.68.', 'surface or mesh'],
  ['1.2.840.10008.5.1.4.1.1.78.', 'measurement'],
  ['1.2.840.10008.5.1.4.1.1.79.', 'measurement'],
  ['1.2.840.10008.5.1.4.34.', 'RT second-generation object'],
];

/** Why an instance is not an image, or undefined when it is one (it has pixel data and is not listed above). */
function nonImageReason(sopClassUID: string, hasPixelData: boolean): string | undefined {
  const known = NON_IMAGE_CLASSES.find(([prefix]) => sopClassUID === prefix || (prefix.endsWith('.') && sopClassUID.startsWith(prefix)));
  if (known) return `non-image instance: ${known[1]}`;
  if (!hasPixelData) return `no pixel data (SOP class ${sopClassUID || 'missing'}): nothing to convert`;
  return undefined;
}

function finite(values: number[], count: number): number[] | undefined {
  return values.length >= count && values.slice(0, count).every(Number.isFinite) ? values.slice(0, count) : undefined;
}

/** The first item of a functional group, from the frame's own groups or else the shared ones. */
function group(perFrame: DicomDataset | undefined, shared: DicomDataset | undefined, tag: number): DicomDataset | undefined {
  return perFrame?.sequence(tag)[0] ?? shared?.sequence(tag)[0];
}

function frameGeometry(
  frame: number,
  geometrySource: { position?: DicomDataset; orientation?: DicomDataset; measures?: DicomDataset; values?: DicomDataset },
  fallback: DicomDataset,
): Omit<FrameInfo, 'echo' | 'temporal'> | string {
  const position = finite((geometrySource.position ?? fallback).numbers(Tag.ImagePositionPatient), 3);
  const orientation = finite((geometrySource.orientation ?? fallback).numbers(Tag.ImageOrientationPatient), 6);
  const measures = geometrySource.measures ?? fallback;
  const spacing = finite(measures.numbers(Tag.PixelSpacing), 2);
  if (!position || !orientation) return 'no ImagePositionPatient/ImageOrientationPatient: not part of a volume (a projection, secondary capture or photo)';
  const rowNorm = Math.hypot(orientation[0], orientation[1], orientation[2]);
  const colNorm = Math.hypot(orientation[3], orientation[4], orientation[5]);
  const cosAngle = (orientation[0] * orientation[3] + orientation[1] * orientation[4] + orientation[2] * orientation[5]) / (rowNorm * colNorm || 1);
  if (Math.abs(rowNorm - 1) > 0.01 || Math.abs(colNorm - 1) > 0.01 || Math.abs(cosAngle) > 0.01) {
    return `ImageOrientationPatient ${orientation.join('\\')} is not two perpendicular unit vectors`;
  }
  if (!spacing || spacing[0] <= 0 || spacing[1] <= 0) return 'no valid PixelSpacing: the voxel size is unknown';
  // Cosines written with few digits are renormalised, so that spacings stay exact.
  const unit = [...orientation.slice(0, 3).map((v) => v / rowNorm), ...orientation.slice(3).map((v) => v / colNorm)];
  const values = geometrySource.values ?? fallback;
  const slope = values.number(Tag.RescaleSlope);
  const intercept = values.number(Tag.RescaleIntercept);
  const thickness = measures.number(Tag.SliceThickness);
  const between = measures.number(Tag.SpacingBetweenSlices) ?? fallback.number(Tag.SpacingBetweenSlices);
  return {
    frame,
    position: position as Vec3,
    orientation: unit,
    pixelSpacing: [spacing[0], spacing[1]],
    sliceThickness: thickness,
    spacingBetweenSlices: between,
    // A zero slope would erase the image; readers (dcm2niix, pydicom) treat it as absent.
    slope: slope === undefined || slope === 0 ? 1 : slope,
    intercept: intercept ?? 0,
  };
}

/** Frames of an instance with their geometry, or the reason why it has none usable. */
function framesOf(ds: DicomDataset, pm: PixelModule): { frames: FrameInfo[]; enhanced: boolean } | string {
  const shared = ds.sequence(Tag.SharedFunctionalGroupsSequence)[0];
  const perFrame = ds.sequence(Tag.PerFrameFunctionalGroupsSequence);
  const enhanced = shared !== undefined || perFrame.length > 0;
  if (!enhanced) {
    if (pm.numberOfFrames > 1) return `multi-frame image (${pm.numberOfFrames} frames) without per-frame functional groups: frame positions are unknown`;
    const g = frameGeometry(0, {}, ds);
    if (typeof g === 'string') return g;
    const echo = ds.number(Tag.EchoNumbers);
    const temporal = ds.number(Tag.TemporalPositionIdentifier);
    return { frames: [{ ...g, echo, temporal }], enhanced: false };
  }
  if (perFrame.length !== 0 && perFrame.length !== pm.numberOfFrames) {
    return `enhanced multi-frame image has ${perFrame.length} per-frame functional groups for ${pm.numberOfFrames} frames`;
  }
  const frames: FrameInfo[] = [];
  for (let f = 0; f < pm.numberOfFrames; f++) {
    const own = perFrame[f];
    const g = frameGeometry(
      f,
      {
        position: group(own, shared, Tag.PlanePositionSequence),
        orientation: group(own, shared, Tag.PlaneOrientationSequence),
        measures: group(own, shared, Tag.PixelMeasuresSequence),
        values: group(own, shared, Tag.PixelValueTransformationSequence),
      },
      ds,
    );
    if (typeof g === 'string') return `frame ${f + 1}: ${g}`;
    const content = group(own, shared, Tag.FrameContentSequence);
    const echo = group(own, shared, Tag.MREchoSequence)?.number(Tag.EffectiveEchoTime);
    frames.push({ ...g, echo, temporal: content?.number(Tag.TemporalPositionIndex) });
  }
  return { frames, enhanced: true };
}

function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && e.syscall) return `cannot read the file (${e.code})`;
  return e instanceof Error ? e.message : String(err);
}

/**
 * Every regular file below `dir`, in sorted order; symbolic links to folders are not followed (they can
 * loop). Subfolders that cannot be read are reported in `unreadable`; only the top folder must be readable.
 */
function listFiles(dir: string, out: string[], unreadable: Array<{ path: string; reason: string }>, top = true): void {
  let listing;
  try {
    listing = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (top) throw err;
    unreadable.push({ path: dir, reason: `cannot read the folder (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` });
    return;
  }
  const entries = listing.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const subdirs: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) subdirs.push(path);
    else if (entry.isFile()) out.push(path);
    else if (entry.isSymbolicLink()) {
      try {
        if (statSync(path).isFile()) out.push(path);
      } catch {
        // a dangling link: nothing to read
      }
    }
  }
  for (const sub of subdirs) listFiles(sub, out, unreadable, false);
}

/** Lets the event loop run between batches of synchronous reads, so that a Node-RED runtime stays responsive. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Reads the header of every file below `root` (never the pixel data) and groups the instances by
 * series. Unreadable files and non-image instances are listed with the reason; nothing here throws
 * for a bad file.
 */
export async function scanFolder(root: string, onFile?: (done: number, total: number) => void): Promise<ScanResult> {
  const paths: string[] = [];
  const unreadable: Array<{ path: string; reason: string }> = [];
  listFiles(root, paths, unreadable);
  const bySeries = new Map<string, ScannedSeries>();
  const skippedFiles: SkippedInstance[] = unreadable.map((u) => ({ file: relative(root, u.path).split(sep).join('/'), reason: u.reason }));
  for (let i = 0; i < paths.length; i++) {
    if (i % 64 === 63) {
      onFile?.(i, paths.length);
      await yieldToEventLoop();
    }
    const path = paths[i];
    const file = relative(root, path).split(sep).join('/');
    let dicom: DicomFile;
    try {
      dicom = readDicomHeader(path);
    } catch (err) {
      skippedFiles.push({ file, reason: `not a readable DICOM file: ${describeError(err)}` });
      continue;
    }
    const ds = dicom.dataset;
    const sopClassUID = ds.string(Tag.SOPClassUID) ?? dicom.meta.string(Tag.MediaStorageSOPClassUID) ?? '';
    if (sopClassUID === MEDIA_STORAGE_DIRECTORY || ds.has(0x00041220)) {
      skippedFiles.push({ file, reason: 'DICOMDIR (media directory): the instances it lists are read from their own files' });
      continue;
    }
    const sopInstanceUID = ds.string(Tag.SOPInstanceUID) ?? dicom.meta.string(Tag.MediaStorageSOPInstanceUID);
    const seriesInstanceUID = ds.string(Tag.SeriesInstanceUID);
    const studyInstanceUID = ds.string(Tag.StudyInstanceUID);
    if (!sopInstanceUID || !seriesInstanceUID || !studyInstanceUID) {
      const missing = [!sopInstanceUID && 'SOPInstanceUID', !seriesInstanceUID && 'SeriesInstanceUID', !studyInstanceUID && 'StudyInstanceUID'].filter(Boolean);
      skippedFiles.push({ file, sopInstanceUID, reason: `no ${missing.join(', ')}: the instance cannot be placed in a series` });
      continue;
    }
    let series = bySeries.get(seriesInstanceUID);
    const instanceNumber = ds.number(Tag.InstanceNumber);
    if (!series) {
      series = {
        seriesInstanceUID,
        studyInstanceUID,
        modality: ds.string(Tag.Modality),
        seriesNumber: ds.number(Tag.SeriesNumber),
        seriesDescription: ds.string(Tag.SeriesDescription),
        instances: [],
        images: [],
        skipped: [],
        representativePath: path,
        representativeNumber: instanceNumber ?? Infinity,
      };
      bySeries.set(seriesInstanceUID, series);
    } else if (instanceNumber !== undefined && instanceNumber < series.representativeNumber) {
      series.representativePath = path;
      series.representativeNumber = instanceNumber;
    }
    series.instances.push({ sopInstanceUID, file });
    const notImage = nonImageReason(sopClassUID, dicom.pixelData !== undefined);
    if (notImage) {
      series.skipped.push({ file, sopInstanceUID, reason: notImage });
      continue;
    }
    const image = imageInstanceOf(path, file, dicom, sopInstanceUID, sopClassUID);
    if (typeof image === 'string') series.skipped.push({ file, sopInstanceUID, reason: image });
    else series.images.push(image);
  }
  onFile?.(paths.length, paths.length);
  return { root, files: paths.length, series: [...bySeries.values()], skippedFiles };
}

/** The image facts of one instance, or why its pixels cannot become slices of a volume. */
function imageInstanceOf(path: string, file: string, dicom: DicomFile, sopInstanceUID: string, sopClassUID: string): ImageInstance | string {
  const ds = dicom.dataset;
  const pixelData = dicom.pixelData!;
  let pm: PixelModule;
  try {
    pm = pixelModuleOf(ds);
  } catch (err) {
    return describeError(err);
  }
  if (!isSupportedTransferSyntax(dicom.transferSyntaxUID)) return `unsupported transfer syntax ${dicom.transferSyntaxUID}`;
  if (pm.samplesPerPixel !== 1) return `colour image (${pm.photometricInterpretation}, ${pm.samplesPerPixel} samples per pixel): only greyscale series become volumes`;
  if (pm.bitsAllocated === 1) return '1-bit (bitmap) pixel data: not a greyscale image';
  const floatData = pixelData.tag === Tag.FloatPixelData || pixelData.tag === Tag.DoubleFloatPixelData;
  if (!floatData && pm.bitsAllocated > 32) return `BitsAllocated ${pm.bitsAllocated} integer pixels are not supported`;
  if (pm.bitsStored > pm.bitsAllocated || pm.bitsStored < 1) return `BitsStored ${pm.bitsStored} does not fit BitsAllocated ${pm.bitsAllocated}`;
  const frames = framesOf(ds, pm);
  if (typeof frames === 'string') return frames;
  const scanning = ds.strings(Tag.ScanningSequence);
  return {
    path,
    file,
    sopInstanceUID,
    sopClassUID,
    instanceNumber: ds.number(Tag.InstanceNumber),
    acquisitionNumber: ds.number(Tag.AcquisitionNumber),
    transferSyntaxUID: dicom.transferSyntaxUID,
    pixel: pm,
    pixelData,
    modality: ds.string(Tag.Modality) ?? '',
    imageType: ds.strings(Tag.ImageType),
    acquisitionType: ds.string(Tag.MRAcquisitionType)?.toUpperCase(),
    echoPlanar: scanning.includes('EP') || ds.string(Tag.EchoPlanarPulseSequence)?.toUpperCase().startsWith('Y') === true,
    frames: frames.frames,
    enhanced: frames.enhanced,
  };
}

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { type DicomJsonObject, toDicomJson } from '../dicom/json';
import { readDicomHeader } from '../dicom/reader';
import { isValidUid } from '../dicom/uids';
import { writeJsonAtomic } from '../dicom/writer';
import { type RescaleMode, VoxelArena, buildVolume, volumeBytes } from './convert';
import { type AxisLayout, spacingOf } from './geometry';
import { writeMetaImage } from './metaimage';
import { type ScannedSeries, scanFolder } from './scan';
import { type SpacingPolicy, type Stack, planStacks } from './stacks';
import { writeNiftiStream } from './stream';
import type { Matrix4, VoxelType } from './types';

export type OutputFormat = 'nifti' | 'nifti-gz' | 'mhd';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['nifti', 'nifti-gz', 'mhd'];
export const SPACING_POLICIES: readonly SpacingPolicy[] = ['warn', 'reject'];
export type { SpacingPolicy } from './stacks';

export const SERIES_IMAGES_FILE = 'series-images.json';
export const DICOM_METADATA_FILE = 'dicom-metadata.json';
export const PARSE_REPORT_FILE = 'parse-report.json';

export interface ParseProgress {
  stage: 'scan' | 'convert';
  done: number;
  total: number;
}

export interface ParseOptions {
  /** Default 'nifti-gz'. */
  format?: OutputFormat;
  /** What to do with a stack that has missing slices or uneven spacing. Default 'warn'. */
  spacingPolicy?: SpacingPolicy;
  /** Empty the output folder first (the job's parser/ folder: a re-run must not leave stale volumes). */
  clean?: boolean;
  onProgress?: (progress: ParseProgress) => void;
  /** Stops the parse between files and between stacks (a redeployed node); it then rejects with ParseAbortedError. */
  signal?: AbortSignal;
}

/** One slice of a volume, in native slice order (ascending along the normal). `frame` is 1-based. */
export interface SliceSource {
  sopInstanceUID: string;
  frame: number;
}

/** One written volume. */
export interface VolumeRecord {
  seriesInstanceUID: string;
  studyInstanceUID: string;
  /** 1-based; 1 is the series' main volume, named after the series UID alone. */
  stack: number;
  stackCount: number;
  /** Relative to the output folder. */
  file: string;
  dims: [number, number, number];
  /** Voxel size along each file axis, mm. */
  spacing: [number, number, number];
  voxelType: VoxelType;
  /** Voxel (i, j, k) to RAS+ mm, as the NIfTI sform. */
  affine: Matrix4;
  /** How file axes i, j, k run over the DICOM stack: "+column", "-row", "+slice" (slice = along the normal). */
  axes: [string, string, string];
  plane: 'axial' | 'coronal' | 'sagittal' | 'oblique';
  imageOrientationPatient: number[];
  description: string;
  seriesNumber?: number;
  modality?: string;
  imageType: string[];
  /** Slices in native order: slice index s along the normal holds this instance's frame. */
  slices: SliceSource[];
  /** Rescale slope/intercept stored in the header (NIfTI), or absent when the values are final. */
  rescale?: { slope: number; intercept: number };
  /** Set when a series was split: what this stack is ("echo 2", "coronal 256×256"). */
  label?: string;
  warnings: string[];
}

export interface SkipRecord {
  /** What was skipped: a file (not DICOM, no UIDs), an instance, a whole series, or one stack of a series. */
  kind: 'file' | 'instance' | 'series' | 'stack';
  reason: string;
  file?: string;
  seriesInstanceUID?: string;
  sopInstanceUID?: string;
  seriesDescription?: string;
}

export interface WarningRecord {
  seriesInstanceUID: string;
  stack?: number;
  message: string;
}

export interface ParseResult {
  inputDir: string;
  outDir: string;
  format: OutputFormat;
  files: number;
  series: number;
  volumes: VolumeRecord[];
  skipped: SkipRecord[];
  warnings: WarningRecord[];
  /** Absolute paths of the metadata files. */
  seriesImages: string;
  dicomMetadata: string;
  report: string;
  seconds: number;
}

/** The input cannot be parsed at all (missing or unreadable folder). Bad files inside it are not errors. */
export class ParseInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ParseInputError';
  }
}

/** The parse was stopped through its AbortSignal. Volumes already written stay; the metadata files are not written. */
export class ParseAbortedError extends Error {
  constructor() {
    super('parse stopped before it finished');
    this.name = 'ParseAbortedError';
  }
}

const EXTENSIONS: Record<OutputFormat, string> = { nifti: '.nii', 'nifti-gz': '.nii.gz', mhd: '.mhd' };

/** The file name stem of a series: its UID, when it is a valid one (a crafted UID must never name a path). */
function stemOf(seriesInstanceUID: string): { stem: string; renamed: boolean } {
  if (isValidUid(seriesInstanceUID)) return { stem: seriesInstanceUID, renamed: false };
  return { stem: `series-${createHash('sha256').update(seriesInstanceUID).digest('hex').slice(0, 16)}`, renamed: true };
}

function axesOf(layout: AxisLayout): [string, string, string] {
  const names = ['column', 'row', 'slice'];
  return layout.from.map((a, o) => `${layout.reversed[o] ? '-' : '+'}${names[a]}`) as [string, string, string];
}

function countReasons(reasons: string[]): string {
  const counts = new Map<string, number>();
  for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts].map(([r, n]) => (n > 1 ? `${r} (${n} instances)` : r)).join('; ');
}

function attributesOf(series: ScannedSeries): { attributes?: DicomJsonObject; error?: string } {
  try {
    return { attributes: toDicomJson(readDicomHeader(series.representativePath).dataset) };
  } catch (err) {
    return { error: `cannot re-read ${series.representativePath}: ${(err as Error).message}` };
  }
}

/**
 * Converts every image series under `inputDir` into volumes in `outDir`, one per stack, named by the
 * Series Instance UID, in dcm2niix's voxel layout and geometry; writes series-images.json,
 * dicom-metadata.json and parse-report.json beside them. One stack is in memory at a time.
 * Files that are not DICOM, non-image instances and stacks that cannot become volumes are reported
 * in the result, never thrown; only an unusable input or output folder (or a write failure) throws.
 */
export async function parseStudy(inputDir: string, outDir: string, options: ParseOptions = {}): Promise<ParseResult> {
  const started = process.hrtime.bigint();
  const format = options.format ?? 'nifti-gz';
  const spacingPolicy = options.spacingPolicy ?? 'warn';
  if (!OUTPUT_FORMATS.includes(format)) throw new ParseInputError(`unknown output format ${JSON.stringify(format)}; use ${OUTPUT_FORMATS.join(', ')}`);
  if (!SPACING_POLICIES.includes(spacingPolicy)) throw new ParseInputError(`unknown spacing policy ${JSON.stringify(spacingPolicy)}; use ${SPACING_POLICIES.join(', ')}`);
  const input = resolve(inputDir);
  const output = resolve(outDir);
  try {
    if (!statSync(input).isDirectory()) throw new ParseInputError(`${input} is not a folder`);
  } catch (err) {
    if (err instanceof ParseInputError) throw err;
    throw new ParseInputError(`cannot read the DICOM folder ${input}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (options.clean && (input === output || input.startsWith(output + sep))) {
    // Emptying the output folder would delete the DICOM files being parsed.
    throw new ParseInputError(`the output folder ${output} holds the DICOM folder ${input}; it cannot be emptied`);
  }
  try {
    mkdirSync(output, { recursive: true });
    if (options.clean) for (const name of readdirSync(output)) rmSync(join(output, name), { recursive: true, force: true });
  } catch (err) {
    throw new ParseInputError(`cannot prepare the output folder ${output}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }

  const checkAborted = () => {
    if (options.signal?.aborted) throw new ParseAbortedError();
  };
  const scan = await scanFolder(input, (done, total) => {
    checkAborted();
    options.onProgress?.({ stage: 'scan', done, total });
  });
  const volumes: VolumeRecord[] = [];
  const skipped: SkipRecord[] = scan.skippedFiles.map((s) => ({ kind: 'file', file: s.file, sopInstanceUID: s.sopInstanceUID, reason: s.reason }));
  const warnings: WarningRecord[] = [];
  const rescaleMode: RescaleMode = format === 'mhd' ? 'values' : 'header';
  const imageFiles = new Map<string, string>();

  const ordered = [...scan.series].sort((a, b) => (a.seriesNumber ?? Infinity) - (b.seriesNumber ?? Infinity));
  // Plan every series first (headers only), so that one buffer sized for the largest volume serves all.
  const plans = ordered.map((series) => ({ series, plan: series.images.length ? planStacks(series, spacingPolicy) : undefined }));
  const largest = Math.max(0, ...plans.flatMap(({ plan }) => plan?.stacks.map((st) => volumeBytes(st, rescaleMode)) ?? []));
  const arena = new VoxelArena(largest);
  for (let index = 0; index < plans.length; index++) {
    const { series, plan } = plans[index];
    checkAborted();
    options.onProgress?.({ stage: 'convert', done: index, total: ordered.length });
    const about = { seriesInstanceUID: series.seriesInstanceUID, seriesDescription: series.seriesDescription };
    if (!plan) {
      skipped.push({ kind: 'series', ...about, reason: countReasons(series.skipped.map((s) => s.reason)) || 'no image instances' });
      continue;
    }
    for (const s of series.skipped) skipped.push({ kind: 'instance', ...about, file: s.file, sopInstanceUID: s.sopInstanceUID, reason: s.reason });
    for (const message of plan.warnings) warnings.push({ seriesInstanceUID: series.seriesInstanceUID, message });
    for (const r of plan.rejected) skipped.push({ kind: 'stack', ...about, reason: `${r.label}, ${r.slices} slice(s): ${r.reason}` });
    if (plan.stacks.length === 0 && plan.rejected.length === 0) skipped.push({ kind: 'series', ...about, reason: 'no slices' });
    const { stem, renamed } = stemOf(series.seriesInstanceUID);
    if (renamed) warnings.push({ seriesInstanceUID: series.seriesInstanceUID, message: `the Series Instance UID is not a valid UID; its volumes are named ${stem}` });
    for (const stack of plan.stacks) {
      checkAborted();
      const record = await convertStack(stack, plan.stacks.length, series, stem, output, format, rescaleMode, arena, skipped);
      if (!record) continue;
      volumes.push(record);
      for (const message of record.warnings) warnings.push({ seriesInstanceUID: series.seriesInstanceUID, stack: stack.index, message });
      if (!imageFiles.has(series.seriesInstanceUID)) imageFiles.set(series.seriesInstanceUID, record.file);
    }
  }
  options.onProgress?.({ stage: 'convert', done: ordered.length, total: ordered.length });

  const seriesImagesPath = join(output, SERIES_IMAGES_FILE);
  const dicomMetadataPath = join(output, DICOM_METADATA_FILE);
  const reportPath = join(output, PARSE_REPORT_FILE);
  writeJsonAtomic(seriesImagesPath, seriesImagesOf(ordered, volumes));
  writeJsonAtomic(dicomMetadataPath, dicomMetadataOf(ordered, imageFiles, skipped, relative(output, input).split(sep).join('/') || '.'));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const result: ParseResult = {
    inputDir: input,
    outDir: output,
    format,
    files: scan.files,
    series: scan.series.length,
    volumes,
    skipped,
    warnings,
    seriesImages: seriesImagesPath,
    dicomMetadata: dicomMetadataPath,
    report: reportPath,
    seconds,
  };
  writeJsonAtomic(reportPath, {
    inputDir: input,
    format,
    spacingPolicy,
    files: scan.files,
    series: scan.series.length,
    seconds: Number(seconds.toFixed(3)),
    volumes: volumes.map(({ slices: _slices, ...rest }) => rest),
    skipped,
    warnings,
  });
  return result;
}

async function convertStack(
  stack: Stack,
  stackCount: number,
  series: ScannedSeries,
  stem: string,
  output: string,
  format: OutputFormat,
  rescaleMode: RescaleMode,
  arena: VoxelArena,
  skipped: SkipRecord[],
): Promise<VolumeRecord | undefined> {
  const first = stack.slices[0].instance;
  const description = [series.seriesDescription ?? '', stack.label ? `(${stack.label})` : ''].filter(Boolean).join(' ');
  let built;
  try {
    built = await buildVolume(stack, rescaleMode, arena);
  } catch (err) {
    // A corrupt frame spoils its stack, not the study.
    skipped.push({
      kind: 'stack',
      seriesInstanceUID: series.seriesInstanceUID,
      seriesDescription: series.seriesDescription,
      reason: `${stack.label ?? `stack ${stack.index}`}: pixel data does not decode: ${(err as Error).message}`,
    });
    return undefined;
  }
  const { volume, layout } = built;
  volume.description = description.slice(0, 79);
  const file = `${stem}${stack.index > 1 ? `_stack${stack.index}` : ''}${EXTENSIONS[format]}`;
  const path = join(output, file);
  if (format === 'mhd') await writeMetaImage(path, volume);
  else await writeNiftiStream(path, volume);
  const g = stack.geometry;
  return {
    seriesInstanceUID: series.seriesInstanceUID,
    studyInstanceUID: series.studyInstanceUID,
    stack: stack.index,
    stackCount,
    file,
    dims: volume.dims,
    spacing: spacingOf(volume.affine),
    voxelType: volume.type,
    affine: volume.affine,
    axes: axesOf(layout),
    plane: stack.plane,
    imageOrientationPatient: [...g.rowCosine, ...g.columnCosine],
    description,
    seriesNumber: series.seriesNumber,
    modality: series.modality ?? (first.modality || undefined),
    imageType: first.imageType,
    slices: stack.slices.map((s) => ({ sopInstanceUID: s.instance.sopInstanceUID, frame: s.frame.frame + 1 })),
    rescale: volume.slope !== undefined || volume.intercept !== undefined ? { slope: volume.slope ?? 1, intercept: volume.intercept ?? 0 } : undefined,
    label: stack.label,
    warnings: [...stack.warnings, ...built.warnings],
  };
}

/** One stack's entry in series-images.json. */
export interface SeriesImageStack {
  /** Relative to the parser's output folder. */
  image: string;
  stack: number;
  label?: string;
  dims: [number, number, number];
  spacing: number[];
  orientation: VolumeRecord['plane'];
  ImageOrientationPatient: number[];
  voxelType: VoxelType;
  rescale?: { slope: number; intercept: number };
  axes: [string, string, string];
  affine: number[][];
  sliceCount: number;
  slices: SliceSource[];
  warnings: string[];
}

/** One series' entry in series-images.json: its main stack, plus every stack when it was split. */
export interface SeriesImageEntry extends SeriesImageStack {
  StudyInstanceUID: string;
  SeriesInstanceUID: string;
  SeriesDescription?: string;
  SeriesNumber?: number;
  Modality?: string;
  ImageType: string[];
  instanceCount: number;
  stacks?: SeriesImageStack[];
}

/** series-images.json: Series Instance UID → its entry, for image series only. */
export type SeriesImagesFile = Record<string, SeriesImageEntry>;

/** One series in dicom-metadata.json, image or not. */
export interface DicomMetadataSeries {
  SeriesInstanceUID: string;
  SeriesNumber?: number;
  SeriesDescription?: string;
  Modality?: string;
  /** The main volume's file, relative to the parser's output folder; null when the series was not converted. */
  image: string | null;
  skippedReason?: string;
  instanceCount: number;
  /** The series' first instance (lowest InstanceNumber) in the DICOM JSON model, bulk values left out. */
  attributes: DicomJsonObject;
  attributesError?: string;
  /** `file` is relative to `dicomFolder`. */
  instances: Array<{ SOPInstanceUID: string; file: string }>;
}

/** dicom-metadata.json. */
export interface DicomMetadataFile {
  /** The DICOM folder, relative to the parser's output folder. */
  dicomFolder: string;
  studies: Array<{ StudyInstanceUID: string; series: DicomMetadataSeries[] }>;
}

/** series-images.json: Series Instance UID → its image file and key attributes; split series list every stack. */
function seriesImagesOf(series: ScannedSeries[], volumes: VolumeRecord[]): SeriesImagesFile {
  const out: SeriesImagesFile = {};
  for (const s of series) {
    const own = volumes.filter((v) => v.seriesInstanceUID === s.seriesInstanceUID);
    if (own.length === 0) continue;
    const describe = (v: VolumeRecord): SeriesImageStack => ({
      image: v.file,
      stack: v.stack,
      label: v.label,
      dims: v.dims,
      spacing: v.spacing.map((x) => Number(x.toFixed(6))),
      orientation: v.plane,
      ImageOrientationPatient: v.imageOrientationPatient.map((x) => Number(x.toFixed(6))),
      voxelType: v.voxelType,
      rescale: v.rescale,
      axes: v.axes,
      affine: v.affine.map((row) => row.map((x) => Number(x.toFixed(6)))),
      sliceCount: v.slices.length,
      slices: v.slices,
      warnings: v.warnings,
    });
    const main = own[0];
    // "image" first: the series' main volume is the mapping Clara's writers read.
    const { image, ...details } = describe(main);
    out[s.seriesInstanceUID] = {
      image,
      StudyInstanceUID: s.studyInstanceUID,
      SeriesInstanceUID: s.seriesInstanceUID,
      SeriesDescription: s.seriesDescription,
      SeriesNumber: s.seriesNumber,
      Modality: main.modality,
      ImageType: main.imageType,
      instanceCount: s.instances.length,
      ...details,
      stacks: own.length > 1 ? own.map(describe) : undefined,
    };
  }
  return out;
}

/**
 * dicom-metadata.json: per study and series, the attributes of the series' first instance in the
 * DICOM JSON model (PS3.18 F.2; pixel and other bulk data left out), the instance count and the
 * instances with their files (relative to `dicomFolder`, itself relative to this file's folder).
 */
function dicomMetadataOf(series: ScannedSeries[], imageFiles: Map<string, string>, skipped: SkipRecord[], dicomFolder: string): DicomMetadataFile {
  const studies = new Map<string, DicomMetadataSeries[]>();
  for (const s of series) {
    const { attributes, error } = attributesOf(s);
    const image = imageFiles.get(s.seriesInstanceUID);
    const reason = image ? undefined : skipped.find((k) => k.seriesInstanceUID === s.seriesInstanceUID && (k.kind === 'series' || k.kind === 'stack'))?.reason;
    const entry: DicomMetadataSeries = {
      SeriesInstanceUID: s.seriesInstanceUID,
      SeriesNumber: s.seriesNumber,
      SeriesDescription: s.seriesDescription,
      Modality: s.modality,
      image: image ?? null,
      skippedReason: reason,
      instanceCount: s.instances.length,
      attributes: attributes ?? {},
      attributesError: error,
      instances: s.instances.map((i) => ({ SOPInstanceUID: i.sopInstanceUID, file: i.file })),
    };
    const list = studies.get(s.studyInstanceUID) ?? [];
    list.push(entry);
    studies.set(s.studyInstanceUID, list);
  }
  return {
    dicomFolder,
    studies: [...studies].map(([studyInstanceUID, list]) => ({ StudyInstanceUID: studyInstanceUID, series: list })),
  };
}

/** msg.parser, as clara-dicom-parser sends it: where the files are and what was made; never pixel data. */
export interface ParserSummary {
  dir: string;
  seriesImages: string;
  dicomMetadata: string;
  report: string;
  format: OutputFormat;
  /** The volumes, with just what a flow needs; `file` is absolute here. */
  volumes: Array<Pick<VolumeRecord, 'seriesInstanceUID' | 'stack' | 'file' | 'dims' | 'spacing' | 'description' | 'modality' | 'seriesNumber'>>;
  /** The first 100; `skippedCount` has the total and the report file lists all. */
  skipped: SkipRecord[];
  skippedCount: number;
  warnings: WarningRecord[];
  warningCount: number;
  seconds: number;
}

const MAX_LISTED = 100;

export function parserSummaryOf(result: ParseResult): ParserSummary {
  return {
    dir: result.outDir,
    seriesImages: result.seriesImages,
    dicomMetadata: result.dicomMetadata,
    report: result.report,
    format: result.format,
    volumes: result.volumes.map((v) => ({
      seriesInstanceUID: v.seriesInstanceUID,
      stack: v.stack,
      file: join(result.outDir, v.file),
      dims: v.dims,
      spacing: v.spacing,
      description: v.description,
      modality: v.modality,
      seriesNumber: v.seriesNumber,
    })),
    skipped: result.skipped.slice(0, MAX_LISTED),
    skippedCount: result.skipped.length,
    warnings: result.warnings.slice(0, MAX_LISTED),
    warningCount: result.warnings.length,
    seconds: Number(result.seconds.toFixed(3)),
  };
}

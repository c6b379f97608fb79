/**
 * The AI operator of a study job, as Clara's base inference application: reads the selector's
 * selected-images.json, segments each selected series (or stacks several selections as channels), and
 * writes `segmentation/<SeriesInstanceUID>.nii.gz|.mhd` (uint8 labels on the series' exact grid) and the
 * render publish folder `publish/` (original volume, segmentation, config.meta, config_render.json).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, constants as fsConstants, readFileSync } from 'node:fs';
import { copyFile, link, open, rename, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { writeJsonAtomic } from '../dicom/writer';
import { insideDir, operatorDir } from '../job';
import { SELECTED_IMAGES_FILE, type SelectedImage, type SelectedImagesFile, readDicomMetadata } from '../select/run';
import { readVolumeFileAsync, writeVolumeFile } from '../volume/file';
import { spacingOf } from '../volume/geometry';
import type { Volume } from '../volume/types';
import { type InferenceConfig, resolveSpec } from './config';
import { realValues } from './resample';
import type { InferenceServer } from './server';
import { type SegmentProgress, checkModelContract, segmentVolume } from './segment';

export const SEGMENTATION_DIR = 'segmentation';
export const PUBLISH_DIR = 'publish';
export const INFERENCE_REPORT_FILE = 'inference-report.json';

export type LabelFormat = 'nifti-gz' | 'mhd';
export const LABEL_FORMATS: readonly LabelFormat[] = ['nifti-gz', 'mhd'];

/** A job cannot be inferred as asked (nothing selected, a missing volume, mismatched frames): not a server fault. */
export class InferenceInputError extends Error {}

export interface SegmentedSeries {
  seriesInstanceUID: string;
  seriesDescription?: string;
  /** Every channel's series, reference first. */
  channels: Array<{ selection: string; seriesInstanceUID: string; image: string }>;
  /** Channels from another frame of reference, registered rigidly onto the reference. */
  registrations: ChannelRegistration[];
  /** The uint8 label volume (absolute path). */
  segmentation: string;
  dims: [number, number, number];
  labelCounts: Record<number, number>;
  windows: number;
  modelGrid: { dims: [number, number, number]; spacing: number[] };
  seconds: number;
  modelSeconds: number;
}

export interface JobInferenceResult {
  dir: string;
  publishDir: string;
  report: string;
  model: string;
  version: string;
  server: string;
  series: SegmentedSeries[];
  seconds: number;
}

export interface JobInferenceOptions {
  server: InferenceServer;
  config: InferenceConfig;
  format?: LabelFormat;
  /** selected-images.json; default `<job>/selector/selected-images.json`. */
  selectedImages?: string;
  onProgress?: (p: SegmentProgress & { series: number; seriesTotal: number }) => void;
  signal?: AbortSignal;
}

interface SeriesInput {
  selection: string;
  entry: SelectedImage;
  /** Absolute path of the volume. */
  image: string;
}

function readSelectedImages(file: string): SelectedImagesFile {
  if (!existsSync(file)) throw new InferenceInputError(`no ${SELECTED_IMAGES_FILE} at ${file}: run clara-series-selector on the job first`);
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as SelectedImagesFile;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object of selections');
    return parsed;
  } catch (err) {
    throw new InferenceInputError(`${file} cannot be read: ${(err as Error).message}`);
  }
}

/**
 * The inputs of each segmentation: with no channel names, every series of the first selection on its own;
 * with names, one segmentation whose channels are the first series of each named selection.
 */
function plan(selected: SelectedImagesFile, file: string, channels: string[]): SeriesInput[][] {
  const folder = dirname(file);
  const inputOf = (selection: string, entry: SelectedImage): SeriesInput => {
    if (typeof entry?.image !== 'string' || !entry.image) throw new InferenceInputError(`selection ${selection}: series ${entry?.SeriesInstanceUID ?? '?'} has no image`);
    const image = resolve(folder, entry.image);
    if (!existsSync(image)) throw new InferenceInputError(`selection ${selection}: the volume ${image} of series ${entry.SeriesInstanceUID} does not exist`);
    return { selection, entry, image };
  };
  const names = Object.keys(selected);
  if (channels.length === 0) {
    const first = names.find((n) => Object.keys(selected[n] ?? {}).length > 0);
    if (first === undefined) throw new InferenceInputError(`no series was selected (${names.length ? `selections ${names.join(', ')} are empty` : 'no selections'})`);
    return Object.values(selected[first]).map((entry) => [inputOf(first, entry)]);
  }
  return [
    channels.map((name) => {
      const series = selected[name] ? Object.values(selected[name]) : [];
      if (series.length === 0) {
        throw new InferenceInputError(`channel ${name}: ${selected[name] ? 'the selection selected no series' : `there is no selection named ${name} (there are ${names.join(', ') || 'none'})`}`);
      }
      return inputOf(name, series[0]);
    }),
  ];
}

async function readVolume(path: string): Promise<Volume> {
  try {
    return await readVolumeFileAsync(path);
  } catch (err) {
    throw new InferenceInputError(`cannot read the volume ${path}: ${(err as Error).message}`);
  }
}

/** Frame of Reference UID per series, from the parser's dicom-metadata.json (attributes of each series' first instance). */
function framesOfReference(parserDir: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const study of readDicomMetadata(parserDir).studies) {
    for (const series of study.series) {
      const value = (series.attributes?.['00200052'] as { Value?: unknown[] } | undefined)?.Value?.[0];
      out.set(series.SeriesInstanceUID, typeof value === 'string' ? value : undefined);
    }
  }
  return out;
}

/** A channel moved onto the reference by rigid registration, for the report. */
export interface ChannelRegistration {
  selection: string;
  seriesInstanceUID: string;
  fixedToMoving: number[][];
  metric?: number;
  seconds: number;
}

/**
 * Channels resampled onto one grid through world coordinates only line up within one frame of reference.
 * A channel from another frame fails the job, or, with rigid registration, is registered to the reference
 * (elastix) and handed on already resampled onto the reference grid.
 */
async function alignChannels(
  inputs: SeriesInput[],
  volumes: Volume[],
  selectedFile: string,
  registration: 'none' | 'rigid',
  signal?: AbortSignal,
): Promise<{ volumes: Volume[]; registrations: ChannelRegistration[] }> {
  if (inputs.length < 2) return { volumes, registrations: [] };
  const parserDir = dirname(resolve(dirname(selectedFile), inputs[0].entry.image));
  const frames = framesOfReference(parserDir);
  const reference = frames.get(inputs[0].entry.SeriesInstanceUID);
  const aligned = [volumes[0]];
  const registrations: ChannelRegistration[] = [];
  for (const [c, other] of inputs.entries()) {
    if (c === 0) continue;
    const frame = frames.get(other.entry.SeriesInstanceUID);
    if (reference && frame && frame === reference) {
      aligned.push(volumes[c]);
      continue;
    }
    if (registration !== 'rigid') {
      throw new InferenceInputError(
        `channel ${other.selection} (series ${other.entry.SeriesInstanceUID}) is not in the frame of reference of ${inputs[0].selection}` +
          ` (${frame ?? 'none'} vs ${reference ?? 'none'}): its voxels cannot be placed by world coordinates; choose rigid registration to align it`,
      );
    }
    // Loaded only here: elastix's WebAssembly is large, and most flows never register.
    const { registerRigid, resampleRegistered } = await import('./register');
    const result = await registerRigid(volumes[0], volumes[c], { signal });
    const grid = { dims: volumes[0].dims, affine: volumes[0].affine };
    aligned.push({ dims: grid.dims, affine: grid.affine, type: 'float32', data: resampleRegistered(volumes[c], grid, result) });
    registrations.push({ selection: other.selection, seriesInstanceUID: other.entry.SeriesInstanceUID, fixedToMoving: result.fixedToMoving, metric: result.metric, seconds: result.seconds });
  }
  return { volumes: aligned, registrations };
}

/**
 * Puts `from`'s bytes at `to` under a temporary name, then renames it into place: a hard link, as every file
 * here is written once (to a temporary name, renamed into place) and never changed after, so the two names
 * can share it; a copy (a reflink where the file system has them) where links cannot be made.
 */
async function publishFileAtomic(from: string, to: string): Promise<void> {
  const temp = `${to}.${randomBytes(6).toString('hex')}.part`;
  try {
    await link(from, temp).catch(() => copyFile(from, temp, fsConstants.COPYFILE_FICLONE));
    await rename(temp, to);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}

/** True when `path` is a gzip-compressed NIfTI by name and by content (the parser's .nii.gz). */
async function isNiftiGz(path: string): Promise<boolean> {
  if (!path.toLowerCase().endsWith('.nii.gz')) return false;
  const file = await open(path, 'r');
  try {
    const { bytesRead, buffer } = await file.read(Buffer.alloc(2), 0, 2, 0);
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await file.close();
  }
}

/**
 * The density volume of the publish folder: the series' file itself when it is already what the folder
 * takes (a .nii.gz for nifti-gz), else `volume` (read from it) written in the folder's format. MetaImage
 * has no rescale fields, so a rescaled series goes there as its real values (float32).
 */
async function publishImage(sourceFile: string, volume: Volume, to: string, format: LabelFormat): Promise<void> {
  if (format === 'nifti-gz' && (await isNiftiGz(sourceFile))) return publishFileAtomic(sourceFile, to);
  const rescaled = (volume.slope ?? 1) !== 1 || (volume.intercept ?? 0) !== 0;
  if (format === 'mhd' && rescaled) return writeVolumeFile(to, { dims: volume.dims, affine: volume.affine, type: 'float32', data: realValues(volume) });
  return writeVolumeFile(to, volume);
}

/** Segments a job's selected series; see the module comment for what it writes. */
export async function inferJob(jobDir: string, options: JobInferenceOptions): Promise<JobInferenceResult> {
  const started = process.hrtime.bigint();
  const format = options.format ?? 'nifti-gz';
  const selectedFile = options.selectedImages ?? join(jobDir, 'selector', SELECTED_IMAGES_FILE);
  const segmentations = plan(readSelectedImages(selectedFile), selectedFile, options.config.channels);

  const { config, server } = options;
  const model = await server.model(config.model, config.version || undefined);
  const spec = resolveSpec(config, model.metadata);
  const channelCount = segmentations[0].length;
  checkModelContract(model.metadata, spec, channelCount);

  const outDir = operatorDir(jobDir, SEGMENTATION_DIR);
  const publishDir = operatorDir(jobDir, PUBLISH_DIR);
  const extension = format === 'mhd' ? '.mhd' : '.nii.gz';
  const series: SegmentedSeries[] = [];
  for (const [index, inputs] of segmentations.entries()) {
    const reference = inputs[0].entry;
    const { volumes, registrations } = await alignChannels(inputs, await Promise.all(inputs.map((input) => readVolume(input.image))), selectedFile, config.registration, options.signal);
    const result = await segmentVolume(volumes, model.run, spec, {
      signal: options.signal,
      onProgress: (p) => options.onProgress?.({ ...p, series: index + 1, seriesTotal: segmentations.length }),
    });
    // The Series Instance UID names files only after lib/job's check that it stays inside the folder.
    const name = reference.SeriesInstanceUID;
    const segmentation = insideDir(outDir, `${name}${extension}`);
    const publishedMask = insideDir(publishDir, `${name}.output${extension}`);
    await Promise.all([
      // A .nii.gz names no other file, so the publish copy of the mask can be the segmentation's bytes; a
      // MetaImage header names its .raw, so the publish folder gets one of its own.
      format === 'nifti-gz'
        ? writeVolumeFile(segmentation, result.labels).then(() => publishFileAtomic(segmentation, publishedMask))
        : Promise.all([writeVolumeFile(segmentation, result.labels), writeVolumeFile(publishedMask, result.labels)]),
      publishImage(inputs[0].image, volumes[0], insideDir(publishDir, `${name}${extension}`), format),
    ]);
    series.push({
      seriesInstanceUID: name,
      seriesDescription: reference.SeriesDescription,
      channels: inputs.map((i) => ({ selection: i.selection, seriesInstanceUID: i.entry.SeriesInstanceUID, image: i.image })),
      registrations,
      segmentation,
      dims: result.labels.dims,
      labelCounts: result.labelCounts,
      windows: result.windows,
      modelGrid: { dims: result.modelGrid.dims, spacing: spacingOf(result.modelGrid.affine) },
      seconds: result.seconds,
      modelSeconds: result.modelSeconds,
    });
  }

  // Clara's render publish layout: config.meta names the density volume, the masks and the render settings.
  const first = series[0];
  const labels = [...new Set(series.flatMap((s) => Object.keys(s.labelCounts).map(Number)))].sort((a, b) => a - b);
  writeJsonAtomic(join(publishDir, 'config.meta'), {
    name: model.metadata.name,
    density: `${first.seriesInstanceUID}${extension}`,
    settings: 'config_render.json',
    seg_masks: series.map((s) => `${s.seriesInstanceUID}.output${extension}`),
  });
  writeJsonAtomic(join(publishDir, 'config_render.json'), { model: model.metadata.name, labels: labels.map((value) => ({ value })) });

  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const report = join(outDir, INFERENCE_REPORT_FILE);
  const result: JobInferenceResult = {
    dir: outDir,
    publishDir,
    report,
    model: model.metadata.name,
    version: config.version,
    server: server.description,
    series,
    seconds,
  };
  writeJsonAtomic(report, { ...result, preset: config.preset, spec, at: new Date().toISOString() });
  return result;
}

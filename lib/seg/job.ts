/**
 * The SEG operator of a study job, as Clara's DICOM SEG writer: for each segmentation of the job (from
 * clara-triton-infer's msg.inference, else `segmentation/<SeriesInstanceUID>.nii.gz|.mhd` of the selected
 * series) it finds the source instances through the parser's dicom-metadata.json and writes one DICOM
 * Segmentation per series into `seg/`. Every SEG is built before the first is written, so a job that fails
 * leaves no SEG behind.
 */
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isValidUid } from '../dicom/uids';
import { encodePart10, writeFileAtomic } from '../dicom/writer';
import { INFERENCE_REPORT_FILE, SEGMENTATION_DIR } from '../infer/job';
import { insideDir, operatorDir } from '../job';
import { SELECTED_IMAGES_FILE, type SelectedImagesFile, readDicomMetadata } from '../select/run';
import { readVolumeFileAsync } from '../volume/file';
import { readJobSourceSeries } from '../volume/source';
import type { Volume } from '../volume/types';
import { type BuiltSegmentation, type SegmentDefinition, type SegmentSummary, type SegmentationOptions, SegmentationInputError, buildSegmentation } from './segmentation';

export const SEG_DIR = 'seg';

/** What this operator reads of msg.inference (clara-triton-infer's output). */
export interface InferenceInput {
  model?: string;
  version?: string;
  series?: Array<{ seriesInstanceUID?: string; segmentation?: string }>;
}

export interface JobSegmentationOptions extends Omit<SegmentationOptions, 'outDir' | 'algorithm'> {
  segments: SegmentDefinition[];
  /** Default: msg.inference's model and version, else those in segmentation/inference-report.json. */
  algorithm?: { name: string; version?: string };
  inference?: InferenceInput;
  /** selected-images.json for the fallback; default `<job>/selector/selected-images.json`. */
  selectedImages?: string;
}

export interface JobSegmentationFile {
  file: string;
  sopInstanceUID: string;
  seriesInstanceUID: string;
  sourceSeriesInstanceUID: string;
  segmentationType: 'BINARY' | 'FRACTIONAL';
  frames: number;
  segments: SegmentSummary[];
}

export interface JobSegmentationResult {
  dir: string;
  files: JobSegmentationFile[];
  /** Series whose mask was empty: no SEG for them. */
  empty: Array<{ sourceSeriesInstanceUID: string; segmentation: string }>;
  algorithm: { name: string; version: string };
  seconds: number;
}

interface Planned {
  seriesInstanceUID: string;
  segmentation: string;
}

async function readVolume(path: string): Promise<Volume> {
  if (!existsSync(path)) throw new SegmentationInputError(`the segmentation ${path} does not exist`);
  try {
    return await readVolumeFileAsync(path);
  } catch (err) {
    throw new SegmentationInputError(`cannot read the segmentation ${path}: ${(err as Error).message}`);
  }
}

/** The job's segmentations: msg.inference's list, else the label volumes of the selected series. */
function plan(jobDir: string, options: JobSegmentationOptions): Planned[] {
  const fromInference = options.inference?.series;
  if (Array.isArray(fromInference) && fromInference.length > 0) {
    return fromInference.map((s, i) => {
      if (!s || typeof s.seriesInstanceUID !== 'string' || typeof s.segmentation !== 'string') {
        throw new SegmentationInputError(`msg.inference.series[${i}] needs seriesInstanceUID and segmentation`);
      }
      // A path from a message is trusted only inside the job folder.
      return { seriesInstanceUID: s.seriesInstanceUID, segmentation: insideDir(jobDir, s.segmentation) };
    });
  }
  const folder = join(jobDir, SEGMENTATION_DIR);
  const selectedFile = options.selectedImages ?? join(jobDir, 'selector', SELECTED_IMAGES_FILE);
  const candidates = existsSync(folder) ? readdirSync(folder).filter((f) => /\.(nii\.gz|nii|mhd)$/.test(f)) : [];
  const byUid = new Map<string, string>();
  for (const name of candidates) {
    const uid = name.replace(/\.(nii\.gz|nii|mhd)$/, '');
    if (isValidUid(uid) && !byUid.has(uid)) byUid.set(uid, join(folder, name));
  }
  let uids = [...byUid.keys()].sort();
  if (existsSync(selectedFile)) {
    let selected: SelectedImagesFile;
    try {
      selected = JSON.parse(readFileSync(selectedFile, 'utf8')) as SelectedImagesFile;
    } catch (err) {
      throw new SegmentationInputError(`${selectedFile} cannot be read: ${(err as Error).message}`);
    }
    const wanted = new Set(Object.values(selected ?? {}).flatMap((series) => Object.keys(series ?? {})));
    uids = uids.filter((uid) => wanted.has(uid));
  }
  if (uids.length === 0) {
    throw new SegmentationInputError(`no segmentation to write: no msg.inference, and ${folder} has no <SeriesInstanceUID>.nii.gz or .mhd${existsSync(selectedFile) ? ' of a selected series' : ''} (run clara-triton-infer first)`);
  }
  return uids.map((uid) => ({ seriesInstanceUID: uid, segmentation: byUid.get(uid)! }));
}

function algorithmOf(jobDir: string, options: JobSegmentationOptions): { name: string; version: string } {
  if (options.algorithm?.name) return { name: options.algorithm.name, version: options.algorithm.version ?? '' };
  if (options.inference?.model) return { name: options.inference.model, version: options.inference.version ?? '' };
  const report = join(jobDir, SEGMENTATION_DIR, INFERENCE_REPORT_FILE);
  if (existsSync(report)) {
    try {
      const parsed = JSON.parse(readFileSync(report, 'utf8')) as { model?: unknown; version?: unknown };
      if (typeof parsed.model === 'string' && parsed.model) return { name: parsed.model, version: typeof parsed.version === 'string' ? parsed.version : '' };
    } catch {
      // an unreadable report names no model; the error below says what to set
    }
  }
  throw new SegmentationInputError('no algorithm name: set one, or run clara-triton-infer first (its msg.inference.model names the model)');
}

/** Writes the job's SEGs into `seg/` (emptied first, so a rerun leaves nothing stale). */
export async function writeJobSegmentations(jobDir: string, options: JobSegmentationOptions): Promise<JobSegmentationResult> {
  const started = process.hrtime.bigint();
  const planned = plan(jobDir, options);
  const algorithm = algorithmOf(jobDir, options);
  const parserDir = join(jobDir, 'parser');
  const metadata = readDicomMetadata(parserDir);
  const outDir = join(jobDir, SEG_DIR);
  const { segments, inference: _inference, selectedImages: _selected, algorithm: _algorithm, ...segmentationOptions } = options;
  const built: Array<{ planned: Planned; seg: BuiltSegmentation }> = [];
  const empty: JobSegmentationResult['empty'] = [];
  for (const item of planned) {
    const source = readJobSourceSeries(parserDir, metadata, item.seriesInstanceUID);
    const result = buildSegmentation({
      mask: await readVolume(item.segmentation),
      source,
      segments,
      options: { ...segmentationOptions, outDir, algorithm: { name: algorithm.name, version: algorithm.version || undefined } },
    });
    if ('empty' in result) empty.push({ sourceSeriesInstanceUID: item.seriesInstanceUID, segmentation: item.segmentation });
    else built.push({ planned: item, seg: result });
  }
  rmSync(outDir, { recursive: true, force: true });
  operatorDir(jobDir, SEG_DIR);
  const files: JobSegmentationFile[] = built.map(({ planned: item, seg }) => {
    const file = insideDir(outDir, `${seg.sopInstanceUID}.dcm`);
    writeFileAtomic(file, encodePart10(seg.dataset));
    return {
      file,
      sopInstanceUID: seg.sopInstanceUID,
      seriesInstanceUID: seg.seriesInstanceUID,
      sourceSeriesInstanceUID: item.seriesInstanceUID,
      segmentationType: seg.segmentationType,
      frames: seg.frames,
      segments: seg.segments,
    };
  });
  return { dir: outDir, files, empty, algorithm, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/**
 * The RT Structure Set operator of a study job: for each segmentation (Clara's /input), the source series'
 * instances through the parser's dicom-metadata.json (Clara's /dcm), one structure set each into the job's
 * `rtstruct/` folder.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isValidUid } from '../dicom/uids';
import { writeDicomFile } from '../dicom/writer';
import { instanceFileName, operatorDir } from '../job';
import { SelectionInputError, readDicomMetadata } from '../select/run';
import { SourceSeriesError, readJobSourceSeries } from '../volume/source';
import { readMaskVolume } from './mask';
import { type BuiltStructureSet, type StructureSetOptions, RtStructInputError, buildStructureSet } from './structure-set';

export const RTSTRUCT_DIR = 'rtstruct';
/** Where clara-triton-infer writes its label volumes (lib/infer/job SEGMENTATION_DIR). */
const SEGMENTATION_FOLDER = 'segmentation';
const PARSER_FOLDER = 'parser';

/** One segmentation to contour: its series and its label volume. */
export interface SegmentationInput {
  seriesInstanceUID: string;
  segmentation: string;
}

/** The segmentations msg.inference lists (clara-triton-infer), checked; undefined when it lists none. */
export function segmentationsOfInference(inference: unknown): SegmentationInput[] | undefined {
  const series = (inference as { series?: unknown } | undefined)?.series;
  if (!Array.isArray(series) || series.length === 0) return undefined;
  return series.map((s, index) => {
    const item = s as { seriesInstanceUID?: unknown; segmentation?: unknown };
    if (typeof item?.seriesInstanceUID !== 'string' || typeof item.segmentation !== 'string') {
      throw new RtStructInputError(`msg.inference.series[${index}] needs seriesInstanceUID and segmentation (from clara-triton-infer)`);
    }
    return { seriesInstanceUID: item.seriesInstanceUID, segmentation: item.segmentation };
  });
}

/** The job's segmentation/<SeriesInstanceUID>.nii.gz (or .nii, .mhd) files, when no msg.inference says which. */
export function segmentationsInJob(jobDir: string): SegmentationInput[] {
  const dir = join(jobDir, SEGMENTATION_FOLDER);
  if (!existsSync(dir)) throw new RtStructInputError(`the job has no ${SEGMENTATION_FOLDER}/ folder: run clara-triton-infer on it first`);
  const found: SegmentationInput[] = [];
  for (const name of readdirSync(dir).sort()) {
    const m = /^(.+?)\.(nii\.gz|nii|mhd)$/i.exec(name);
    if (!m || !isValidUid(m[1])) continue;
    found.push({ seriesInstanceUID: m[1], segmentation: join(dir, name) });
  }
  if (found.length === 0) throw new RtStructInputError(`${dir} holds no <SeriesInstanceUID>.nii.gz or .mhd segmentation`);
  return found;
}

export interface JobRtStructOptions extends StructureSetOptions {
  /** msg.inference from clara-triton-infer: which segmentations to contour. Default: every one in segmentation/. */
  inference?: unknown;
  /** The parser's output folder (dicom-metadata.json); default `<job>/parser`. */
  parserDir?: string;
}

export interface JobRtStructFile {
  file: string;
  transferSyntaxUID: string;
  sopInstanceUID: string;
  seriesInstanceUID: string;
  sourceSeriesInstanceUID: string;
  rois: Array<{ number: number; name: string; contours: number; points: number }>;
}

export interface JobRtStructResult {
  dir: string;
  files: JobRtStructFile[];
  /** Segmentations without a labelled voxel: nothing was written for them. */
  empty: Array<{ sourceSeriesInstanceUID: string; segmentation: string }>;
  seconds: number;
}

/**
 * Writes one structure set per segmentation into `<job>/rtstruct/`. Every structure set is built before any
 * file is written, so a bad input (grid, values, a missing instance) writes nothing; files of an earlier run
 * are removed only then, so a re-run leaves nothing stale.
 */
export async function writeJobStructureSets(jobDir: string, options: JobRtStructOptions): Promise<JobRtStructResult> {
  const started = process.hrtime.bigint();
  const inputs = segmentationsOfInference(options.inference) ?? segmentationsInJob(jobDir);
  const parserDir = options.parserDir ? resolve(options.parserDir) : join(jobDir, PARSER_FOLDER);
  let metadata;
  try {
    metadata = readDicomMetadata(parserDir);
  } catch (err) {
    if (err instanceof SelectionInputError) throw new RtStructInputError(`${err.message}: run clara-dicom-parser on the job first`);
    throw err;
  }
  const built: Array<{ input: SegmentationInput; set: BuiltStructureSet }> = [];
  const empty: JobRtStructResult['empty'] = [];
  for (const input of inputs) {
    const segmentation = resolve(jobDir, input.segmentation);
    let set: BuiltStructureSet;
    try {
      const source = readJobSourceSeries(parserDir, metadata, input.seriesInstanceUID);
      set = buildStructureSet(await readMaskVolume(segmentation), source, options);
    } catch (err) {
      const message = err instanceof SourceSeriesError || err instanceof RtStructInputError ? err.message : (err as Error).message;
      throw new RtStructInputError(inputs.length > 1 ? `series ${input.seriesInstanceUID}: ${message}` : message);
    }
    if (set.rois.every((r) => r.voxels === 0)) empty.push({ sourceSeriesInstanceUID: input.seriesInstanceUID, segmentation });
    else built.push({ input: { ...input, segmentation }, set });
  }
  const dir = operatorDir(jobDir, RTSTRUCT_DIR);
  for (const name of readdirSync(dir)) if (name.endsWith('.dcm')) rmSync(join(dir, name), { force: true });
  const files = built.map(({ set }): JobRtStructFile => {
    const file = join(dir, instanceFileName(set.sopInstanceUID));
    writeDicomFile(file, set.dataset, { implicitVR: set.implicitVR });
    return {
      file,
      transferSyntaxUID: set.transferSyntaxUID,
      sopInstanceUID: set.sopInstanceUID,
      seriesInstanceUID: set.seriesInstanceUID,
      sourceSeriesInstanceUID: set.sourceSeriesInstanceUID,
      rois: set.rois.map(({ number, name, contours, points }) => ({ number, name, contours, points })),
    };
  });
  return { dir, files, empty, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

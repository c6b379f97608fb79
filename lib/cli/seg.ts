import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { SegmentationInputError, parseSegmentDefinitions, writeSegmentation } from '../seg';
import { readVolumeFile } from '../volume/file';
import { SourceSeriesError, readSourceSeries } from '../volume/source';
import type { Volume } from '../volume/types';
import { InputError, UsageError, intOption, parseArgs, rejectUnknownOptions } from './args';

const FLAGS = ['fractional', 'keep-empty-frames', 'json'];
const OPTIONS = [
  'labels', 'codes', 'probabilities', 'series', 'uid-root', 'series-description', 'series-number', 'instance-number', 'content-label', 'content-description',
  'content-creator', 'algorithm', 'algorithm-version', ...FLAGS,
];

export const USAGE = 'seg <mask> <source-series-dir> <out-dir> [--labels JSON] [--codes JSON] [--fractional] [--uid-root R] [--series-description T]';
export const SUMMARY = 'write a DICOM Segmentation (SEG) of a label volume on its source series';

function readVolume(path: string): Volume {
  if (!existsSync(path)) throw new InputError(`${path} does not exist`);
  try {
    return readVolumeFile(path);
  } catch (err) {
    throw new InputError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/** --labels and --codes take the JSON itself, or a file holding it. */
function jsonText(args: ReturnType<typeof parseArgs>, name: string): string | undefined {
  const value = args.options.get(name);
  if (value === undefined) return undefined;
  if (value === true) throw new UsageError(`--${name} needs a value`);
  const trimmed = value.trim();
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) return value;
  if (!existsSync(value)) throw new UsageError(`--${name} must be JSON or a file holding it; ${value} is neither`);
  return readFileSync(value, 'utf8');
}

function textOption(args: ReturnType<typeof parseArgs>, name: string): string | undefined {
  const value = args.options.get(name);
  if (value === true) throw new UsageError(`--${name} needs a value`);
  return value;
}

/**
 * clara-dicom seg <mask> <source-series-dir> <out-dir> [options]
 * Writes `<out-dir>/<SOPInstanceUID>.dcm`, a DICOM Segmentation of the label volume (NIfTI or MetaImage,
 * on the grid of the series in <source-series-dir>); an empty mask writes nothing and says so.
 */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, FLAGS);
  rejectUnknownOptions(args, OPTIONS);
  if (args.positional.length !== 3) throw new UsageError(`expected a mask, a source series folder and an output folder, got ${args.positional.length} argument(s)`);
  const [maskPath, sourceDir, outDir] = args.positional.map((p) => resolve(p));
  let segments;
  try {
    segments = parseSegmentDefinitions(jsonText(args, 'labels'), jsonText(args, 'codes'));
  } catch (err) {
    if (err instanceof SegmentationInputError) throw new UsageError(err.message);
    throw err;
  }
  const probabilitiesOption = textOption(args, 'probabilities');
  if (probabilitiesOption !== undefined && !args.options.has('fractional')) throw new UsageError('--probabilities needs --fractional');
  const seriesNumber = args.options.has('series-number') ? intOption(args, 'series-number', 0, 0, 2147483647) : undefined;
  const instanceNumber = args.options.has('instance-number') ? intOption(args, 'instance-number', 1, 0, 2147483647) : undefined;

  if (!existsSync(sourceDir) || !statSync(sourceDir).isDirectory()) throw new InputError(`${sourceDir} is not a folder`);
  const mask = readVolume(maskPath);
  const probabilities = probabilitiesOption?.split(',').map((p) => readVolume(resolve(p.trim())));
  try {
    const source = readSourceSeries(sourceDir, textOption(args, 'series'));
    const result = writeSegmentation({
      mask,
      source,
      segments,
      probabilities,
      options: {
        outDir,
        uidRoot: textOption(args, 'uid-root'),
        algorithm: { name: textOption(args, 'algorithm') ?? 'unspecified', version: textOption(args, 'algorithm-version') },
        fractional: args.options.has('fractional'),
        omitEmptyFrames: !args.options.has('keep-empty-frames'),
        seriesDescription: textOption(args, 'series-description'),
        seriesNumber,
        instanceNumber,
        contentLabel: textOption(args, 'content-label'),
        contentDescription: textOption(args, 'content-description'),
        contentCreatorName: textOption(args, 'content-creator'),
      },
    });
    if (args.options.has('json')) {
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    } else if (result.empty) {
      process.stdout.write(`no findings: the mask has no voxel of ${segments.map((s) => JSON.stringify(s.label)).join(', ')}; nothing written\n`);
    } else {
      const perSegment = result.segments.map((s) => `${s.number} ${JSON.stringify(s.label)}: ${s.frames} frame(s), ${s.voxels} voxel(s)`).join('; ');
      process.stdout.write(`${result.file}  SEG ${result.segmentationType}, ${result.frames} frame(s) of ${source.rows}×${source.columns}, series ${result.seriesInstanceUID}\n  ${perSegment}\n`);
    }
    return 0;
  } catch (err) {
    if (err instanceof SegmentationInputError || err instanceof SourceSeriesError) throw new InputError(err.message);
    throw err;
  }
}

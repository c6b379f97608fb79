import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { generateUid } from '../dicom/uids';
import { LabelConfigError, parseLabels } from '../rtstruct/labels';
import { RtStructInputError, writeStructureSet } from '../rtstruct/structure-set';
import { readMaskVolume } from '../rtstruct/mask';
import { SourceSeriesError, readSourceSeries } from '../volume/source';
import { InputError, type ParsedArgs, UsageError, parseArgs, rejectUnknownOptions } from './args';

const OPTIONS = ['labels', 'styles', 'series', 'uid-root', 'tolerance', 'label', 'description', 'series-number', 'algorithm', 'json'];

/** A JSON option given as the JSON itself, or as the path of a file holding it. */
function jsonText(args: ParsedArgs, name: string): string | undefined {
  const value = args.options.get(name);
  if (value === undefined) return undefined;
  if (value === true) throw new UsageError(`--${name} needs a value`);
  const text = value.trim();
  if (text.startsWith('[') || text.startsWith('{')) return text;
  if (existsSync(value) && statSync(value).isFile()) return readFileSync(value, 'utf8');
  throw new UsageError(`--${name} takes JSON (like ${name === 'labels' ? '\'["Tumor-seg"]\'' : '\'[{"color": [255, 0, 0], "type": "GTV"}]\''}) or a file holding it; ${value} is neither`);
}

function textOption(args: ParsedArgs, name: string): string | undefined {
  const value = args.options.get(name);
  if (value === true) throw new UsageError(`--${name} needs a value`);
  return value;
}

/**
 * clara-dicom rtstruct <mask> <source-series-dir> <out-dir> [--labels JSON] [--styles JSON] [--series UID]
 *   [--uid-root R] [--tolerance PX] [--label TEXT] [--description TEXT] [--series-number N] [--algorithm TEXT] [--json]
 * Writes the RT Structure Set of a label volume (NIfTI or MetaImage on the source series' grid) into
 * out-dir as <SOPInstanceUID>.dcm. An empty mask writes nothing (exit 0, and it says so).
 */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['json']);
  rejectUnknownOptions(args, OPTIONS);
  if (args.positional.length !== 3) throw new UsageError(`expected a mask, the source series folder and an output folder, got ${args.positional.length} argument(s)`);
  const [maskPath, sourceDir, outDir] = args.positional.map((p) => resolve(p));
  let labels;
  try {
    labels = parseLabels(jsonText(args, 'labels') ?? '', jsonText(args, 'styles'));
  } catch (err) {
    if (err instanceof LabelConfigError) throw new UsageError(err.message);
    throw err;
  }
  const toleranceText = textOption(args, 'tolerance');
  const tolerance = toleranceText === undefined ? 0 : Number(toleranceText);
  if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > 0.25) throw new UsageError('--tolerance must be a number of pixels from 0 to 0.25');
  const seriesNumberText = textOption(args, 'series-number');
  const seriesNumber = seriesNumberText === undefined ? undefined : Number(seriesNumberText);
  if (seriesNumber !== undefined && (!Number.isInteger(seriesNumber) || Math.abs(seriesNumber) > 2 ** 31 - 1)) throw new UsageError('--series-number must be an integer');
  const uidRoot = textOption(args, 'uid-root');
  try {
    if (uidRoot !== undefined) generateUid(uidRoot);
  } catch (err) {
    throw new UsageError(`--uid-root: ${(err as Error).message}`);
  }

  if (!existsSync(maskPath)) throw new InputError(`${maskPath} does not exist`);
  if (!existsSync(sourceDir) || !statSync(sourceDir).isDirectory()) throw new InputError(`${sourceDir} is not a folder of the source series' DICOM files`);
  const started = process.hrtime.bigint();
  let result;
  try {
    const mask = await readMaskVolume(maskPath);
    const source = readSourceSeries(sourceDir, textOption(args, 'series'));
    mkdirSync(outDir, { recursive: true });
    result = writeStructureSet(mask, source, outDir, {
      labels,
      tolerance,
      uidRoot,
      seriesNumber,
      structureSetLabel: textOption(args, 'label'),
      seriesDescription: textOption(args, 'description'),
      algorithm: textOption(args, 'algorithm'),
    });
  } catch (err) {
    if (err instanceof RtStructInputError || err instanceof SourceSeriesError) throw new InputError(err.message);
    throw err;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (args.options.has('json')) {
    process.stdout.write(JSON.stringify({ ...result, seconds }, null, 2) + '\n');
    return 0;
  }
  if (!result.written) {
    process.stdout.write(`${result.reason} (series ${result.sourceSeriesInstanceUID})\n`);
    return 0;
  }
  const lines = [`${result.file}  RTSTRUCT of series ${result.sourceSeriesInstanceUID} in ${seconds.toFixed(2)} s`];
  for (const roi of result.rois) {
    lines.push(`  ROI ${roi.number} ${roi.name} (${roi.interpretedType || 'no type'}): ${roi.contours} contour(s) on ${roi.slices} slice(s), ${roi.points} points${roi.holes ? `, ${roi.holes} hole(s)` : ''}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

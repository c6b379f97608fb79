import { resolve } from 'node:path';
import { OUTPUT_FORMATS, ParseInputError, SPACING_POLICIES, parseStudy } from '../volume/parse';
import { InputError, UsageError, parseArgs, rejectUnknownOptions, stringOption } from './args';

/** clara-dicom parse <dicom-dir> <out-dir> [--format nifti|nifti-gz|mhd] [--spacing warn|reject] */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  rejectUnknownOptions(args, ['format', 'spacing']);
  if (args.positional.length !== 2) throw new UsageError(`expected a DICOM folder and an output folder, got ${args.positional.length} argument(s)`);
  if (args.positional.some((p) => p.trim() === '')) throw new UsageError('a folder argument is an empty string');
  const format = stringOption(args, 'format', OUTPUT_FORMATS, 'nifti-gz');
  const spacingPolicy = stringOption(args, 'spacing', SPACING_POLICIES, 'warn');
  const [inputDir, outDir] = args.positional.map((p) => resolve(p));

  let result;
  try {
    result = await parseStudy(inputDir, outDir, { format, spacingPolicy });
  } catch (err) {
    if (err instanceof ParseInputError) throw new InputError(err.message);
    throw err;
  }
  if (result.volumes.length === 0) {
    const why = result.skipped.length ? `; first reason: ${result.skipped[0].file ?? result.skipped[0].seriesInstanceUID ?? ''} ${result.skipped[0].reason}` : '';
    throw new InputError(`no image series in ${result.inputDir} (${result.files} file(s))${why}`);
  }
  const out: string[] = [];
  for (const v of result.volumes) {
    const dims = v.dims.join('×');
    const spacing = v.spacing.map((s) => s.toFixed(3)).join('×');
    out.push(`${v.file}  ${dims}  ${spacing} mm  ${v.description}`);
  }
  const skippedSeries = result.skipped.filter((s) => s.kind === 'series' || s.kind === 'stack').length;
  const skippedOther = result.skipped.length - skippedSeries;
  out.push(
    `${result.volumes.length} volume(s) from ${result.series} series, ${result.files} file(s) in ${result.seconds.toFixed(2)} s; ` +
      `${skippedSeries} series/stack(s) and ${skippedOther} file(s)/instance(s) skipped, ${result.warnings.length} warning(s); report: ${result.report}`,
  );
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PHANTOM_DEFAULTS, PHANTOM_LIMITS, writePhantomStudy } from '../phantom';
import { InputError, UsageError, intOption, parseArgs, rejectUnknownOptions } from './args';

/** clara-dicom phantom <out-dir> [--size N] [--slices N] [--seed N] */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  rejectUnknownOptions(args, ['size', 'slices', 'seed']);
  if (args.positional.length !== 1) throw new UsageError(args.positional.length === 0 ? 'the output folder is missing' : 'expected one output folder');
  if (args.positional[0].trim() === '') throw new UsageError('the output folder is an empty string');
  const size = intOption(args, 'size', PHANTOM_DEFAULTS.size, ...PHANTOM_LIMITS.size);
  const slices = intOption(args, 'slices', PHANTOM_DEFAULTS.slices, ...PHANTOM_LIMITS.slices);
  const seed = intOption(args, 'seed', PHANTOM_DEFAULTS.seed, 0, 2 ** 31 - 1);
  const outDir = resolve(args.positional[0]);
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (err) {
    throw new InputError(`cannot create the output folder ${outDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }

  const started = process.hrtime.bigint();
  const study = writePhantomStudy(outDir, { size, slices, seed });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;

  const total = study.series.reduce((n, s) => n + s.instanceCount, 0);
  const lines = [`phantom study (seed ${seed}, ${size}×${size}×${slices}) written to ${outDir} in ${seconds.toFixed(1)} s`];
  lines.push(`  study ${study.studyInstanceUID}  "${study.studyDescription}"  ${study.series.length} series, ${total} instances`);
  for (const s of study.series) {
    const mark = s.isTarget ? '  <- target' : '';
    lines.push(`  #${String(s.seriesNumber).padEnd(4)} ${s.description.padEnd(18)} ${String(s.instanceCount).padStart(4)} × ${s.rows}×${s.columns}  ${s.orientationKind.padEnd(11)} ${s.dir}${mark}`);
  }
  const c = study.tumor.centerLps.map((v) => v.toFixed(1)).join(', ');
  lines.push(`  target series ${study.targetSeriesInstanceUID}`);
  lines.push(`  tumor core: centre (${c}) mm LPS, radius ${study.tumor.radiusMm} mm`);
  lines.push(`  ground-truth mask: ${join(outDir, study.maskPath)}`);
  lines.push(`  manifest: ${join(outDir, 'phantom.json')}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

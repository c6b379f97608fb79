import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { RulesError, compileRules, decodeRulesText, readRulesFile } from '../select/rules';
import { SelectionInputError, runSelection } from '../select/run';
import { InputError, UsageError, parseArgs, rejectUnknownOptions } from './args';

/** --rules takes a file, or the rules themselves: JSON text or Base64 (NVIDIA_CLARA_SELECTION_RULES_BASE64). */
function rulesDocument(value: string): unknown {
  const looksLikeText = value.trim().startsWith('{') || /^[A-Za-z0-9+/=_-]{16,}$/.test(value.trim());
  if (!looksLikeText || existsSync(value)) return readRulesFile(value);
  return decodeRulesText(value, 'auto');
}

/**
 * clara-dicom select [--rules <file|json|base64>] [--out DIR] [--all-matched] [--sort-by-instance-count] <parsed-dir>
 * Exit 0 when every selection selected a series, 3 when one selected nothing (the report says why).
 */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['all-matched', 'sort-by-instance-count', 'json']);
  rejectUnknownOptions(args, ['rules', 'out', 'all-matched', 'sort-by-instance-count', 'json']);
  if (args.positional.length !== 1 || args.positional[0].trim() === '') throw new UsageError('expected one parser output folder (it holds dicom-metadata.json)');
  const rulesOption = args.options.get('rules');
  if (rulesOption === true) throw new UsageError('--rules needs a value');
  const parserDir = resolve(args.positional[0]);
  if (!existsSync(parserDir) || !statSync(parserDir).isDirectory()) throw new InputError(`${parserDir} is not a folder`);
  const outOption = args.options.get('out');
  const outDir = typeof outOption === 'string' ? resolve(outOption) : parserDir;
  const defaults = { allMatched: args.options.has('all-matched'), sortBySopInstanceCount: args.options.has('sort-by-instance-count') };

  let result;
  try {
    const rules = compileRules(rulesOption === undefined ? undefined : rulesDocument(rulesOption), defaults);
    for (const warning of rules.warnings) process.stderr.write(`warning: ${warning}\n`);
    result = runSelection(parserDir, outDir, rules);
  } catch (err) {
    if (err instanceof RulesError) throw new InputError(`invalid selection rules: ${err.message}`);
    if (err instanceof SelectionInputError) throw new InputError(err.message);
    throw err;
  }
  if (args.options.has('json')) {
    process.stdout.write(JSON.stringify(result.mapping, null, 2) + '\n');
  } else {
    const lines: string[] = [];
    for (const selection of result.report.selections) {
      const title = selection.name === '' ? '(every series)' : selection.name;
      if (selection.selected.length === 0) {
        lines.push(`${title}: no match`);
        for (const v of selection.series) lines.push(`  ✗ ${v.seriesNumber ?? '-'} ${v.seriesDescription ?? v.seriesInstanceUID}: ${v.reason ?? ''}`);
      } else {
        for (const s of selection.selected) lines.push(`${title}: ${s.seriesNumber ?? '-'} ${s.seriesDescription ?? ''}  ${s.seriesInstanceUID}  ${result.mapping[selection.name][s.seriesInstanceUID].image}`);
      }
    }
    lines.push(`wrote ${result.selectedImages} and ${result.reportFile}`);
    process.stdout.write(lines.join('\n') + '\n');
  }
  return result.report.matched ? 0 : 3;
}

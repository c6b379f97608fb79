/**
 * The README's main command: Clara's Advanced DICOM Integration pipeline, imported, run end to end on the
 * bundled phantom study with the embedded model. A Node-RED runtime is started with the imported flow, the
 * study goes in over C-STORE, the flow writes the SEG and the RTSTRUCT and delivers them to MYPACS (given no
 * address, a local archive SCP in the same flow that keeps what it receives in a folder), registers the job
 * with the viewer, and the command prints the time per stage, where everything went, and how to open it.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { InputError, UsageError, intOption, parseArgs, rejectUnknownOptions } from '../lib/cli/args';
import { diceOnGrid } from '../lib/infer/metrics';
import { writePhantomStudy } from '../lib/phantom';
import { readNifti } from '../lib/volume/nifti';
import { untilInterrupted } from './cli';
import { type FlowNode, pipelineToFlow } from './mapping';
import { PipelineError, parsePipeline } from './pipeline';
import { FlowRunError, PACKAGE_ROOT, formatRunReport, runFlow } from './run';

/** The importer's output for Clara's pipeline YAML; test/flows/mapping.test.ts regenerates it and diffs. */
export const SEED_FLOW = join(PACKAGE_ROOT, 'examples', '03 Clara advanced DICOM integration.json');

function seconds(since: number): string {
  return ((Date.now() - since) / 1000).toFixed(2);
}

function seedFlow(pipelineFile: string | undefined): { flow: FlowNode[]; origin: string } {
  if (!pipelineFile) return { flow: JSON.parse(readFileSync(SEED_FLOW, 'utf8')) as FlowNode[], origin: `${relative(process.cwd(), SEED_FLOW)} (Clara's pipeline YAML as the importer maps it)` };
  const file = resolve(pipelineFile);
  if (!existsSync(file)) throw new InputError(`no pipeline ${file}`);
  try {
    const result = pipelineToFlow(parsePipeline(readFileSync(file, 'utf8')), { triton: 'embedded' });
    for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
    return { flow: result.flow, origin: `${relative(process.cwd(), file)}, imported` };
  } catch (err) {
    if (err instanceof PipelineError) throw new InputError(`${file}: ${err.message}`);
    throw err;
  }
}

/** clara-dicom demo [--work-dir DIR] [--pipeline clara.yaml] [--size N] [--slices N] [--seed N] [--serve] */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['serve']);
  rejectUnknownOptions(args, ['work-dir', 'pipeline', 'size', 'slices', 'seed', 'serve', 'port']);
  if (args.positional.length) throw new UsageError(`unexpected argument ${args.positional[0]}`);
  const workDir = resolve(String(args.options.get('work-dir') ?? join(tmpdir(), 'clara-dicom-demo')));
  const size = intOption(args, 'size', 256, 16, 1024);
  const slices = intOption(args, 'slices', 160, 8, 1024);
  const seed = intOption(args, 'seed', 1, 0, 2 ** 31 - 1);
  const pipeline = args.options.get('pipeline');
  if (pipeline === true) throw new UsageError('--pipeline needs a YAML file');
  const out = (line: string) => process.stdout.write(line + '\n');
  const started = Date.now();

  out(`clara-dicom demo — work folder ${workDir}`);
  // The demo's own folders: a second demo starts from scratch instead of adding to the first one's archive.
  for (const dir of ['study', 'run']) rmSync(join(workDir, dir), { recursive: true, force: true });
  let t = Date.now();
  const study = writePhantomStudy(join(workDir, 'study'), { size, slices, seed });
  const instanceCount = study.series.reduce((n, s) => n + s.instanceCount, 0);
  out(`  phantom study: ${study.series.length} series, ${instanceCount} instances (${size}×${size}×${slices} T1c target) in ${seconds(t)} s`);
  const { flow, origin } = seedFlow(pipeline);
  out(`  flow: ${origin}`);

  t = Date.now();
  let report;
  try {
    report = await runFlow({
      flow,
      input: join(workDir, 'study', 'dicom'),
      outDir: join(workDir, 'run'),
      via: 'c-store',
      studyTimeoutSeconds: 1,
      httpPort: args.options.has('port') ? intOption(args, 'port', 1880, 1, 65535) : undefined,
      log: out,
      beforeStop: args.options.get('serve') === true
        ? async (r) => {
            out(`  serving the editor at ${r.editorUrl} and the viewer at ${r.editorUrl}clara-dicom/viewer: Ctrl-C to stop`);
            await untilInterrupted();
          }
        : undefined,
    });
  } catch (err) {
    if (err instanceof FlowRunError) throw new InputError(err.message);
    throw err;
  }
  for (const line of formatRunReport(report)) out(line);

  let dice: number | undefined;
  for (const job of report.jobs) {
    const mask = join(job.dir, 'segmentation', `${study.targetSeriesInstanceUID}.nii.gz`);
    if (existsSync(mask)) dice = diceOnGrid(readNifti(mask), readNifti(join(workDir, 'study', study.maskPath)));
  }
  if (dice !== undefined) out(`  Dice of the T1c segmentation against the phantom's ground truth: ${dice.toFixed(3)}`);
  const sent = report.deliveries.filter((d) => d.state === 'succeeded').reduce((n, d) => n + d.delivered, 0);
  out(`  ${report.jobs.length} job(s), ${sent} result instance(s) delivered, pipeline ${seconds(t)} s, demo ${seconds(started)} s in all`);
  out('');
  out('  To open this flow and its results in the Node-RED editor:');
  out(`    npx node-red --settings ${join(report.userDir, 'settings.js')}`);
  const viewer = report.jobs.find((j) => j.viewerUrl);
  out(`  then http://127.0.0.1:1880/ (the editor)${viewer ? ` and http://127.0.0.1:1880/clara-dicom/viewer/${encodeURIComponent(viewer.id)} (the viewer)` : ''};`);
  out('  or run the demo with --serve to keep it served now. Not for diagnostic use.');
  if (!report.ok) out('  the demo FAILED: see the errors above');
  if (dice === undefined) out('  the demo FAILED: no segmentation of the T1c series');
  return report.ok && dice !== undefined ? 0 : 1;
}

import { readFileSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { freeLoopbackPort } from '../dimse/ports';
import { sendFiles } from '../dimse/scu';
import { diceOnGrid } from '../infer/metrics';
import { writePhantomStudy } from '../phantom';
import { readNifti } from '../volume/nifti';
import { InputError, UsageError, intOption, parseArgs, rejectUnknownOptions } from './args';

/** The example flow the demo runs: the same file Node-RED lists under Import › Examples. */
const EXAMPLE_FLOW = join(__dirname, '..', '..', '..', 'examples', '02 Receive, select and segment a study.json');
// Node-RED loads the package root as an installed module (its package.json "node-red" section): the nodes'
// message catalogues and the examples come with it, which a plain folder of node files would not give.
const PACKAGE_ROOT = join(__dirname, '..', '..', '..');
const DEMO_CALLING_AE = 'DEMO-PACS';

interface FlowNode {
  id: string;
  type: string;
  name?: string;
  [key: string]: unknown;
}

interface EmbeddedRed {
  init(server: unknown, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  version(): string;
  hooks: { add(name: string, hook: (event: { msg: Record<string, unknown>; destination: { id: string } }) => void): void };
}

/** Node-RED starts nodes before their servers listen: wait until the SCP accepts connections. */
async function waitForListener(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((done) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new InputError(`clara-dicom-in did not start listening on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

function seconds(since: bigint): string {
  return (Number(process.hrtime.bigint() - since) / 1e9).toFixed(2);
}

/**
 * The quick-start pipeline: writes the bundled phantom study, starts a real Node-RED runtime with the
 * example flow, sends the study to clara-dicom-in over DICOM and prints what the parser wrote, which
 * series the selector picked, and what the bundled model segmented there (with its Dice against the
 * phantom's ground truth).
 */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  rejectUnknownOptions(args, ['work-dir', 'size', 'slices', 'seed']);
  if (args.positional.length) throw new UsageError(`unexpected argument ${args.positional[0]}`);
  const workDir = resolve(String(args.options.get('work-dir') ?? join(tmpdir(), 'clara-dicom-demo')));
  const size = intOption(args, 'size', 256, 16, 1024);
  const slices = intOption(args, 'slices', 160, 8, 1024);
  const seed = intOption(args, 'seed', 1, 0, 2 ** 31 - 1);
  const out = (line: string) => process.stdout.write(line + '\n');

  out(`clara-dicom demo — work folder ${workDir}`);
  let t = process.hrtime.bigint();
  const study = writePhantomStudy(join(workDir, 'study'), { size, slices, seed });
  const files = filesUnder(join(workDir, 'study', 'dicom'));
  out(`  phantom study: ${study.series.length} series, ${files.length} instances (${size}×${size}×${slices} T1c target) in ${seconds(t)} s`);

  const port = await freeLoopbackPort();
  const flow = JSON.parse(readFileSync(EXAMPLE_FLOW, 'utf8')) as FlowNode[];
  const dicomIn = flow.find((n) => n.type === 'clara-dicom-in');
  const result = flow.find((n) => n.type === 'debug' && n.name === 'segmentation');
  const noMatch = flow.find((n) => n.type === 'debug' && n.name === 'no match');
  const errors = flow.find((n) => n.type === 'debug' && n.name === 'pipeline errors');
  if (!dicomIn || !result || !noMatch || !errors) throw new Error(`${EXAMPLE_FLOW} lacks the nodes the demo drives`);
  Object.assign(dicomIn, { port, host: '127.0.0.1', studyTimeout: 1, workRoot: join(workDir, 'jobs'), allow: DEMO_CALLING_AE });
  const userDir = join(workDir, 'node-red');
  mkdirSync(userDir, { recursive: true });
  writeFileSync(join(userDir, 'flows.json'), JSON.stringify(flow, null, 2));

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const RED = require('node-red') as EmbeddedRed;
  RED.init(undefined, {
    userDir,
    flowFile: 'flows.json',
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    nodesDir: [PACKAGE_ROOT],
    // The demo prints the parser's warnings itself; Node-RED's own start-up notices would only clutter.
    logging: { console: { level: 'error' } },
    editorTheme: { projects: { enabled: false } },
  });
  const outcome = new Promise<Record<string, unknown>>((resolveOutcome, rejectOutcome) => {
    RED.hooks.add('onReceive.claraDemo', (event) => {
      if (event.destination.id === result.id) resolveOutcome(event.msg);
      else if (event.destination.id === noMatch.id) {
        const selection = event.msg.selection as { unmatched?: Array<{ name: string; series: Array<{ seriesDescription?: string; reason: string }> }> } | undefined;
        const first = selection?.unmatched?.[0];
        rejectOutcome(new InputError(`no series matched selection ${first?.name ?? '?'}: ${first?.series.map((s) => `${s.seriesDescription}: ${s.reason}`).join('; ') ?? ''}`));
      } else if (event.destination.id === errors.id) {
        const error = event.msg.error as { message?: string; source?: { type?: string } } | undefined;
        rejectOutcome(new InputError(`${error?.source?.type ?? 'flow'}: ${error?.message ?? 'failed'}`));
      }
    });
  });
  t = process.hrtime.bigint();
  await RED.start();
  await waitForListener(port, 15000);
  out(`  Node-RED ${RED.version()} running "${relative(process.cwd(), EXAMPLE_FLOW)}": clara-dicom-in CLARA@127.0.0.1:${port}, study timeout 1 s (${seconds(t)} s to start)`);
  try {
    t = process.hrtime.bigint();
    const sent = await sendFiles(files, { host: '127.0.0.1', port, callingAE: DEMO_CALLING_AE, calledAE: 'CLARA' });
    if (sent.failed.length) throw new InputError(`${sent.failed.length} instances were refused, first: ${sent.failed[0].file} status ${sent.failed[0].status}`);
    out(`  C-STORE: ${sent.sent} instances sent in ${seconds(t)} s`);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, rejectDeadline) => {
      timer = setTimeout(() => rejectDeadline(new InputError('the flow segmented nothing within 10 minutes')), 600000);
    });
    const msg = await Promise.race([outcome, deadline]).finally(() => clearTimeout(timer));
    const job = msg.job as { id: string; dir: string };
    const parser = msg.parser as { volumes?: Array<Record<string, unknown>>; skipped?: unknown[]; warnings?: unknown[] };
    out(`  job ${job.id}: received, parsed, selected and segmented in ${seconds(t)} s since the first C-STORE`);
    for (const v of parser.volumes ?? []) {
      const dims = Array.isArray(v.dims) ? (v.dims as number[]).join('×') : '?';
      const spacing = Array.isArray(v.spacing) ? (v.spacing as number[]).map((s) => s.toFixed(2)).join('×') + ' mm' : '';
      out(`    ${basename(String(v.file)).padEnd(64)} ${dims.padEnd(12)} ${spacing.padEnd(22)} ${v.description ?? ''}`);
    }
    out(`  ${parser.volumes?.length ?? 0} volumes, ${parser.skipped?.length ?? 0} skipped, ${parser.warnings?.length ?? 0} warnings`);
    for (const w of parser.warnings ?? []) out(`    warning: ${(w as { message?: string }).message ?? JSON.stringify(w)}`);
    const selection = msg.selection as { selections: Array<{ name: string; series: Array<{ seriesNumber?: number; seriesDescription?: string; image: string }> }> };
    for (const chosen of selection.selections) {
      for (const s of chosen.series) out(`  selection ${chosen.name}: series ${s.seriesNumber ?? '-'} "${s.seriesDescription ?? ''}" → ${basename(s.image)}`);
    }
    const inference = msg.inference as { model: string; server: string; series: Array<{ seriesInstanceUID: string; segmentation: string; labelCounts: Record<string, number>; windows: number; seconds: number; modelSeconds: number }> };
    for (const s of inference.series) {
      const voxels = Object.entries(s.labelCounts).map(([label, n]) => `label ${label}: ${n} voxels`).join(', ') || 'no findings';
      const score = s.seriesInstanceUID === study.targetSeriesInstanceUID ? `, Dice ${diceOnGrid(readNifti(s.segmentation), readNifti(join(workDir, 'study', study.maskPath))).toFixed(3)} against the phantom's ground truth` : '';
      out(`  segmentation (${inference.model}, ${inference.server}): ${relative(job.dir, s.segmentation)}  ${voxels}${score}`);
      out(`    ${s.windows} windows in ${s.seconds.toFixed(2)} s, of which the model ${s.modelSeconds.toFixed(2)} s`);
    }
    out(`  job folder: ${job.dir}`);
    return 0;
  } finally {
    await RED.stop();
  }
}

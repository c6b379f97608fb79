/**
 * The importer's command line: `clara-dicom import` (Clara pipeline YAML → Node-RED flow JSON),
 * `clara-dicom export` (flow JSON → pipeline YAML), `clara-dicom deploy` (either, onto a running
 * Node-RED through its Admin API) and `clara-dicom run` (either, as a batch job in a Node-RED runtime
 * started for it). Same converter as the editor's import dialog.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError, type ParsedArgs, UsageError, intOption, parseArgs, rejectUnknownOptions, stringOption } from '../lib/cli/args';
import { DeployError, deployFlow } from './deploy';
import { ExportError, flowToPipeline, pipelineToYaml } from './export';
import { type DestinationAddress, type FlowNode, type ImportOptions, pipelineToFlow } from './mapping';
import { PipelineError, parsePipeline } from './pipeline';
import { FlowRunError, RUN_INPUT_ROUTES, formatRunReport, runFlow } from './run';

/** `-o FILE` is the documented spelling; the shared parser knows only long options. */
function withLongOut(argv: string[]): string[] {
  return argv.map((a) => (a === '-o' ? '--out' : a));
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** MYPACS=AE@host:port, each --set once per destination (repeat the option with commas: A=..,B=..). */
function destinationsOf(args: ParsedArgs): Record<string, DestinationAddress> {
  const raw = args.options.get('set');
  if (raw === undefined) return {};
  if (raw === true) throw new UsageError('--set needs NAME=AE@host:port');
  const out: Record<string, DestinationAddress> = {};
  for (const item of raw.split(',')) {
    const m = /^([^=\s]+)=([^@\s]{1,16})@([^:\s]+):(\d{1,5})$/.exec(item.trim());
    if (!m || Number(m[4]) < 1 || Number(m[4]) > 65535) throw new UsageError(`--set ${item}: expected NAME=AE@host:port`);
    out[m[1]] = { calledAE: m[2], host: m[3], port: Number(m[4]) };
  }
  return out;
}

function tritonOf(args: ParsedArgs): ImportOptions['triton'] {
  const raw = args.options.get('triton');
  if (raw === undefined || raw === 'embedded') return 'embedded';
  const m = typeof raw === 'string' ? /^(grpc|http):\/\/([^/:]+):(\d+)\/?$/.exec(raw) : null;
  if (!m) throw new UsageError('--triton takes embedded, grpc://host:port or http://host:port');
  return { protocol: m[1] as 'grpc' | 'http', host: m[2], port: Number(m[3]) };
}

function importOptionsOf(args: ParsedArgs): ImportOptions {
  const host = args.options.get('dicom-host');
  if (host === true) throw new UsageError('--dicom-host needs an address');
  return { destinations: destinationsOf(args), dicomPort: intOption(args, 'dicom-port', 104, 1, 65535), dicomHost: host, triton: tritonOf(args) };
}

/** clara-dicom import <pipeline.yaml> -o flow.json [--set NAME=AE@host:port] [--dicom-port N] [--triton embedded|grpc://host:8001] */
export async function runImport(argv: string[]): Promise<number> {
  const args = parseArgs(withLongOut(argv));
  rejectUnknownOptions(args, ['out', 'set', 'dicom-port', 'dicom-host', 'triton']);
  if (args.positional.length !== 1) throw new UsageError(`expected one pipeline YAML file, got ${args.positional.length}`);
  const out = args.options.get('out');
  if (typeof out !== 'string') throw new UsageError('-o flow.json is required');
  const options = importOptionsOf(args);
  const file = resolve(args.positional[0]);
  let result;
  try {
    result = pipelineToFlow(parsePipeline(readText(file, 'the pipeline')), options);
  } catch (err) {
    if (err instanceof PipelineError) throw new InputError(`${file}: ${err.message}`);
    throw err;
  }
  writeFileSync(resolve(out), JSON.stringify(result.flow, null, 2) + '\n');
  for (const op of result.operators) process.stdout.write(`${op.operator.padEnd(40)} → ${op.nodes.map((n) => n.type).join(' + ')}${op.placeholder ? '  (placeholder)' : ''}\n`);
  for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
  process.stdout.write(`wrote ${result.flow.length} nodes to ${resolve(out)}${result.warnings.length ? `, ${result.warnings.length} warning(s)` : ''}\n`);
  return 0;
}

/** clara-dicom export <flow.json> -o pipeline.yaml [--tab ID] */
export async function runExport(argv: string[]): Promise<number> {
  const args = parseArgs(withLongOut(argv));
  rejectUnknownOptions(args, ['out', 'tab']);
  if (args.positional.length !== 1) throw new UsageError(`expected one flow JSON file, got ${args.positional.length}`);
  const out = args.options.get('out');
  if (typeof out !== 'string') throw new UsageError('-o pipeline.yaml is required');
  const file = resolve(args.positional[0]);
  let flow: FlowNode[];
  try {
    flow = JSON.parse(readText(file, 'the flow')) as FlowNode[];
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${file} is not JSON: ${(err as Error).message}`);
  }
  const tab = args.options.get('tab');
  let yaml: string;
  try {
    yaml = pipelineToYaml(flowToPipeline(flow, typeof tab === 'string' ? tab : undefined));
  } catch (err) {
    if (err instanceof ExportError) throw new InputError(err.message);
    throw err;
  }
  writeFileSync(resolve(out), yaml);
  process.stdout.write(`wrote ${resolve(out)}\n`);
  return 0;
}

/** A flow from either a Clara pipeline (imported with the options given) or a flow JSON file. */
export function flowFromFile(file: string, args: ParsedArgs): FlowNode[] {
  const textValue = readText(file, 'the input');
  if (/\.json$/i.test(file)) {
    try {
      return JSON.parse(textValue) as FlowNode[];
    } catch (err) {
      throw new InputError(`${file} is not JSON: ${(err as Error).message}`);
    }
  }
  try {
    return pipelineToFlow(parsePipeline(textValue), importOptionsOf(args)).flow;
  } catch (err) {
    if (err instanceof PipelineError) throw new InputError(`${file}: ${err.message}`);
    throw err;
  }
}

/** clara-dicom deploy <pipeline.yaml|flow.json> --target http://host:1880 [--user U --password P | --token T] */
export async function runDeploy(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  rejectUnknownOptions(args, ['target', 'user', 'password', 'token', 'set', 'dicom-port', 'dicom-host', 'triton']);
  if (args.positional.length !== 1) throw new UsageError(`expected one pipeline YAML or flow JSON file, got ${args.positional.length}`);
  const target = args.options.get('target');
  if (typeof target !== 'string' || !/^https?:\/\/[^/\s]+/.test(target)) throw new UsageError('--target http://host:1880 is required');
  const option = (name: string) => (typeof args.options.get(name) === 'string' ? String(args.options.get(name)) : undefined);
  if (option('user') && option('token')) throw new UsageError('give --user/--password or --token, not both');
  const flow = flowFromFile(resolve(args.positional[0]), args);
  try {
    const result = await deployFlow(flow, { url: target, username: option('user'), password: option('password'), token: option('token') });
    process.stdout.write(`${result.replaced ? 'updated' : 'added'} tab ${result.tabId} on ${target}: ${result.deployed} nodes, ${result.kept} other nodes kept${result.rev ? `, revision ${result.rev}` : ''}\n`);
    return 0;
  } catch (err) {
    if (err instanceof DeployError) throw new InputError(err.message);
    throw err;
  }
}

/** Waits for Ctrl-C (SIGINT) or SIGTERM. */
export function untilInterrupted(): Promise<void> {
  return new Promise((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/**
 * clara-dicom run <pipeline.yaml|flow.json> --input <dicom-dir> --out <dir> [--via ingest|c-store|storescu] [--entry ID]
 *   [--study-timeout S] [--timeout S] [--port N] [--serve] [--json] [--verbose] [import options]
 * Exit 0 when every job finished and every result was delivered, 1 otherwise; the report is written either way.
 */
export async function runRun(argv: string[]): Promise<number> {
  const args = parseArgs(withLongOut(argv), ['serve', 'json', 'verbose']);
  rejectUnknownOptions(args, ['input', 'out', 'via', 'entry', 'study-timeout', 'timeout', 'port', 'serve', 'json', 'verbose', 'set', 'dicom-port', 'dicom-host', 'triton']);
  if (args.positional.length !== 1) throw new UsageError(`expected one pipeline YAML or flow JSON file, got ${args.positional.length}`);
  const input = args.options.get('input');
  const out = args.options.get('out');
  if (typeof input !== 'string') throw new UsageError('--input <dicom-dir> is required');
  if (typeof out !== 'string') throw new UsageError('--out <dir> is required');
  const entry = args.options.get('entry');
  if (entry === true) throw new UsageError('--entry needs a node id or name');
  const studyTimeout = Number(args.options.get('study-timeout') ?? 1);
  if (!(studyTimeout >= 0.1 && studyTimeout <= 3600)) throw new UsageError('--study-timeout must be from 0.1 to 3600 seconds');
  const json = args.options.get('json') === true;
  const file = resolve(args.positional[0]);
  const flow = flowFromFile(file, args);
  const say = (line: string) => (json ? process.stderr : process.stdout).write(line + '\n');
  say(`clara-dicom run ${file}\n  input ${resolve(input)} → output ${resolve(out)}`);
  let report;
  try {
    report = await runFlow({
      flow,
      input,
      outDir: out,
      via: stringOption(args, 'via', RUN_INPUT_ROUTES, 'ingest'),
      entry,
      studyTimeoutSeconds: studyTimeout,
      timeoutMs: intOption(args, 'timeout', 600, 1, 86400) * 1000,
      httpPort: args.options.has('port') ? intOption(args, 'port', 1880, 1, 65535) : undefined,
      verbose: args.options.get('verbose') === true,
      log: say,
      beforeStop: args.options.get('serve') === true
        ? async (r) => {
            say(`  serving the editor at ${r.editorUrl} and the viewer at ${r.editorUrl}clara-dicom/viewer: Ctrl-C to stop`);
            await untilInterrupted();
          }
        : undefined,
    });
  } catch (err) {
    if (err instanceof FlowRunError) throw new InputError(err.message);
    throw err;
  }
  if (json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else for (const line of formatRunReport(report)) say(line);
  say(`  report ${resolve(out, 'run-report.json')}; open the flow in the editor: npx node-red --settings ${resolve(report.userDir, 'settings.js')}`);
  say(`  ${report.ok ? 'finished' : 'FAILED'} in ${report.seconds.toFixed(1)} s`);
  return report.ok ? 0 : 1;
}

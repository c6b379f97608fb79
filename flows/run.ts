/**
 * A flow run as a batch job: a real Node-RED runtime started in this process with the flow, one folder of
 * DICOM files fed to the flow's receiving clara-dicom-in (by folder ingest or over C-STORE), and the run
 * ends when the flow has gone quiet: no message in flight, no study still being received, no outbox task
 * still to deliver. What every node did (time per node and job, errors, deliveries, files written) is
 * gathered through Node-RED's message hooks and the job folders, and returned as a report.
 *
 * Everything the run writes lands under one output folder:
 *   <out>/jobs/<job>/          the jobs of the receiving clara-dicom-in (volumes, segmentation, seg, rtstruct, outbox)
 *   <out>/archive/<name>/      what local archive SCPs (clara-dicom-in nodes that destinations point at) received
 *   <out>/node-red/            the Node-RED user folder: flows.json as run, settings.js to open it in the editor
 *   <out>/run-report.json      the report
 * File watchers (`watch` nodes) are switched off for the run: the input is handed to clara-dicom-in directly.
 */
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { filesUnder } from '../lib/dicom/files';
import { readDicomHeader } from '../lib/dicom/reader';
import { findTaskFiles, loadTask, type OutboxTask } from '../lib/dimse/outbox';
import { freeLoopbackPort } from '../lib/dimse/ports';
import { sendFiles } from '../lib/dimse/scu';
import { JobStore, type JobRecord } from '../lib/job';
import type { FlowNode } from './mapping';

/**
 * The package root: Node-RED loads it as the installed module (its package.json "node-red" section).
 * CLARA_TEST_PACKAGE_ROOT (as in test/support/headless-red.ts) points it at a folder laid out like the package
 * whose dist/ is a private BUILD_DIR build, so that tests and benchmarks of that build run its own nodes.
 */
export const PACKAGE_ROOT = process.env.CLARA_TEST_PACKAGE_ROOT || join(__dirname, '..', '..');
const RUN_CALLING_AE = 'CLARA-RUN';
const POLL_MS = 100;
/** Consecutive quiet polls before the flow counts as finished: a message may be between two hooks. */
const QUIET_POLLS = 4;
/** Node-RED's start-up notices about settings the run chose on purpose. */
const RUNTIME_NOTICES = /^(Projects disabled|Using unencrypted credentials)/;

export class FlowRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlowRunError';
  }
}

export interface FlowRunOptions {
  flow: FlowNode[];
  /** A folder of DICOM files (searched recursively); other files are reported and left out. */
  input: string;
  outDir: string;
  /**
   * `ingest` hands the folder to clara-dicom-in's input (default); `c-store` sends every file to its SCP
   * from this process; `storescu` has dcmtk's storescu send them from a process of its own, as a PACS would.
   */
  via?: RunInputRoute;
  /** The clara-dicom-in that takes the study, by id or name, where the flow has several that no destination points at. */
  entry?: string;
  /** Quiet time of every clara-dicom-in, seconds (default 1: the whole study is sent at once). */
  studyTimeoutSeconds?: number;
  /** Longest the run may take, milliseconds (default 10 minutes). */
  timeoutMs?: number;
  /** Port of the editor and viewer while the run lasts (default: a free loopback port). */
  httpPort?: number;
  /** Progress lines, and the flow's warnings and errors as they happen. */
  log?: (line: string) => void;
  /** Also pass Node-RED's info lines to `log`. */
  verbose?: boolean;
  /** Called when the run is over, before the runtime stops: the editor and viewer are still served. */
  beforeStop?: (report: FlowRunReport) => Promise<void>;
}

/** One node's work on one job: from the message's arrival to the node's done(). */
export interface NodeTiming {
  nodeId: string;
  type: string;
  name: string;
  jobId?: string;
  /** Seconds after the run started that the node got the message. */
  startedAt: number;
  seconds: number;
  error?: string;
}

export interface DeliveryReport {
  jobId: string;
  destination: string;
  address: string;
  state: OutboxTask['state'];
  instances: number;
  delivered: number;
  error?: string;
  /** From the task being queued to its last answer. */
  seconds?: number;
  /** Seconds after the run started of the task's last answer (end-to-end timing). */
  finishedAt?: number;
  taskFile: string;
}

export interface JobReport {
  id: string;
  dir: string;
  studyInstanceUID: string;
  state: JobRecord['state'];
  instances: number;
  errors: JobRecord['errors'];
  /** Files the flow wrote into the job (everything but the received instances), relative to the job folder. */
  outputs: string[];
  viewerUrl?: string;
}

export interface FlowRunReport {
  nodeRedVersion: string;
  input: { folder: string; files: number; instances: number; skipped: Array<{ path: string; reason: string }>; via: RunInputRoute; entry: string };
  /** Seconds from the first instance handed over to the receiving node emitting the job (C-STORE: includes the study timeout). */
  receiveSeconds?: number;
  /** Seconds after the run started that the first instance was handed over (the time base of `timings` and deliveries' `finishedAt`). */
  handedOverAt?: number;
  /** The run's study timeout, seconds: the quiet time `receiveSeconds` includes. */
  studyTimeoutSeconds: number;
  jobs: JobReport[];
  timings: NodeTiming[];
  deliveries: DeliveryReport[];
  archives: Array<{ name: string; dir: string; instances: number }>;
  /** Errors and warnings the flow logged. */
  problems: Array<{ level: 'error' | 'warn'; node: string; message: string }>;
  /** The editor while the run lasts, then how to open it again. */
  editorUrl: string;
  userDir: string;
  seconds: number;
  timedOut: boolean;
  /** No node error, every job finished without a failure, every task delivered. */
  ok: boolean;
}

interface EmbeddedRed {
  init(server: Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  version(): string;
  httpAdmin: (req: IncomingMessage, res: ServerResponse, next: () => void) => void;
  httpNode: (req: IncomingMessage, res: ServerResponse, next: () => void) => void;
  nodes: { getNode(id: string): { receive(msg: Record<string, unknown>): void } | null };
  hooks: { add(name: string, hook: (event: HookEvent) => void): void; remove(name: string): void };
}

interface HookEvent {
  msg: Record<string, unknown>;
  source?: { id: string; node?: { type?: string } };
  destination?: { id: string; node?: { _expectedDoneCount?: number } };
  node?: { id: string };
  error?: unknown;
}

interface LogEvent {
  level: number;
  msg: unknown;
  type?: string;
  id?: string;
  name?: string;
}

const isLoopback = (host: unknown) => typeof host === 'string' && /^(127\.\d+\.\d+\.\d+|localhost|0\.0\.0\.0|::1?)$/.test(host.trim());
const safeName = (text: string) => text.replace(/[^\w.-]+/g, '_').replace(/^_+|_+$/g, '') || 'archive';

async function waitForListener(port: number, timeoutMs: number): Promise<boolean> {
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
    if (open) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface PreparedFlow {
  flow: FlowNode[];
  entry: FlowNode;
  entryPort: number;
  archives: Array<{ node: FlowNode; dir: string }>;
  jobsDir: string;
}

/**
 * The flow as the run deploys it: every clara-dicom-in on a free loopback port with the run's study
 * timeout, destinations that pointed at one of them following it, and every work folder under `outDir`.
 * The receiving clara-dicom-in is the one no destination sends to (local archives are the others).
 */
async function prepareFlow(source: FlowNode[], outDir: string, options: FlowRunOptions): Promise<PreparedFlow> {
  const flow = JSON.parse(JSON.stringify(source)) as FlowNode[];
  if (!Array.isArray(flow) || flow.some((n) => !n || typeof n.id !== 'string' || typeof n.type !== 'string')) throw new FlowRunError('the flow must be a JSON array of Node-RED nodes');
  const receivers = flow.filter((n) => n.type === 'clara-dicom-in' && !n.d);
  const destinations = flow.filter((n) => n.type === 'clara-dicom-destination');
  // A destination on this machine with a receiver's port and AE title sends to that receiver: a local archive.
  const pointsAt = (d: FlowNode, r: FlowNode) => isLoopback(d.host) && Number(d.port) === Number(r.port) && String(d.calledAE ?? '') === String(r.aeTitle ?? 'CLARA');
  const isArchive = (r: FlowNode) => destinations.some((d) => pointsAt(d, r));
  let entries = receivers.filter((r) => !isArchive(r));
  if (options.entry) entries = receivers.filter((r) => r.id === options.entry || r.name === options.entry);
  if (entries.length === 0) throw new FlowRunError(options.entry ? `no clara-dicom-in with id or name "${options.entry}"` : 'the flow has no clara-dicom-in to take the study');
  if (entries.length > 1) throw new FlowRunError(`the flow has ${entries.length} clara-dicom-in nodes that could take the study (${entries.map((e) => `${e.id} "${e.name ?? ''}"`).join(', ')}): choose one with --entry`);
  const entry = entries[0];

  const jobsDir = join(outDir, 'jobs');
  const archives: PreparedFlow['archives'] = [];
  const used = new Set<string>();
  const studyTimeout = options.studyTimeoutSeconds ?? 1;
  let entryPort = 0;
  for (const receiver of receivers) {
    const port = await freeLoopbackPort();
    for (const d of destinations) {
      if (receiver !== entry && pointsAt(d, receiver)) {
        Object.assign(d, { host: '127.0.0.1', port });
      }
    }
    let workRoot = jobsDir;
    if (receiver !== entry) {
      let name = safeName(String(receiver.aeTitle ?? receiver.name ?? receiver.id));
      while (used.has(name)) name += '_';
      used.add(name);
      workRoot = join(outDir, 'archive', name);
      archives.push({ node: receiver, dir: workRoot });
    } else {
      entryPort = port;
      if ((options.via ?? 'ingest') !== 'ingest' && typeof receiver.allow === 'string' && receiver.allow.trim()) receiver.allow = `${receiver.allow}\n${RUN_CALLING_AE}@127.0.0.1`;
    }
    Object.assign(receiver, { host: '127.0.0.1', port, studyTimeout, workRoot });
  }
  // The other nodes that keep job folders (outbox resume, viewer list) look where the jobs are.
  for (const n of flow) if ((n.type === 'clara-scu-out' || n.type === 'clara-render-register') && !n.d) n.workRoot = jobsDir;
  // The run hands the input over itself: a drop-folder watcher would only watch a folder nothing is put into.
  for (const n of flow) if (n.type === 'watch') n.d = true;
  return { flow, entry, entryPort, archives, jobsDir };
}

function settingsFileText(userDir: string, port: number): string {
  const settings = {
    uiHost: '127.0.0.1',
    uiPort: port,
    userDir,
    flowFile: 'flows.json',
    credentialSecret: false,
    nodesDir: [PACKAGE_ROOT],
    editorTheme: { projects: { enabled: false } },
  };
  return `// Written by clara-dicom run: start this flow again with  npx node-red --settings ${join(userDir, 'settings.js')}\nmodule.exports = ${JSON.stringify(settings, null, 2)};\n`;
}

/** Files under a job folder the flow wrote (not the received instances, not job.json), relative to it. */
function jobOutputs(jobDir: string): string[] {
  if (!existsSync(jobDir)) return [];
  return filesUnder(jobDir)
    .map((f) => relative(jobDir, f))
    .filter((f) => !f.startsWith('dicom/') && f !== 'job.json' && !f.startsWith('.'));
}

export const RUN_INPUT_ROUTES = ['ingest', 'c-store', 'storescu'] as const;
export type RunInputRoute = (typeof RUN_INPUT_ROUTES)[number];

/**
 * dcmtk's storescu sending `files` in one association, with TCP_NODELAY as dcmtk's benchmarks want it; resolves
 * with why it failed (its exit code and last message), or undefined when every instance was stored.
 */
function storescu(files: string[], port: number, calledAE: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn('storescu', ['-aet', RUN_CALLING_AE, '-aec', calledAE, '127.0.0.1', String(port), ...files], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on('error', (err) => resolve(`storescu could not start (${err.message}): install dcmtk, or use --via c-store`));
    child.on('close', (code) => resolve(code === 0 ? undefined : `storescu exit ${code}: ${stderr.trim().split('\n').pop() ?? ''}`));
  });
}

export async function runFlow(options: FlowRunOptions): Promise<FlowRunReport> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const outDir = resolve(options.outDir);
  const inputDir = resolve(options.input);
  const via = options.via ?? 'ingest';
  if (!existsSync(inputDir) || !statSync(inputDir).isDirectory()) throw new FlowRunError(`${inputDir} is not a folder`);
  mkdirSync(outDir, { recursive: true });

  // The input, read once: C-STORE needs the instances, the report their count either way.
  const files = filesUnder(inputDir);
  const instances: string[] = [];
  const skipped: FlowRunReport['input']['skipped'] = [];
  for (const file of files) {
    try {
      readDicomHeader(file);
      instances.push(file);
    } catch (err) {
      skipped.push({ path: file, reason: (err as Error).message });
    }
  }
  if (instances.length === 0) throw new FlowRunError(`no DICOM instances in ${inputDir} (${files.length} file(s))`);

  const prepared = await prepareFlow(options.flow, outDir, options);
  const userDir = join(outDir, 'node-red');
  mkdirSync(userDir, { recursive: true });
  writeFileSync(join(userDir, 'flows.json'), JSON.stringify(prepared.flow, null, 2) + '\n');
  writeFileSync(join(userDir, 'settings.js'), settingsFileText(userDir, 1880));

  const byId = new Map(prepared.flow.map((n) => [n.id, n]));
  const timings: NodeTiming[] = [];
  const problems: FlowRunReport['problems'] = [];
  const running = new Map<string, { at: number; count: number }>();
  let enRoute = 0;
  let handling = 0;
  let lastActivity = Date.now();
  let firstHandOver = 0;
  let receivedAt = 0;
  const emittedJobs = new Set<string>();
  const jobOf = (msg: Record<string, unknown>) => (msg.job && typeof msg.job === 'object' ? String((msg.job as { id?: unknown }).id ?? '') || undefined : undefined);
  const keyOf = (nodeId: string, msg: Record<string, unknown>) => `${nodeId}\0${String(msg._msgid ?? '')}`;

  const httpPort = options.httpPort ?? (await freeLoopbackPort());
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const RED = require('node-red') as EmbeddedRed;
  const server = createServer((req, res) => RED.httpAdmin(req, res, () => RED.httpNode(req, res, () => {
    res.statusCode = 404;
    res.end('not found');
  })));
  const logHandler = () => (event: LogEvent) => {
    const text = typeof event.msg === 'string' ? event.msg : event.msg instanceof Error ? event.msg.message : JSON.stringify(event.msg);
    const where = event.type ? `[${event.type}${event.name ? `:${event.name}` : ''}] ` : '';
    if (event.level <= 20) {
      problems.push({ level: 'error', node: event.id ?? '', message: text });
      log(`  error ${where}${text}`);
    } else if (event.level <= 30 && !(event.type === undefined && RUNTIME_NOTICES.test(text))) {
      problems.push({ level: 'warn', node: event.id ?? '', message: text });
      log(`  warning ${where}${text}`);
    } else if (options.verbose && event.level <= 40) log(`  ${where}${text}`);
  };
  RED.init(server, {
    userDir,
    flowFile: 'flows.json',
    credentialSecret: false,
    httpAdminRoot: '/',
    httpNodeRoot: '/',
    uiHost: '127.0.0.1',
    uiPort: httpPort,
    nodesDir: [PACKAGE_ROOT],
    logging: { console: { level: 'off' }, claraRun: { level: options.verbose ? 'info' : 'warn', metrics: false, audit: false, handler: logHandler } },
    editorTheme: { projects: { enabled: false }, tours: false },
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false },
  });

  // Node-RED takes a hook with other than exactly one parameter for an asynchronous one that calls back:
  // every hook here takes the event, used or not.
  RED.hooks.add('preDeliver.claraRun', (_event) => {
    enRoute++;
    lastActivity = Date.now();
  });
  RED.hooks.add('onSend.claraRun', (events) => {
    for (const event of ([] as HookEvent[]).concat(events as unknown as HookEvent[])) {
      if (event.source?.id !== prepared.entry.id) continue;
      const id = jobOf(event.msg);
      if (id && !emittedJobs.has(id)) {
        emittedJobs.add(id);
        if (!receivedAt) receivedAt = Date.now();
      }
    }
  });
  RED.hooks.add('onReceive.claraRun', (event) => {
    enRoute = Math.max(0, enRoute - 1);
    lastActivity = Date.now();
    const id = event.destination?.id;
    // A node whose input handler takes no done() never completes: it is finished once it has the message.
    if (!id || !event.destination?.node?._expectedDoneCount) return;
    handling++;
    const key = keyOf(id, event.msg);
    const entry = running.get(key);
    if (entry) entry.count++;
    else running.set(key, { at: Date.now(), count: 1 });
  });
  RED.hooks.add('onComplete.claraRun', (event) => {
    lastActivity = Date.now();
    const id = event.node?.id;
    if (!id) return;
    const key = keyOf(id, event.msg);
    const entry = running.get(key);
    if (!entry) return;
    handling = Math.max(0, handling - 1);
    if (--entry.count <= 0) running.delete(key);
    const node = byId.get(id);
    const error = event.error instanceof Error ? event.error.message : event.error ? String(event.error) : undefined;
    timings.push({ nodeId: id, type: node?.type ?? '?', name: String(node?.name ?? ''), jobId: jobOf(event.msg), startedAt: (entry.at - started) / 1000, seconds: (Date.now() - entry.at) / 1000, ...(error ? { error } : {}) });
  });

  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(httpPort, '127.0.0.1', () => ok());
  });
  const editorUrl = `http://127.0.0.1:${httpPort}/`;
  let timedOut = false;
  let report: FlowRunReport | undefined;
  try {
    await RED.start();
    if (!(await waitForListener(prepared.entryPort, 30000))) throw new FlowRunError(`the flow's clara-dicom-in did not start listening on 127.0.0.1:${prepared.entryPort}${problems.length ? `: ${problems[problems.length - 1].message}` : ''}`);
    for (const archive of prepared.archives) await waitForListener(Number(archive.node.port), 30000);
    log(`  Node-RED ${RED.version()} running the flow (editor ${editorUrl} while the run lasts)`);

    firstHandOver = Date.now();
    const calledAE = String(prepared.entry.aeTitle ?? 'CLARA');
    if (via === 'c-store') {
      const sent = await sendFiles(instances, { host: '127.0.0.1', port: prepared.entryPort, callingAE: RUN_CALLING_AE, calledAE });
      log(`  C-STORE: ${sent.sent} of ${instances.length} instances stored by ${calledAE}@127.0.0.1:${prepared.entryPort} in ${((Date.now() - firstHandOver) / 1000).toFixed(2)} s`);
      for (const f of sent.failed) skipped.push({ path: f.file, reason: `C-STORE status ${f.status}` });
    } else if (via === 'storescu') {
      const failure = await storescu(instances, prepared.entryPort, calledAE);
      log(`  storescu: ${instances.length} instance(s) sent to ${calledAE}@127.0.0.1:${prepared.entryPort} in ${((Date.now() - firstHandOver) / 1000).toFixed(2)} s${failure ? `; ${failure}` : ''}`);
      if (failure) skipped.push({ path: inputDir, reason: failure });
    } else {
      const node = RED.nodes.getNode(prepared.entry.id);
      if (!node) throw new FlowRunError(`clara-dicom-in ${prepared.entry.id} did not start`);
      node.receive({ payload: inputDir, topic: 'clara-dicom run' });
      log(`  folder ingest: ${inputDir} handed to clara-dicom-in "${String(prepared.entry.name ?? prepared.entry.id)}"`);
    }

    const sentAt = Date.now();
    const stores = [new JobStore(prepared.jobsDir), ...prepared.archives.map((a) => new JobStore(a.dir))];
    const deadline = started + (options.timeoutMs ?? 600000);
    let quiet = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const receiving = stores.some((s) => s.list().some((j) => j.state === 'receiving'));
      const undelivered = findTaskFiles(prepared.jobsDir).some((f) => {
        try {
          const state = loadTask(f).state;
          return state === 'pending' || state === 'in-progress';
        } catch {
          return true; // being written right now
        }
      });
      const busy = enRoute > 0 || handling > 0 || receiving || undelivered || emittedJobs.size === 0;
      // Nothing will come when nothing was taken: in ingest mode the node answers even then; over C-STORE the
      // sender has finished, and a study timeout has passed with no job receiving (a sender that could not
      // start, or every instance refused).
      const nothingTaken = emittedJobs.size === 0 && handling === 0 && enRoute === 0;
      const gaveUp =
        nothingTaken &&
        (via === 'ingest'
          ? Date.now() - lastActivity > 1000 && timings.some((t) => t.nodeId === prepared.entry.id)
          : !receiving && Date.now() - sentAt > (options.studyTimeoutSeconds ?? 1) * 1000 + 1000);
      quiet = busy && !gaveUp ? 0 : quiet + 1;
      if (quiet >= QUIET_POLLS) break;
      if (Date.now() > deadline) {
        timedOut = true;
        log(`  the flow was still busy after ${((Date.now() - started) / 1000).toFixed(0)} s (${enRoute + handling} message(s) in flight${receiving ? ', a study still being received' : ''}${undelivered ? ', deliveries pending' : ''}): stopping`);
        break;
      }
    }

    // An output folder used before keeps its earlier jobs: the report is about this run's.
    const ofThisRun = (record: JobRecord) => Date.parse(record.createdAt) >= started - 1000;
    const jobs: JobReport[] = new JobStore(prepared.jobsDir).list().filter(ofThisRun).map((record) => {
      const dir = join(prepared.jobsDir, record.id);
      const outputs = jobOutputs(dir);
      const viewerUrl = outputs.includes('publish/config.meta') && prepared.flow.some((n) => n.type === 'clara-render-register' && !n.d && n.mode !== 'render-server') ? `${editorUrl}clara-dicom/viewer/${encodeURIComponent(record.id)}` : undefined;
      return { id: record.id, dir, studyInstanceUID: record.studyInstanceUID, state: record.state, instances: record.counts.instances, errors: record.errors, outputs, ...(viewerUrl ? { viewerUrl } : {}) };
    });
    const thisRun = new Set(jobs.map((j) => j.id));
    const deliveries: DeliveryReport[] = findTaskFiles(prepared.jobsDir).map((file) => ({ file, task: loadTask(file) })).filter(({ task }) => thisRun.has(relative(prepared.jobsDir, task.jobDir).split(/[\\/]/)[0])).map(({ file, task }) => {
      const last = task.history[task.history.length - 1];
      const jobId = relative(prepared.jobsDir, task.jobDir).split(/[\\/]/)[0];
      return {
        jobId,
        destination: task.destination.name,
        address: `${task.destination.calledAE}@${task.destination.host}:${task.destination.port}`,
        state: task.state,
        instances: task.instances.length,
        delivered: task.instances.filter((i) => i.state === 'succeeded').length,
        ...(task.lastError ? { error: task.lastError } : {}),
        ...(last ? { seconds: (Date.parse(last.endedAt) - Date.parse(task.createdAt)) / 1000, finishedAt: (Date.parse(last.endedAt) - started) / 1000 } : {}),
        taskFile: file,
      };
    });
    const archives = prepared.archives.map((a) => ({
      name: String(a.node.aeTitle ?? a.node.name ?? a.node.id),
      dir: a.dir,
      instances: new JobStore(a.dir).list().filter(ofThisRun).reduce((n, j) => n + j.counts.instances, 0),
    }));
    const failedJob = jobs.some((j) => j.state === 'failed');
    const ok = !timedOut && jobs.length > 0 && !failedJob && !timings.some((t) => t.error) && !problems.some((p) => p.level === 'error') && deliveries.every((d) => d.state === 'succeeded');
    report = {
      nodeRedVersion: RED.version(),
      input: { folder: inputDir, files: files.length, instances: instances.length, skipped, via, entry: prepared.entry.id },
      ...(receivedAt ? { receiveSeconds: (receivedAt - firstHandOver) / 1000 } : {}),
      ...(firstHandOver ? { handedOverAt: (firstHandOver - started) / 1000 } : {}),
      studyTimeoutSeconds: options.studyTimeoutSeconds ?? 1,
      jobs,
      timings,
      deliveries,
      archives,
      problems,
      editorUrl,
      userDir,
      seconds: (Date.now() - started) / 1000,
      timedOut,
      ok,
    };
    writeFileSync(join(outDir, 'run-report.json'), JSON.stringify(report, null, 2) + '\n');
    if (options.beforeStop) await options.beforeStop(report);
    return report;
  } finally {
    for (const name of ['preDeliver', 'onSend', 'onReceive', 'onComplete']) RED.hooks.remove(`${name}.claraRun`);
    await RED.stop();
    await new Promise<void>((done) => server.close(() => done()));
    server.closeAllConnections?.();
  }
}

/** The report as lines for a terminal: per job, the time each node took, what it wrote, where it went. */
export function formatRunReport(report: FlowRunReport): string[] {
  const lines: string[] = [];
  if (report.receiveSeconds !== undefined) lines.push(`  study received and handed on as a job in ${report.receiveSeconds.toFixed(2)} s${report.input.via !== 'ingest' ? ' (includes the study timeout)' : ''}`);
  for (const job of report.jobs) {
    lines.push(`  job ${job.id}: ${job.state}, ${job.instances} instances, study ${job.studyInstanceUID}`);
    const mine = report.timings.filter((t) => t.jobId === job.id && t.type !== 'debug' && t.type !== 'catch' && t.type !== 'status');
    mine.sort((a, b) => a.startedAt - b.startedAt);
    for (const t of mine) lines.push(`    ${t.type.padEnd(24)} ${(t.name || "-").slice(0, 40).padEnd(40)} ${t.seconds.toFixed(2).padStart(7)} s${t.error ? `  error: ${t.error}` : ''}`);
    for (const d of report.deliveries.filter((x) => x.jobId === job.id)) {
      lines.push(`    ${'delivery'.padEnd(24)} ${`${d.destination} (${d.address})`.slice(0, 40).padEnd(40)} ${(d.seconds ?? 0).toFixed(2).padStart(7)} s  ${d.state}: ${d.delivered}/${d.instances} instance(s)${d.error ? `, ${d.error}` : ''}`);
    }
    for (const e of job.errors) lines.push(`    ${e.stage} error: ${e.message}`);
    const volumes = job.outputs.filter((f) => /^parser\/.*\.(nii(\.gz)?|mhd)$/.test(f));
    if (volumes.length) lines.push(`    wrote ${volumes.length} volume(s) in ${join(job.dir, 'parser')}`);
    for (const f of job.outputs.filter((x) => /^(seg|rtstruct|segmentation|render)\/.*\.(dcm|nii\.gz|nii|mhd|png)$/.test(x))) lines.push(`    wrote ${join(job.dir, f)}`);
    if (job.viewerUrl) lines.push(`    viewer ${job.viewerUrl} (while the run lasts)`);
  }
  for (const a of report.archives) lines.push(`  archive ${a.name}: ${a.instances} instance(s) in ${a.dir}`);
  const errors = report.problems.filter((p) => p.level === 'error');
  if (errors.length) lines.push(`  ${errors.length} error(s) logged by the flow; first: ${errors[0].message}`);
  for (const s of report.input.skipped.slice(0, 5)) lines.push(`  input not taken: ${s.path}: ${s.reason}`);
  if (report.input.skipped.length > 5) lines.push(`  … and ${report.input.skipped.length - 5} more input file(s) not taken`);
  return lines;
}

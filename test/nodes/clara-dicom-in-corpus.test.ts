import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { SopClass, TransferSyntax, generateUid, isValidUid } from '../../lib/dicom/uids';
import { writePhantomStudy } from '../../lib/phantom';
import { dicomFilesUnder, echoscu, runProcess, sendRawDataSet, storescu } from '../dimse/helpers';
import { type TestNode, collectMessages, helper, listeningPort, logOf, statusTexts, waitFor } from '../support/node-red';
import { allFilesUnder, runTool, scratchDir } from '../support/tools';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const claraDicomIn = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-in', 'clara-dicom-in.js')) as unknown;
const coreNodes = join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'common');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const completeNode = require(join(coreNodes, '24-complete.js')) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require(join(coreNodes, '25-catch.js')) as unknown;

/** pydicom's test files (Debian python3-pydicom): good images in every encoding, odd encodings, non-images, junk. */
const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
/** Long enough that a study sent in several storescu runs (one per transfer syntax) stays one job. */
const STUDY_TIMEOUT_S = 2;
/** CLARA_CORPUS_REPORT=1 prints what happened to each kind of file (for reports; the asserts do not need it). */
const REPORT = Boolean(process.env.CLARA_CORPUS_REPORT);

interface JobMsg {
  payload: { studyInstanceUID: string; instances: number; rejected?: number; source: string; series: unknown[] };
  job: { id: string; dir: string; studyInstanceUID: string };
  topic: string;
  skipped?: Array<{ path: string; reason: string }>;
  skippedCount?: number;
}

interface CaughtMsg {
  error: { message: string; source: { id: string } };
}

/** What dcmtk (the sender's own parser) reads in a file; absent when it cannot read it. */
interface DcmtkView {
  transferSyntaxUID?: string;
  mediaStorageSOPInstanceUID?: string;
  sopClassUID?: string;
  sopInstanceUID?: string;
  studyInstanceUID?: string;
  /** True when both SOP UIDs are proper UI elements: storescu then agrees to send the file. */
  sendable: boolean;
}

/** How storescu dealt with one file. */
type SendOutcome =
  | { kind: 'not-sent'; reason: string }
  | { kind: 'answered'; status: string }
  | { kind: 'send-failed'; reason: string };

/** The node's log line for a refused C-STORE (lib/dimse StoreScp.recordOutcome). */
interface Refusal {
  sopInstanceUID: string;
  status: number;
  reason: string;
}

/** storescu's option proposing each transfer syntax, so that every file goes out exactly as it is encoded. */
const PROPOSE: Record<string, string> = {
  [TransferSyntax.ImplicitVRLittleEndian]: '-xi',
  [TransferSyntax.ExplicitVRLittleEndian]: '-xe',
  [TransferSyntax.ExplicitVRBigEndian]: '-xb',
  [TransferSyntax.DeflatedExplicitVRLittleEndian]: '-xd',
  [TransferSyntax.JpegBaseline]: '-xy',
  [TransferSyntax.JpegExtended]: '-xx',
  [TransferSyntax.JpegLosslessSV1]: '-xs',
  [TransferSyntax.JpegLsLossless]: '-xt',
  [TransferSyntax.JpegLsNearLossless]: '-xu',
  [TransferSyntax.Jpeg2000Lossless]: '-xv',
  [TransferSyntax.Jpeg2000]: '-xw',
  [TransferSyntax.RleLossless]: '-xr',
};
const UNCOMPRESSED = new Set<string>([TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ExplicitVRBigEndian]);

/** storescu's text for the failure statuses the SCP sends (dcmtk DU_cstoreStatusString). */
const STATUS_TEXT: Record<number, RegExp> = {
  0xa700: /OutOfResources/,
  0xa900: /DataSetDoesNotMatchSOPClass/,
  0xc000: /CannotUnderstand/,
};

/**
 * One dcmdump over all files: transfer syntax and identity as dcmtk sees them. Only top-level elements
 * count (dcmdump indents the contents of sequences); UN-encoded values are decoded from their hex dump.
 * `recover` (+E) keeps what dcmdump read before a parse error, which storescu itself does not.
 */
async function dcmtkViews(files: string[], recover = false): Promise<Map<string, DcmtkView>> {
  const tags: Record<string, keyof Omit<DcmtkView, 'sendable'>> = {
    '0002,0003': 'mediaStorageSOPInstanceUID',
    '0002,0010': 'transferSyntaxUID',
    '0008,0016': 'sopClassUID',
    '0008,0018': 'sopInstanceUID',
    '0020,000d': 'studyInstanceUID',
  };
  const result = await runProcess('dcmdump', ['-q', '-M', '+L', '+F', '-Un', ...(recover ? ['+E'] : []), ...files]);
  const views = new Map<string, DcmtkView>(files.map((f) => [f, { sendable: false }]));
  const vrs = new Map<string, string>();
  let current: DcmtkView | undefined;
  let currentPath = '';
  for (const line of result.stdout.split('\n')) {
    const header = /^# dcmdump \(\d+\/\d+\): (.*)$/.exec(line);
    if (header) {
      currentPath = header[1];
      current = views.get(currentPath);
      continue;
    }
    const element = /^\((\w{4},\w{4})\) (\w\w) (.*?)\s+#/.exec(line);
    if (!current || !element || !tags[element[1]] || vrs.has(`${currentPath}|${element[1]}`)) continue;
    const [, tag, vr, raw] = element;
    let value: string | undefined;
    if (raw.startsWith('[')) value = raw.slice(1, raw.lastIndexOf(']'));
    else if (vr === 'UN' && /^[0-9a-f]{2}(\\[0-9a-f]{2})*$/.test(raw)) value = Buffer.from(raw.split('\\').join(''), 'hex').toString('latin1');
    value = value?.replace(/[\0 ]+$/, '');
    if (value) current[tags[tag]] = value;
    vrs.set(`${currentPath}|${tag}`, vr);
  }
  for (const [path, view] of views) {
    view.sendable = vrs.get(`${path}|0008,0016`) === 'UI' && vrs.get(`${path}|0008,0018`) === 'UI' && !!view.sopClassUID && !!view.sopInstanceUID;
  }
  return views;
}

/** Reads storescu -v's log (stderr, in order) into one outcome per file it was given. */
function outcomesOf(stderr: string, files: string[]): Map<string, SendOutcome> {
  const outcomes = new Map<string, SendOutcome>();
  const lines = stderr.split('\n');
  let sending: string | undefined;
  let detail = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    let m: RegExpExecArray | null;
    if ((m = /^[WE]: (.*?)(?: in)? file: (.+), ignoring file$/.exec(line))) {
      outcomes.set(m[2], { kind: 'not-sent', reason: detail ? `${m[1]} (${detail})` : m[1] });
      detail = '';
    } else if ((m = /^I: Sending file: (.+)$/.exec(line))) {
      sending = m[1];
    } else if ((m = /^I: Received Store Response \((.*)\)$/.exec(line)) && sending) {
      outcomes.set(sending, { kind: 'answered', status: m[1] });
      sending = undefined;
    } else if ((m = /^E: Store Failed, file: (.+):$/.exec(line))) {
      outcomes.set(m[1], { kind: 'send-failed', reason: (lines[i + 1] ?? '').replace(/^E: /, '') });
      sending = undefined;
    } else if ((m = /^E: (.*)$/.exec(line))) {
      detail = m[1];
    }
  }
  for (const f of files) {
    if (!outcomes.has(f)) outcomes.set(f, { kind: 'send-failed', reason: `storescu never reached it: ${lines.filter((l) => l.startsWith('E:')).slice(-2).join(' / ') || 'no error logged'}` });
  }
  return outcomes;
}

/**
 * Sends every file with storescu, one run per transfer syntax (proposing that syntax, -R: only the SOP
 * classes the files need), so compressed files go out as they are. -nh: a refused file does not stop
 * the run. The runs are sequential, so responses come in the order the files are listed.
 */
async function sendEachAsItIs(port: number, files: string[], views: Map<string, DcmtkView>): Promise<Map<string, SendOutcome>> {
  const groups = new Map<string, string[]>();
  for (const f of files) {
    const option = PROPOSE[views.get(f)?.transferSyntaxUID ?? ''] ?? '-xe';
    groups.set(option, [...(groups.get(option) ?? []), f]);
  }
  const outcomes = new Map<string, SendOutcome>();
  for (const [option, group] of groups) {
    const result = await storescu(port, group, {}, ['-R', option, '-ta', '10', '-td', '30']);
    for (const [f, outcome] of outcomesOf(result.stderr, group)) outcomes.set(f, outcome);
  }
  return outcomes;
}

/** The node's "C-STORE of … refused with 0xHHHH: reason" warnings, in order. */
function refusalsLogged(node: TestNode): Refusal[] {
  const out: Refusal[] = [];
  for (const { message } of logOf(node)) {
    const m = /^C-STORE of "(.*?)" from \S+ refused with 0x([0-9A-F]{4}): (.*)$/s.exec(message);
    if (m) out.push({ sopInstanceUID: m[1], status: parseInt(m[2], 16), reason: m[3] });
  }
  return out;
}

/** A job msg is small metadata: no pixel buffers anywhere in it, a few KB of JSON. */
function assertSmallMetadata(msg: unknown, what: string): void {
  const walk = (value: unknown, path: string): void => {
    assert.ok(!Buffer.isBuffer(value) && !ArrayBuffer.isView(value) && !(value instanceof ArrayBuffer), `${what}: binary data at ${path}`);
    if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, `${path}.${k}`);
  };
  walk(msg, 'msg');
  const size = JSON.stringify(msg).length;
  assert.ok(size < 32 * 1024, `${what}: ${size} bytes of JSON`);
}

/**
 * Nothing but job folders under the work root: <job>/job.json and <job>/dicom/<valid SOP UID>.dcm, with
 * the incoming folder empty (no temporary file left behind by a refused or failed transfer).
 */
function assertOnlyJobFiles(workRoot: string): void {
  const stray = allFilesUnder(workRoot)
    .map((p) => relative(workRoot, p))
    .filter((rel) => {
      if (/^(?!\.)[^/]+\/job\.json$/.test(rel)) return false;
      const m = /^(?!\.)[^/]+\/dicom\/([^/]+)\.dcm$/.exec(rel);
      return !(m && isValidUid(m[1]));
    });
  assert.deepEqual(stray, [], 'files in the work root that are not job files');
  assert.deepEqual(readdirSync(join(workRoot, '.incoming')), []);
}

function digestOf(files: string[]): Map<string, string> {
  return new Map(files.map((f) => [f, `${createHash('sha256').update(readFileSync(f)).digest('hex')}:${statSync(f).size}:${statSync(f).mtimeMs}`]));
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function countBy<T>(items: T[], key: (item: T) => string): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of items) out.set(key(item), (out.get(key(item)) ?? 0) + 1);
  return out;
}

/** The data set part of a file: what a sender puts on the wire (the Part 10 preamble and group 0002 dropped). */
function datasetBytesOf(path: string): Buffer {
  const bytes = readFileSync(path);
  if (bytes.length < 132 || bytes.toString('latin1', 128, 132) !== 'DICM') return bytes;
  let pos = 132;
  while (pos + 8 <= bytes.length && bytes.readUInt16LE(pos) === 0x0002) {
    const vr = bytes.toString('latin1', pos + 4, pos + 6);
    pos += ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr) ? 12 + bytes.readUInt32LE(pos + 8) : 8 + bytes.readUInt16LE(pos + 6);
  }
  return bytes.subarray(Math.min(pos, bytes.length));
}

describe('clara-dicom-in with pydicom\'s test corpus: nothing crashes, every file stored or refused with a reason', function () {
  this.timeout(180000);
  const scratch = scratchDir('node-in-corpus');
  let corpusFiles: string[];
  let views: Map<string, DcmtkView>;
  /** Copies of corpus files given odd SOP Instance UIDs, in their own folder. */
  const oddDir = join(scratch.dir, 'odd');
  let oddFiles: string[];
  let oddViews: Map<string, DcmtkView>;
  let flowCounter = 0;

  before(async () => {
    assert.ok(existsSync(CORPUS), `pydicom's test files are missing at ${CORPUS} (install python3-pydicom)`);
    corpusFiles = allFilesUnder(CORPUS);
    assert.ok(corpusFiles.length > 100, `only ${corpusFiles.length} files in ${CORPUS}`);
    assert.ok(corpusFiles.some((f) => f.includes('/dicomdirtests/')), 'the corpus subfolders are walked');
    views = await dcmtkViews(corpusFiles);

    // The corpus itself has no invalid SOP Instance UID (checked here), so odd ones are put into copies of
    // corpus files (an image, a JPEG-LS image, a non-image) with dcmodify.
    const corpusUids = corpusFiles.map((f) => views.get(f)!).filter((v) => v.sendable).map((v) => v.sopInstanceUID!);
    assert.deepEqual(corpusUids.filter((u) => !isValidUid(u)), []);
    const oddUids = [
      '../../../escaped',
      '/escaped-absolute',
      '1.2.3/../../4',
      `1.2.826.0.1.3680043.10.${'9'.repeat(48)}`, // 72 characters
      '1.2.03.4',
      '1..2.3',
      '1.2.3.abc',
    ];
    const sources = ['CT_small.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'rtplan.dcm'].map((n) => join(CORPUS, n));
    mkdirSync(oddDir, { recursive: true });
    oddFiles = oddUids.map((uid, i) => {
      const path = join(oddDir, `odd-${i}.dcm`);
      copyFileSync(sources[i % sources.length], path);
      runTool('dcmodify', ['-nb', '-q', '-m', `(0008,0018)=${uid}`, path]);
      return path;
    });
    oddViews = await dcmtkViews(oddFiles);
    oddFiles.forEach((f, i) => assert.equal(oddViews.get(f)!.sopInstanceUID, oddUids[i], `dcmodify wrote ${f}`));
  });
  afterEach(async () => {
    await helper.unload();
  });
  after(() => scratch.cleanup());

  function flow(workRoot: string): Array<Record<string, unknown>> {
    return [
      { id: 'tab', type: 'tab', label: 'corpus' },
      {
        id: 'in', z: 'tab', type: 'clara-dicom-in', name: `corpus ${++flowCounter}`, aeTitle: 'CLARA', port: 0, host: '127.0.0.1', allow: '', studyTimeout: STUDY_TIMEOUT_S,
        grouping: 'study', workRoot, maxPdu: 65536, wires: [['out']],
      },
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'when-done', z: 'tab', type: 'complete', scope: ['in'], wires: [['completed']] },
      { id: 'completed', z: 'tab', type: 'helper' },
      { id: 'when-failed', z: 'tab', type: 'catch', scope: ['in'], uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ];
  }

  async function load(workRoot: string): Promise<{ node: TestNode; msgs: JobMsg[]; port: number }> {
    await helper.load([claraDicomIn, completeNode, catchNode], flow(workRoot));
    const node = helper.getNode('in');
    const msgs = collectMessages<JobMsg>(helper.getNode('out'));
    return { node, msgs, port: await listeningPort(node) };
  }

  /** Waits until `count` job msgs have come and the study timeout has passed once more without another. */
  async function settledJobs(msgs: JobMsg[], count: number): Promise<void> {
    await waitFor(() => (msgs.length >= count ? true : undefined), (STUDY_TIMEOUT_S + 15) * 1000, `${count} job msg(s), have ${msgs.length}`);
    await new Promise((resolve) => setTimeout(resolve, STUDY_TIMEOUT_S * 1000 + 500));
  }

  it('C-STORE: every file storescu sends is stored under its SOP UID or refused with a logged reason; the runtime lives on', async () => {
    const workRoot = join(scratch.dir, 'work-dimse');
    const { node, msgs, port } = await load(workRoot);
    // The corpus, plus the odd-UID copies so that refusals are mixed in among the successes.
    const files = [...corpusFiles, ...oddFiles];
    const allViews = new Map([...views, ...oddViews]);
    const outcomes = await sendEachAsItIs(port, files, allViews);

    // Every file is accounted for by the sender: not sent (with storescu's reason), or answered.
    assert.equal(outcomes.size, files.length);
    const sendFailed = [...outcomes].filter(([, o]) => o.kind === 'send-failed');
    assert.deepEqual(sendFailed, [], 'storescu could not send these as they are');
    const notSent = [...outcomes].filter(([, o]) => o.kind === 'not-sent') as Array<[string, { kind: 'not-sent'; reason: string }]>;
    // In the order storescu sent them (one run per transfer syntax), which is the order of the node's log.
    const answered = [...outcomes].filter(([, o]) => o.kind === 'answered').map(([f]) => f);
    const statusOf = (f: string) => (outcomes.get(f) as { status: string }).status;
    const stored = answered.filter((f) => statusOf(f) === 'Success');
    const refused = answered.filter((f) => statusOf(f) !== 'Success');
    assert.equal(notSent.length + answered.length, files.length);
    assert.ok(stored.length >= 100, `only ${stored.length} of ${corpusFiles.length} corpus files were stored`);
    for (const [path, o] of notSent) assert.ok(o.reason.length > 0, `${path}: no reason`);
    // storescu refuses exactly the files in which dcmtk finds no SOP Class and Instance UID.
    assert.deepEqual(notSent.map(([p]) => p).sort(), files.filter((f) => !allViews.get(f)!.sendable).sort());
    for (const f of oddFiles) assert.equal(statusOf(f), 'Error: DataSetDoesNotMatchSOPClass', f);

    // Each refusal the sender saw was logged by the node, in the same order, with the same status and a reason.
    const refusals = refusalsLogged(node);
    assert.equal(refusals.length, refused.length, `refusals logged ${JSON.stringify(refusals)} vs answered ${JSON.stringify(refused.map(statusOf))}`);
    refused.forEach((f, i) => {
      const logged = refusals[i];
      assert.ok(allViews.get(f)!.sopInstanceUID!.startsWith(logged.sopInstanceUID.slice(0, 60)), `${f}: refusal logged for ${logged.sopInstanceUID}`);
      const expectedText = STATUS_TEXT[logged.status];
      if (expectedText) assert.match(statusOf(f), expectedText, f);
      assert.ok(logged.reason.length > 10, `${f}: reason ${JSON.stringify(logged.reason)}`);
    });

    // The job msgs name every study stored, and its jobs hold exactly the SOP instances of that study
    // that were stored. (Normally one job per study; a machine slow enough to pause longer than the study
    // timeout between two storescu runs splits a study in two jobs, which is correct behaviour.)
    const expectedByStudy = new Map<string, Set<string>>();
    for (const f of stored) {
      const view = allViews.get(f)!;
      assert.ok(view.studyInstanceUID, `${f} was stored but dcmtk sees no StudyInstanceUID`);
      expectedByStudy.set(view.studyInstanceUID, (expectedByStudy.get(view.studyInstanceUID) ?? new Set()).add(view.sopInstanceUID!));
    }
    await settledJobs(msgs, expectedByStudy.size);
    assert.deepEqual([...new Set(msgs.map((m) => m.topic))].sort(), [...expectedByStudy.keys()].sort());
    const onDiskByStudy = new Map<string, Set<string>>();
    for (const msg of msgs) {
      assertSmallMetadata(msg, `job msg of ${msg.topic}`);
      assert.equal(msg.payload.source, 'dimse');
      const onDisk = readdirSync(join(msg.job.dir, 'dicom')).map((n) => n.replace(/\.dcm$/, ''));
      assert.equal(msg.payload.instances, onDisk.length, msg.job.dir);
      for (const uid of onDisk) onDiskByStudy.set(msg.topic, (onDiskByStudy.get(msg.topic) ?? new Set()).add(uid));
    }
    for (const [study, expected] of expectedByStudy) assert.deepEqual([...onDiskByStudy.get(study)!].sort(), [...expected].sort(), `jobs of study ${study}`);
    // The node counts every success (a repeated SOP instance replaces the file and is counted each time).
    const counted = await waitFor(() => {
      const m = /· (\d+) job\(s\), (\d+) instance\(s\)$/.exec(statusTexts(node).at(-1) ?? '');
      return m && Number(m[1]) === msgs.length ? Number(m[2]) : undefined;
    }, 5000, `a status with ${msgs.length} jobs; have ${statusTexts(node).at(-1)}`);
    assert.equal(counted, stored.length);

    // The stored files are the instances sent: SOP UID inside = file name; compressed ones kept their syntax.
    const jobFiles = msgs.flatMap((m) => dicomFilesUnder(join(m.job.dir, 'dicom')));
    const storedViews = await dcmtkViews(jobFiles);
    for (const f of jobFiles) assert.equal(`${storedViews.get(f)!.sopInstanceUID}.dcm`, f.split('/').pop(), f);
    const sopCount = countBy(stored, (f) => allViews.get(f)!.sopInstanceUID!);
    const isCompressed = (ts: string | undefined) => ts !== undefined && !UNCOMPRESSED.has(ts);
    const uniqueCompressed = stored.filter((f) => sopCount.get(allViews.get(f)!.sopInstanceUID!) === 1 && isCompressed(allViews.get(f)!.transferSyntaxUID));
    assert.ok(uniqueCompressed.length >= 10, `only ${uniqueCompressed.length} compressed files to compare`);
    for (const f of uniqueCompressed) {
      const view = allViews.get(f)!;
      const copy = jobFiles.find((j) => j.endsWith(`/${view.sopInstanceUID}.dcm`))!;
      assert.equal(storedViews.get(copy)!.transferSyntaxUID, view.transferSyntaxUID, `${f} was not stored as sent`);
    }
    assertOnlyJobFiles(workRoot);

    // Still alive: C-ECHO is answered, and a good study is stored and becomes its job msg.
    const echo = await echoscu(port);
    assert.equal(echo.code, 0, echo.stderr);
    const phantom = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 16, slices: 8, seed: 31 });
    const phantomFiles = dicomFilesUnder(join(scratch.dir, 'phantom', 'dicom'));
    const before = msgs.length;
    const result = await storescu(port, phantomFiles);
    assert.equal(result.code, 0, result.stderr);
    await settledJobs(msgs, before + 1);
    assert.equal(msgs.length, before + 1);
    const last = msgs[msgs.length - 1];
    assert.equal(last.topic, phantom.studyInstanceUID);
    assert.equal(last.payload.instances, phantomFiles.length);
    assertSmallMetadata(last, 'phantom job msg');

    if (REPORT) {
      console.log(`      storescu: ${answered.length} sent, ${notSent.length} not sent; stored ${stored.length} (${jobFiles.length} distinct instances of ${expectedByStudy.size} studies in ${msgs.length - 1} jobs), refused ${refused.length}`);
      for (const [reason, n] of countBy(notSent, ([, o]) => o.reason)) console.log(`        not sent ×${n}: ${reason}`);
      for (const [path, o] of notSent) console.log(`          ${relative(CORPUS, path)}: ${o.reason}`);
      for (const [reason, n] of countBy(refusals, (r) => `0x${r.status.toString(16)} ${r.reason}`)) console.log(`        refused ×${n}: ${reason}`);
    }
  });

  it('C-STORE: the files storescu will not send, pushed raw by another SCU, are each refused with a reason and never stored', async () => {
    const workRoot = join(scratch.dir, 'work-raw');
    const { node, msgs, port } = await load(workRoot);
    const unsendable = corpusFiles.filter((f) => !views.get(f)!.sendable);
    assert.ok(unsendable.length >= 10, `only ${unsendable.length} files dcmtk will not send`);
    const statuses: number[] = [];
    for (const f of unsendable) {
      const identity = { sopClassUID: views.get(f)!.sopClassUID ?? SopClass.SecondaryCaptureImageStorage, sopInstanceUID: generateUid() };
      const status = await sendRawDataSet(port, identity, datasetBytesOf(f));
      assert.notEqual(status, 'no response', `${f}: no C-STORE response`);
      assert.notEqual(status, 0, `${f} was stored`);
      statuses.push(status as number);
    }
    const refusals = refusalsLogged(node);
    assert.equal(refusals.length, unsendable.length);
    refusals.forEach((r, i) => {
      assert.equal(r.status, statuses[i], unsendable[i]);
      assert.ok(r.reason.length > 10, `${unsendable[i]}: reason ${JSON.stringify(r.reason)}`);
    });
    // A refusal alone makes no job.
    await new Promise((resolve) => setTimeout(resolve, STUDY_TIMEOUT_S * 1000 + 500));
    assert.equal(msgs.length, 0);
    assertOnlyJobFiles(workRoot);
    assert.equal((await echoscu(port)).code, 0);
    if (REPORT) {
      console.log(`      raw push of ${unsendable.length} files: ${[...countBy(statuses, (s) => `0x${s.toString(16)}`)].map(([s, n]) => `${s} ×${n}`).join(', ')}`);
      for (const [reason, n] of countBy(refusals, (r) => r.reason.replace(/[0-9.]{20,}/g, '<uid>'))) console.log(`        ×${n}: ${reason}`);
    }
  });

  it('C-STORE and folder ingest: corpus instances given odd SOP Instance UIDs are refused (0xA900 / skipped) and nothing is written outside the jobs', async () => {
    const workRoot = join(scratch.dir, 'work-odd');
    const before = new Set(allFilesUnder(scratch.dir));
    const { node, msgs, port } = await load(workRoot);
    const caughtMsgs = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const outcomes = await sendEachAsItIs(port, oddFiles, oddViews);
    for (const f of oddFiles) assert.deepEqual(outcomes.get(f), { kind: 'answered', status: 'Error: DataSetDoesNotMatchSOPClass' }, f);
    const refusals = refusalsLogged(node);
    assert.equal(refusals.length, oddFiles.length);
    for (const r of refusals) {
      assert.equal(r.status, 0xa900);
      // The reason states the rule, which "1.2.03.4" (digits and dots, yet invalid) also breaks.
      assert.match(r.reason, /invalid SOP Instance UID .*: a UID is numbers joined by single dots, without leading zeros, at most 64 characters$/);
    }
    assert.ok(refusals.some((r) => r.sopInstanceUID === '1.2.03.4'));

    // The same files as a folder: every one skipped with the reason, so no job and an error for a catch node.
    node.receive({ payload: oddDir });
    const caught = await waitFor(() => caughtMsgs.at(0), 10000, 'the folder error');
    assert.match(caught.error.message, /no DICOM instances/);
    const skippedWarning = logOf(node).find((l) => /skipped/.test(l.message));
    assert.ok(skippedWarning, 'the skipped files are logged');
    assert.match(skippedWarning.message, new RegExp(`${oddFiles.length} of ${oddFiles.length} file\\(s\\)`));
    assert.match(skippedWarning.message, /invalid SOP Instance UID/);

    await new Promise((resolve) => setTimeout(resolve, STUDY_TIMEOUT_S * 1000 + 500));
    assert.equal(msgs.length, 0, 'refused instances make no job');
    // Nothing new anywhere in the scratch folder except the (empty) work root.
    const added = allFilesUnder(scratch.dir).filter((p) => !before.has(p) && !p.startsWith(workRoot + '/'));
    assert.deepEqual(added, []);
    assertOnlyJobFiles(workRoot);
    assert.deepEqual(readdirSync(workRoot).filter((n) => n !== '.incoming'), [], 'no job folder');
    assert.equal((await echoscu(port)).code, 0);
  });

  it('folder ingest (msg.payload = the corpus folder): every file is copied into a job or skipped with a reason; the corpus is unchanged', async () => {
    const workRoot = join(scratch.dir, 'work-folder');
    const corpusBefore = digestOf(corpusFiles);
    const { node, msgs, port } = await load(workRoot);
    const completed = collectMessages<JobMsg>(helper.getNode('completed'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    node.receive({ payload: CORPUS, topic: 'corpus' });
    await waitFor(() => (completed.length > 0 || caught.length > 0 ? true : undefined), 60000, 'the folder ingest to finish');
    assert.deepEqual(caught.map((c) => c.error.message), []);
    assert.ok(msgs.length > 0);

    // The skipped list: complete (not cut at 100), the same in every msg, each with a reason.
    const skipped = msgs[0].skipped ?? [];
    assert.equal(msgs[0].skippedCount ?? 0, skipped.length);
    for (const msg of msgs) {
      assertSmallMetadata(msg, `folder job msg of ${msg.topic}`);
      assert.equal(msg.payload.source, 'folder');
      assert.deepEqual(msg.skipped ?? [], skipped);
    }
    const corpusSet = new Set(corpusFiles);
    for (const s of skipped) {
      assert.ok(corpusSet.has(s.path), `skipped ${s.path} is not a corpus file`);
      assert.ok(s.reason.length > 10, `${s.path}: reason ${JSON.stringify(s.reason)}`);
    }
    assert.equal(new Set(skipped.map((s) => s.path)).size, skipped.length, 'a file skipped twice');
    const skippedSet = new Set(skipped.map((s) => s.path));
    const copied = corpusFiles.filter((f) => !skippedSet.has(f));
    assert.ok(copied.length >= 100, `only ${copied.length} corpus files copied`);

    // Every job file is a byte-for-byte copy of a corpus file; every copied corpus file is in a job, or was
    // replaced there by a later file with the same SOP Instance UID (the same instance, stored once).
    const jobFiles = msgs.flatMap((m) => dicomFilesUnder(join(m.job.dir, 'dicom')));
    assert.equal(msgs.reduce((n, m) => n + m.payload.instances, 0), jobFiles.length);
    for (const msg of msgs) assert.equal(msg.payload.instances, readdirSync(join(msg.job.dir, 'dicom')).length, msg.job.dir);
    const jobFileByHash = new Map(jobFiles.map((j) => [sha256(j), j]));
    const copiedHashes = new Map(copied.map((f) => [f, sha256(f)]));
    for (const j of jobFiles) assert.ok([...copiedHashes.values()].includes(sha256(j)), `${j} is not a copy of a corpus file`);
    // The SOP Instance UID as dcmtk reads it, else as the file meta names it (a file dcmtk cannot parse).
    const recovered = await dcmtkViews(copied, true);
    const uidOf = (f: string) => views.get(f)!.sopInstanceUID ?? recovered.get(f)!.mediaStorageSOPInstanceUID;
    let replaced = 0;
    for (const f of copied) {
      if (jobFileByHash.has(copiedHashes.get(f)!)) continue;
      const uid = uidOf(f);
      assert.ok(uid, `${f} was neither skipped nor found in a job`);
      const holder = jobFiles.find((j) => j.endsWith(`/${uid}.dcm`));
      assert.ok(holder, `${f} (SOP ${uid}) was neither skipped nor found in a job`);
      const replacement = copied.find((c) => c !== f && copiedHashes.get(c) === sha256(holder));
      assert.ok(replacement && uidOf(replacement) === uid, `${f} replaced by a file of another instance`);
      replaced++;
    }

    // The user's folder is exactly as it was, and nothing landed outside the jobs.
    assert.deepEqual(digestOf(allFilesUnder(CORPUS)), corpusBefore);
    assertOnlyJobFiles(workRoot);
    assert.equal((await echoscu(port)).code, 0);
    if (REPORT) {
      console.log(`      folder ingest: ${corpusFiles.length} files: ${copied.length} copied (${jobFiles.length} distinct instances in ${msgs.length} jobs, ${replaced} replaced by a later file of the same SOP instance), ${skipped.length} skipped`);
      for (const s of skipped) console.log(`        ${relative(CORPUS, s.path)}: ${s.reason}`);
    }
  });
});

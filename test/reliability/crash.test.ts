import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseDicom, readDicomHeader } from '../../lib/dicom/reader';
import { Tag } from '../../lib/dicom/tags';
import { type OutboxTask, loadTask } from '../../lib/dimse/outbox';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { type JobRecord, readJob } from '../../lib/job';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import { dicomFilesUnder } from '../dimse/helpers';
import { type StorescpPeer, startStorescp } from '../dimse/storescp';
import { seedSelectionRulesBase64 } from '../support/clara';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { allFilesUnder, delay, hasTool, scratchDir } from '../support/tools';
import { type Outgoing, incomingLeftovers, jobsUnder, sendAll, waitForEcho } from './support';

/**
 * The whole pipeline (clara-dicom-in → parser → selector → embedded inference → SEG writer → clara-scu-out)
 * in a real red.js process, killed with SIGKILL at four points and started again on the same user
 * directory and work root each time.
 */
function pipelineFlow(dicomPort: number, pacsPort: number, workRoot: string): unknown[] {
  const z = 'crash-tab';
  return [
    { id: z, type: 'tab', label: 'crash safety' },
    { id: 'in', z, type: 'clara-dicom-in', aeTitle: 'CLARA', port: dicomPort, host: '127.0.0.1', allow: '', acceptAnyCalledAE: false, studyTimeout: 1, grouping: 'study', workRoot, maxPdu: 65536, wires: [['parse']] },
    { id: 'parse', z, type: 'clara-dicom-parser', format: 'nifti-gz', spacingPolicy: 'warn', wires: [['select']] },
    { id: 'select', z, type: 'clara-series-selector', rulesType: 'base64', rules: seedSelectionRulesBase64(), allMatched: false, sortBySopInstanceCount: false, wires: [['infer'], []] },
    {
      id: 'infer', z, type: 'clara-triton-infer', server: 'triton-embedded', preset: 'demo', model: 'brain-tumor-tc', version: '', inputName: 'image', outputName: 'logits', channels: '', layout: 'NCZYX',
      orientRas: true, spacing: '2,2,2', cropForeground: true, cropMargin: 4, normalization: 'zscore-nonzero', aMin: '', aMax: '', bMin: '', bMax: '', clip: true, roi: '64,64,64', overlap: 0.25,
      swBatchSize: 4, blend: 'constant', padValue: '', activation: 'sigmoid', decision: 'threshold', threshold: 0.5, labels: '1', paintOrder: '', keepLargest: false, fillHoles: false, format: 'nifti-gz', wires: [['seg']],
    },
    { id: 'seg', z, type: 'clara-seg-writer', labels: '["Tumor-seg"]', wires: [['scu'], []] },
    { id: 'scu', z, type: 'clara-scu-out', destination: 'dest-pacs', destinations: '', folders: 'seg', workRoot, maxAttempts: 100, backoff: 0.5, maxBackoff: 1, concurrency: 1, wires: [[], []] },
    { id: 'triton-embedded', type: 'clara-triton-server', name: 'embedded', mode: 'embedded', repository: '', protocol: 'grpc', host: '127.0.0.1', port: 8001, deadline: 120, maxMessageMb: 256, retries: 3, threads: 0, executionProvider: 'cpu' },
    { id: 'dest-pacs', type: 'clara-dicom-destination', name: 'PACS', calledAE: 'PACS', host: '127.0.0.1', port: pacsPort, callingAE: 'ClaraSCU', maxPdu: 65536, connectTimeout: 2, pduTimeout: 10 },
  ];
}

function outgoingOf(file: string): Outgoing {
  const bytes = readFileSync(file);
  const parsed = parseDicom(bytes, { complete: true, stopAtPixelData: true, fileSize: bytes.length });
  return { sopClassUID: parsed.dataset.string(Tag.SOPClassUID)!, sopInstanceUID: parsed.dataset.string(Tag.SOPInstanceUID)!, transferSyntaxUID: parsed.transferSyntaxUID, dataset: bytes.subarray(parsed.datasetOffset) };
}

describe('reliability: kill -9 of Node-RED in the middle of ingest, parse, inference and send', function () {
  this.timeout(600000);
  before(() => assert.ok(hasTool('storescp'), 'dcmtk (Debian) is needed: .ci/run installs it'));
  const scratch = scratchDir('crash');
  const userDir = join(scratch.dir, 'node-red');
  const workRoot = join(scratch.dir, 'jobs');
  let dicomPort: number;
  let pacsPort: number;
  let red: HeadlessRed | undefined;
  let pacs: StorescpPeer | undefined;
  const studies: PhantomStudy[] = [];
  const figures: string[] = [];

  const jobOf = (study: PhantomStudy): { dir: string; record: JobRecord } | undefined => jobsUnder(workRoot).find((j) => j.record.studyInstanceUID === study.studyInstanceUID);
  const itemsOf = (k: number) => dicomFilesUnder(join(scratch.dir, `study-${k}`, 'dicom')).map(outgoingOf);
  /** SEG instances the PACS stored for a study (by file), and every reception it logged. */
  const segsAtPacs = (study: PhantomStudy) => (pacs ? allFilesUnder(pacs.dir) : []).filter((f) => readDicomHeader(f).dataset.string(Tag.StudyInstanceUID) === study.studyInstanceUID);

  async function start(): Promise<void> {
    red = await startHeadlessRed(userDir, pipelineFlow(dicomPort, pacsPort, workRoot));
    await waitForEcho(dicomPort, 30000);
  }
  async function kill(): Promise<void> {
    await red!.kill();
    red = undefined;
  }
  async function until<T>(what: string, check: () => T | undefined, timeoutMs = 120000, pollMs = 5): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let value: T | undefined;
      try {
        value = check();
      } catch {
        // a job.json being replaced at this moment
      }
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; Node-RED said:\n${red?.log().slice(-4000)}`);
      await delay(pollMs);
    }
  }
  const stateOf = (study: PhantomStudy) => jobOf(study)?.record.state;

  before(async () => {
    dicomPort = await freeLoopbackPort();
    pacsPort = await freeLoopbackPort();
    for (let k = 0; k < 4; k++) studies.push(writePhantomStudy(join(scratch.dir, `study-${k}`), { size: 64, slices: 32, seed: 40 + k }));
    pacs = await startStorescp(pacsPort, join(scratch.dir, 'pacs'), { aet: 'PACS' });
    await start();
  });
  after(async () => {
    await red?.kill();
    await pacs?.stop();
    console.log(`      [reliability] crash safety: ${figures.join('; ')}`);
    scratch.cleanup();
  });

  it('mid-ingest: no partial file is ever an instance; after the restart the job resumes and the study completes as one job', async () => {
    const study = studies[0];
    const items = itemsOf(0);
    const sending = sendAll(dicomPort, items, { perAssociation: 100000, pauseMs: 20 }).catch((err: Error) => err);
    await until('some instances stored', () => ((jobOf(study) && readdirSync(join(jobOf(study)!.dir, 'dicom')).length >= 10) ? true : undefined));
    await kill();
    await sending;
    const before = readdirSync(join(jobOf(study)!.dir, 'dicom'));
    assert.ok(before.length < items.length, 'killed before the study was all there');
    assert.equal(jobOf(study)!.record.state, 'receiving');
    // What a crash leaves on disk: whole instances only, each parsing to its last byte.
    for (const name of before) {
      const bytes = readFileSync(join(jobOf(study)!.dir, 'dicom', name));
      assert.ok(name.endsWith('.dcm'), `${name} in dicom/`);
      parseDicom(bytes, { complete: true, fileSize: bytes.length });
    }
    await start();
    assert.deepEqual(incomingLeftovers(workRoot), [], 'temporary files of the dead process removed at the restart');
    // The sender tries again: everything is stored, into the same job.
    const again = await sendAll(dicomPort, items);
    assert.ok(again.results.every((r) => r.status?.status === 0));
    const seg = await until('the SEG of the resumed study at the PACS', () => (segsAtPacs(study).length > 0 ? segsAtPacs(study) : undefined), 300000, 200);
    assert.equal(seg.length, 1);
    const jobs = jobsUnder(workRoot).filter((j) => j.record.studyInstanceUID === study.studyInstanceUID);
    assert.equal(jobs.length, 1, 'one job for the study');
    assert.equal(readdirSync(join(jobs[0].dir, 'dicom')).length, items.length);
    figures.push(`ingest: killed with ${before.length}/${items.length} stored, resumed, ${items.length} in 1 job, 0 partial files`);
  });

  it('mid-parse: after the restart the job is marked failed with the reason', async () => {
    const study = studies[1];
    await sendAll(dicomPort, itemsOf(1));
    await until('the job to be parsing', () => (stateOf(study) === 'parsing' ? true : undefined), 120000, 2);
    await kill();
    await start();
    const record = readJob(jobOf(study)!.dir);
    assert.equal(record.state, 'failed');
    assert.match(record.errors.map((e) => e.message).join('\n'), /interrupted: .*"parsing"/);
    assert.match(red!.log(), /marked failed: interrupted/);
    figures.push('parse: killed while parsing, job failed with the reason at restart');
  });

  it('mid-inference: after the restart the job is marked failed with the reason', async () => {
    const study = studies[2];
    await sendAll(dicomPort, itemsOf(2));
    await until('the job to be inferring', () => (stateOf(study) === 'inferring' ? true : undefined), 180000, 5);
    await kill();
    await start();
    const record = readJob(jobOf(study)!.dir);
    assert.equal(record.state, 'failed');
    assert.match(record.errors.map((e) => e.message).join('\n'), /interrupted: .*"inferring"/);
    figures.push('inference: killed while inferring, job failed with the reason at restart');
  });

  it('mid-send: the outbox resumes after the restart and nothing is delivered twice', async () => {
    const study = studies[3];
    await pacs!.stop();
    const receptionsBefore = pacs!.receptions();
    await sendAll(dicomPort, itemsOf(3));
    const outbox = () => join(jobOf(study)!.dir, 'outbox');
    const task = () => (existsSync(outbox()) ? readdirSync(outbox()).filter((n) => n.endsWith('.json')).map((n) => loadTask(join(outbox(), n))) : []);
    const pending = await until('a send that was tried and is pending', () => task().find((t: OutboxTask) => t.state === 'pending' && t.attempts >= 1), 300000, 50);
    assert.ok(pending.lastError);
    await kill();
    pacs = await startStorescp(pacsPort, join(scratch.dir, 'pacs'), { aet: 'PACS' });
    await start();
    const done = await until('the resumed send', () => task().find((t) => t.state === 'succeeded' || t.state === 'failed'), 120000, 100);
    assert.equal(done.state, 'succeeded', done.lastError);
    await delay(500);
    assert.equal(segsAtPacs(study).length, 1);
    assert.equal(pacs!.receptions(), 1, 'the SEG was received once; nothing earlier was sent again after the restarts');
    assert.equal(segsAtPacs(studies[0]).length, 1);
    figures.push(`send: killed with the send pending, resumed after restart, ${pacs!.receptions()} reception(s) for 1 SEG (before: ${receptionsBefore}), 0 duplicates`);
  });
});

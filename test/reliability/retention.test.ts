import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateUid } from '../../lib/dicom/uids';
import { type DestinationAddress, Outbox, type OutboxTask } from '../../lib/dimse/outbox';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { type JobRef, type JobState, JobStore, readJob, writeJob } from '../../lib/job';
import { applyRetention, folderBytes } from '../../lib/job/retention';
import { writePhantomStudy } from '../../lib/phantom';
import { dicomFilesUnder, nextEvent, storescu } from '../dimse/helpers';
import { startStorescp, writeMrSeries } from '../dimse/storescp';
import { callsOn, collectMessages, helper, listeningPort, logOf, waitFor } from '../support/node-red';
import { hasTool, scratchDir } from '../support/tools';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const claraDicomIn = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-in', 'clara-dicom-in.js')) as unknown;

const HOUR = 3600 * 1000;
const MB = 1024 * 1024;

/** A job folder in `state`, holding about `mb` MB of instance bytes (age() sets how long it has been idle). */
function makeJob(store: JobStore, state: JobState, mb = 0.25): JobRef {
  const record = store.create({ studyInstanceUID: generateUid(), state });
  const ref = store.ref(record);
  writeFileSync(join(ref.dir, 'dicom', `${generateUid()}.dcm`), Buffer.alloc(Math.round(mb * MB), 1));
  return ref;
}

/** Sets a job's last activity (job.json updatedAt), as if nothing had touched it for `idleHours`. */
function age(ref: JobRef, idleHours: number, now = Date.now()): void {
  const at = new Date(now - idleHours * HOUR).toISOString();
  writeJob(ref.dir, { ...readJob(ref.dir), createdAt: at, updatedAt: at });
}

const destination = (port: number): DestinationAddress => ({ name: 'PACS', calledAE: 'PACS', host: '127.0.0.1', port, callingAE: 'ClaraSCU', connectTimeoutMs: 2000, pduTimeoutMs: 5000 });

/** Queues a real outbox task for the job's result files and waits for it to be `until` (then closes the outbox). */
async function queueTask(ref: JobRef, port: number, until: (task: OutboxTask) => boolean): Promise<OutboxTask> {
  const files = writeMrSeries(join(ref.dir, 'seg'), 2).files;
  const outbox = new Outbox({ maxAttempts: 50, backoffMs: 60000, maxBackoffMs: 60000 });
  try {
    const reached = nextEvent<OutboxTask>(outbox, 'update', 30000, until);
    outbox.enqueue({ jobDir: ref.dir, files, destination: destination(port) });
    return await reached;
  } finally {
    await outbox.close();
  }
}

describe('reliability: job retention (lib/job/retention and clara-dicom-in)', function () {
  this.timeout(120000);
  const scratch = scratchDir('retention');
  let rootCounter = 0;
  let deadPort: number;
  let pacs: Awaited<ReturnType<typeof startStorescp>>;
  let refusingPacs: Awaited<ReturnType<typeof startStorescp>>;

  before(async () => {
    assert.ok(hasTool('storescp') && hasTool('storescu'), 'dcmtk (Debian) is needed: .ci/run installs it');
    deadPort = await freeLoopbackPort();
    pacs = await startStorescp(await freeLoopbackPort(), join(scratch.dir, 'pacs'));
    refusingPacs = await startStorescp(await freeLoopbackPort(), join(scratch.dir, 'refusing'), { extra: ['--refuse'] });
  });
  afterEach(() => helper.unload());
  after(async () => {
    await pacs?.stop();
    await refusingPacs?.stop();
    scratch.cleanup();
  });

  const newStore = () => new JobStore(join(scratch.dir, `root-${++rootCounter}`));

  /** One job of every kind, all idle for two days, with real outbox tasks (pending, delivered, given up). */
  async function everyKind(store: JobStore): Promise<Record<string, JobRef>> {
    const jobs: Record<string, JobRef> = {};
    for (const state of ['receiving', 'parsing', 'inferring', 'writing', 'sending', 'received', 'parsed', 'inferred', 'done', 'failed', 'no-match', 'no-findings'] as JobState[]) {
      jobs[state] = makeJob(store, state);
    }
    jobs.undelivered = makeJob(store, 'rtstruct-written');
    await queueTask(jobs.undelivered, deadPort, (t) => t.state === 'pending' && t.attempts >= 1);
    jobs.delivered = makeJob(store, 'rtstruct-written');
    await queueTask(jobs.delivered, pacs.port, (t) => t.state === 'succeeded');
    jobs.givenUp = makeJob(store, 'seg-written');
    await queueTask(jobs.givenUp, refusingPacs.port, (t) => t.state === 'failed');
    for (const ref of Object.values(jobs)) age(ref, 48);
    return jobs;
  }

  const present = (jobs: Record<string, JobRef>) => Object.entries(jobs).filter(([, ref]) => existsSync(ref.dir)).map(([kind]) => kind).sort();

  it('by age: removes jobs idle past the limit, never a running one or one with an undelivered result', async () => {
    const store = newStore();
    const jobs = await everyKind(store);
    jobs.recent = makeJob(store, 'done');
    age(jobs.recent, 1);
    const report = await applyRetention(store.root, { maxAgeHours: 24 });
    assert.deepEqual(present(jobs), ['inferring', 'parsing', 'receiving', 'recent', 'sending', 'undelivered', 'writing']);
    assert.deepEqual(report.removed.map((r) => r.reason), report.removed.map(() => 'age'));
    assert.equal(report.removed.length, 9);
    assert.deepEqual(report.kept.filter((k) => k.protectedBy === 'undelivered').map((k) => k.id), [jobs.undelivered.id]);
    assert.equal(report.kept.filter((k) => k.protectedBy === 'running').length, 5);
    assert.equal(report.errors.length, 0);
    assert.equal(report.freedBytes, report.removed.reduce((n, r) => n + r.bytes, 0));
    assert.ok(report.removed.every((r) => r.bytes >= 0.25 * MB), 'each removal counts its folder');
    // The undelivered job's task is untouched: a later outbox still finds it pending.
    assert.ok(existsSync(join(jobs.undelivered.dir, 'outbox')));
    // A second run finds nothing more to do.
    assert.equal((await applyRetention(store.root, { maxAgeHours: 24 })).removed.length, 0);
  });

  it('by quota: removes finished jobs only, the longest idle first, and stops once under the quota', async () => {
    const store = newStore();
    const jobs: Record<string, JobRef> = {
      doneOldest: makeJob(store, 'done', 1),
      failedOlder: makeJob(store, 'failed', 1),
      noMatchOld: makeJob(store, 'no-match', 1),
      waiting: makeJob(store, 'parsed', 1),
      running: makeJob(store, 'inferring', 1),
      undelivered: makeJob(store, 'seg-written', 1),
      justFinished: makeJob(store, 'done', 1),
    };
    await queueTask(jobs.undelivered, deadPort, (t) => t.state === 'pending' && t.attempts >= 1);
    age(jobs.doneOldest, 72);
    age(jobs.failedOlder, 48);
    age(jobs.noMatchOld, 24);
    age(jobs.waiting, 96);
    age(jobs.running, 96);
    age(jobs.undelivered, 96);
    age(jobs.justFinished, 0);
    const total = folderBytes(store.root) / MB;
    // Room for all but about two of the 1 MB jobs.
    const report = await applyRetention(store.root, { maxTotalMb: total - 1.5 });
    assert.deepEqual(report.removed.map((r) => [r.id, r.reason]), [[jobs.doneOldest.id, 'quota'], [jobs.failedOlder.id, 'quota']]);
    assert.ok(report.totalBytes !== undefined && report.totalBytes <= (total - 1.5) * MB);
    assert.equal(report.totalBytes, folderBytes(store.root));
    // Far below what the protected jobs need: every finished job past its grace goes, nothing else.
    const tight = await applyRetention(store.root, { maxTotalMb: 0.1 });
    assert.deepEqual(tight.removed.map((r) => r.id), [jobs.noMatchOld.id]);
    assert.deepEqual(present(jobs), ['justFinished', 'running', 'undelivered', 'waiting']);
    assert.ok((tight.totalBytes ?? 0) > 0.1 * MB, 'still over quota: what is left may not be removed');
    // Once its grace has passed, the job finished a moment ago may go too.
    assert.deepEqual((await applyRetention(store.root, { maxTotalMb: 0.1, graceSeconds: 0 })).removed.map((r) => r.id), [jobs.justFinished.id]);
  });

  it('refuses a negative or non-numeric policy', async () => {
    await assert.rejects(applyRetention(newStore().root, { maxAgeHours: -1 }), /retention maxAgeHours must be a number of at least 0/);
    await assert.rejects(applyRetention(newStore().root, { maxTotalMb: Number.NaN }), /maxTotalMb/);
  });

  it('clara-dicom-in runs it at deploy and after each job, logs each removal, and keeps what is running or undelivered', async () => {
    const store = newStore();
    const jobs = await everyKind(store);
    const phantom = join(scratch.dir, 'phantom');
    writePhantomStudy(phantom, { size: 32, slices: 8, seed: 9 });
    const files = dicomFilesUnder(join(phantom, 'dicom'));
    await helper.load(claraDicomIn, [
      { id: 'in', type: 'clara-dicom-in', aeTitle: 'CLARA', port: 0, host: '127.0.0.1', allow: '', studyTimeout: 0.5, grouping: 'study', workRoot: store.root, retentionHours: 24, wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const node = helper.getNode('in');
    const msgs = collectMessages<{ job: JobRef }>(helper.getNode('out'));
    await waitFor(() => logOf(node).find((e) => /retention: removed 9 finished job\(s\) \(9 by age, 0 by quota\)/.test(e.message)), 10000, () => `the retention at deploy: ${logOf(node).map((e) => e.message).join(' | ')}`);
    assert.deepEqual(present(jobs), ['inferring', 'parsing', 'receiving', 'sending', 'undelivered', 'writing']);

    // A finished job ages past the limit while the node runs; the next study's arrival clears it.
    const stale = makeJob(store, 'done');
    age(stale, 30);
    const port = await listeningPort(node);
    const sent = await storescu(port, files);
    assert.equal(sent.code, 0, sent.stderr);
    const msg = await waitFor(() => msgs[0], 10000, 'the new job');
    await waitFor(() => (existsSync(stale.dir) ? undefined : true), 10000, 'the stale job to be removed after the new one');
    assert.ok(existsSync(msg.job.dir), 'the new job stays');
    assert.equal(readJob(msg.job.dir).state, 'received');
    assert.deepEqual(present(jobs), ['inferring', 'parsing', 'receiving', 'sending', 'undelivered', 'writing']);
    assert.equal(callsOn('warn', node).filter((c) => /retention/.test(String(c[0]))).length, 0);
  });

  it('clara-dicom-in refuses a bad retention setting at deploy with a red status', async () => {
    mkdirSync(join(scratch.dir, 'bad-root'), { recursive: true });
    await helper.load(claraDicomIn, [
      { id: 'in', type: 'clara-dicom-in', aeTitle: 'CLARA', port: 0, host: '127.0.0.1', workRoot: join(scratch.dir, 'bad-root'), retentionQuotaMb: 'lots', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const node = helper.getNode('in');
    await waitFor(() => callsOn('error', node).find((c) => /retention quota \(MB\) must be a number/.test(String(c[0]))), 5000, 'the settings error');
  });
});

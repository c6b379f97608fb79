import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SopClass } from '../../lib/dicom/uids';
import { loadTask } from '../../lib/dimse/outbox';
import { type JobRef, JobStore, readJob } from '../../lib/job';
import { type Relay, startRelay } from '../dimse/relay';
import { writeMrSeries } from '../dimse/storescp';
import { type OrthancInstance, hasOrthanc, startOrthanc } from '../support/orthanc';
import { type TestNode, callsOn, collectMessages, helper, statusTexts, waitFor } from '../support/node-red';
import { scratchDir } from '../support/tools';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const destinationNode = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-destination', 'clara-dicom-destination.js')) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const scuOutNode = require(join(__dirname, '..', '..', 'nodes', 'clara-scu-out', 'clara-scu-out.js')) as unknown;

interface SettledMsg {
  topic: string;
  payload: { state: string; delivered: number; failed: number; error?: string; taskFile: string };
  job?: { id: string };
}
interface QueuedMsg {
  scu: { tasks: Array<{ file: string }> };
}

/**
 * A PACS (a real Orthanc) that refuses our calling AE, and one that stops half-way through a send, behind
 * clara-scu-out in a Node-RED runtime: the reason on the status, in the log and in job.json, the task
 * failed or retried as the DIMSE answer says, and the next job delivered by the same runtime. The outbox's
 * own handling of the same faults (storescp --refuse, an unknown calling AE, Orthanc halted mid-send, a
 * relay cut) is in test/dimse/outbox.test.ts; a PACS down from the start across a redeploy is in
 * test/nodes/clara-scu-out.test.ts.
 */
describe('reliability: a PACS that refuses us or stops half-way, behind clara-scu-out', function () {
  this.timeout(240000);
  const scratch = scratchDir('peers-pacs');
  const store = new JobStore(join(scratch.dir, 'jobs'));
  let orthanc: OrthancInstance;
  let relay: Relay;

  before(async () => {
    assert.ok(hasOrthanc(), 'Orthanc (Debian) is needed: .ci/run installs it');
    // Orthanc takes C-STORE only from the calling AEs it lists (and from 127.0.0.1): ClaraSCU is one.
    orthanc = await startOrthanc({ callingAETs: ['ClaraSCU'] });
    relay = await startRelay(orthanc.dicomPort);
  });
  afterEach(() => helper.unload());
  after(async () => {
    await relay?.close();
    await orthanc?.stop();
    scratch.cleanup();
  });

  /** A job with `count` SEG-class instances in seg/, in state seg-written. */
  function resultJob(count: number): { job: JobRef; uids: string[] } {
    const record = store.create({ studyInstanceUID: '1.2.826.0.1.3680043.10.77', state: 'seg-written' });
    const job = store.ref(record);
    mkdirSync(join(job.dir, 'seg'), { recursive: true });
    const { uids } = writeMrSeries(join(job.dir, 'seg'), count, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG' });
    return { job, uids };
  }

  const flow = () => [
    // The same Orthanc twice: as itself, and under a calling AE it does not list.
    { id: 'pacs', type: 'clara-dicom-destination', name: 'MYPACS', calledAE: orthanc.aet, host: '127.0.0.1', port: relay.port, callingAE: 'ClaraSCU', connectTimeout: 3, pduTimeout: 10 },
    { id: 'stranger', type: 'clara-dicom-destination', name: 'STRICTPACS', calledAE: orthanc.aet, host: '127.0.0.1', port: orthanc.dicomPort, callingAE: 'NOTLISTED', connectTimeout: 3, pduTimeout: 10 },
    { id: 'scuRefused', type: 'clara-scu-out', destination: 'stranger', workRoot: store.root, maxAttempts: 3, backoff: 0.2, maxBackoff: 0.5, wires: [['queued'], ['settled']] },
    { id: 'scu', type: 'clara-scu-out', destination: 'pacs', workRoot: store.root, maxAttempts: 40, backoff: 0.5, maxBackoff: 1, wires: [['queued'], ['settled']] },
    { id: 'queued', type: 'helper' },
    { id: 'settled', type: 'helper' },
  ];

  const instancesIn = async (): Promise<number> => (await orthanc.rest<string[]>('/instances')).length;
  const warningsOf = (node: TestNode) => callsOn('warn', node).map((c) => String(c[0]));

  it('refused (calling AE not listed): the task fails with the reason (status, log, job.json); the next job is delivered by the same runtime', async () => {
    await helper.load([destinationNode, scuOutNode], flow());
    const settled = collectMessages<SettledMsg>(helper.getNode('settled'));
    const refusedNode = helper.getNode('scuRefused');
    const before = await instancesIn();
    const refused = resultJob(3);
    refusedNode.receive({ job: refused.job });
    const failed = await waitFor(() => settled.find((m) => m.job?.id === refused.job.id), 30000, 'the refused task to settle');
    assert.equal(failed.payload.state, 'failed');
    assert.equal(failed.payload.delivered, 0);
    assert.equal(loadTask(failed.payload.taskFile).attempts, 1, 'a permanent rejection is not retried');
    assert.match(failed.payload.error ?? '', /association rejected by ORTHANC-TEST@127\.0\.0\.1:\d+ \(permanent, service user: calling AE title not recognized\)/);
    const reason = failed.payload.error!;
    assert.ok(warningsOf(refusedNode).some((m) => m.includes('failed') && m.includes(reason)), `the log: ${warningsOf(refusedNode).join(' | ')}`);
    await waitFor(() => statusTexts(refusedNode).find((t) => /^failed: 3 of 3 instance\(s\) not delivered to STRICTPACS: association rejected/.test(t)), 5000, () => statusTexts(refusedNode).join(' | '));
    const record = readJob(refused.job.dir);
    assert.ok(record.errors.some((e) => e.message.startsWith('STRICTPACS: ') && e.message.includes(reason.slice(0, 40))), JSON.stringify(record.errors));
    assert.equal(await instancesIn(), before, 'nothing stored');

    const good = resultJob(3);
    helper.getNode('scu').receive({ job: good.job });
    const delivered = await waitFor(() => settled.find((m) => m.job?.id === good.job.id), 30000, 'the next job to be delivered');
    assert.equal(delivered.payload.state, 'succeeded', delivered.payload.error);
    assert.equal(await instancesIn(), before + 3);
  });

  it('stopped half-way: the task waits and retries with the reason shown; Orthanc back, every instance is stored, none sent twice', async () => {
    await helper.load([destinationNode, scuOutNode], flow());
    const scu = helper.getNode('scu');
    const queued = collectMessages<QueuedMsg>(helper.getNode('queued'));
    const settled = collectMessages<SettledMsg>(helper.getNode('settled'));
    const before = await instancesIn();
    const count = 200;
    const { job } = resultJob(count);
    scu.receive({ job });
    const taskFile = (await waitFor(() => queued[0], 10000, 'the queued task')).scu.tasks[0].file;
    await waitFor(() => (loadTask(taskFile).instances.filter((i) => i.state === 'succeeded').length >= 20 ? true : undefined), 60000, 'the first instances to arrive');
    // Orthanc going down: SIGTERM lets it finish an association in progress, so the connection is cut at
    // the same moment, as a crash or a pulled cable would; the relay then leads to the stopped Orthanc.
    await Promise.all([relay.cut(), orthanc.halt()]);
    await relay.restore();
    const retrying = await waitFor(() => statusTexts(scu).find((t) => /^retrying in \d+ s \(attempt \d+\/40\): /.test(t)), 30000, () => statusTexts(scu).join(' | '));
    assert.match(retrying, /refused|reset|closed|abort/i);
    const pending = loadTask(taskFile);
    assert.equal(pending.state, 'pending');
    assert.match(pending.lastError ?? '', /refused|reset|closed|abort/i);
    const deliveredBefore = pending.instances.filter((i) => i.state === 'succeeded').length;
    assert.ok(deliveredBefore >= 20 && deliveredBefore < count, `${deliveredBefore} delivered before Orthanc stopped`);
    assert.equal(settled.length, 0, 'not settled while the PACS is down');
    assert.ok(warningsOf(scu).some((m) => /outbox task \S+ to MYPACS: \d+ instance\(s\) not delivered \(.*\); attempt \d+\/40 in \d+ s/.test(m)), `the retry in the log: ${warningsOf(scu).join(' | ')}`);

    await orthanc.restart();
    const done = await waitFor(() => settled.find((m) => m.job?.id === job.id), 120000, 'the task to settle once Orthanc is back');
    assert.equal(done.payload.state, 'succeeded', done.payload.error);
    assert.equal(done.payload.delivered, count);
    assert.equal(await instancesIn(), before + count, 'every instance is in Orthanc');
    // Each instance was answered once: only the one in flight when Orthanc stopped may have gone again.
    const task = loadTask(taskFile);
    const sends = task.instances.reduce((n, i) => n + i.attempts, 0);
    assert.ok(sends <= count + 1, `${sends} sends for ${count} instances`);
    assert.ok(task.attempts >= 2, 'retried');
    assert.equal(readJob(job.dir).counts.sentInstances, count);
    console.log(`      [reliability] PACS stopped half-way: ${deliveredBefore}/${count} delivered before Orthanc stopped, ${task.attempts} attempts, ${sends} sends (the one in flight had no answer), ${count} in Orthanc, 0 lost, 0 stored twice`);
  });
});

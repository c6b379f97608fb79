import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SopClass } from '../../lib/dicom/uids';
import { loadTask } from '../../lib/dimse/outbox';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { type JobRecord, writeJob } from '../../lib/job';
import { receivedUids, startStorescp, writeMrSeries } from '../dimse/storescp';
import { callsOn, collectMessages, helper, statusTexts, waitFor } from '../support/node-red';
import { hasTool, runTool, scratchDir } from '../support/tools';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const destinationNode = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-destination', 'clara-dicom-destination.js')) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tlsNode = require(join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'network', '05-tls.js')) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const scuOutNode = require(join(__dirname, '..', '..', 'nodes', 'clara-scu-out', 'clara-scu-out.js')) as unknown;

interface Outcome {
  taskId: string;
  state: string;
  delivered: number;
  failed: number;
  attempts: number;
  error?: string;
  taskFile: string;
  instances: Array<{ state: string; status?: number; error?: string }>;
}
interface SettledMsg {
  topic: string;
  payload: Outcome;
  job?: { id: string };
}
interface QueuedMsg {
  scu: { tasks: Array<{ id: string; destination: string; instances: number; file: string; state: string }> };
}
interface VerifyAnswer {
  ok: boolean;
  message: string;
  peer?: string;
}
interface SupertestRequest {
  post(path: string): { send(body: unknown): Promise<{ status: number; body: VerifyAnswer }> };
}

function makeJob(root: string, id: string): { id: string; dir: string; studyInstanceUID: string } {
  const dir = join(root, id);
  mkdirSync(dir, { recursive: true });
  const now = new Date().toISOString();
  const record: JobRecord = { id, state: 'seg-written', studyInstanceUID: '1.2.3', counts: { instances: 0 }, createdAt: now, updatedAt: now, timestamps: {}, errors: [] };
  writeJob(dir, record);
  return { id, dir, studyInstanceUID: '1.2.3' };
}

function flow(port: number, workRoot: string, extra: Record<string, unknown> = {}): Array<Record<string, unknown>> {
  return [
    { id: 'dest', type: 'clara-dicom-destination', name: 'MYPACS', calledAE: 'PACS', host: '127.0.0.1', port, callingAE: 'ClaraSCU', connectTimeout: 3, pduTimeout: 5 },
    { id: 'scu', type: 'clara-scu-out', destination: 'dest', workRoot, maxAttempts: 20, backoff: 0.3, maxBackoff: 1, wires: [['queued'], ['settled']], ...extra },
    { id: 'queued', type: 'helper' },
    { id: 'settled', type: 'helper' },
  ];
}

describe('clara-scu-out and clara-dicom-destination in a Node-RED 4 runtime', function () {
  before(() => assert.ok(hasTool('storescp') && hasTool('openssl'), 'dcmtk and openssl (Debian) are needed: .ci/run installs them'));
  this.timeout(120000);
  let scratch: ReturnType<typeof scratchDir>;
  beforeEach(() => {
    scratch = scratchDir('scu-out');
  });
  afterEach(async () => {
    await helper.unload();
    scratch.cleanup();
  });

  it('sends msg.seg and msg.rtstruct files: output 1 when queued, output 2 when delivered', async () => {
    const port = await freeLoopbackPort();
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      const root = join(scratch.dir, 'jobs');
      const job = makeJob(root, 'job-a');
      const seg = writeMrSeries(join(job.dir, 'seg'), 1, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG' });
      const rt = writeMrSeries(join(job.dir, 'rtstruct'), 1, { SOPClassUID: SopClass.RtStructureSetStorage, Modality: 'RTSTRUCT' });
      await helper.load([destinationNode, scuOutNode], flow(port, root));
      const queued = collectMessages<QueuedMsg>(helper.getNode('queued'));
      const settled = collectMessages<SettledMsg>(helper.getNode('settled'));
      helper.getNode('scu').receive({ job, seg: { files: [{ file: seg.files[0] }] }, rtstruct: { files: [{ file: rt.files[0] }] } });
      const done = await waitFor(() => settled[0], 30000, 'output 2');
      assert.equal(queued.length, 1);
      assert.equal(queued[0].scu.tasks.length, 1);
      assert.equal(queued[0].scu.tasks[0].destination, 'MYPACS');
      assert.equal(queued[0].scu.tasks[0].instances, 2);
      assert.equal(done.topic, 'MYPACS');
      assert.equal(done.payload.state, 'succeeded', done.payload.error);
      assert.equal(done.payload.delivered, 2);
      assert.equal(done.job?.id, 'job-a');
      assert.deepEqual(receivedUids(peer.dir).sort(), [...seg.uids, ...rt.uids].sort());
      const record = JSON.parse(readFileSync(join(job.dir, 'job.json'), 'utf8')) as JobRecord;
      assert.equal(record.counts.sentInstances, 2);
      assert.ok(record.timestamps['sent:MYPACS']);
      await waitFor(() => statusTexts(helper.getNode('scu')).find((t) => t === 'delivered 2 to MYPACS'), 5000, () => statusTexts(helper.getNode('scu')).join(' | '));
      assert.ok(statusTexts(helper.getNode('scu')).some((t) => /^sending \d\/2$/.test(t)), statusTexts(helper.getNode('scu')).join(' | '));
    } finally {
      await peer.stop();
    }
  });

  it('sends the job\'s seg/ and rtstruct/ folders when the msg names no files, to a destination named in msg.destinations', async () => {
    const port = await freeLoopbackPort();
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      const root = join(scratch.dir, 'jobs');
      const job = makeJob(root, 'job-b');
      const seg = writeMrSeries(join(job.dir, 'seg'), 2, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG' });
      // A writer's report and a half-written file are not results.
      writeFileSync(join(job.dir, 'seg', 'seg-report.json'), '{}');
      writeFileSync(join(job.dir, 'seg', 'x.dcm.1a2b.part'), 'partial');
      // A second destination, picked by name (case-insensitive, as Clara) through msg.destinations.
      const nodes = flow(port, root);
      nodes.push({ id: 'dest2', type: 'clara-dicom-destination', name: 'ARCHIVE', calledAE: 'PACS', host: '127.0.0.1', port, callingAE: 'ClaraSCU' });
      await helper.load([destinationNode, scuOutNode], nodes);
      const settled = collectMessages<SettledMsg>(helper.getNode('settled'));
      helper.getNode('scu').receive({ job, destinations: '["archive"]' });
      const done = await waitFor(() => settled[0], 30000, 'output 2');
      assert.equal(done.payload.state, 'succeeded');
      assert.equal(done.topic, 'ARCHIVE');
      assert.equal(done.payload.instances.length, 2);
      assert.deepEqual(receivedUids(peer.dir).sort(), [...seg.uids].sort());
    } finally {
      await peer.stop();
    }
  });

  it('one msg to two destinations (the chosen one and "Also to"): one task each, one output-2 msg each', async () => {
    const [portA, portB] = [await freeLoopbackPort(), await freeLoopbackPort()];
    const peerA = await startStorescp(portA, join(scratch.dir, 'a'));
    const peerB = await startStorescp(portB, join(scratch.dir, 'b'), { aet: 'ARCHIVE' });
    try {
      const root = join(scratch.dir, 'jobs');
      const job = makeJob(root, 'job-two');
      const seg = writeMrSeries(join(job.dir, 'seg'), 2, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG' });
      const nodes = flow(portA, root, { destinations: 'ARCHIVE' });
      nodes.push({ id: 'dest2', type: 'clara-dicom-destination', name: 'ARCHIVE', calledAE: 'ARCHIVE', host: '127.0.0.1', port: portB });
      await helper.load([destinationNode, scuOutNode], nodes);
      const queued = collectMessages<QueuedMsg>(helper.getNode('queued'));
      const settled = collectMessages<SettledMsg>(helper.getNode('settled'));
      helper.getNode('scu').receive({ job });
      await waitFor(() => (settled.length === 2 ? true : undefined), 30000, 'two output-2 msgs');
      assert.deepEqual(queued[0].scu.tasks.map((t) => t.destination), ['MYPACS', 'ARCHIVE']);
      assert.deepEqual(settled.map((m) => m.topic).sort(), ['ARCHIVE', 'MYPACS']);
      assert.ok(settled.every((m) => m.payload.state === 'succeeded'));
      assert.deepEqual(receivedUids(peerA.dir).sort(), [...seg.uids].sort());
      assert.deepEqual(receivedUids(peerB.dir).sort(), [...seg.uids].sort());
    } finally {
      await peerA.stop();
      await peerB.stop();
    }
  });

  it('PACS down: status shows the retry; a redeploy keeps the task; PACS back: delivered once', async () => {
    const port = await freeLoopbackPort();
    const root = join(scratch.dir, 'jobs');
    const job = makeJob(root, 'job-c');
    const seg = writeMrSeries(join(job.dir, 'seg'), 3, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG' });
    await helper.load([destinationNode, scuOutNode], flow(port, root, { backoff: 1, maxBackoff: 2 }));
    helper.getNode('scu').receive({ job });
    const scu = helper.getNode('scu');
    const retrying = await waitFor(() => statusTexts(scu).find((t) => /^retrying in \d+ s \(attempt 2\/20\): connection refused/.test(t)), 10000, () => statusTexts(scu).join(' | '));
    assert.ok(retrying);
    const [taskFile] = readdirTasks(job.dir);
    const pending = loadTask(taskFile);
    assert.equal(pending.state, 'pending');
    assert.match(pending.lastError ?? '', /connection refused/);

    // A redeploy (or a restart of Node-RED: the same flow, the same node id) finds the task on disk.
    await helper.unload();
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      await helper.load([destinationNode, scuOutNode], flow(port, root));
      const settled = collectMessages<SettledMsg>(helper.getNode('settled'));
      const done = await waitFor(() => settled[0], 30000, 'the resumed task to settle');
      assert.equal(done.payload.state, 'succeeded', done.payload.error);
      assert.equal(done.job?.id, 'job-c', 'the job travels in the task across the restart');
      assert.deepEqual(receivedUids(peer.dir).sort(), [...seg.uids].sort());
      assert.equal(peer.receptions(), 3);
    } finally {
      await peer.stop();
    }
  });

  it('an unknown destination name in msg.destinations: output 2 says failed, with the reason', async () => {
    const root = join(scratch.dir, 'jobs');
    const job = makeJob(root, 'job-d');
    writeMrSeries(join(job.dir, 'seg'), 1, { SOPClassUID: SopClass.SegmentationStorage });
    await helper.load([destinationNode, scuOutNode], flow(1, root));
    const settled = collectMessages<SettledMsg>(helper.getNode('settled'));
    helper.getNode('scu').receive({ job, destinations: ['NOSUCH'] });
    const done = await waitFor(() => settled[0], 10000, 'output 2');
    assert.equal(done.payload.state, 'failed');
    assert.match(done.payload.error ?? '', /unknown destination "NOSUCH"/);
    assert.ok(callsOn('warn', helper.getNode('scu')).some((c) => /unknown destination "NOSUCH"/.test(String(c[0]))));
    const record = JSON.parse(readFileSync(join(job.dir, 'job.json'), 'utf8')) as JobRecord;
    assert.match(record.errors[0]?.message ?? '', /NOSUCH/);
  });

  it('a msg with nothing to send is an error for a catch node', async () => {
    const root = join(scratch.dir, 'jobs');
    const job = makeJob(root, 'job-e');
    await helper.load([destinationNode, scuOutNode], flow(1, root));
    const scu = helper.getNode('scu');
    scu.receive({ job });
    await waitFor(() => callsOn('error', scu).find((c) => /nothing to send/.test(String(c[0]))), 5000, 'the error');
  });

  it('sends over DICOM TLS through a tls-config node (storescp +tls, client certificate required)', async () => {
    const certs = join(scratch.dir, 'certs');
    mkdirSync(certs);
    const make = (name: string, subject: string, san?: string) => runTool('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(certs, `${name}.key`), '-out', join(certs, `${name}.crt`), '-days', '2', '-subj', subject,
      ...(san ? ['-addext', `subjectAltName=${san}`] : []),
    ]);
    make('server', '/CN=127.0.0.1', 'IP:127.0.0.1');
    make('client', '/CN=ClaraSCU');
    const port = await freeLoopbackPort();
    const peer = await startStorescp(port, join(scratch.dir, 'received'), {
      extra: ['+tls', join(certs, 'server.key'), join(certs, 'server.crt'), '+cf', join(certs, 'client.crt')],
    });
    try {
      const root = join(scratch.dir, 'jobs');
      const job = makeJob(root, 'job-tls');
      const seg = writeMrSeries(join(job.dir, 'seg'), 2, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG' });
      const nodes = flow(port, root);
      nodes[0].tls = 'tls';
      nodes.push({ id: 'tls', type: 'tls-config', cert: join(certs, 'client.crt'), key: join(certs, 'client.key'), ca: join(certs, 'server.crt'), verifyservercert: true });
      await helper.load([tlsNode, destinationNode, scuOutNode], nodes);
      const settled = collectMessages<SettledMsg>(helper.getNode('settled'));
      helper.getNode('scu').receive({ job });
      const done = await waitFor(() => settled[0], 30000, 'output 2');
      assert.equal(done.payload.state, 'succeeded', done.payload.error);
      assert.deepEqual(receivedUids(peer.dir).sort(), [...seg.uids].sort());
      const task = loadTask(done.payload.taskFile);
      assert.equal(task.destination.tls, true);
      assert.ok(!JSON.stringify(task).includes('PRIVATE KEY'), 'no key material in the task file');
      // Without the client certificate storescp refuses the TLS handshake: a clear, retried error.
      const request = (helper as unknown as { request(): SupertestRequest }).request();
      const noTls = await request.post('/clara-dicom-destination/verify').send({ name: 'X', calledAE: 'PACS', host: '127.0.0.1', port: String(port), connectTimeout: '3' });
      assert.equal(noTls.body.ok, false);
      const withTls = await request.post('/clara-dicom-destination/verify').send({ name: 'X', calledAE: 'PACS', host: '127.0.0.1', port: String(port), tls: 'tls' });
      assert.equal(withTls.body.ok, true, withTls.body.message);
      assert.match(String(withTls.body.peer), /\(TLS\)$/);
    } finally {
      await peer.stop();
    }
  });

  it('Verify runs C-ECHO with unsaved settings', async () => {
    const port = await freeLoopbackPort();
    await helper.load([destinationNode, scuOutNode], flow(port, join(scratch.dir, 'jobs')));
    const request = (helper as unknown as { request(): SupertestRequest }).request();
    const down = await request.post('/clara-dicom-destination/verify').send({ name: 'X', calledAE: 'PACS', host: '127.0.0.1', port: String(port), connectTimeout: '2' });
    assert.equal(down.body.ok, false);
    assert.match(down.body.message, /connection refused/);
    const invalid = await request.post('/clara-dicom-destination/verify').send({ name: 'X', calledAE: '', host: '127.0.0.1', port: '104' });
    assert.equal(invalid.body.ok, false);
    assert.match(invalid.body.message, /called AE title/);
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      const up = await request.post('/clara-dicom-destination/verify').send({ name: 'X', calledAE: 'PACS', host: '127.0.0.1', port: String(port), callingAE: 'ClaraSCU' });
      assert.equal(up.body.ok, true, up.body.message);
      assert.equal(up.body.peer, `PACS@127.0.0.1:${port}`);
    } finally {
      await peer.stop();
    }
  });
});

function readdirTasks(jobDir: string): string[] {
  return readdirSync(join(jobDir, 'outbox')).filter((n) => n.endsWith('.json')).map((n) => join(jobDir, 'outbox', n));
}

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readDicomHeader } from '../../lib/dicom/reader';
import { SopClass, TransferSyntax } from '../../lib/dicom/uids';
import { verifyPeer } from '../../lib/dimse/association';
import { type DestinationAddress, Outbox, type OutboxTask, findTaskFiles, loadTask } from '../../lib/dimse/outbox';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { StoreScp } from '../../lib/dimse/scp';
import { hasOrthanc, startOrthanc } from '../support/orthanc';
import { allFilesUnder, delay, hasTool, scratchDir } from '../support/tools';
import { nextEvent } from './helpers';
import { startRelay } from './relay';
import { receivedUids, startStorescp, writeMrSeries } from './storescp';

const address = (port: number, extra: Partial<DestinationAddress> = {}): DestinationAddress => ({
  name: 'MYPACS', calledAE: 'PACS', host: '127.0.0.1', port, callingAE: 'ClaraSCU', connectTimeoutMs: 3000, pduTimeoutMs: 5000, ...extra,
});

function settledTask(outbox: Outbox, id: string, timeoutMs = 60000): Promise<OutboxTask> {
  return nextEvent<OutboxTask>(outbox, 'settled', timeoutMs, (t) => t.id === id);
}

function jobDir(root: string, name = 'job1'): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

describe('lib/dimse/outbox (dcmtk storescp peers on 127.0.0.1)', function () {
  before(() => assert.ok(hasTool('storescp'), 'dcmtk (Debian) is needed: .ci/run installs it'));
  this.timeout(120000);
  let scratch: ReturnType<typeof scratchDir>;
  beforeEach(() => {
    scratch = scratchDir('outbox');
  });
  afterEach(() => scratch.cleanup());

  it('sends MR, SEG and RTSTRUCT instances in one association and records every status', async () => {
    const port = await freeLoopbackPort();
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      const job = jobDir(join(scratch.dir, 'work'));
      const mr = writeMrSeries(join(job, 'dicom'), 20);
      const seg = writeMrSeries(join(job, 'seg'), 1, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG' });
      const rt = writeMrSeries(join(job, 'rtstruct'), 1, { SOPClassUID: SopClass.RtStructureSetStorage, Modality: 'RTSTRUCT' });
      const outbox = new Outbox({ backoffMs: 100 });
      const task = outbox.enqueue({ jobDir: job, files: [...mr.files, ...seg.files, ...rt.files], destination: address(port) });
      assert.ok(existsSync(join(job, 'outbox', `${task.id}.json`)), 'the task is on disk before anything is sent');
      const done = await settledTask(outbox, task.id);
      assert.equal(done.state, 'succeeded', done.lastError);
      assert.equal(done.attempts, 1);
      assert.ok(done.instances.every((i) => i.status === 0 && i.statusText === 'Success' && i.state === 'succeeded'));
      assert.deepEqual(receivedUids(peer.dir).sort(), [...mr.uids, ...seg.uids, ...rt.uids].sort());
      assert.equal(peer.receptions(), 22);
      assert.equal((peer.log().match(/Association Acknowledged/g) ?? []).length, 1, 'one association for the batch');
      const onDisk = loadTask(join(job, 'outbox', `${task.id}.json`));
      assert.equal(onDisk.state, 'succeeded');
      assert.equal(onDisk.destination.name, 'MYPACS');
      await outbox.close();
    } finally {
      await peer.stop();
    }
  });

  it('falls back to Implicit VR Little Endian when the peer accepts only that', async () => {
    const port = await freeLoopbackPort();
    // +xi: storescp accepts Implicit VR Little Endian only
    const peer = await startStorescp(port, join(scratch.dir, 'received'), { extra: ['+xi'] });
    try {
      const job = jobDir(join(scratch.dir, 'work'));
      const mr = writeMrSeries(join(job, 'dicom'), 2);
      const outbox = new Outbox();
      const task = outbox.enqueue({ jobDir: job, files: mr.files, destination: address(port) });
      const done = await settledTask(outbox, task.id);
      assert.equal(done.state, 'succeeded', done.lastError);
      assert.ok(done.instances.every((i) => i.sentTransferSyntax === TransferSyntax.ImplicitVRLittleEndian));
      const received = allFilesUnder(peer.dir);
      assert.equal(received.length, 2);
      for (const f of received) {
        const h = readDicomHeader(f);
        assert.equal(h.transferSyntaxUID, TransferSyntax.ImplicitVRLittleEndian);
        assert.equal(h.dataset.string(0x00100010), 'Test^Crafted');
      }
      await outbox.close();
    } finally {
      await peer.stop();
    }
  });

  it('C-ECHO verifies a peer and says why one does not answer', async () => {
    const port = await freeLoopbackPort();
    const down = await verifyPeer({ host: '127.0.0.1', port, calledAE: 'PACS', callingAE: 'ClaraSCU', connectTimeoutMs: 2000 });
    assert.equal(down.ok, false);
    assert.match(down.message, /connection refused/);
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      const up = await verifyPeer({ host: '127.0.0.1', port, calledAE: 'PACS', callingAE: 'ClaraSCU' });
      assert.equal(up.ok, true, up.message);
      assert.match(up.message, /C-ECHO succeeded/);
    } finally {
      await peer.stop();
    }
  });

  it('a peer down for a while: the task stays pending with the error, then delivers each instance exactly once', async () => {
    const port = await freeLoopbackPort();
    const received = join(scratch.dir, 'received');
    const job = jobDir(join(scratch.dir, 'work'));
    const mr = writeMrSeries(join(job, 'dicom'), 1500);
    let peer = await startStorescp(port, received);
    const outbox = new Outbox({ backoffMs: 300, maxBackoffMs: 1000, maxAttempts: 20 });
    const task = outbox.enqueue({ jobDir: job, files: mr.files, destination: address(port) });
    // Kill the peer in the middle of the batch.
    await nextEvent(outbox, 'progress', 30000, (p: { delivered: number }) => p.delivered >= 100);
    const firstReceptions = () => peer.receptions();
    await peer.stop('SIGKILL');
    await delay(100);
    const before = firstReceptions();
    await delay(1200);
    const onDisk = loadTask(join(job, 'outbox', `${task.id}.json`));
    assert.ok(onDisk.state === 'pending' || onDisk.state === 'in-progress', onDisk.state);
    assert.match(onDisk.lastError ?? '', /connection refused|closed the connection|reset/);
    const snapshot = outbox.snapshot();
    assert.equal(snapshot.waiting.length + snapshot.inProgress.length, 1);
    const delivered = onDisk.instances.filter((i) => i.state === 'succeeded').length;
    assert.ok(delivered >= 100 && delivered < 1500, `${delivered} delivered before the peer died`);
    assert.ok(onDisk.instances.some((i) => i.state === 'pending' && /connection|closed|reset/.test(i.error ?? '')));

    peer = await startStorescp(port, received);
    try {
      const done = await settledTask(outbox, task.id, 90000);
      assert.equal(done.state, 'succeeded', done.lastError);
      assert.ok(done.attempts >= 2);
      const uids = receivedUids(received);
      assert.equal(new Set(uids).size, 1500, 'every instance arrived');
      // Only the instance in flight when the peer died (no answer, so unknown) may have gone twice;
      // storescp names files by SOP Instance UID, so even that one is stored once.
      const total = before + peer.receptions();
      assert.ok(total <= 1501, `${total} receptions for 1500 instances`);
      assert.equal(uids.length, 1500);
      await outbox.close();
    } finally {
      await peer.stop();
    }
  });

  it('a process killed mid-send: a new outbox over the same work root delivers the rest, none twice', async () => {
    const port = await freeLoopbackPort();
    const received = join(scratch.dir, 'received');
    const root = join(scratch.dir, 'work');
    const job = jobDir(root);
    const mr = writeMrSeries(join(job, 'dicom'), 1500);
    const peer = await startStorescp(port, received);
    try {
      const script = `
        const { Outbox } = require(${JSON.stringify(join(__dirname, '..', '..', 'lib', 'dimse', 'outbox.js'))});
        const files = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));
        const outbox = new Outbox({ owner: 'node-1' });
        outbox.on('progress', (p) => { if (p.delivered === 200) process.stdout.write('200\\n'); });
        outbox.enqueue({ jobDir: ${JSON.stringify(job)}, files, destination: ${JSON.stringify(address(port))} });
      `;
      const list = join(scratch.dir, 'files.json');
      writeFileSync(list, JSON.stringify(mr.files));
      const child = spawn(process.execPath, ['-e', script, list], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('200')) {
            child.kill('SIGKILL');
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`child exited ${code} before it was killed`)));
      });
      await new Promise((resolve) => child.once('exit', resolve));
      await delay(300); // storescp's log of what it received reaches us through a pipe
      const receivedBeforeRestart = peer.receptions();
      const [path] = findTaskFiles(root);
      const left = loadTask(path);
      assert.equal(left.state, 'in-progress');
      const answered = left.instances.filter((i) => i.state === 'succeeded').length;
      assert.ok(answered >= 200, `${answered} answers journalled`);

      const stranger = new Outbox({ owner: 'someone-else' });
      assert.equal(stranger.resume(root).length, 0, 'another owner leaves the task alone');
      const outbox = new Outbox({ owner: 'node-1' });
      const resumed = outbox.resume(root);
      assert.equal(resumed.length, 1);
      const done = await settledTask(outbox, resumed[0].id, 90000);
      assert.equal(done.state, 'succeeded', done.lastError);
      await delay(200);
      const uids = receivedUids(received);
      assert.equal(new Set(uids).size, 1500);
      // Answers not yet journalled when the process died (at most the one in flight) may go again.
      const total = peer.receptions();
      assert.ok(total - 1500 <= receivedBeforeRestart - answered, `${total} receptions, ${receivedBeforeRestart} before the restart, ${answered} answers recorded`);
      assert.ok(total <= 1501, `${total} receptions`);
      await outbox.close();
      await stranger.close();
    } finally {
      await peer.stop();
    }
  });

  it('an outbox closed with a pending task leaves it on disk; the next one resumes and delivers it', async () => {
    const port = await freeLoopbackPort();
    const root = join(scratch.dir, 'work');
    const job = jobDir(root);
    const mr = writeMrSeries(join(job, 'dicom'), 5);
    const first = new Outbox({ owner: 'n1', backoffMs: 60000 });
    const task = first.enqueue({ jobDir: job, files: mr.files, destination: address(port) });
    await nextEvent<OutboxTask>(first, 'update', 10000, (t) => t.id === task.id && t.state === 'pending' && t.attempts === 1);
    await first.close();
    assert.equal(loadTask(join(job, 'outbox', `${task.id}.json`)).state, 'pending');
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      const second = new Outbox({ owner: 'n1' });
      const [resumed] = second.resume(root);
      // The stored next-attempt time is a minute away: a restart does not wait for it to pass.
      assert.ok(resumed);
      const done = await settledTask(second, task.id);
      assert.equal(done.state, 'succeeded');
      assert.equal(receivedUids(peer.dir).length, 5);
      await second.close();
    } finally {
      await peer.stop();
    }
  });

  it('an unknown destination name gives a failed task with the reason', async () => {
    const job = jobDir(join(scratch.dir, 'work'));
    const mr = writeMrSeries(join(job, 'dicom'), 1);
    const outbox = new Outbox({ resolveDestination: (name) => (name === 'MYPACS' ? address(1) : undefined) });
    const settled = nextEvent<OutboxTask>(outbox, 'settled');
    const task = outbox.enqueue({ jobDir: job, files: mr.files, destination: 'NOSUCHPACS' });
    assert.equal(task.state, 'failed');
    assert.match(task.lastError ?? '', /unknown destination "NOSUCHPACS"/);
    assert.equal((await settled).id, task.id);
    assert.equal(loadTask(join(job, 'outbox', `${task.id}.json`)).state, 'failed');
    await outbox.close();
  });

  it('a refused association fails the task at once with the reason (storescp --refuse)', async () => {
    const port = await freeLoopbackPort();
    const peer = await startStorescp(port, join(scratch.dir, 'received'), { extra: ['--refuse'] });
    try {
      const job = jobDir(join(scratch.dir, 'work'));
      const mr = writeMrSeries(join(job, 'dicom'), 2);
      const outbox = new Outbox({ backoffMs: 100 });
      const task = outbox.enqueue({ jobDir: job, files: mr.files, destination: address(port) });
      const done = await settledTask(outbox, task.id);
      assert.equal(done.state, 'failed');
      assert.equal(done.attempts, 1, 'a permanent rejection is not retried');
      assert.match(done.lastError ?? '', /association rejected by PACS@127\.0\.0\.1:\d+ \(permanent/);
      assert.ok(done.instances.every((i) => i.state === 'failed' && /rejected/.test(i.error ?? '')));
      await outbox.close();
    } finally {
      await peer.stop();
    }
  });

  it('a calling AE the peer does not accept: failed, "calling AE title not recognized"', async () => {
    const scp = new StoreScp({ workRoot: join(scratch.dir, 'scp'), aeTitle: 'PACS', port: 0, host: '127.0.0.1', allow: [{ aeTitle: 'SOMEONE' }], log: () => undefined });
    const { port } = await scp.listen();
    try {
      const job = jobDir(join(scratch.dir, 'work'));
      const mr = writeMrSeries(join(job, 'dicom'), 1);
      const outbox = new Outbox();
      const task = outbox.enqueue({ jobDir: job, files: mr.files, destination: address(port) });
      const done = await settledTask(outbox, task.id);
      assert.equal(done.state, 'failed');
      assert.match(done.lastError ?? '', /calling AE title not recognized/);
      await outbox.close();
    } finally {
      await scp.close();
    }
  });

  it('an unsupported SOP class fails that instance with the reason; the others are delivered', async () => {
    const port = await freeLoopbackPort();
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      const job = jobDir(join(scratch.dir, 'work'));
      const good = writeMrSeries(join(job, 'dicom'), 2);
      const odd = writeMrSeries(join(job, 'private'), 1, { SOPClassUID: '1.2.826.0.1.3680043.10.99.1' });
      const notDicom = join(job, 'notes.txt');
      writeFileSync(notDicom, 'not DICOM at all, long enough to not be mistaken for anything else......');
      const outbox = new Outbox({ backoffMs: 100 });
      const task = outbox.enqueue({ jobDir: job, files: [...good.files, ...odd.files, notDicom], destination: address(port) });
      const done = await settledTask(outbox, task.id);
      assert.equal(done.state, 'failed');
      assert.equal(done.attempts, 1, 'permanent failures are not retried');
      const byFile = new Map(done.instances.map((i) => [i.file, i]));
      assert.match(byFile.get(odd.files[0])?.error ?? '', /does not accept SOP class 1\.2\.826\.0\.1\.3680043\.10\.99\.1.*abstract syntax \(SOP class\) not supported/);
      assert.match(byFile.get(notDicom)?.error ?? '', /not a DICOM file/);
      assert.ok(good.files.every((f) => byFile.get(f)?.state === 'succeeded'));
      assert.match(done.lastError ?? '', /2 of 4 instance\(s\) not delivered/);
      assert.equal(receivedUids(peer.dir).length, 2);
      await outbox.close();
    } finally {
      await peer.stop();
    }
  });

  it('close() while connecting to an unreachable host returns at once and leaves the task pending', async () => {
    const job = jobDir(join(scratch.dir, 'work'));
    const mr = writeMrSeries(join(job, 'dicom'), 1);
    const outbox = new Outbox();
    // 10.255.255.1: a non-routed address, so the connect hangs until its timeout (10 s here).
    const task = outbox.enqueue({ jobDir: job, files: mr.files, destination: address(1, { host: '10.255.255.1', connectTimeoutMs: 10000 }) });
    await nextEvent<OutboxTask>(outbox, 'update', 5000, (t) => t.id === task.id && t.state === 'in-progress');
    const started = Date.now();
    await outbox.close();
    assert.ok(Date.now() - started < 2000, `close took ${Date.now() - started} ms`);
    assert.equal(loadTask(join(job, 'outbox', `${task.id}.json`)).state, 'pending');
  });

  it('a job folder deleted while its task waits: the task is given up with the reason, nothing crashes', async () => {
    const job = jobDir(join(scratch.dir, 'work'));
    const mr = writeMrSeries(join(job, 'dicom'), 1);
    const outbox = new Outbox({ backoffMs: 200, maxAttempts: 10 });
    const task = outbox.enqueue({ jobDir: job, files: mr.files, destination: address(await freeLoopbackPort()) });
    await nextEvent<OutboxTask>(outbox, 'update', 10000, (t) => t.id === task.id && t.state === 'pending' && t.attempts === 1);
    rmSync(job, { recursive: true, force: true });
    const done = await settledTask(outbox, task.id);
    assert.equal(done.state, 'failed');
    assert.match(done.lastError ?? '', /removed/);
    assert.equal(outbox.size, 0);
    await outbox.close();
  });

  it('gives up after the configured attempts, with exponential backoff between them', async () => {
    const port = await freeLoopbackPort();
    const job = jobDir(join(scratch.dir, 'work'));
    const mr = writeMrSeries(join(job, 'dicom'), 1);
    const outbox = new Outbox({ backoffMs: 100, maxAttempts: 3 });
    const task = outbox.enqueue({ jobDir: job, files: mr.files, destination: address(port) });
    const done = await settledTask(outbox, task.id);
    assert.equal(done.state, 'failed');
    assert.equal(done.attempts, 3);
    assert.match(done.lastError ?? '', /after 3 attempt\(s\): connection refused/);
    const gaps = done.history.slice(1).map((h, k) => Date.parse(h.startedAt) - Date.parse(done.history[k].endedAt));
    assert.ok(gaps[0] >= 90 && gaps[1] >= 190, `gaps ${gaps.join(', ')} ms`);
    await outbox.close();
  });
});

describe('lib/dimse/outbox into Orthanc', function () {
  before(() => assert.ok(hasOrthanc(), 'Orthanc (Debian) is needed: .ci/run installs it'));
  this.timeout(120000);
  it('a SEG-class and an MR instance sent land in Orthanc, in their study', async () => {
    const orthanc = await startOrthanc({ callingAETs: ['ClaraSCU'] });
    const scratch = scratchDir('outbox-orthanc');
    try {
      const job = jobDir(scratch.dir);
      const mr = writeMrSeries(join(job, 'dicom'), 3);
      const study = readDicomHeader(mr.files[0]).dataset.string(0x0020000d) as string;
      const seg = writeMrSeries(join(job, 'seg'), 1, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG', StudyInstanceUID: study });
      const outbox = new Outbox();
      const task = outbox.enqueue({ jobDir: job, files: [...mr.files, ...seg.files], destination: address(orthanc.dicomPort, { calledAE: orthanc.aet }) });
      const done = await settledTask(outbox, task.id);
      assert.equal(done.state, 'succeeded', done.lastError);
      const found = await orthanc.rest<string[]>(`/instances`);
      assert.equal(found.length, 4);
      const studies = await orthanc.rest<Array<{ MainDicomTags: { StudyInstanceUID: string }; Series: string[] }>>('/studies?expand');
      assert.equal(studies.length, 1);
      assert.equal(studies[0].MainDicomTags.StudyInstanceUID, study);
      assert.equal(studies[0].Series.length, 2);
      await outbox.close();
    } finally {
      await orthanc.stop();
      scratch.cleanup();
    }
  });

  it('Orthanc stopped mid-send: the task stays pending with the error, and once Orthanc is back every instance is stored, each once', async () => {
    const orthanc = await startOrthanc({ callingAETs: ['ClaraSCU'] });
    const scratch = scratchDir('outbox-orthanc-restart');
    try {
      const job = jobDir(scratch.dir);
      const mr = writeMrSeries(join(job, 'dicom'), 300);
      const outbox = new Outbox({ backoffMs: 300, maxBackoffMs: 1000, maxAttempts: 60 });
      const task = outbox.enqueue({ jobDir: job, files: mr.files, destination: address(orthanc.dicomPort, { calledAE: orthanc.aet }) });
      await nextEvent(outbox, 'progress', 60000, (p: { delivered: number }) => p.delivered >= 20);
      await orthanc.halt();
      await nextEvent<OutboxTask>(outbox, 'update', 20000, (t) => t.id === task.id && t.state === 'pending' && t.attempts >= 2);
      const onDisk = loadTask(join(job, 'outbox', `${task.id}.json`));
      assert.equal(onDisk.state, 'pending');
      assert.match(onDisk.lastError ?? '', /connection refused|reset|closed|abort/);
      const deliveredBefore = onDisk.instances.filter((i) => i.state === 'succeeded').length;
      assert.ok(deliveredBefore >= 20 && deliveredBefore < 300, `${deliveredBefore} delivered before Orthanc stopped`);
      await orthanc.restart();
      const done = await settledTask(outbox, task.id, 120000);
      assert.equal(done.state, 'succeeded', done.lastError);
      assert.equal(done.instances.filter((i) => i.state === 'succeeded').length, 300);
      const instances = await orthanc.rest<string[]>('/instances');
      assert.equal(instances.length, 300, 'every instance is in Orthanc, each once, across the restart');
      await outbox.close();
    } finally {
      await orthanc.stop();
      scratch.cleanup();
    }
  });

  it('Orthanc unreachable mid-send (a relay in front of it is cut): pending and retrying, then every instance once', async () => {
    const orthanc = await startOrthanc({ callingAETs: ['ClaraSCU'] });
    const relay = await startRelay(orthanc.dicomPort);
    const scratch = scratchDir('outbox-orthanc');
    try {
      const job = jobDir(scratch.dir);
      const mr = writeMrSeries(join(job, 'dicom'), 60);
      const outbox = new Outbox({ backoffMs: 300, maxBackoffMs: 1000, maxAttempts: 30 });
      const task = outbox.enqueue({ jobDir: job, files: mr.files, destination: address(relay.port, { calledAE: orthanc.aet }) });
      await nextEvent(outbox, 'progress', 60000, (p: { delivered: number }) => p.delivered >= 10);
      await relay.cut();
      await nextEvent<OutboxTask>(outbox, 'update', 10000, (t) => t.id === task.id && t.state === 'pending' && t.attempts >= 2);
      const waiting = outbox.snapshot().waiting[0];
      assert.ok(waiting, 'the task waits for its next attempt');
      assert.match(waiting.lastError ?? '', /connection refused|reset|closed/);
      const onDisk = loadTask(join(job, 'outbox', `${task.id}.json`));
      assert.equal(onDisk.state, 'pending');
      const deliveredBefore = onDisk.instances.filter((i) => i.state === 'succeeded').length;
      assert.ok(deliveredBefore >= 10 && deliveredBefore < 60, `${deliveredBefore} delivered before the cut`);
      await relay.restore();
      const done = await settledTask(outbox, task.id, 120000);
      assert.equal(done.state, 'succeeded', done.lastError);
      const instances = await orthanc.rest<string[]>('/instances');
      assert.equal(instances.length, 60, 'every instance is in Orthanc, each once');
      const series = await orthanc.rest<Array<{ Instances: string[] }>>('/series?expand');
      assert.equal(series.length, 1);
      assert.equal(series[0].Instances.length, 60);
      await outbox.close();
    } finally {
      await relay.close();
      await orthanc.stop();
      scratch.cleanup();
    }
  });
});

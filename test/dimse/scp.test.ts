import assert from 'node:assert/strict';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseDicom, readDicomHeader } from '../../lib/dicom/reader';
import { SopClass, TransferSyntax } from '../../lib/dicom/uids';
import { type AssociationEvent, type RejectedInstance, StoreScp, type StoreScpOptions, StoreStatus, type StoredInstance } from '../../lib/dimse';
import type { CompletedJob } from '../../lib/ingest';
import { readJob } from '../../lib/job';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import { allFilesUnder, delay, scratchDir } from '../support/tools';
import {
  collect, dicomFilesUnder, echoscu, mrInstanceFile, nextEvent, runProcess, sendRawDataSet, storeResponses, storescu,
} from './helpers';

/** A small phantom study (37 instances of 32×32) and its files. */
interface Study {
  manifest: PhantomStudy;
  files: string[];
  sopUIDs: Set<string>;
}

function makeStudy(dir: string, seed: number): Study {
  const manifest = writePhantomStudy(dir, { size: 32, slices: 8, seed });
  const files = dicomFilesUnder(join(dir, 'dicom'));
  const sopUIDs = new Set(manifest.series.flatMap((s) => s.sopInstanceUIDs));
  return { manifest, files, sopUIDs };
}

describe('lib/dimse StoreScp (C-STORE SCP) against dcmtk peers', function () {
  this.timeout(120000);
  const scratch = scratchDir('dimse');
  let studyA: Study;
  let studyB: Study;
  const running: StoreScp[] = [];
  let caseCounter = 0;

  before(() => {
    studyA = makeStudy(join(scratch.dir, 'studyA'), 1);
    studyB = makeStudy(join(scratch.dir, 'studyB'), 2);
    assert.notEqual(studyA.manifest.studyInstanceUID, studyB.manifest.studyInstanceUID);
  });
  after(() => scratch.cleanup());
  afterEach(async () => {
    while (running.length) await running.pop()!.close();
  });

  async function startScp(options: Partial<StoreScpOptions> = {}): Promise<{ scp: StoreScp; port: number; workRoot: string; logs: string[] }> {
    const workRoot = join(scratch.dir, `work-${++caseCounter}`);
    const logs: string[] = [];
    const scp = new StoreScp({ workRoot, port: 0, host: '127.0.0.1', studyTimeoutSeconds: 0.5, log: (level, m) => logs.push(`${level} ${m}`), ...options });
    running.push(scp);
    const { port } = await scp.listen();
    return { scp, port, workRoot, logs };
  }

  it('stores a study sent by storescu as exactly one job: every SOP UID on disk, bytes as sent, counts and job.json match', async () => {
    const { scp, port, workRoot } = await startScp();
    const jobs = collect<CompletedJob>(scp, 'job');
    const stored = collect<StoredInstance>(scp, 'instance');
    const firstJob = nextEvent<CompletedJob>(scp, 'job');
    const result = await storescu(port, studyA.files);
    assert.equal(result.code, 0, result.stderr);
    const responses = storeResponses(result);
    assert.equal(responses.length, studyA.files.length);
    assert.ok(responses.every((r) => r === 'Success'), responses.join(', '));

    const job = await firstJob;
    await delay(1200); // a second job would have had time to appear
    assert.equal(jobs.length, 1);
    assert.equal(stored.length, studyA.files.length);

    const onDisk = readdirSync(join(job.job.dir, 'dicom')).sort();
    assert.deepEqual(onDisk, [...studyA.sopUIDs].map((u) => `${u}.dcm`).sort());
    assert.equal(job.job.studyInstanceUID, studyA.manifest.studyInstanceUID);
    assert.equal(job.summary.instances, studyA.sopUIDs.size);
    assert.equal(job.summary.rejected, 0);
    assert.equal(job.summary.series.length, studyA.manifest.series.length);
    for (const series of studyA.manifest.series) {
      const summary = job.summary.series.find((s) => s.seriesInstanceUID === series.seriesInstanceUID);
      assert.ok(summary, `series ${series.description} missing from the summary`);
      assert.equal(summary.instances, series.instanceCount);
      assert.equal(summary.seriesNumber, series.seriesNumber);
    }
    assert.equal(job.summary.callingAE, 'STORESCU');
    assert.equal(job.summary.calledAE, 'CLARA');
    assert.equal(job.summary.completedBy, 'timeout');

    const record = readJob(job.job.dir);
    assert.equal(record.state, 'received');
    assert.equal(record.counts.instances, studyA.sopUIDs.size);
    assert.equal(record.counts.series, studyA.manifest.series.length);
    assert.equal(record.counts.rejected, 0);
    assert.equal(record.callingAE, 'STORESCU');
    assert.equal(record.calledAE, 'CLARA');
    assert.equal(record.remoteAddress, '127.0.0.1');
    assert.ok(record.timestamps.received);

    // Stored as received: the data set bytes of every file are the ones storescu read from disk.
    for (const file of studyA.files) {
      const sent = readDicomHeader(file);
      const sop = sent.dataset.string(0x00080018)!;
      const kept = readDicomHeader(join(job.job.dir, 'dicom', `${sop}.dcm`));
      assert.equal(kept.meta.string(0x00020016), 'STORESCU', 'source AE title in the meta header');
      assert.ok(readFileSync(file).subarray(sent.datasetOffset).equals(readFileSync(join(job.job.dir, 'dicom', `${sop}.dcm`)).subarray(kept.datasetOffset)), `${basename(file)} changed on the way`);
    }
    assert.deepEqual(readdirSync(join(workRoot, '.incoming')), []);
  });

  it('rejects a calling AE that is not in the allow-list with A-ASSOCIATE-RJ and stores nothing', async () => {
    const { scp, port, workRoot } = await startScp({ allow: [{ aeTitle: 'PACS' }] });
    const associations = collect<AssociationEvent>(scp, 'association');
    const result = await storescu(port, studyA.files.slice(0, 3), { callingAE: 'INTRUDER' });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr + result.stdout, /Association Rejected/);
    assert.match(result.stderr + result.stdout, /Calling AE Title Not Recognized/);
    assert.deepEqual(associations.map((a) => [a.event, a.callingAE]), [['rejected', 'INTRUDER']]);
    await delay(700);
    assert.deepEqual(scp.store.list(), []);
    assert.deepEqual(allFilesUnder(workRoot), []);
    // The allowed AE is served on the same SCP.
    const ok = await storescu(port, studyA.files.slice(0, 3), { callingAE: 'PACS' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(storeResponses(ok), ['Success', 'Success', 'Success']);
  });

  it('binds an allow-list entry to its host: the right AE from another address is rejected', async () => {
    const other = await startScp({ allow: [{ aeTitle: 'PACS', host: '10.255.255.1' }] });
    const rejected = await echoscu(other.port, { callingAE: 'PACS' });
    assert.notEqual(rejected.code, 0);
    assert.match(rejected.stderr + rejected.stdout, /Calling AE Title Not Recognized/);
    const local = await startScp({ allow: [{ aeTitle: 'PACS', host: '127.0.0.1' }, { aeTitle: 'MODALITY', host: 'localhost' }] });
    assert.equal((await echoscu(local.port, { callingAE: 'PACS' })).code, 0);
    assert.equal((await echoscu(local.port, { callingAE: 'MODALITY' })).code, 0);
  });

  it('rejects a called AE title other than its own, unless told to accept any', async () => {
    const strict = await startScp({ aeTitle: 'CLARA' });
    const result = await storescu(strict.port, studyA.files.slice(0, 1), { calledAE: 'SOMEONE' });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr + result.stdout, /Called AE Title Not Recognized/);
    const lenient = await startScp({ aeTitle: 'CLARA', acceptAnyCalledAE: true });
    assert.equal((await echoscu(lenient.port, { calledAE: 'SOMEONE' })).code, 0);
  });

  it('answers C-ECHO from an allowed peer', async () => {
    const { scp, port } = await startScp({ allow: [{ aeTitle: 'ECHOSCU' }] });
    const accepted = nextEvent<AssociationEvent>(scp, 'association', 5000, (a) => a.event === 'accepted');
    const result = await echoscu(port);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await accepted).callingAE, 'ECHOSCU');
  });

  it('refuses crafted SOP Instance UIDs (path traversal, a slash, 70 characters) with 0xA900 and writes nothing outside the job', async () => {
    const { scp, port, workRoot } = await startScp();
    const crafted = join(scratch.dir, 'crafted');
    mkdirSync(crafted, { recursive: true });
    const bad = ['../../evil', '1.2.3/../../x', `1.2.${'3'.repeat(66)}`];
    const files = bad.map((uid, i) => {
      const path = join(crafted, `bad${i}.dcm`);
      writeFileSync(path, mrInstanceFile({ SOPInstanceUID: uid }));
      return path;
    });
    const good = join(crafted, 'good.dcm');
    writeFileSync(good, mrInstanceFile({ SOPInstanceUID: '1.2.826.0.1.3680043.10.1.99' }));
    const rejected = collect<RejectedInstance>(scp, 'rejected');
    const jobDone = nextEvent<CompletedJob>(scp, 'job');
    const before = new Set(allFilesUnder(scratch.dir));
    const result = await storescu(port, [...files, good]);
    assert.deepEqual(storeResponses(result), ['Error: DataSetDoesNotMatchSOPClass', 'Error: DataSetDoesNotMatchSOPClass', 'Error: DataSetDoesNotMatchSOPClass', 'Success']);
    assert.deepEqual(rejected.map((r) => r.status), [0xa900, 0xa900, 0xa900]);
    assert.ok(rejected.every((r) => /invalid SOP Instance UID/.test(r.reason)));
    const job = await jobDone;
    assert.equal(job.summary.instances, 1);
    assert.equal(job.summary.rejected, 3);
    // The only new files anywhere are the job's own: no "evil", no "x", no temporary file left over.
    const created = allFilesUnder(scratch.dir).filter((p) => !before.has(p));
    assert.deepEqual(created.sort(), [join(job.job.dir, 'dicom', '1.2.826.0.1.3680043.10.1.99.dcm'), join(job.job.dir, 'job.json')].sort());
    assert.ok(job.job.dir.startsWith(workRoot + '/'));
    assert.ok(!existsSync(join(scratch.dir, 'evil')) && !existsSync(join(workRoot, 'evil')) && !existsSync(join(workRoot, 'x')));
    assert.equal(readJob(job.job.dir).errors.length, 3);
  });

  it('refuses a data set whose SOP Instance UID differs from the C-STORE request (0xA900)', async () => {
    const { scp, port } = await startScp();
    const file = mrInstanceFile({ SOPInstanceUID: '1.2.826.0.1.3680043.10.1.7' });
    const datasetBytes = file.subarray(readDicomHeaderFromBuffer(file));
    const rejected = nextEvent<RejectedInstance>(scp, 'rejected');
    const status = await sendRawDataSet(port, { sopClassUID: SopClass.MrImageStorage, sopInstanceUID: '1.2.826.0.1.3680043.10.1.8' }, datasetBytes);
    assert.equal(status, StoreStatus.DataSetDoesNotMatchSopClass);
    assert.match((await rejected).reason, /differs from/);
  });

  it('answers 0xC000 to a truncated or garbage data set and keeps serving the next association', async () => {
    const { scp, port, workRoot } = await startScp();
    const file = mrInstanceFile({ SOPInstanceUID: '1.2.826.0.1.3680043.10.1.5', PixelData: { vr: 'OW', value: new Uint8Array(4096) } });
    const datasetBytes = file.subarray(readDicomHeaderFromBuffer(file));
    const truncated = datasetBytes.subarray(0, datasetBytes.length - 1000);
    const rejected = collect<RejectedInstance>(scp, 'rejected');
    const identity = { sopClassUID: SopClass.MrImageStorage, sopInstanceUID: '1.2.826.0.1.3680043.10.1.5' };
    assert.equal(await sendRawDataSet(port, identity, truncated), StoreStatus.CannotUnderstand);
    assert.match(rejected[0].reason, /truncated/);
    const garbage = Buffer.from('this is not a DICOM data set at all, just some text padding!!');
    const garbageStatus = await sendRawDataSet(port, identity, garbage);
    assert.ok(garbageStatus === StoreStatus.CannotUnderstand || garbageStatus === StoreStatus.DataSetDoesNotMatchSopClass, `status ${garbageStatus}`);
    assert.deepEqual(readdirSync(join(workRoot, '.incoming')), []);
    const next = await storescu(port, studyA.files.slice(0, 2));
    assert.deepEqual(storeResponses(next), ['Success', 'Success']);
  });

  it('answers 0xA700 when the disk refuses the write (file size limit) and leaves no partial file', async function () {
    // A real write failure: the SCP runs as the CLI under `ulimit -f` (Node ignores SIGXFSZ, so writes
    // past the limit fail with EFBIG). A 64 KB limit refuses a 128 KB slice and accepts a small one.
    const workRoot = join(scratch.dir, 'ulimit-work');
    const big = join(scratch.dir, 'big');
    writePhantomStudy(big, { size: 256, slices: 8, seed: 3 });
    const bigFile = dicomFilesUnder(join(big, 'dicom')).find((f) => readFileSync(f).length > 100000)!;
    const small = join(scratch.dir, 'small.dcm');
    writeFileSync(small, mrInstanceFile({ SOPInstanceUID: '1.2.826.0.1.3680043.10.1.77' }));
    // 6 MB: more than the spool holds in memory, so it fails on the asynchronous write path.
    const huge = join(scratch.dir, 'huge.dcm');
    writeFileSync(huge, mrInstanceFile({ SOPInstanceUID: '1.2.826.0.1.3680043.10.1.78', Rows: 1536, Columns: 2048, PixelData: { vr: 'OW', value: new Uint8Array(1536 * 2048 * 2) } }));
    const main = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
    const child = spawn('bash', ['-c', `ulimit -f 64; exec "${process.execPath}" "${main}" listen "${workRoot}" --port 0 --host 127.0.0.1 --timeout 0.5`], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let stderr = '';
      const port = await new Promise<number>((resolve, reject) => {
        child.stderr.on('data', (d) => {
          stderr += d;
          const m = /listening (\{.*\})/.exec(stderr);
          if (m) resolve((JSON.parse(m[1]) as { port: number }).port);
        });
        child.on('exit', (code) => reject(new Error(`listen exited ${code}: ${stderr}`)));
      });
      const result = await storescu(port, [bigFile, huge, small]);
      assert.deepEqual(storeResponses(result), ['Refused: OutOfResources', 'Refused: OutOfResources', 'Success']);
      await delay(300);
      assert.equal(stderr.match(/0xA700: cannot write the instance to disk: EFBIG/g)?.length, 2);
      assert.deepEqual(readdirSync(join(workRoot, '.incoming')), []);
      const stored = allFilesUnder(workRoot).filter((p) => p.endsWith('.dcm')).map((p) => basename(p));
      assert.deepEqual(stored, ['1.2.826.0.1.3680043.10.1.77.dcm']);
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('stores compressed and deflated transfers as received: JPEG 2000, JPEG-LS, RLE (gdcmconv) and deflated', async () => {
    const { scp, port } = await startScp();
    const source = studyA.files[10];
    const compressed = join(scratch.dir, 'compressed');
    mkdirSync(compressed, { recursive: true });
    const cases: Array<{ flag: string; storescuOption: string; ts: string }> = [
      { flag: '--j2k', storescuOption: '-xv', ts: TransferSyntax.Jpeg2000Lossless },
      { flag: '--jpegls', storescuOption: '-xt', ts: TransferSyntax.JpegLsLossless },
      { flag: '--rle', storescuOption: '-xr', ts: TransferSyntax.RleLossless },
    ];
    const stored = collect<StoredInstance>(scp, 'instance');
    for (const c of cases) {
      const file = join(compressed, `${c.flag.slice(2)}.dcm`);
      await runProcess('gdcmconv', [c.flag, source, file]);
      assert.equal(readDicomHeader(file).transferSyntaxUID, c.ts);
      const result = await storescu(port, [file], {}, [c.storescuOption]);
      assert.deepEqual(storeResponses(result), ['Success'], `${c.flag}: ${result.stdout}`);
      const instance = stored[stored.length - 1];
      assert.equal(instance.transferSyntaxUID, c.ts);
      const kept = join(instance.job.dir, 'dicom', `${instance.sopInstanceUID}.dcm`);
      const sent = readDicomHeader(file);
      const header = readDicomHeader(kept);
      assert.equal(header.transferSyntaxUID, c.ts);
      assert.ok(readFileSync(file).subarray(sent.datasetOffset).equals(readFileSync(kept).subarray(header.datasetOffset)), `${c.flag}: bytes changed`);
    }
    // Deflated: storescu compresses on the fly; the stored file is deflated and its header reads back.
    const deflated = await storescu(port, [studyA.files[11]], {}, ['-xd']);
    assert.deepEqual(storeResponses(deflated), ['Success']);
    const last = stored[stored.length - 1];
    assert.equal(last.transferSyntaxUID, TransferSyntax.DeflatedExplicitVRLittleEndian);
    const header = readDicomHeader(join(last.job.dir, 'dicom', `${last.sopInstanceUID}.dcm`));
    assert.equal(header.transferSyntaxUID, TransferSyntax.DeflatedExplicitVRLittleEndian);
    assert.equal(header.dataset.string(0x00080018), last.sopInstanceUID);
  });

  it('streams an instance larger than its memory buffer (24 MB) to disk intact', async () => {
    const { scp, port, workRoot } = await startScp();
    const rows = 2048;
    const columns = 3072;
    const pixels = new Uint8Array(rows * columns * 2);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7 + (i >> 11)) & 0xff;
    const file = join(scratch.dir, 'large.dcm');
    writeFileSync(file, mrInstanceFile({ SOPInstanceUID: '1.2.826.0.1.3680043.10.1.500', Rows: rows, Columns: columns, PixelData: { vr: 'OW', value: pixels } }));
    const storedEvent = nextEvent<StoredInstance>(scp, 'instance');
    const result = await storescu(port, [file]);
    assert.deepEqual(storeResponses(result), ['Success']);
    const instance = await storedEvent;
    assert.equal(instance.bytes, readFileSync(file).length - readDicomHeaderFromBuffer(readFileSync(file)));
    const kept = readFileSync(join(instance.job.dir, 'dicom', '1.2.826.0.1.3680043.10.1.500.dcm'));
    const sent = readFileSync(file);
    assert.ok(kept.subarray(readDicomHeaderFromBuffer(kept)).equals(sent.subarray(readDicomHeaderFromBuffer(sent))));
    assert.deepEqual(readdirSync(join(workRoot, '.incoming')), []);
  });

  it('study grouping: two studies in one association make two jobs', async () => {
    const { scp, port } = await startScp();
    const jobs = collect<CompletedJob>(scp, 'job');
    const result = await storescu(port, [...studyA.files, ...studyB.files]);
    assert.equal(storeResponses(result).filter((r) => r === 'Success').length, studyA.files.length + studyB.files.length);
    while (jobs.length < 2) await nextEvent(scp, 'job', 10000);
    await delay(800);
    assert.equal(jobs.length, 2);
    const byStudy = new Map(jobs.map((j) => [j.summary.studyInstanceUID, j]));
    assert.equal(byStudy.get(studyA.manifest.studyInstanceUID)?.summary.instances, studyA.sopUIDs.size);
    assert.equal(byStudy.get(studyB.manifest.studyInstanceUID)?.summary.instances, studyB.sopUIDs.size);
    assert.notEqual(jobs[0].job.dir, jobs[1].job.dir);
  });

  it('study + calling AE grouping: one study from two senders makes two jobs; study grouping makes one', async () => {
    const split = await startScp({ grouping: 'study-calling-ae' });
    const splitJobs = collect<CompletedJob>(split.scp, 'job');
    await storescu(split.port, studyA.files.slice(0, 10), { callingAE: 'PACS1' });
    await storescu(split.port, studyA.files.slice(10, 20), { callingAE: 'PACS2' });
    while (splitJobs.length < 2) await nextEvent(split.scp, 'job', 10000);
    assert.deepEqual(splitJobs.map((j) => [j.summary.callingAE, j.summary.instances]).sort(), [['PACS1', 10], ['PACS2', 10]]);

    const merged = await startScp({ grouping: 'study' });
    const mergedJob = nextEvent<CompletedJob>(merged.scp, 'job');
    await storescu(merged.port, studyA.files.slice(0, 10), { callingAE: 'PACS1' });
    await storescu(merged.port, studyA.files.slice(10, 20), { callingAE: 'PACS2' });
    assert.equal((await mergedJob).summary.instances, 20);
  });

  it('association grouping: one job per association, sent at release without waiting for the timeout', async () => {
    const { scp, port } = await startScp({ grouping: 'association', studyTimeoutSeconds: 60 });
    const jobs = collect<CompletedJob>(scp, 'job');
    await storescu(port, [...studyA.files.slice(0, 5), ...studyB.files.slice(0, 4)]);
    await storescu(port, studyA.files.slice(5, 8));
    const deadline = Date.now() + 5000;
    while (jobs.length < 2 && Date.now() < deadline) await delay(50);
    assert.equal(jobs.length, 2);
    assert.equal(jobs[0].summary.instances, 9);
    assert.deepEqual(jobs[0].summary.studyInstanceUIDs.sort(), [studyA.manifest.studyInstanceUID, studyB.manifest.studyInstanceUID].sort());
    assert.equal(jobs[0].summary.completedBy, 'association-end');
    assert.equal(jobs[1].summary.instances, 3);
  });

  it('a study already sent starts a new job when more of it arrives; a repeated SOP instance counts once', async () => {
    const { scp, port } = await startScp();
    const first = nextEvent<CompletedJob>(scp, 'job');
    const file = studyA.files[0];
    const result = await storescu(port, [file, file, file, studyA.files[1]]);
    assert.deepEqual(storeResponses(result), ['Success', 'Success', 'Success', 'Success']);
    const job1 = await first;
    assert.equal(job1.summary.instances, 2);
    assert.equal(readdirSync(join(job1.job.dir, 'dicom')).length, 2);
    const second = nextEvent<CompletedJob>(scp, 'job');
    await storescu(port, [file]);
    const job2 = await second;
    assert.notEqual(job2.job.id, job1.job.id);
    assert.equal(job2.summary.instances, 1);
  });

  it('close() frees the port at once, so a new SCP can listen on it again and again', async () => {
    const port = await freeLoopbackPort();
    for (let round = 0; round < 3; round++) {
      const { scp } = await startScp({ port });
      assert.equal(scp.port, port);
      assert.equal((await echoscu(port)).code, 0);
      await scp.close();
      running.splice(running.indexOf(scp), 1);
    }
  });

  it('leaves studies still receiving at close() for the next SCP on the work root, which resumes them', async () => {
    const first = await startScp({ studyTimeoutSeconds: 30 });
    await storescu(first.port, studyA.files.slice(0, 12));
    const [pending] = first.scp.store.list();
    await first.scp.close();
    assert.equal(readJob(first.scp.store.dirOf(pending.id)).state, 'receiving');
    assert.equal(readJob(first.scp.store.dirOf(pending.id)).counts.instances, 12);

    const second = new StoreScp({ workRoot: first.workRoot, port: 0, host: '127.0.0.1', studyTimeoutSeconds: 0.5 });
    running.push(second);
    const done = nextEvent<CompletedJob>(second, 'job');
    const { port } = await second.listen();
    await storescu(port, studyA.files.slice(12));
    const job = await done;
    assert.equal(job.job.id, pending.id);
    assert.equal(job.summary.instances, studyA.sopUIDs.size);
    assert.equal(readdirSync(join(job.job.dir, 'dicom')).length, studyA.sopUIDs.size);
  });

  it('close({ flush: true }) completes and emits the studies still receiving', async () => {
    const { scp, port } = await startScp({ studyTimeoutSeconds: 30 });
    const jobs = collect<CompletedJob>(scp, 'job');
    await storescu(port, studyA.files.slice(0, 6));
    assert.equal(jobs.length, 0);
    await scp.close({ flush: true });
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0].summary.completedBy, 'close');
    assert.equal(readJob(jobs[0].job.dir).state, 'received');
  });

  it('survives a sender killed in the middle of a transfer: no temporary file is left and the next peer is served', async () => {
    const { scp, port, workRoot } = await startScp({ studyTimeoutSeconds: 30 });
    const big = join(scratch.dir, 'big-kill');
    writePhantomStudy(big, { size: 256, slices: 40, seed: 4 });
    const files = dicomFilesUnder(join(big, 'dicom'));
    const child = spawn('storescu', ['-aec', 'CLARA', '127.0.0.1', String(port), ...files], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'ignore' });
    await nextEvent<StoredInstance>(scp, 'instance', 20000, (i) => i.jobInstances >= 3);
    child.kill('SIGKILL');
    await nextEvent<AssociationEvent>(scp, 'association', 10000, (a) => a.event === 'closed' || a.event === 'aborted');
    assert.deepEqual(readdirSync(join(workRoot, '.incoming')), []);
    assert.equal((await echoscu(port)).code, 0);
    const result = await storescu(port, studyA.files.slice(0, 2));
    assert.deepEqual(storeResponses(result), ['Success', 'Success']);
  });
});

/** Where the data set starts in a Part 10 buffer (after the meta header). */
function readDicomHeaderFromBuffer(file: Buffer): number {
  return parseDicom(file, { complete: true }).datasetOffset;
}

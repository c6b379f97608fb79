import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FolderIngestError, ingestFolder } from '../../lib/ingest';
import { JobStore, readJob } from '../../lib/job';
import { writePhantomStudy } from '../../lib/phantom';
import { allFilesUnder, scratchDir } from '../support/tools';
import { dicomFilesUnder, mrInstanceFile } from './helpers';

function digestOf(files: string[]): Map<string, string> {
  return new Map(files.map((f) => [f, `${createHash('sha256').update(readFileSync(f)).digest('hex')}:${statSync(f).mtimeMs}`]));
}

describe('lib/ingest ingestFolder (msg.payload = folder)', function () {
  this.timeout(60000);
  const scratch = scratchDir('ingest');
  after(() => scratch.cleanup());

  it('ingests a folder with junk mixed in: one job per study, every instance copied, junk reported, source untouched', async () => {
    const source = join(scratch.dir, 'incoming');
    const a = writePhantomStudy(join(source, 'exam-a'), { size: 32, slices: 8, seed: 11 });
    const b = writePhantomStudy(join(source, 'nested', 'deeper', 'exam-b'), { size: 32, slices: 8, seed: 12 });
    const junk = join(source, 'junk');
    mkdirSync(junk, { recursive: true });
    writeFileSync(join(junk, 'notes.txt'), 'radiology report draft\n');
    writeFileSync(join(junk, 'empty.dcm'), '');
    const sample = dicomFilesUnder(join(source, 'exam-a'))[0];
    writeFileSync(join(junk, 'truncated.dcm'), readFileSync(sample).subarray(0, readFileSync(sample).length - 500));
    writeFileSync(join(junk, 'no-study.dcm'), mrInstanceFile({ StudyInstanceUID: undefined, SOPInstanceUID: '1.2.826.0.1.3680043.10.2.1' }));
    writeFileSync(join(junk, 'evil-uid.dcm'), mrInstanceFile({ SOPInstanceUID: '../../../etc/evil', StudyInstanceUID: a.studyInstanceUID }));
    // A second copy of one instance under another name: stored once.
    copyFileSync(sample, join(junk, 'duplicate-of-a.dcm'));
    // A link to a folder must not be followed (it could loop).
    symlinkSync(source, join(junk, 'loop'));

    const sourceFiles = allFilesUnder(source).filter((p) => !p.includes('/loop/'));
    const before = digestOf(sourceFiles);
    const store = new JobStore(join(scratch.dir, 'work'));
    const result = await ingestFolder(source, store, { calledAE: 'CLARA' });

    assert.equal(result.jobs.length, 2);
    const byStudy = new Map(result.jobs.map((j) => [j.summary.studyInstanceUID, j]));
    for (const study of [a, b]) {
      const job = byStudy.get(study.studyInstanceUID);
      assert.ok(job, `no job for study ${study.studyInstanceUID}`);
      const expected = study.series.flatMap((s) => s.sopInstanceUIDs).map((u) => `${u}.dcm`).sort();
      assert.deepEqual(readdirSync(join(job.job.dir, 'dicom')).sort(), expected);
      assert.equal(job.summary.instances, expected.length);
      assert.equal(job.summary.source, 'folder');
      assert.equal(job.summary.completedBy, 'folder');
      assert.equal(job.summary.folder, source);
      const record = readJob(job.job.dir);
      assert.equal(record.state, 'received');
      assert.equal(record.counts.instances, expected.length);
      assert.equal(record.calledAE, 'CLARA');
    }
    // Copies, byte for byte.
    const aJob = byStudy.get(a.studyInstanceUID)!;
    const uid = a.series[0].sopInstanceUIDs[0];
    const original = dicomFilesUnder(join(source, 'exam-a')).find((f) => readFileSync(f).includes(Buffer.from(uid)))!;
    assert.ok(readFileSync(join(aJob.job.dir, 'dicom', `${uid}.dcm`)).equals(readFileSync(original)));

    // The phantoms' own phantom.json and ground-truth NIfTI are not DICOM either: skipped, with a reason.
    const notJunk = result.skipped.filter((s) => !s.path.startsWith(junk + '/')).map((s) => s.path.split('/').pop()).sort();
    assert.deepEqual(notJunk, ['phantom.json', 'phantom.json', 'tumor-core.nii.gz', 'tumor-core.nii.gz']);
    const reasons = new Map(result.skipped.filter((s) => s.path.startsWith(junk + '/')).map((s) => [s.path.slice(junk.length + 1), s.reason]));
    assert.deepEqual([...reasons.keys()].sort(), ['empty.dcm', 'evil-uid.dcm', 'no-study.dcm', 'notes.txt', 'truncated.dcm']);
    assert.match(reasons.get('notes.txt')!, /not readable as DICOM/);
    assert.match(reasons.get('truncated.dcm')!, /truncated/);
    assert.match(reasons.get('no-study.dcm')!, /Study Instance UID/);
    assert.match(reasons.get('evil-uid.dcm')!, /invalid SOP Instance UID/);
    // The duplicate is stored once, and the file whose copy it replaced is named, not silently dropped.
    assert.equal(result.replaced.length, 1);
    assert.deepEqual([result.replaced[0].path, result.replaced[0].by].sort(), [sample, join(junk, 'duplicate-of-a.dcm')].sort());
    assert.ok(a.series.some((s) => s.sopInstanceUIDs.includes(result.replaced[0].sopInstanceUID)));
    // The refused file of study A is counted against its job.
    assert.equal(aJob.summary.rejected, 1);
    assert.equal(result.files, sourceFiles.length);

    // The user's folder is exactly as it was.
    assert.deepEqual(digestOf(allFilesUnder(source).filter((p) => !p.includes('/loop/'))), before);
    assert.deepEqual(readdirSync(join(store.root, '.incoming')), []);
  });

  it('puts the whole folder in one job with association grouping', async () => {
    const source = join(scratch.dir, 'two-studies');
    const a = writePhantomStudy(join(source, 'a'), { size: 16, slices: 8, seed: 21 });
    const b = writePhantomStudy(join(source, 'b'), { size: 16, slices: 8, seed: 22 });
    const result = await ingestFolder(source, new JobStore(join(scratch.dir, 'work-assoc')), { grouping: 'association' });
    assert.equal(result.jobs.length, 1);
    assert.deepEqual(result.jobs[0].summary.studyInstanceUIDs.sort(), [a.studyInstanceUID, b.studyInstanceUID].sort());
  });

  it('refuses a folder that does not exist or is a file, and the work root itself', async () => {
    const store = new JobStore(join(scratch.dir, 'work-bad'));
    await assert.rejects(ingestFolder(join(scratch.dir, 'nope'), store), FolderIngestError);
    const file = join(scratch.dir, 'a-file.dcm');
    writeFileSync(file, mrInstanceFile());
    await assert.rejects(ingestFolder(file, store), /is not a folder/);
    await assert.rejects(ingestFolder(store.root, store), /work root itself/);
  });
});

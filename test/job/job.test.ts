import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  JobPathError, JobStore, instanceFileName, insideDir, operatorDir, readJob, recordJobError, setJobState, updateJob,
} from '../../lib/job';
import { scratchDir } from '../support/tools';

describe('lib/job', () => {
  let scratch: ReturnType<typeof scratchDir>;
  beforeEach(() => {
    scratch = scratchDir('job');
  });
  afterEach(() => scratch.cleanup());

  it('names instances by SOP Instance UID only when the UID is valid', () => {
    assert.equal(instanceFileName('1.2.840.113619.2.55.3.604688119.969.1268071029.320'), '1.2.840.113619.2.55.3.604688119.969.1268071029.320.dcm');
    for (const crafted of ['../../etc/passwd', '1.2.3/../../x', '..', '1.2.3\\..\\x', '/abs/1.2', '1.2.3\0.4', '1'.repeat(65), '']) {
      assert.throws(() => instanceFileName(crafted), JobPathError, crafted);
    }
  });

  it('keeps every path inside its folder', () => {
    const base = scratch.dir;
    assert.equal(insideDir(base, 'a', 'b.dcm'), join(base, 'a', 'b.dcm'));
    assert.throws(() => insideDir(base, '..', 'x'), JobPathError);
    assert.throws(() => insideDir(base, '/etc/passwd'), JobPathError);
    const store = new JobStore(base);
    assert.throws(() => store.dirOf('../outside'), JobPathError);
    assert.throws(() => operatorDir(base, '../up'), JobPathError);
  });

  it('creates a job folder with dicom/ and job.json, and records state changes and errors', () => {
    const store = new JobStore(join(scratch.dir, 'jobs'));
    const record = store.create({ studyInstanceUID: '1.2.3', callingAE: 'MODALITY', calledAE: 'CLARA', remoteAddress: '127.0.0.1' });
    const ref = store.ref(record);
    assert.ok(existsSync(join(ref.dir, 'dicom')));
    assert.deepEqual(Object.keys(ref).sort(), ['dir', 'id', 'studyInstanceUID']);
    const onDisk = JSON.parse(readFileSync(join(ref.dir, 'job.json'), 'utf8'));
    assert.equal(onDisk.state, 'receiving');
    assert.equal(onDisk.callingAE, 'MODALITY');
    assert.equal(onDisk.counts.instances, 0);

    updateJob(ref.dir, (r) => {
      r.counts.instances = 42;
    });
    setJobState(ref.dir, 'received');
    recordJobError(ref.dir, 'parser', 'series 1.2.3.4 has no pixel data');
    const after = readJob(ref.dir);
    assert.equal(after.counts.instances, 42);
    assert.equal(after.state, 'received');
    assert.ok(after.timestamps.received);
    assert.equal(after.errors[0].message, 'series 1.2.3.4 has no pixel data');
    recordJobError(ref.dir, 'parser', 'no image series', true);
    assert.equal(readJob(ref.dir).state, 'failed');
    // Atomic writes leave no temporary files behind.
    assert.deepEqual(readdirSync(ref.dir).sort(), ['dicom', 'job.json']);
  });

  it('lists jobs oldest first and ignores stray folders', () => {
    const store = new JobStore(scratch.dir);
    const first = store.create({ studyInstanceUID: '1.1', id: '20260101-000000-aaaaaaaa' });
    const second = store.create({ studyInstanceUID: '1.2', id: '20260101-000001-bbbbbbbb' });
    operatorDir(scratch.dir, 'not-a-job');
    const listed = store.list();
    assert.deepEqual(listed.map((j) => j.id), [first.id, second.id]);
  });
});

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JobStore, setJobState } from '../../lib/job';
import { listRegisteredJobs, personInitials } from '../../lib/render/registry';
import { scratchDir } from '../support/tools';

describe('render/registry', () => {
  const scratch = scratchDir('render-registry');
  after(() => scratch.cleanup());

  it('reduces a DICOM person name to initials (given, middle, family)', () => {
    assert.equal(personInitials('Doe^Jane^Quinn'), 'JQD');
    assert.equal(personInitials('van der Berg^Anna'), 'AVDB');
    assert.equal(personInitials('Müller^Ödön'), 'ÖM');
    assert.equal(personInitials('Yamada^Tarou=山田^太郎'), 'TY');
    assert.equal(personInitials(''), '');
  });

  it('lists only jobs with publish/config.meta, with initials, study date, series and state', () => {
    const store = new JobStore(join(scratch.dir, 'jobs'));
    const plain = store.ref(store.create({ studyInstanceUID: '1.2.3', id: 'job-a' }));
    const published = store.ref(store.create({ studyInstanceUID: '1.2.4', id: 'job-b' }));
    setJobState(published.dir, 'seg-written');
    mkdirSync(join(published.dir, 'publish'), { recursive: true });
    writeFileSync(join(published.dir, 'publish', 'config.meta'), JSON.stringify({ name: 'brain-tumor-tc', density: '1.2.4.5.nii.gz', settings: 'config_render.json', seg_masks: ['1.2.4.5.output.nii.gz'] }));
    mkdirSync(join(published.dir, 'parser'), { recursive: true });
    const attributes = { '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^John' }] }, '00080020': { vr: 'DA', Value: ['20240115'] } };
    writeFileSync(join(published.dir, 'parser', 'dicom-metadata.json'), JSON.stringify({
      dicomFolder: '../dicom',
      studies: [{ StudyInstanceUID: '1.2.4', series: [
        { SeriesInstanceUID: '9.9', SeriesDescription: 'Localizer', image: null, instanceCount: 1, attributes, instances: [] },
        { SeriesInstanceUID: '1.2.4.5', SeriesDescription: 'Ax 3D T1c', image: 'x.nii.gz', instanceCount: 1, attributes, instances: [] },
      ] }],
    }));
    const jobs = listRegisteredJobs(store.root);
    assert.equal(jobs.length, 1);
    assert.ok(plain.id !== jobs[0].id);
    assert.deepEqual(
      { id: jobs[0].id, state: jobs[0].state, patientInitials: jobs[0].patientInitials, studyDate: jobs[0].studyDate, seriesDescription: jobs[0].seriesDescription, model: jobs[0].model, hasSnapshots: jobs[0].hasSnapshots },
      { id: 'job-b', state: 'seg-written', patientInitials: 'JD', studyDate: '2024-01-15', seriesDescription: 'Ax 3D T1c', model: 'brain-tumor-tc', hasSnapshots: false },
    );
    assert.doesNotMatch(JSON.stringify(jobs), /Doe|John/);
  });
});

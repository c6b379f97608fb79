import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readDicomHeader } from '../../lib/dicom/reader';
import { resolveTag } from '../../lib/dicom/dictionary';
import { type JobRef, JobStore, readJob } from '../../lib/job';
import type { JobRtStructResult } from '../../lib/rtstruct/job';
import { readNifti, writeNifti } from '../../lib/volume/nifti';
import type { Volume } from '../../lib/volume/types';
import { type SelectedPhantomJob, copyJob, selectedPhantomJob } from '../support/clara';
import { type TestNode, collectMessages, helper, statusTexts, waitFor } from '../support/node-red';
import { hasTool, scratchDir } from '../support/tools';
import { dciodvfy } from '../rtstruct/helpers';

const nodeFile = (type: string) => join(__dirname, '..', '..', 'nodes', type, `${type}.js`);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const packNodes = ['clara-triton-server', 'clara-triton-infer', 'clara-rtstruct-writer'].map((t) => require(nodeFile(t)) as unknown);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require(join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'common', '25-catch.js')) as unknown;

interface WrittenMsg {
  job: JobRef;
  rtstruct: JobRtStructResult;
}
interface CaughtMsg {
  job?: JobRef;
  error: { message: string; source: { id: string } };
}

describe('clara-rtstruct-writer node in a Node-RED 4 runtime', function () {
  this.timeout(300000);
  const scratch = scratchDir('node-rtstruct');
  const store = new JobStore(join(scratch.dir, 'jobs'));
  let small: SelectedPhantomJob;
  let truth: Volume;

  before(async () => {
    small = await selectedPhantomJob(store, join(scratch.dir, 'small'), { size: 64, slices: 40, seed: 4 });
    truth = readNifti(join(scratch.dir, 'small', small.study.maskPath));
  });
  afterEach(() => helper.unload());
  after(() => scratch.cleanup());

  /** A copy of the selected job with a segmentation of the target series: `labels` as given, or the ground truth. */
  function segmentedJob(labels: Volume = truth): { job: JobRef; segmentation: string } {
    const job = copyJob(store, small.job);
    mkdirSync(join(job.dir, 'segmentation'), { recursive: true });
    const segmentation = join(job.dir, 'segmentation', `${small.study.targetSeriesInstanceUID}.nii.gz`);
    writeNifti(segmentation, labels);
    return { job, segmentation };
  }
  const inferenceOf = (segmentation: string) => ({ model: 'brain-tumor-tc', version: '', series: [{ seriesInstanceUID: small.study.targetSeriesInstanceUID, segmentation, labelCounts: { 1: 1 } }] });
  const writerNode = (id: string, extra: Record<string, unknown> = {}) => ({ id, z: 'tab', type: 'clara-rtstruct-writer', labels: '["Tumor-seg"]', wires: [['written'], ['none']], ...extra });
  const helpers = [
    { id: 'written', z: 'tab', type: 'helper' },
    { id: 'none', z: 'tab', type: 'helper' },
    { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'tab', type: 'helper' },
  ];

  it('writes an RT Structure Set per segmentation into rtstruct/, from msg.inference or from the job folder, and sends "no findings" out of output 2', async () => {
    await helper.load([...packNodes, catchNode], [
      { id: 'tab', type: 'tab', label: 'rtstruct' },
      writerNode('writer', { styles: '[{"color": "#ffa500", "type": "GTV"}]', structureSetLabel: 'NODE TEST', seriesDescription: 'AI tumour contours', uidRoot: '1.2.826.0.1.3680043.10.77', tolerance: 0.25 }),
      ...helpers,
    ]);
    const written = collectMessages<WrittenMsg>(helper.getNode('written'));
    const none = collectMessages<WrittenMsg>(helper.getNode('none'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const writer = helper.getNode('writer');

    const first = segmentedJob();
    writer.receive({ job: first.job, inference: inferenceOf(first.segmentation) });
    const msg = await waitFor(() => written[0], 60000, () => `the written msg; caught: ${caught.map((c) => c.error.message).join(' | ') || 'nothing'}`);
    assert.equal(msg.rtstruct.dir, join(first.job.dir, 'rtstruct'));
    assert.equal(msg.rtstruct.files.length, 1);
    const [file] = msg.rtstruct.files;
    assert.equal(file.sourceSeriesInstanceUID, small.study.targetSeriesInstanceUID);
    assert.match(file.sopInstanceUID, /^1\.2\.826\.0\.1\.3680043\.10\.77\./);
    assert.equal(file.file, join(first.job.dir, 'rtstruct', `${file.sopInstanceUID}.dcm`));
    assert.deepEqual(readdirSync(msg.rtstruct.dir), [`${file.sopInstanceUID}.dcm`]);
    assert.equal(file.rois.length, 1);
    assert.equal(file.rois[0].name, 'Tumor-seg');
    assert.ok(file.rois[0].contours > 0 && file.rois[0].points > file.rois[0].contours * 3);
    const { dataset } = readDicomHeader(file.file);
    assert.equal(dataset.string(resolveTag('StructureSetLabel')!), 'NODE TEST');
    assert.equal(dataset.string(resolveTag('SeriesDescription')!), 'AI tumour contours');
    assert.equal(dataset.string(resolveTag('SeriesInstanceUID')!), file.seriesInstanceUID);
    const roi = dataset.get(resolveTag('StructureSetROISequence')!)!.items![0];
    assert.equal(roi.string(resolveTag('ROIGenerationDescription')!), 'brain-tumor-tc');
    assert.deepEqual(dataset.get(resolveTag('ROIContourSequence')!)!.items![0].numbers(resolveTag('ROIDisplayColor')!), [255, 165, 0]);
    if (hasTool('dciodvfy')) assert.deepEqual(dciodvfy(file.file).errors, []);
    const record = readJob(first.job.dir);
    assert.equal(record.counts.rtstructFiles, 1);
    assert.equal(record.counts.rtstructContours, file.rois[0].contours);
    assert.equal(record.state, 'rtstruct-written');
    assert.ok(record.timestamps['rtstruct-writing'] && record.timestamps['rtstruct-written']);
    assert.deepEqual(statusTexts(writer).slice(-2), ['contouring', statusTexts(writer).at(-1)]);
    assert.match(statusTexts(writer).at(-1) ?? '', /^wrote 1 RTSTRUCT \(1 ROI\(s\), \d+ contours\) in [\d.]+ s$/);

    // No msg.inference: every segmentation/<uid>.nii.gz of the job.
    const second = segmentedJob();
    writer.receive({ job: second.job });
    const fromFolder = await waitFor(() => written[1], 60000, 'the second written msg');
    assert.equal(fromFolder.rtstruct.files[0].sourceSeriesInstanceUID, small.study.targetSeriesInstanceUID);

    // An empty segmentation: output 2, nothing written.
    const empty = segmentedJob({ ...truth, data: new Uint8Array(truth.data.length) });
    writer.receive({ job: empty.job, inference: inferenceOf(empty.segmentation) });
    const noFindings = await waitFor(() => none[0], 60000, 'the no-findings msg');
    assert.deepEqual(noFindings.rtstruct.files, []);
    assert.equal(noFindings.rtstruct.empty.length, 1);
    assert.deepEqual(readdirSync(join(empty.job.dir, 'rtstruct')), []);
    assert.match(statusTexts(writer).at(-1) ?? '', /^no findings/);
    assert.equal(readJob(empty.job.dir).state, 'no-findings');
    assert.equal(readJob(empty.job.dir).counts.rtstructEmptySeries, 1);
    assert.equal(written.length, 2);
    assert.equal(caught.length, 0);
  });

  it('fails each bad input clearly (catch, red status, job.json), writes nothing, and keeps serving the next job', async () => {
    await helper.load([...packNodes, catchNode], [{ id: 'tab', type: 'tab', label: 'faults' }, writerNode('writer'), ...helpers]);
    const written = collectMessages<WrittenMsg>(helper.getNode('written'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const writer: TestNode = helper.getNode('writer');

    const expectFault = async (job: JobRef, extra: Record<string, unknown>, pattern: RegExp): Promise<void> => {
      writer.receive({ job, ...extra });
      const msg = await waitFor(() => caught.find((c) => c.job?.id === job.id), 60000, `the fault of job ${job.id}`);
      assert.equal(msg.error.source.id, 'writer');
      assert.match(msg.error.message, new RegExp(`^(Error: )?clara-rtstruct-writer: job ${job.id}: `));
      assert.match(msg.error.message, pattern);
      const status = statusTexts(writer).at(-1) ?? '';
      assert.ok(status.length > 0 && !/\n\s+at /.test(status), `a reason, no stack: ${status}`);
      const record = readJob(job.dir);
      assert.equal(record.state, 'failed');
      assert.equal(record.errors.at(-1)?.stage, 'rtstruct');
      assert.match(record.errors.at(-1)?.message ?? '', pattern);
      assert.ok(!existsSync(join(job.dir, 'rtstruct')) || readdirSync(join(job.dir, 'rtstruct')).length === 0, 'no file written');
    };

    // Values beyond the label list.
    const twoLabels = { ...truth, data: Uint8Array.from(truth.data, (v, n) => (v ? 1 : n % 997 === 0 ? 2 : 0)) };
    const beyond = segmentedJob(twoLabels);
    await expectFault(beyond.job, { inference: inferenceOf(beyond.segmentation) }, /mask value 2 at voxel .* is beyond the label list/);
    // A mask on another grid (the axial series' volume given as the target's segmentation).
    const axial = small.study.series.find((s) => s.description === 'Ax T1 SE')!;
    const wrongGrid = segmentedJob(readNifti(join(small.job.dir, 'parser', `${axial.seriesInstanceUID}.nii.gz`)));
    await expectFault(wrongGrid.job, {}, /the mask grid does not match the source series/);
    // A source instance gone from the job's dicom/ folder.
    const missing = segmentedJob();
    const folder = join(missing.job.dir, small.study.series.find((s) => s.isTarget)!.dir);
    rmSync(join(folder, readdirSync(folder).sort()[5]));
    await expectFault(missing.job, { inference: inferenceOf(missing.segmentation) }, /source instance .* is missing/);
    // No segmentation at all.
    await expectFault(copyJob(store, small.job), {}, /the job has no segmentation\/ folder: run clara-triton-infer on it first/);
    assert.equal(written.length, 0);

    // The next job goes through.
    const good = segmentedJob();
    writer.receive({ job: good.job, inference: inferenceOf(good.segmentation) });
    const done = await waitFor(() => written[0], 60000, 'the good job');
    assert.equal(done.job.id, good.job.id);
    assert.equal(readJob(good.job.dir).errors.length, 0);
    // A msg without a job is refused with a reason.
    writer.receive({ payload: 'no job' });
    const noJob = await waitFor(() => caught.find((c) => !c.job), 10000, 'the job-less msg');
    assert.match(noJob.error.message, /clara-rtstruct-writer: msg\.job must be a job reference/);
  });

  it('refuses bad settings at deploy with a red status, and fails the messages it gets', async () => {
    await helper.load([...packNodes, catchNode], [
      { id: 'tab', type: 'tab', label: 'settings' },
      writerNode('twice', { labels: '["Tumor", "Tumor"]' }),
      writerNode('tolerance', { tolerance: 0.5 }),
      writerNode('styles', { styles: '[{"color": [300, 0, 0]}]' }),
      writerNode('label', { structureSetLabel: 'A LABEL LONGER THAN SIXTEEN' }),
      ...helpers,
    ]);
    assert.match(statusTexts(helper.getNode('twice')).at(-1) ?? '', /"Tumor" is named twice/);
    assert.match(statusTexts(helper.getNode('tolerance')).at(-1) ?? '', /tolerance must be from 0 to 0\.25/);
    assert.match(statusTexts(helper.getNode('styles')).at(-1) ?? '', /colour must be \[r, g, b\]/);
    assert.match(statusTexts(helper.getNode('label')).at(-1) ?? '', /at most 16 characters/);
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const { job } = segmentedJob();
    helper.getNode('twice').receive({ job });
    const msg = await waitFor(() => caught[0], 10000, 'the refused msg');
    assert.match(msg.error.message, /named twice/);
    assert.equal(readJob(job.dir).state, 'failed');
  });

  it('contours what clara-triton-infer segmented, straight from its msg', async () => {
    await helper.load([...packNodes, catchNode], [
      { id: 'tab', type: 'tab', label: 'infer to rtstruct' },
      { id: 'infer', z: 'tab', type: 'clara-triton-infer', preset: 'demo', format: 'nifti-gz', wires: [['writer']] },
      writerNode('writer'),
      ...helpers,
    ]);
    const written = collectMessages<WrittenMsg>(helper.getNode('written'));
    const none = collectMessages<WrittenMsg>(helper.getNode('none'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const job = copyJob(store, small.job);
    helper.getNode('infer').receive({ job });
    const msg = await waitFor(() => written[0], 120000, () => `the written msg; no findings ${none.length}, caught: ${caught.map((c) => c.error.message).join(' | ') || 'nothing'}`);
    const inference = (msg as WrittenMsg & { inference: { series: Array<{ seriesInstanceUID: string; labelCounts: Record<string, number> }> } }).inference;
    assert.ok(Object.values(inference.series[0].labelCounts).some((n) => n > 0), 'the demo model found the tumour');
    assert.equal(msg.rtstruct.files.length, 1);
    assert.equal(msg.rtstruct.files[0].sourceSeriesInstanceUID, inference.series[0].seriesInstanceUID);
    const { dataset } = readDicomHeader(msg.rtstruct.files[0].file);
    assert.equal(dataset.get(resolveTag('StructureSetROISequence')!)!.items![0].string(resolveTag('ROIGenerationDescription')!), 'brain-tumor-tc');
  });
});

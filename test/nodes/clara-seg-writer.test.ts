import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { resample } from '../../lib/infer/resample';
import { type JobRef, JobStore, readJob } from '../../lib/job';
import { readDicomMetadata } from '../../lib/select/run';
import { readNifti, writeNifti } from '../../lib/volume/nifti';
import type { Volume } from '../../lib/volume/types';
import { type SelectedPhantomJob, copyJob, selectedPhantomJob } from '../support/clara';
import { type TestNode, collectMessages, helper, statusTexts, waitFor } from '../support/node-red';
import { scratchDir } from '../support/tools';
import { dciodvfy, dcmjsRead } from '../seg/helpers';

const nodeFile = (type: string) => join(__dirname, '..', '..', 'nodes', type, `${type}.js`);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const packNodes = ['clara-triton-infer', 'clara-seg-writer'].map((t) => require(nodeFile(t)) as unknown);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require(join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'common', '25-catch.js')) as unknown;

interface SegMsg {
  job: JobRef;
  seg: {
    dir: string;
    files: Array<{ file: string; sopInstanceUID: string; seriesInstanceUID: string; sourceSeriesInstanceUID: string; frames: number; segments: Array<{ number: number; label: string; frames: number; voxels: number }> }>;
    empty: Array<{ sourceSeriesInstanceUID: string }>;
    algorithm: { name: string; version: string };
  };
}
interface CaughtMsg {
  job?: JobRef;
  error: { message: string; source: { id: string } };
}

describe('clara-seg-writer node in a Node-RED 4 runtime', function () {
  this.timeout(300000);
  const scratch = scratchDir('node-seg');
  const store = new JobStore(join(scratch.dir, 'jobs'));
  let small: SelectedPhantomJob;
  let truth: Volume;

  /** A copy of the selected job with `labels` as its segmentation, as clara-triton-infer leaves it; and msg.inference. */
  function segmentedJob(labels: Volume): { job: JobRef; inference: { model: string; version: string; series: Array<{ seriesInstanceUID: string; segmentation: string }> } } {
    const job = copyJob(store, small.job);
    mkdirSync(join(job.dir, 'segmentation'), { recursive: true });
    const segmentation = join(job.dir, 'segmentation', `${small.study.targetSeriesInstanceUID}.nii.gz`);
    writeNifti(segmentation, labels);
    return { job, inference: { model: 'brain-tumor-tc', version: '3', series: [{ seriesInstanceUID: small.study.targetSeriesInstanceUID, segmentation }] } };
  }

  before(async () => {
    small = await selectedPhantomJob(store, join(scratch.dir, 'small'), { size: 64, slices: 40, seed: 4 });
    const groundTruth = readNifti(join(scratch.dir, 'small', small.study.maskPath));
    const grid = readNifti(small.targetVolume);
    truth = { dims: grid.dims, affine: grid.affine, type: 'uint8', data: resample(groundTruth.data, groundTruth, grid, 'nearest', 0, new Uint8Array(grid.data.length)) };
  });
  afterEach(() => helper.unload());
  after(() => scratch.cleanup());

  const segNode = (id: string, extra: Record<string, unknown> = {}) => ({ id, z: 'tab', type: 'clara-seg-writer', labels: '["Tumor-seg"]', wires: [['written'], ['none']], ...extra });
  const flow = (...nodes: Array<Record<string, unknown>>) => [
    { id: 'tab', type: 'tab', label: 'seg' },
    ...nodes,
    { id: 'written', z: 'tab', type: 'helper' },
    { id: 'none', z: 'tab', type: 'helper' },
    { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'tab', type: 'helper' },
  ];

  it('segments with clara-triton-infer, then writes a valid SEG into seg/ and lists it in msg.seg (output 1)', async () => {
    await helper.load([...packNodes, catchNode], flow(
      { id: 'infer', z: 'tab', type: 'clara-triton-infer', preset: 'demo', format: 'nifti-gz', wires: [['seg']] },
      segNode('seg', { seriesDescription: 'AI Segmentation', contentCreator: 'CLARA^AI', uidRoot: '1.2.826.0.1.3680043.10.99' }),
    ));
    const written = collectMessages<SegMsg>(helper.getNode('written'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const job = copyJob(store, small.job);
    helper.getNode('infer').receive({ job });
    const msg = await waitFor(() => written[0], 120000, () => `the SEG; caught: ${caught.map((c) => c.error.message).join(' | ') || 'nothing'}`);
    assert.equal(msg.seg.dir, join(job.dir, 'seg'));
    assert.equal(msg.seg.files.length, 1);
    const [file] = msg.seg.files;
    assert.equal(file.file, join(job.dir, 'seg', `${file.sopInstanceUID}.dcm`));
    assert.ok(file.seriesInstanceUID.startsWith('1.2.826.0.1.3680043.10.99.'));
    assert.equal(file.sourceSeriesInstanceUID, small.study.targetSeriesInstanceUID);
    assert.equal(msg.seg.algorithm.name, 'brain-tumor-tc', 'the algorithm is the model that segmented');
    assert.ok(file.frames > 0 && file.segments[0].voxels > 0);
    assert.deepEqual(readdirSync(join(job.dir, 'seg')), [`${file.sopInstanceUID}.dcm`]);
    assert.deepEqual(dciodvfy(file.file).errors, []);
    const ds = dcmjsRead(file.file);
    assert.equal(ds.SeriesDescription, 'AI Segmentation');
    assert.equal(ds.StudyInstanceUID, small.study.studyInstanceUID);
    const record = readJob(job.dir);
    assert.equal(record.state, 'seg-written');
    assert.equal(record.counts.segFiles, 1);
    assert.equal(record.counts.segFrames, file.frames);
    assert.ok(record.timestamps['seg-writing'] && record.timestamps['seg-written']);
    assert.equal(caught.length, 0);
    assert.match(statusTexts(helper.getNode('seg')).at(-1) ?? '', /^wrote 1 SEG \(\d+ frames?\) in [\d.]+ s$/);
  });

  it('without msg.inference, reads segmentation/<uid>.nii.gz of the selected series; an empty mask goes out of "no findings" (output 2)', async () => {
    await helper.load([...packNodes, catchNode], flow(segNode('seg', { algorithmName: 'my-model', algorithmVersion: '7' })));
    const written = collectMessages<SegMsg>(helper.getNode('written'));
    const none = collectMessages<SegMsg>(helper.getNode('none'));
    const seg = helper.getNode('seg');
    const found = segmentedJob(truth);
    seg.receive({ job: found.job });
    const msg = await waitFor(() => written[0], 60000, 'the fallback SEG');
    assert.deepEqual(msg.seg.algorithm, { name: 'my-model', version: '7' });
    assert.equal(msg.seg.files[0].segments[0].voxels, (truth.data as Uint8Array).reduce((n, v) => n + v, 0));

    const empty = segmentedJob({ ...truth, data: new Uint8Array(truth.data.length) });
    seg.receive({ job: empty.job, inference: empty.inference });
    const nothing = await waitFor(() => none[0], 60000, 'the no-findings output');
    assert.equal(nothing.job.id, empty.job.id);
    assert.deepEqual(nothing.seg.files, []);
    assert.deepEqual(nothing.seg.empty.map((e) => e.sourceSeriesInstanceUID), [small.study.targetSeriesInstanceUID]);
    assert.ok(!existsSync(join(empty.job.dir, 'seg')) || readdirSync(join(empty.job.dir, 'seg')).length === 0);
    assert.equal(readJob(empty.job.dir).state, 'no-findings');
    assert.equal(written.length, 1);
    assert.equal(statusTexts(seg).at(-1), 'no findings: nothing written');
  });

  it('fails each fault clearly (catch, red status without a stack, job.json), writes nothing for it, and keeps serving', async () => {
    await helper.load([...packNodes, catchNode], flow(segNode('seg'), segNode('three', { labels: '["a", "b", "c"]' })));
    const written = collectMessages<SegMsg>(helper.getNode('written'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const seg: TestNode = helper.getNode('seg');

    const expectFault = async (job: JobRef, extra: Record<string, unknown>, pattern: RegExp) => {
      seg.receive({ job, ...extra });
      const msg = await waitFor(() => caught.find((c) => c.job?.id === job.id), 60000, `the fault of ${job.id}`);
      assert.equal(msg.error.source.id, 'seg');
      assert.match(msg.error.message, new RegExp(`^(Error: )?clara-seg-writer: job ${job.id}: `));
      assert.match(msg.error.message, pattern);
      const status = statusTexts(seg).at(-1) ?? '';
      assert.ok(status.length > 0 && !/\n\s+at /.test(status), `a reason, no stack: ${status}`);
      const record = readJob(job.dir);
      assert.equal(record.state, 'failed');
      assert.equal(record.errors.at(-1)?.stage, 'seg');
      assert.match(record.errors.at(-1)?.message ?? '', pattern);
      assert.ok(!existsSync(join(job.dir, 'seg')), 'no seg/ folder');
    };

    // A mask on another grid: the Ax T1 SE volume's.
    const metadata = readDicomMetadata(join(small.job.dir, 'parser'));
    const axial = metadata.studies[0].series.find((s) => s.SeriesDescription === 'Ax T1 SE')!;
    const other = readNifti(join(small.job.dir, 'parser', axial.image!));
    const wrongGrid = segmentedJob({ dims: other.dims, affine: other.affine, type: 'uint8', data: new Uint8Array(other.data.length).fill(1) });
    await expectFault(wrongGrid.job, { inference: wrongGrid.inference }, /the mask grid does not match the source series/);
    const beyond = segmentedJob({ ...truth, data: Uint8Array.from(truth.data, (v) => (v ? 2 : 0)) });
    await expectFault(beyond.job, { inference: beyond.inference }, /the mask holds value 2 \(\d+ voxels\) beyond the 1 label \["Tumor-seg"\]/);
    const missing = segmentedJob(truth);
    const target = metadata.studies[0].series.find((s) => s.SeriesInstanceUID === small.study.targetSeriesInstanceUID)!;
    rmSync(join(missing.job.dir, 'parser', metadata.dicomFolder, target.instances[2].file));
    await expectFault(missing.job, { inference: missing.inference }, /source instance .* is missing/);
    const nothing = copyJob(store, small.job);
    await expectFault(nothing, {}, /no segmentation to write/);
    const escaping = segmentedJob(truth);
    await expectFault(escaping.job, { inference: { ...escaping.inference, series: [{ seriesInstanceUID: small.study.targetSeriesInstanceUID, segmentation: '/etc/passwd' }] } }, /escapes/);
    assert.equal(written.length, 0);

    seg.receive({ payload: 'no job' });
    const noJob = await waitFor(() => caught.find((c) => !c.job), 10000, 'the job-less message');
    assert.match(noJob.error.message, /clara-seg-writer: msg\.job must be a job reference/);

    // The node goes on: a good job, and a 3-label node on the same runtime.
    const good = segmentedJob(truth);
    seg.receive({ job: good.job, inference: good.inference });
    await waitFor(() => written.find((m) => m.job.id === good.job.id), 60000, 'the good job');
    const three = segmentedJob(truth);
    helper.getNode('three').receive({ job: three.job, inference: three.inference });
    const threeMsg = await waitFor(() => written.find((m) => m.job.id === three.job.id), 60000, 'the 3-label job');
    assert.deepEqual(threeMsg.seg.files[0].segments.map((s) => [s.label, s.voxels > 0]), [['a', true], ['b', false], ['c', false]]);
  });

  it('refuses bad settings at deploy with a red status, and fails the messages it gets', async () => {
    await helper.load([...packNodes, catchNode], flow(segNode('bad', { labels: '["a", "a"]' }), segNode('badLabel', { contentLabel: 'lower case' })));
    assert.match(statusTexts(helper.getNode('bad')).at(-1) ?? '', /label "a" is listed twice/);
    assert.match(statusTexts(helper.getNode('badLabel')).at(-1) ?? '', /ContentLabel "lower case" must be/);
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const job = segmentedJob(truth);
    helper.getNode('bad').receive({ job: job.job, inference: job.inference });
    const msg = await waitFor(() => caught[0], 10000, 'the refused msg');
    assert.match(msg.error.message, /clara-seg-writer: job .*: label "a" is listed twice/);
    assert.equal(readJob(job.job.dir).state, 'failed');
  });
});

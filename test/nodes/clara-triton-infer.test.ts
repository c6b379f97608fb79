import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { type JobInferenceResult, INFERENCE_REPORT_FILE } from '../../lib/infer/job';
import { type EmbeddedModel, openEmbeddedModel } from '../../lib/infer/model-repository';
import { diceOnGrid } from '../../lib/infer/metrics';
import { BUNDLED_MODEL_REPOSITORY } from '../../lib/infer/server';
import { type JobRef, JobStore, readJob } from '../../lib/job';
import { writePhantomStudy } from '../../lib/phantom';
import { readNifti } from '../../lib/volume/nifti';
import { type SelectedPhantomJob, copyJob, seedSelectionRulesBase64, selectedPhantomJob } from '../support/clara';
import { type KServeTestServer, startKServeTestServer } from '../support/kserve-server';
import { type TestNode, collectMessages, helper, statusTexts, waitFor } from '../support/node-red';
import { scratchDir } from '../support/tools';

const nodeFile = (type: string) => join(__dirname, '..', '..', 'nodes', type, `${type}.js`);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const packNodes = ['clara-dicom-in', 'clara-dicom-parser', 'clara-series-selector', 'clara-triton-server', 'clara-triton-infer'].map((t) => require(nodeFile(t)) as unknown);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require(join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'common', '25-catch.js')) as unknown;

interface InferredMsg {
  job: JobRef;
  inference: JobInferenceResult;
}
interface CaughtMsg {
  job?: JobRef;
  error: { message: string; source: { id: string } };
}

describe('clara-triton-infer node in a Node-RED 4 runtime', function () {
  this.timeout(300000);
  const scratch = scratchDir('node-infer');
  const store = new JobStore(join(scratch.dir, 'jobs'));
  let small: SelectedPhantomJob;
  let model: EmbeddedModel;
  let grpc: KServeTestServer;

  before(async () => {
    small = await selectedPhantomJob(store, join(scratch.dir, 'small'), { size: 64, slices: 40, seed: 4 });
    model = await openEmbeddedModel(BUNDLED_MODEL_REPOSITORY, 'brain-tumor-tc');
    grpc = await startKServeTestServer({ 'brain-tumor-tc': { metadata: model.metadata, ready: true, run: (inputs) => model.run(inputs) } });
  });
  afterEach(async () => {
    await helper.unload();
    grpc.inferDelayMs = 0;
    grpc.models.get('brain-tumor-tc')!.ready = true;
  });
  after(async () => {
    grpc.kill();
    await model.close();
    scratch.cleanup();
  });

  const tritonServer = (id: string, port: number, extra: Record<string, unknown> = {}) => ({
    id, type: 'clara-triton-server', name: `${id} server`, mode: 'triton', protocol: 'grpc', host: '127.0.0.1', port, deadline: 30, maxMessageMb: 256, retries: 0, ...extra,
  });
  const inferNode = (id: string, extra: Record<string, unknown> = {}) => ({ id, z: 'tab', type: 'clara-triton-infer', preset: 'demo', format: 'nifti-gz', wires: [['out']], ...extra });

  it('segments held-out phantom studies end to end (DICOM folder → parser → selector → infer) with Dice ≥ 0.85 on the source grid', async () => {
    const workRoot = join(scratch.dir, 'pipeline-jobs');
    await helper.load([...packNodes, catchNode], [
      { id: 'tab', type: 'tab', label: 'pipeline' },
      { id: 'in', z: 'tab', type: 'clara-dicom-in', aeTitle: 'CLARA', port: 0, host: '127.0.0.1', allow: '', studyTimeout: 1, grouping: 'study', workRoot, maxPdu: 65536, wires: [['parse']] },
      { id: 'parse', z: 'tab', type: 'clara-dicom-parser', format: 'nifti-gz', spacingPolicy: 'warn', wires: [['select']] },
      { id: 'select', z: 'tab', type: 'clara-series-selector', rulesType: 'base64', rules: seedSelectionRulesBase64(), wires: [['infer'], []] },
      // No server chosen: the bundled demo model runs embedded, as on a fresh machine.
      inferNode('infer'),
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ]);
    const out = collectMessages<InferredMsg>(helper.getNode('out'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const infer = helper.getNode('infer');
    await waitFor(() => statusTexts(infer).find((t) => t === 'ready: brain-tumor-tc'), 30000, () => `a ready status; got ${statusTexts(infer).join(' | ')}`);
    // Seeds 1–5 were held out of training; two matrix sizes, neither of them a training geometry.
    const cases = [{ seed: 2, size: 256, slices: 160 }, { seed: 5, size: 176, slices: 112 }];
    for (const [index, options] of cases.entries()) {
      const phantom = join(scratch.dir, `held-out-${options.seed}`);
      const study = writePhantomStudy(phantom, options);
      helper.getNode('in').receive({ payload: join(phantom, 'dicom') });
      const msg = await waitFor(() => out[index], 120000, () => `the inference output; caught: ${caught.map((c) => c.error.message).join(' | ') || 'nothing'}`);
      assert.equal(msg.inference.series.length, 1);
      const [segmented] = msg.inference.series;
      assert.equal(segmented.seriesInstanceUID, study.targetSeriesInstanceUID);
      assert.equal(segmented.segmentation, join(msg.job.dir, 'segmentation', `${study.targetSeriesInstanceUID}.nii.gz`));
      const labels = readNifti(segmented.segmentation);
      const source = readNifti(join(msg.job.dir, 'parser', `${study.targetSeriesInstanceUID}.nii.gz`));
      assert.equal(labels.type, 'uint8');
      assert.deepEqual(labels.dims, source.dims);
      assert.deepEqual(labels.affine, source.affine);
      const score = diceOnGrid(labels, readNifti(join(phantom, study.maskPath)));
      assert.ok(score >= 0.85, `seed ${options.seed} (${options.size}×${options.slices}): Dice ${score.toFixed(3)}`);
      console.log(`      seed ${options.seed}, ${options.size}×${options.size}×${options.slices}: Dice ${score.toFixed(3)}, ${segmented.windows} windows, ${segmented.seconds.toFixed(2)} s (model ${segmented.modelSeconds.toFixed(2)} s)`);
      // Clara's publish layout, and the job record.
      const meta = JSON.parse(readFileSync(join(msg.inference.publishDir, 'config.meta'), 'utf8')) as { name: string; density: string; seg_masks: string[] };
      assert.deepEqual(meta, { name: 'brain-tumor-tc', density: `${study.targetSeriesInstanceUID}.nii.gz`, settings: 'config_render.json', seg_masks: [`${study.targetSeriesInstanceUID}.output.nii.gz`] });
      for (const file of [meta.density, ...meta.seg_masks, 'config_render.json']) assert.ok(existsSync(join(msg.inference.publishDir, file)), file);
      assert.ok(existsSync(join(msg.inference.dir, INFERENCE_REPORT_FILE)));
      const record = readJob(msg.job.dir);
      assert.equal(record.state, 'inferred');
      assert.equal(record.counts.segmentedSeries, 1);
      assert.ok(record.timestamps.inferring && record.timestamps.inferred);
    }
    assert.equal(caught.length, 0);
    assert.ok(statusTexts(infer).some((t) => /^inferring: windows \d+\/\d+$/.test(t)), statusTexts(infer).join(' | '));
    assert.match(statusTexts(infer).at(-1) ?? '', /^segmented 1 series \(1: \d+\) in [\d.]+ s$/);
  });

  it('gives the same mask embedded and through a KServe v2 gRPC server', async () => {
    const embeddedJob = copyJob(store, small.job);
    const grpcJob = copyJob(store, small.job);
    await helper.load(packNodes, [
      { id: 'tab', type: 'tab', label: 'same mask' },
      { id: 'local', type: 'clara-triton-server', mode: 'embedded', repository: '' },
      tritonServer('remote', grpc.port),
      inferNode('embedded', { server: 'local' }),
      inferNode('overGrpc', { server: 'remote' }),
      { id: 'out', z: 'tab', type: 'helper' },
    ]);
    const out = collectMessages<InferredMsg>(helper.getNode('out'));
    const before = grpc.requests;
    helper.getNode('embedded').receive({ job: embeddedJob });
    helper.getNode('overGrpc').receive({ job: grpcJob });
    await waitFor(() => (out.length === 2 ? true : undefined), 60000, 'both results');
    // The voxels only: readNifti may give a view into the decompressed file (header included).
    const bytesOf = (job: JobRef) => {
      const { data } = readNifti(out.find((m) => m.job.id === job.id)!.inference.series[0].segmentation);
      return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    };
    const embedded = bytesOf(embeddedJob);
    assert.ok(embedded.some((v) => v === 1), 'the mask is not empty');
    assert.ok(bytesOf(grpcJob).equals(embedded), 'gRPC mask equals the embedded mask');
    assert.ok(grpc.requests > before, 'the gRPC server ran the windows');
    assert.match(out.find((m) => m.job.id === grpcJob.id)!.inference.server, /^Triton gRPC 127\.0\.0\.1:\d+$/);
  });

  it('fails each fault clearly (status, catch, job.json) and keeps serving the next job', async () => {
    const deadPort = await freeLoopbackPort();
    const fixedWindows = await startKServeTestServer({
      'brain-tumor-tc': {
        metadata: { ...model.metadata, inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 1, 96, 96, 96] }] },
        ready: true,
        run: (inputs) => model.run(inputs),
      },
    });
    try {
      await helper.load([...packNodes, catchNode], [
        { id: 'tab', type: 'tab', label: 'faults' },
        tritonServer('dead', deadPort),
        tritonServer('live', grpc.port),
        tritonServer('slow', grpc.port, { deadline: 1 }),
        tritonServer('fixed', fixedWindows.port),
        inferNode('unreachable', { server: 'dead' }),
        inferNode('notReady', { server: 'live' }),
        inferNode('wrongName', { server: 'live', preset: 'custom', model: 'brain-tumor-tc', inputName: 'NV_MODEL_INPUT' }),
        inferNode('wrongDims', { server: 'fixed' }),
        inferNode('deadline', { server: 'slow' }),
        inferNode('healthy'),
        { id: 'out', z: 'tab', type: 'helper' },
        { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
        { id: 'caught', z: 'tab', type: 'helper' },
      ]);
      const out = collectMessages<InferredMsg>(helper.getNode('out'));
      const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
      await waitFor(() => statusTexts(helper.getNode('unreachable')).find((t) => t.startsWith('server not live')), 20000, 'the dead server in the status');

      const expectFault = async (nodeId: string, pattern: RegExp, setUp?: () => void): Promise<void> => {
        setUp?.();
        const job = copyJob(store, small.job);
        const requestsBefore = grpc.requests + fixedWindows.requests;
        helper.getNode(nodeId).receive({ job });
        const msg = await waitFor(() => caught.find((c) => c.job?.id === job.id), 60000, `the ${nodeId} fault`);
        assert.equal(msg.error.source.id, nodeId);
        assert.match(msg.error.message, pattern);
        assert.match(msg.error.message, new RegExp(`^(Error: )?clara-triton-infer: job ${job.id}: `));
        const node: TestNode = helper.getNode(nodeId);
        const status = statusTexts(node).at(-1) ?? '';
        assert.ok(status.length > 0 && !/\n\s+at /.test(status), `a reason, no stack: ${status}`);
        const record = readJob(job.dir);
        assert.equal(record.state, 'failed');
        assert.equal(record.errors.at(-1)?.stage, 'infer');
        assert.match(record.errors.at(-1)?.message ?? '', pattern);
        if (nodeId === 'wrongName' || nodeId === 'wrongDims') assert.equal(grpc.requests + fixedWindows.requests, requestsBefore, 'nothing was sent');
      };
      await expectFault('unreachable', /unreachable/);
      await expectFault('notReady', /model brain-tumor-tc is not ready/, () => {
        grpc.models.get('brain-tumor-tc')!.ready = false;
      });
      grpc.models.get('brain-tumor-tc')!.ready = true;
      await expectFault('wrongName', /model brain-tumor-tc has no input "NV_MODEL_INPUT"; its inputs are "image"/);
      await expectFault('wrongDims', /input "image" has shape \[-1, 1, 96, 96, 96\], but this node would send \[batch, 1, 64, 64, 64\]/);
      await expectFault('deadline', /deadline/i, () => {
        grpc.inferDelayMs = 3000;
      });
      grpc.inferDelayMs = 0;
      assert.equal(out.length, 0);

      // The runtime goes on: the next job through a healthy node is segmented.
      const good = copyJob(store, small.job);
      helper.getNode('healthy').receive({ job: good });
      const done = await waitFor(() => out.find((m) => m.job.id === good.id), 60000, 'the healthy job');
      assert.equal(readJob(done.job.dir).state, 'inferred');
      // A message without a job is refused with a reason.
      helper.getNode('healthy').receive({ payload: 'no job' });
      const noJob = await waitFor(() => caught.find((c) => !c.job), 10000, 'the job-less message');
      assert.match(noJob.error.message, /msg\.job must be a job reference/);
    } finally {
      fixedWindows.kill();
    }
  });

  it('refuses bad settings at deploy with a red status, and fails the messages it gets', async () => {
    await helper.load([...packNodes, catchNode], [
      { id: 'tab', type: 'tab', label: 'bad settings' },
      inferNode('bad', { preset: 'custom', model: 'brain-tumor-tc', roi: '64,64', overlap: 0.25 }),
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ]);
    const bad = helper.getNode('bad');
    assert.match(statusTexts(bad).at(-1) ?? '', /window size takes three values/);
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const job = copyJob(store, small.job);
    bad.receive({ job });
    const msg = await waitFor(() => caught[0], 10000, 'the refused msg');
    assert.match(msg.error.message, /window size takes three values/);
    assert.equal(readJob(job.dir).state, 'failed');
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { JobInferenceResult } from '../../lib/infer/job';
import type { NamedTensor } from '../../lib/infer/kserve/types';
import { type EmbeddedModel, openEmbeddedModel } from '../../lib/infer/model-repository';
import { BUNDLED_MODEL_REPOSITORY } from '../../lib/infer/server';
import { type JobRef, JobStore, readJob } from '../../lib/job';
import { type SelectedPhantomJob, copyJob, selectedPhantomJob } from '../support/clara';
import { type KServeTestServer, startKServeTestServer } from '../support/kserve-server';
import { type TestNode, collectMessages, helper, logOf, statusTexts, waitFor } from '../support/node-red';
import { scratchDir } from '../support/tools';

const nodeFile = (type: string) => join(__dirname, '..', '..', 'nodes', type, `${type}.js`);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const packNodes = ['clara-triton-server', 'clara-triton-infer'].map((t) => require(nodeFile(t)) as unknown);

interface InferredMsg {
  job: JobRef;
  inference: JobInferenceResult;
}

/**
 * A Triton (KServe v2 gRPC, a real grpc-js server in this process) that dies in the middle of a request,
 * and one that answers outputs of the wrong shape, behind clara-triton-infer in a Node-RED runtime. A
 * Triton past its deadline, one not ready, one unreachable from the start and a model whose inputs do not
 * fit are in test/nodes/clara-triton-infer.test.ts ("fails each fault clearly … and keeps serving the next
 * job"); the client's own handling of the same faults is in test/infer/kserve-clients.test.ts.
 */
describe('reliability: dead and broken Triton peers behind clara-triton-infer', function () {
  this.timeout(300000);
  const scratch = scratchDir('peers-triton');
  const store = new JobStore(join(scratch.dir, 'jobs'));
  let small: SelectedPhantomJob;
  let model: EmbeddedModel;
  const servers: KServeTestServer[] = [];

  before(async () => {
    small = await selectedPhantomJob(store, join(scratch.dir, 'small'), { size: 64, slices: 40, seed: 4 });
    model = await openEmbeddedModel(BUNDLED_MODEL_REPOSITORY, 'brain-tumor-tc');
  });
  afterEach(async () => {
    await helper.unload();
    while (servers.length) servers.pop()!.kill();
  });
  after(async () => {
    await model.close();
    scratch.cleanup();
  });

  const serve = async (run: (inputs: NamedTensor[]) => Promise<NamedTensor[]> = (inputs) => model.run(inputs), port = 0): Promise<KServeTestServer> => {
    const server = await startKServeTestServer({ 'brain-tumor-tc': { metadata: model.metadata, ready: true, run } }, port);
    servers.push(server);
    return server;
  };

  const flow = (port: number, retries: number) => [
    { id: 'tab', type: 'tab', label: 'dead peers' },
    { id: 'tritonServer', type: 'clara-triton-server', name: 'triton', mode: 'triton', protocol: 'grpc', host: '127.0.0.1', port, deadline: 30, maxMessageMb: 256, retries },
    { id: 'infer', z: 'tab', type: 'clara-triton-infer', preset: 'demo', format: 'nifti-gz', server: 'tritonServer', wires: [['out']] },
    { id: 'out', z: 'tab', type: 'helper' },
  ];

  /** Loads the flow, waits for the node to be ready, and gives its outputs. */
  async function start(port: number, retries: number): Promise<{ infer: TestNode; out: InferredMsg[] }> {
    await helper.load(packNodes, flow(port, retries));
    const infer = helper.getNode('infer');
    await waitFor(() => statusTexts(infer).find((t) => t === 'ready: brain-tumor-tc'), 30000, () => `a ready status; got ${statusTexts(infer).join(' | ')}`);
    return { infer, out: collectMessages<InferredMsg>(helper.getNode('out')) };
  }

  /** Errors the node logged (no catch node here: Node-RED logs an error a catch node does not take). */
  const errorsOf = (node: TestNode) => logOf(node).filter((e) => e.level === helper.log().ERROR).map((e) => e.message);

  /** The job failed with a reason matching `pattern`: in the log with the job id, a red status without a stack, job.json. */
  async function expectFailed(infer: TestNode, job: JobRef, pattern: RegExp): Promise<void> {
    const logged = await waitFor(() => errorsOf(infer).find((m) => m.includes(job.id)), 120000, () => `the failure of job ${job.id} in the log: ${logOf(infer).map((e) => e.message).join(' | ')}`);
    assert.match(logged, new RegExp(`^(Error: )?clara-triton-infer: job ${job.id}: `));
    assert.match(logged, pattern);
    const status = statusTexts(infer).at(-1) ?? '';
    assert.ok(status.length > 0 && !/\n\s+at /.test(status), `a reason in the status, no stack: ${status}`);
    assert.ok(logged.includes(status.replace(/…$/, '')), `the status is the logged reason, shortened: ${status}`);
    const record = readJob(job.dir);
    assert.equal(record.state, 'failed');
    assert.equal(record.errors.at(-1)?.stage, 'infer');
    assert.match(record.errors.at(-1)?.message ?? '', pattern);
  }

  async function expectSegmented(out: InferredMsg[], job: JobRef): Promise<void> {
    const done = await waitFor(() => out.find((m) => m.job.id === job.id), 120000, `job ${job.id} to be segmented`);
    assert.equal(done.inference.series.length, 1);
    assert.equal(readJob(job.dir).state, 'inferred');
  }

  it('killed mid-request, no retries: the job fails as unreachable; Triton back on its port, the next job in the same runtime is segmented', async () => {
    const first = await serve();
    const port = first.port;
    const { infer, out } = await start(port, 0);
    first.onInfer = () => first.kill();
    const job = copyJob(store, small.job);
    infer.receive({ job });
    await expectFailed(infer, job, /unreachable/);
    assert.ok(first.requests >= 1, 'it died in a request');
    assert.equal(out.length, 0);

    const again = await serve(undefined, port);
    const next = copyJob(store, small.job);
    infer.receive({ job: next });
    await expectSegmented(out, next);
    assert.ok(again.requests > 0);
  });

  it('killed mid-request and back while the client backs off: the request is retried and the job segmented', async () => {
    const first = await serve();
    const port = first.port;
    const { infer, out } = await start(port, 5);
    let restarted: Promise<KServeTestServer> | undefined;
    first.onInfer = () => {
      first.onInfer = undefined;
      first.kill();
      restarted = serve(undefined, port);
    };
    const job = copyJob(store, small.job);
    infer.receive({ job });
    await expectSegmented(out, job);
    assert.deepEqual(errorsOf(infer), []);
    assert.ok(restarted, 'the first server died in a request');
    assert.ok((await restarted).requests > 0, 'the retry reached the server that came back');
  });

  it('outputs of the wrong shape: the job fails with the shapes named; the next job through a good Triton is segmented', async () => {
    const wrong = await serve(async (inputs) => {
      const outputs = await model.run(inputs);
      // Windows of 8³ where the model's are bigger: a broken or mismatched model version on the server.
      return outputs.map((o) => ({ ...o, shape: [o.shape[0], o.shape[1], 8, 8, 8], data: o.data.subarray(0, o.shape[0] * o.shape[1] * 512) }) as NamedTensor);
    });
    const good = await serve();
    await helper.load(packNodes, [
      ...flow(wrong.port, 0),
      { id: 'goodTriton', type: 'clara-triton-server', name: 'good', mode: 'triton', protocol: 'grpc', host: '127.0.0.1', port: good.port, deadline: 30, maxMessageMb: 256, retries: 0 },
      { id: 'goodInfer', z: 'tab', type: 'clara-triton-infer', preset: 'demo', format: 'nifti-gz', server: 'goodTriton', wires: [['out']] },
    ]);
    const infer = helper.getNode('infer');
    const out = collectMessages<InferredMsg>(helper.getNode('out'));
    await waitFor(() => statusTexts(infer).find((t) => t === 'ready: brain-tumor-tc'), 30000, () => `a ready status; got ${statusTexts(infer).join(' | ')}`);
    const job = copyJob(store, small.job);
    infer.receive({ job });
    await expectFailed(infer, job, /has shape \[\d+, \d+, 8, 8, 8\], not \[\d+, C, \d+, \d+, \d+\]/);
    assert.ok(wrong.requests >= 1);
    assert.equal(out.length, 0);

    // The runtime goes on: the next job, through the node beside it on a Triton that answers correctly.
    const next = copyJob(store, small.job);
    helper.getNode('goodInfer').receive({ job: next });
    await expectSegmented(out, next);
  });
});

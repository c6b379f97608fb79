import assert from 'node:assert/strict';
import { KServeGrpcClient } from '../../lib/infer/kserve/grpc-client';
import { KServeHttpClient } from '../../lib/infer/kserve/http-client';
import { InferenceError, type KServeClient, type NamedTensor, type ServerTarget } from '../../lib/infer/kserve/types';
import { slidingWindowInference } from '../../lib/infer/sliding-window';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { type KServeTestServer, type ServedModel, startKServeHttpTestServer, startKServeTestServer } from '../support/kserve-server';

/** Doubles its input: enough to see that tensors travel both ways intact and in order. */
function doubler(ready = true): ServedModel {
  return {
    ready,
    metadata: {
      name: 'doubler',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 1, -1, -1, -1] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 1, -1, -1, -1] }],
    },
    async run(inputs: NamedTensor[]) {
      const input = inputs[0].data as Float32Array;
      return [{ name: 'logits', datatype: 'FP32', shape: inputs[0].shape, data: input.map((v) => v * 2) }];
    },
  };
}

function window(count: number, size = 8): NamedTensor {
  const data = new Float32Array(count * size ** 3);
  for (let i = 0; i < data.length; i++) data[i] = i * 0.25 - 100;
  return { name: 'image', datatype: 'FP32', shape: [count, 1, size, size, size], data };
}

async function rejectsWith(promise: Promise<unknown>, kind: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.ok(err instanceof InferenceError, `an InferenceError, got ${err}`);
    assert.equal(err.kind, kind);
    assert.match(err.message, message);
    return true;
  });
}

const PROTOCOLS = [
  { name: 'gRPC', start: startKServeTestServer, connect: (target: ServerTarget): KServeClient => new KServeGrpcClient(target) },
  { name: 'HTTP/REST (binary tensors)', start: startKServeHttpTestServer, connect: (target: ServerTarget): KServeClient => new KServeHttpClient(target) },
];

for (const protocol of PROTOCOLS) describe(`lib/infer KServe v2 client over ${protocol.name} against a real server`, function () {
  this.timeout(30000);
  let server: KServeTestServer;
  let client: KServeClient;

  beforeEach(async () => {
    server = await protocol.start({ doubler: doubler(), warming: { ...doubler(false), metadata: { ...doubler().metadata, name: 'warming' } } });
    client = protocol.connect({ host: '127.0.0.1', port: server.port, deadlineMs: 5000, retries: 0 });
  });
  afterEach(async () => {
    client.close();
    server.kill();
  });

  it('reads health and model metadata', async () => {
    assert.equal(await client.serverLive(), true);
    assert.equal(await client.serverReady(), false, 'one model is still loading');
    assert.equal(await client.modelReady('doubler'), true);
    assert.equal(await client.modelReady('warming'), false);
    const metadata = await client.modelMetadata('doubler');
    assert.deepEqual(metadata.inputs, [{ name: 'image', datatype: 'FP32', shape: [-1, 1, -1, -1, -1] }]);
    assert.equal(metadata.outputs[0].name, 'logits');
  });

  it('sends a batch of windows as raw FP32 and reads the raw answer back, value for value', async () => {
    const input = window(3);
    const [output] = await client.infer({ model: 'doubler', inputs: [input], outputs: ['logits'], id: 'job-1' });
    assert.equal(output.name, 'logits');
    assert.deepEqual(output.shape, [3, 1, 8, 8, 8]);
    assert.ok(output.data instanceof Float32Array);
    assert.deepEqual(Array.from(output.data), Array.from(input.data as Float32Array).map((v) => v * 2));
  });

  it('runs sliding-window inference through the server: the doubled volume, windows batched per request', async () => {
    const dims: [number, number, number] = [20, 27, 33];
    const volume = new Float32Array(dims[0] * dims[1] * dims[2]).map((_v, i) => Math.cos(i));
    const result = await slidingWindowInference({ data: volume, channels: 1, dims }, async (batch, count) => {
      const [out] = await client.infer({ model: 'doubler', inputs: [{ name: 'image', datatype: 'FP32', shape: [count, 1, 16, 16, 16], data: batch }] });
      return { data: out.data as Float32Array, channels: out.shape[1] };
    }, { roiSize: [16, 16, 16], overlap: 0.25, blend: 'gaussian', batchSize: 4 });
    let worst = 0;
    for (let i = 0; i < volume.length; i++) worst = Math.max(worst, Math.abs(result.data[i] - 2 * volume[i]));
    assert.ok(worst <= 2e-6, `worst ${worst}`);
    // Windows at z 0, 4; y 0, 11; x 0, 12, 17: 12 windows in batches of 4.
    assert.equal(server.requests, 3);
  });

  it('reports an unknown model, a wrong shape and a model that is not ready, each with its kind', async () => {
    await rejectsWith(client.infer({ model: 'nosuch', inputs: [window(1)] }), 'not-found', /ModelInfer at .*127\.0\.0\.1:\d+ failed.*: Request for unknown model: 'nosuch'/);
    const flat = { name: 'image', datatype: 'FP32' as const, shape: [1, 512], data: new Float32Array(512) };
    await rejectsWith(client.infer({ model: 'doubler', inputs: [flat] }), 'invalid', /unexpected shape for input 'image'.*Expected \[-1,1,-1,-1,-1\], got \[1,512\]/);
    await rejectsWith(client.infer({ model: 'warming', inputs: [window(1)] }), 'unavailable', /unreachable|no available versions/);
    await rejectsWith(client.infer({ model: 'doubler', inputs: [{ ...window(1), shape: [2, 1, 8, 8, 8] }] }), 'invalid', /input image: 2048 bytes do not fill the shape \[2, 1, 8, 8, 8\] of FP32 \(4096 bytes\)/);
  });

  it('gives up at the deadline', async () => {
    server.inferDelayMs = 1500;
    const impatient = protocol.connect({ host: '127.0.0.1', port: server.port, deadlineMs: 200, retries: 0 });
    try {
      await rejectsWith(impatient.infer({ model: 'doubler', inputs: [window(1)] }), 'deadline', /at .*127\.0\.0\.1:\d+ exceeded its deadline of 200 ms/);
    } finally {
      impatient.close();
    }
  });

  it('reports a server killed mid-request, and a server that is not there, as unavailable after its retries', async () => {
    server.onInfer = () => server.kill();
    const retrying = protocol.connect({ host: '127.0.0.1', port: server.port, deadlineMs: 5000, retries: 2, retryBaseMs: 20 });
    try {
      await rejectsWith(retrying.infer({ model: 'doubler', inputs: [window(1)] }), 'unavailable', /unreachable .*after 2 retries/);
    } finally {
      retrying.close();
    }
    const nowhere = protocol.connect({ host: '127.0.0.1', port: await freeLoopbackPort(), deadlineMs: 2000, retries: 1, retryBaseMs: 20 });
    try {
      await rejectsWith(nowhere.serverLive(), 'unavailable', /the inference server at .*127\.0\.0\.1:\d+ is unreachable .*after 1 retry/);
    } finally {
      nowhere.close();
    }
  });

  it('retries UNAVAILABLE until the server is back', async () => {
    const port = server.port;
    server.kill();
    const patient = protocol.connect({ host: '127.0.0.1', port, deadlineMs: 3000, retries: 5, retryBaseMs: 100 });
    try {
      const pending = patient.serverLive();
      // The server comes back on the same port while the client is backing off.
      await new Promise((r) => setTimeout(r, 250));
      server = await protocol.start({ doubler: doubler() }, port);
      assert.equal(await pending, true);
    } finally {
      patient.close();
    }
  });
});

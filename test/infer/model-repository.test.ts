import assert from 'node:assert/strict';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { KServeGrpcClient } from '../../lib/infer/kserve/grpc-client';
import { ModelRepositoryError, openEmbeddedModel, parseModelConfig, parseTextProto } from '../../lib/infer/model-repository';
import { BUNDLED_MODEL_REPOSITORY } from '../../lib/infer/server';
import { type Tensor, slidingWindowInference } from '../../lib/infer/sliding-window';
import { startKServeTestServer } from '../support/kserve-server';
import { scratchDir } from '../support/tools';

/** Written by tools/make-test-models.py (committed). */
const REPOSITORY = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'models');

describe('lib/infer model repository: config.pbtxt and embedded onnxruntime', function () {
  this.timeout(60000);

  it('parses Triton config.pbtxt: lists, nested messages, comments, batching', () => {
    const config = parseModelConfig(`
      name: "segmentation_mri_brain_tumors_br16_t1c2tc"   # Clara's model
      platform: "tensorflow_graphdef"
      max_batch_size: 4
      input [ { name: "NV_MODEL_INPUT", data_type: TYPE_FP32, format: FORMAT_NCHW, dims: [1, 224, 224, 128] } ]
      output [
        { name: "NV_MODEL_OUTPUT"
          data_type: TYPE_FP32
          dims: [ 1, 224, 224, 128 ] }
      ]
      instance_group [ { kind: KIND_GPU count: 1 } ]
    `);
    assert.deepEqual(config, {
      name: 'segmentation_mri_brain_tumors_br16_t1c2tc',
      platform: 'tensorflow_graphdef',
      maxBatchSize: 4,
      inputs: [{ name: 'NV_MODEL_INPUT', datatype: 'FP32', shape: [-1, 1, 224, 224, 128] }],
      outputs: [{ name: 'NV_MODEL_OUTPUT', datatype: 'FP32', shape: [-1, 1, 224, 224, 128] }],
    });
    assert.deepEqual(parseTextProto('a: 1 b { c: "x" c: \'y\' } d: [2, 3]'), { a: [1], b: [{ c: ['x', 'y'] }], d: [2, 3] });
  });

  it('refuses broken or unusable configs with the reason', () => {
    assert.throws(() => parseModelConfig('input [ { name: "x" data_type: TYPE_FP32 '), ModelRepositoryError);
    assert.throws(() => parseModelConfig('input [ { name: "x" data_type: TYPE_STRING dims: [1] } ]'), /input x has data_type TYPE_STRING, which this package does not handle/);
    assert.throws(() => parseModelConfig('output [ { data_type: TYPE_FP32 } ]'), /an output has no name/);
    assert.throws(() => parseModelConfig('name: "x" }'), /unexpected "}"|is not a field name/);
  });

  it('runs a repository model in-process, with its tensors named by config.pbtxt', async () => {
    const model = await openEmbeddedModel(REPOSITORY, 'doubler');
    try {
      assert.equal(model.version, '1');
      assert.deepEqual(model.metadata.inputs, [{ name: 'image', datatype: 'FP32', shape: [-1, 1, -1, -1, -1] }]);
      const data = Float32Array.from({ length: 2 * 4 * 4 * 4 }, (_v, i) => i - 17.5);
      const [out] = await model.run([{ name: 'image', datatype: 'FP32', shape: [2, 1, 4, 4, 4], data }]);
      assert.equal(out.name, 'logits');
      assert.deepEqual(out.shape, [2, 1, 4, 4, 4]);
      assert.deepEqual(Array.from(out.data as Float32Array), Array.from(data).map((v) => v * 2));
    } finally {
      await model.close();
    }
  });

  it('takes tensor names from the ONNX file when there is no config, and the highest version', async () => {
    const scratch = scratchDir('repository');
    try {
      cpSync(join(REPOSITORY, 'identity'), join(scratch.dir, 'identity'), { recursive: true });
      mkdirSync(join(scratch.dir, 'identity', '7'));
      cpSync(join(REPOSITORY, 'identity', '1', 'model.onnx'), join(scratch.dir, 'identity', '7', 'model.onnx'));
      mkdirSync(join(scratch.dir, 'identity', '12'));
      const model = await openEmbeddedModel(scratch.dir, 'identity');
      assert.equal(model.version, '7', 'a version folder without model.onnx does not count');
      assert.deepEqual(model.metadata.inputs.map((t) => [t.name, t.datatype]), [['input', 'FP32']]);
      assert.deepEqual(model.metadata.outputs.map((t) => t.name), ['output']);
      await model.close();
      await assert.rejects(openEmbeddedModel(scratch.dir, 'identity', '3'), /has no version 3/);
      await assert.rejects(openEmbeddedModel(scratch.dir, 'nosuch'), /holds no <version>\/model\.onnx/);
      await assert.rejects(openEmbeddedModel(scratch.dir, '../identity'), /is not a model name/);
    } finally {
      scratch.cleanup();
    }
  });

  it('gives the same result embedded and through the gRPC server serving the same model', async () => {
    const embedded = await openEmbeddedModel(REPOSITORY, 'doubler');
    const server = await startKServeTestServer({ doubler: { metadata: embedded.metadata, ready: true, run: (inputs) => embedded.run(inputs) } });
    const client = new KServeGrpcClient({ host: '127.0.0.1', port: server.port, retries: 0 });
    try {
      const dims: [number, number, number] = [18, 30, 25];
      const input: Tensor = { data: Float32Array.from({ length: 18 * 30 * 25 }, (_v, i) => Math.sin(i / 7)), channels: 1, dims };
      const options = { roiSize: [16, 16, 16] as [number, number, number], overlap: 0.5, blend: 'gaussian' as const, batchSize: 8 };
      const local = await slidingWindowInference(input, async (batch, count) => {
        const [out] = await embedded.run([{ name: 'image', datatype: 'FP32', shape: [count, 1, 16, 16, 16], data: batch }]);
        return { data: out.data as Float32Array, channels: 1 };
      }, options);
      const remote = await slidingWindowInference(input, async (batch, count) => {
        const [out] = await client.infer({ model: 'doubler', inputs: [{ name: 'image', datatype: 'FP32', shape: [count, 1, 16, 16, 16], data: batch }] });
        return { data: out.data as Float32Array, channels: 1 };
      }, options);
      assert.deepEqual(Array.from(remote.data), Array.from(local.data));
      assert.ok(Math.abs(local.data[1234] - 2 * input.data[1234]) < 1e-6);
    } finally {
      client.close();
      server.kill();
      await embedded.close();
    }
  });

  it('runs the model off the event loop: the loop keeps turning while a batch of the bundled model computes', async () => {
    const model = await openEmbeddedModel(BUNDLED_MODEL_REPOSITORY, 'brain-tumor-tc');
    try {
      const window = 64 ** 3;
      const input = { name: model.metadata.inputs[0].name, datatype: 'FP32' as const, shape: [2, 1, 64, 64, 64], data: new Float32Array(2 * window).map((_v, i) => Math.sin(i / 97)) };
      await model.run([input]);
      // A chain of setImmediate callbacks counts the loop's turns. onnxruntime-node's own run() is native
      // code on the calling thread behind a setImmediate: on the main thread the chain would stop for the
      // whole batch, a turn or two at most.
      let turns = 0;
      let running = true;
      const spin = () => {
        if (!running) return;
        turns++;
        setImmediate(spin);
      };
      const computing = model.run([input]);
      setImmediate(spin);
      const [output] = await computing;
      running = false;
      assert.deepEqual(output.shape.slice(2), [64, 64, 64]);
      assert.equal(output.data.length, 2 * output.shape[1] * window, 'two windows');
      assert.ok(turns >= 100, `the event loop turned ${turns} time(s) while the batch ran`);
    } finally {
      await model.close();
    }
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { NamedTensor } from '../../lib/infer/kserve/types';
import { openEmbeddedModel } from '../../lib/infer/model-repository';
import { type SegmentationSpec, segmentVolume } from '../../lib/infer/segment';
import { dice, sphereVolume } from './helpers';

const REPOSITORY = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'models');

const SPEC: SegmentationSpec = {
  inputName: 'image',
  outputName: 'logits',
  spacing: [2, 2, 2],
  normalization: { kind: 'zscore-nonzero' },
  roiSize: [16, 16, 16],
  overlap: 0.25,
  batchSize: 4,
  blend: 'gaussian',
  activation: 'sigmoid',
  decision: 'threshold',
  threshold: 0.5,
  keepLargestComponent: true,
  fillHoles: true,
};

describe('lib/infer segmentVolume: the whole path from a volume to labels on its own grid', () => {
  it('finds a bright sphere through a RAS 2 mm grid and back onto the oblique source grid', async () => {
    const { volume, truth } = sphereVolume();
    // A "model" that calls a z-score above 1 tumour: logits = 8 · (z − 1).
    const threshold = async (inputs: NamedTensor[]): Promise<NamedTensor[]> => [
      { name: 'logits', datatype: 'FP32', shape: inputs[0].shape, data: (inputs[0].data as Float32Array).map((z) => 8 * (z - 1)) },
    ];
    const stages: string[] = [];
    const result = await segmentVolume(volume, threshold, SPEC, { onProgress: (p) => stages.push(p.stage) });
    assert.deepEqual(result.labels.dims, volume.dims);
    assert.deepEqual(result.labels.affine, volume.affine);
    assert.equal(result.labels.type, 'uint8');
    const score = dice(result.labels.data as Uint8Array, truth);
    assert.ok(score > 0.9, `Dice ${score}`);
    assert.deepEqual(Object.keys(result.labelCounts), ['1']);
    assert.ok(result.windows > 1);
    assert.deepEqual([...new Set(stages)], ['preprocess', 'infer', 'postprocess']);
  });

  it('runs an embedded onnxruntime model the same way, and refuses an answer of the wrong shape or name', async () => {
    const { volume } = sphereVolume();
    const model = await openEmbeddedModel(REPOSITORY, 'doubler');
    try {
      // doubler: logits = 2·z, so z > 0 (above the mean) is labelled.
      const result = await segmentVolume(volume, (inputs) => model.run(inputs), { ...SPEC, keepLargestComponent: false, fillHoles: false });
      assert.ok((result.labelCounts[1] ?? 0) > 0);
      await assert.rejects(segmentVolume(volume, (inputs) => model.run(inputs), { ...SPEC, outputName: 'probabilities' }), /the model answered logits, not probabilities/);
    } finally {
      await model.close();
    }
    const flat = async (inputs: NamedTensor[]): Promise<NamedTensor[]> => [{ name: 'logits', datatype: 'FP32', shape: [inputs[0].shape[0], 16 ** 3], data: new Float32Array(inputs[0].shape[0] * 16 ** 3) }];
    await assert.rejects(segmentVolume(volume, flat, SPEC), /output logits has shape \[\d+, 4096\], not \[\d+, C, 16, 16, 16\]/);
  });
});

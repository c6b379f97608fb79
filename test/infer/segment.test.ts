import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { NamedTensor } from '../../lib/infer/kserve/types';
import { openEmbeddedModel } from '../../lib/infer/model-repository';
import { type SegmentationSpec, checkModelContract, segmentVolume } from '../../lib/infer/segment';
import type { ModelMetadata } from '../../lib/infer/kserve/types';
import { applyAffine } from '../../lib/volume/geometry';
import type { Volume } from '../../lib/volume/types';
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

  it('stacks series of one frame of reference as channels, each sampled onto the model grid through world coordinates', async () => {
    const { volume, truth } = sphereVolume();
    // The second channel: another grid (coarser, axis-aligned, shifted) holding a sphere 10 mm to the right of the first.
    const centre = applyAffine(volume.affine, [28, 30, 19]);
    const other: Volume = (() => {
      const dims: [number, number, number] = [40, 40, 30];
      const affine = [[1.7, 0, 0, centre[0] - 30], [0, 1.7, 0, centre[1] - 30], [0, 0, 2.2, centre[2] - 30], [0, 0, 0, 1]];
      const data = new Float32Array(dims[0] * dims[1] * dims[2]);
      for (let k = 0, n = 0; k < 30; k++) for (let j = 0; j < 40; j++) for (let i = 0; i < 40; i++, n++) {
        const p = applyAffine(affine, [i, j, k]);
        data[n] = Math.hypot(p[0] - centre[0] - 10, p[1] - centre[1], p[2] - centre[2]) <= 8 ? 100 : 1;
      }
      return { dims, type: 'float32', data, affine };
    })();
    const expected = new Uint8Array(truth.length);
    for (let k = 0, n = 0; k < volume.dims[2]; k++) for (let j = 0; j < volume.dims[1]; j++) for (let i = 0; i < volume.dims[0]; i++, n++) {
      const p = applyAffine(volume.affine, [i, j, k]);
      if (Math.hypot(p[0] - centre[0] - 10, p[1] - centre[1], p[2] - centre[2]) <= 8) expected[n] = 2;
    }
    const seen: number[][] = [];
    // A two-channel "model": channel 0 says z > 1 of the T1c, channel 1 says the second series is bright (a z-score above 3).
    const twoChannels = async (inputs: NamedTensor[]): Promise<NamedTensor[]> => {
      seen.push(inputs[0].shape);
      const data = inputs[0].data as Float32Array;
      const voxels = data.length / inputs[0].shape[0] / 2;
      const out = new Float32Array(data.length);
      for (let b = 0; b < inputs[0].shape[0]; b++) {
        for (let v = 0; v < voxels; v++) {
          out[(2 * b) * voxels + v] = 8 * (data[(2 * b) * voxels + v] - 1);
          out[(2 * b + 1) * voxels + v] = data[(2 * b + 1) * voxels + v] > 3 ? 10 : -10;
        }
      }
      return [{ name: 'logits', datatype: 'FP32', shape: inputs[0].shape, data: out }];
    };
    const result = await segmentVolume([volume, other], twoChannels, {
      ...SPEC, normalization: { kind: 'zscore-nonzero', channelWise: true }, labels: [1, 2], keepLargestComponent: false, fillHoles: false,
      // Channel 1 (the smaller, later region) painted last, so it wins where both say yes.
      paintOrder: [0, 1],
    });
    assert.ok(seen.every((shape) => shape[1] === 2), 'two channels sent');
    const labels = result.labels.data as Uint8Array;
    assert.ok(dice(labels.map((v) => (v === 2 ? 1 : 0)), expected) > 0.85, `channel-2 Dice ${dice(labels.map((v) => (v === 2 ? 1 : 0)), expected)}`);
    assert.ok(dice(labels.map((v) => (v === 1 ? 1 : 0)), truth.map((t, n) => (t && !expected[n] ? 1 : 0))) > 0.85, 'channel-1 region');
  });

  it('sends NCXYZ windows with z fastest and reads the answer back the same way', async () => {
    const dims: [number, number, number] = [32, 24, 16];
    const volume: Volume = { dims, type: 'float32', data: new Float32Array(32 * 24 * 16).fill(1), affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] };
    const shapes: number[][] = [];
    // Answers, for every voxel, its position along the window's FIRST spatial axis: x, if the layout is honoured.
    const firstAxis = async (inputs: NamedTensor[]): Promise<NamedTensor[]> => {
      const [n, c, a, b, d] = inputs[0].shape;
      shapes.push(inputs[0].shape);
      const out = new Float32Array(n * c * a * b * d);
      for (let w = 0; w < n * c; w++) for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) for (let k = 0; k < d; k++) out[((w * a + i) * b + j) * d + k] = i;
      return [{ name: 'logits', datatype: 'FP32', shape: inputs[0].shape, data: out }];
    };
    const spec: SegmentationSpec = {
      ...SPEC, orientRas: false, spacing: undefined, layout: 'NCXYZ', roiSize: [16, 12, 8], overlap: 0, normalization: { kind: 'none' }, activation: 'none', threshold: 7.5,
      keepLargestComponent: false, fillHoles: false,
    };
    const result = await segmentVolume(volume, firstAxis, spec);
    assert.ok(shapes.every((s) => s.slice(2).join() === '16,12,8'), `shapes ${JSON.stringify(shapes)}`);
    const labels = result.labels.data as Uint8Array;
    for (let k = 0, n = 0; k < 16; k++) for (let j = 0; j < 24; j++) for (let i = 0; i < 32; i++, n++) assert.equal(labels[n], i % 16 >= 8 ? 1 : 0, `voxel ${i},${j},${k}`);
    assert.equal(result.windows, 2 * 2 * 2);
  });

  it('crops to the foreground: fewer windows, the same labels', async () => {
    const dims: [number, number, number] = [64, 64, 48];
    const data = new Float32Array(64 * 64 * 48);
    for (let k = 20; k < 30; k++) for (let j = 10; j < 30; j++) for (let i = 30; i < 50; i++) data[(k * 64 + j) * 64 + i] = (i + j) % 7 === 0 ? 900 : 300;
    const volume: Volume = { dims, type: 'float32', data, affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] };
    const spec: SegmentationSpec = { ...SPEC, spacing: undefined, roiSize: [16, 16, 16], keepLargestComponent: false, fillHoles: false };
    const bright = async (inputs: NamedTensor[]): Promise<NamedTensor[]> => [{ name: 'logits', datatype: 'FP32', shape: inputs[0].shape, data: (inputs[0].data as Float32Array).map((z) => 8 * (z - 1)) }];
    const whole = await segmentVolume(volume, bright, spec);
    const cropped = await segmentVolume(volume, bright, { ...spec, cropForeground: { margin: 2 } });
    assert.deepEqual(cropped.crop, { start: [28, 8, 18], size: [24, 24, 14] });
    assert.ok(cropped.windows < whole.windows / 4, `${cropped.windows} windows cropped, ${whole.windows} whole`);
    const voxels = (d: ArrayBufferView) => Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    assert.ok(voxels(cropped.labels.data).equals(voxels(whole.labels.data)), 'same labels');
    assert.ok((cropped.labelCounts[1] ?? 0) > 0);
  });

  it('checks the spec against the model metadata before anything is sent', () => {
    const metadata: ModelMetadata = {
      name: 'm', versions: ['1'], platform: 'onnxruntime_onnx',
      inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 1, 64, 64, 64] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 3, 64, 64, 64] }],
    };
    const spec: SegmentationSpec = { ...SPEC, roiSize: [64, 64, 64], labels: [1, 2, 4] };
    checkModelContract(metadata, spec, 1);
    assert.throws(() => checkModelContract(metadata, { ...spec, inputName: 'x' }, 1), /model m has no input "x"; its inputs are "image"/);
    assert.throws(() => checkModelContract(metadata, { ...spec, outputName: 'y' }, 1), /has no output "y"; its outputs are "logits"/);
    assert.throws(() => checkModelContract(metadata, spec, 4), /has shape \[-1, 1, 64, 64, 64\], but this node would send \[batch, 4, 64, 64, 64\]/);
    assert.throws(() => checkModelContract(metadata, { ...spec, roiSize: [96, 64, 64] }, 1), /would send \[batch, 1, 64, 64, 96\]/);
    assert.throws(() => checkModelContract(metadata, { ...spec, labels: [1] }, 1), /3 channel\(s\), but 1 label\(s\) are mapped/);
    assert.throws(() => checkModelContract({ ...metadata, inputs: [{ name: 'image', datatype: 'INT16', shape: [-1, 1, 64, 64, 64] }] }, spec, 1), /is INT16; this node sends and reads FP32/);
    assert.throws(() => checkModelContract({ ...metadata, inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 64, 64, 64] }] }, spec, 1), /a 3D segmentation model takes \[N, C, spatial×3\]/);
  });
});


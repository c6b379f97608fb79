import assert from 'node:assert/strict';
import { type Size3, type Tensor, type WindowPredictor, importanceMap, slidingWindowInference, windowStarts } from '../../lib/infer/sliding-window';

/** A volume whose every voxel differs, so that a window put back in the wrong place shows. */
function rampVolume(dims: Size3, channels = 1): Tensor {
  const [d, h, w] = dims;
  const data = new Float32Array(channels * d * h * w);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 0.9 + (i % 7) * 0.01;
  return { data, channels, dims };
}

const identity: WindowPredictor = async (batch) => ({ data: Float32Array.from(batch), channels: 1 });

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe('lib/infer sliding-window inference (MONAI semantics)', () => {
  it('places windows as MONAI dense_patch_slices does', () => {
    // 100 voxels, ROI 64, overlap 0.25: step 48; the second window is moved back to end at the edge.
    assert.deepEqual(windowStarts(100, 64, 0.25), [0, 36]);
    assert.deepEqual(windowStarts(64, 64, 0.25), [0], 'an axis exactly the ROI: one window');
    assert.deepEqual(windowStarts(128, 64, 0), [0, 64]);
    assert.deepEqual(windowStarts(128, 64, 0.5), [0, 32, 64]);
    assert.deepEqual(windowStarts(129, 64, 0.5), [0, 32, 64, 65]);
    assert.deepEqual(windowStarts(10, 3, 0.9), [0, 1, 2, 3, 4, 5, 6, 7], 'a step never drops below 1');
    assert.throws(() => windowStarts(10, 16, 0.25), /larger than the padded axis/);
  });

  it('builds the gaussian importance map of MONAI: peak in the centre, symmetric, never below 1e-3', () => {
    const map = importanceMap([8, 8, 8], 'gaussian', 0.125);
    const at = (z: number, y: number, x: number) => map[(z * 8 + y) * 8 + x];
    // σ = 1 voxel; the centre is between voxels 3 and 4: exp(-0.125) per axis.
    assert.ok(Math.abs(at(3, 4, 3) - Math.exp(-0.375)) < 1e-6);
    assert.equal(at(0, 0, 0), at(7, 7, 7));
    assert.equal(at(1, 2, 3), at(6, 5, 4));
    assert.ok(Math.min(...map) >= 1e-3);
    assert.ok(importanceMap([4, 5, 6], 'constant').every((v) => v === 1));
  });

  for (const blend of ['constant', 'gaussian'] as const) {
    for (const overlap of [0, 0.25, 0.5]) {
      it(`rebuilds the input with an identity model (${blend}, overlap ${overlap}, size not a multiple of the ROI)`, async () => {
        const input = rampVolume([23, 37, 50]);
        const out = await slidingWindowInference(input, identity, { roiSize: [16, 16, 16], overlap, blend, batchSize: 3 });
        assert.deepEqual(out.dims, input.dims);
        assert.equal(out.channels, 1);
        assert.ok(maxAbsDifference(out.data, input.data) <= 1e-6, `max difference ${maxAbsDifference(out.data, input.data)}`);
      });
    }
    it(`gives the constant of a constant model everywhere (${blend})`, async () => {
      const constant: WindowPredictor = async (_batch, count) => ({ data: new Float32Array(count * 2 * 16 * 16 * 16).fill(0.4375), channels: 2 });
      const out = await slidingWindowInference(rampVolume([20, 33, 47]), constant, { roiSize: [16, 16, 16], overlap: 0.25, blend });
      assert.equal(out.channels, 2);
      assert.equal(out.data.length, 2 * 20 * 33 * 47);
      assert.ok(out.data.every((v) => Math.abs(v - 0.4375) <= 1e-6));
    });
  }

  it('pads a volume smaller than the ROI and crops the result back', async () => {
    const input = rampVolume([5, 12, 30]);
    const seen: number[] = [];
    const out = await slidingWindowInference(input, async (batch, count) => {
      seen.push(count);
      return identity(batch, count);
    }, { roiSize: [16, 16, 16], overlap: 0.25, blend: 'gaussian', padValue: -7 });
    assert.deepEqual(out.dims, [5, 12, 30]);
    assert.ok(maxAbsDifference(out.data, input.data) <= 1e-6);
    // Only the x axis (30 > 16) needs more than one window: step 12, so 0, 12 and 14 (moved back).
    assert.deepEqual(seen, [1, 1, 1]);
  });

  it('sends windows in batches of the given size and reports progress', async () => {
    const calls: number[] = [];
    const progress: string[] = [];
    const input = rampVolume([32, 32, 40]);
    await slidingWindowInference(input, async (batch, count) => {
      calls.push(count);
      assert.equal(batch.length, count * 16 * 16 * 16);
      return identity(batch, count);
    }, { roiSize: [16, 16, 16], overlap: 0, batchSize: 4, onProgress: (done, total) => progress.push(`${done}/${total}`) });
    // 2 × 2 × 3 windows (x: 0, 16, 24).
    assert.deepEqual(calls, [4, 4, 4]);
    assert.deepEqual(progress, ['4/12', '8/12', '12/12']);
  });

  it('maps several input channels to a different number of output channels', async () => {
    const input = rampVolume([20, 20, 20], 2);
    const roi = 16 ** 3;
    // Output channel 0 = input channel 1, output channel 1 = sum of both, output channel 2 = 1.
    const mixer: WindowPredictor = async (batch, count) => {
      const out = new Float32Array(count * 3 * roi);
      for (let b = 0; b < count; b++) {
        for (let v = 0; v < roi; v++) {
          const c0 = batch[(b * 2) * roi + v];
          const c1 = batch[(b * 2 + 1) * roi + v];
          out[(b * 3) * roi + v] = c1;
          out[(b * 3 + 1) * roi + v] = c0 + c1;
          out[(b * 3 + 2) * roi + v] = 1;
        }
      }
      return { data: out, channels: 3 };
    };
    const out = await slidingWindowInference(input, mixer, { roiSize: [16, 16, 16], overlap: 0.25, blend: 'gaussian', batchSize: 2 });
    const n = 20 ** 3;
    assert.equal(out.channels, 3);
    let worst = 0;
    for (let v = 0; v < n; v++) {
      worst = Math.max(worst, Math.abs(out.data[v] - input.data[n + v]), Math.abs(out.data[n + v] - (input.data[v] + input.data[n + v])), Math.abs(out.data[2 * n + v] - 1));
    }
    assert.ok(worst <= 1e-6, `worst ${worst}`);
  });

  it('refuses a model answer of the wrong size, bad options, and stops when aborted', async () => {
    const input = rampVolume([16, 16, 16]);
    await assert.rejects(slidingWindowInference(input, async () => ({ data: new Float32Array(10), channels: 1 }), { roiSize: [16, 16, 16] }), /the model returned 10 values for 1 window\(s\) of 1×16×16×16/);
    await assert.rejects(slidingWindowInference(input, identity, { roiSize: [16, 16, 16], overlap: 1 }), /overlap must be at least 0 and below 1/);
    await assert.rejects(slidingWindowInference(input, identity, { roiSize: [16, 0, 16] }), /positive integers/);
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(slidingWindowInference(input, identity, { roiSize: [8, 8, 8], signal: controller.signal }), /stopped/);
  });
});

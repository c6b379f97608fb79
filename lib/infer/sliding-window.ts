/**
 * Sliding-window inference as MONAI defines it (monai.inferers.sliding_window_inference): the volume is
 * padded up to the ROI where it is smaller, covered by ROI-sized windows that overlap by a fraction of the
 * ROI (the last window of each axis shifted back inside the volume), the windows go to the model in
 * batches, and the predictions are blended with a constant or gaussian importance map. Matching MONAI
 * matters: models trained with MONAI are validated with exactly this tiling.
 *
 * Tensors are channel-first with the last axis fastest: [C, D, H, W], W being the volume's x (i) axis, so a
 * volume in this project's voxel order (x fastest) is a one-channel tensor without any copy.
 */

/** Spatial sizes in tensor order: [D, H, W] (k, j, i). */
export type Size3 = [number, number, number];

export interface Tensor {
  /** Channel-first, W fastest: index = ((c·D + z)·H + y)·W + x. */
  data: Float32Array;
  channels: number;
  dims: Size3;
}

export type BlendMode = 'constant' | 'gaussian';

export interface SlidingWindowOptions {
  roiSize: Size3;
  /** Fraction of the ROI neighbouring windows share, 0 ≤ overlap < 1. MONAI's default is 0.25. */
  overlap?: number;
  /** Windows per model call. */
  batchSize?: number;
  blend?: BlendMode;
  /** Gaussian σ as a fraction of the ROI (MONAI: 0.125). */
  sigmaScale?: number;
  /** Value of the padding where the volume is smaller than the ROI. */
  padValue?: number;
  onProgress?: (windowsDone: number, windowsTotal: number) => void;
  signal?: AbortSignal;
}

export interface WindowPrediction {
  data: Float32Array;
  channels: number;
}

/**
 * The model: `batch` holds `count` windows, each [C_in, ROI], back to back. It returns their predictions,
 * each [C_out, ROI], back to back. The batch is this module's buffer: it is filled again for a later
 * batch as soon as the returned promise settles, so a predictor that needs it longer copies it.
 */
export type WindowPredictor = (batch: Float32Array, count: number) => Promise<WindowPrediction>;

export class SlidingWindowAbortedError extends Error {
  constructor() {
    super('sliding-window inference was stopped');
    this.name = 'SlidingWindowAbortedError';
  }
}

/**
 * Window start offsets along one axis, as MONAI's dense_patch_slices: a step of roi·(1 − overlap) (the
 * whole ROI when the axis is exactly the ROI), as many windows as it takes to reach the end, the last one
 * moved back so that it ends at the edge.
 */
export function windowStarts(size: number, roi: number, overlap: number): number[] {
  if (roi > size) throw new Error(`the ROI (${roi}) is larger than the padded axis (${size})`);
  const step = roi === size ? roi : Math.max(1, Math.floor(roi * (1 - overlap)));
  const starts: number[] = [];
  for (let index = 0; ; index++) {
    const start = index * step;
    starts.push(Math.min(start, size - roi));
    if (start + roi >= size) break;
  }
  return starts;
}

/**
 * The per-voxel weight of a window's prediction: ones (constant), or MONAI's gaussian
 * (compute_importance_map): per axis exp(−x²/2σ²) with x measured from the window's centre ((roi − 1)/2)
 * and σ = sigmaScale · roi, multiplied over the axes, then clamped below at its smallest value (at least
 * 1e-3), so that no voxel ends up with zero total weight.
 */
export function importanceMap(roi: Size3, blend: BlendMode, sigmaScale = 0.125): Float32Array {
  const [d, h, w] = roi;
  const map = new Float32Array(d * h * w);
  if (blend === 'constant') return map.fill(1);
  const [gz, gy, gx] = roi.map((size) => {
    const sigma = sigmaScale * size;
    return Float64Array.from({ length: size }, (_v, i) => {
      const x = i - (size - 1) / 2;
      return Math.exp((x * x) / (-2 * sigma * sigma));
    });
  });
  let min = Infinity;
  for (let z = 0, n = 0; z < d; z++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++, n++) min = Math.min(min, (map[n] = gz[z] * gy[y] * gx[x]));
  const floor = Math.max(min, 1e-3);
  for (let n = 0; n < map.length; n++) if (map[n] < floor) map[n] = floor;
  return map;
}

/** How much each axis is padded before and after (MONAI: half the shortfall before, the rest after). */
function paddingOf(dims: Size3, roi: Size3): Array<[number, number]> {
  return dims.map((size, axis) => {
    const missing = Math.max(0, roi[axis] - size);
    return [Math.floor(missing / 2), missing - Math.floor(missing / 2)] as [number, number];
  });
}

/**
 * Runs `predict` over the volume in overlapping windows and blends the predictions into a tensor of the
 * input's spatial size. Memory: the padded input, an accumulator of C_out × volume floats, a weight
 * volume, and one batch of windows.
 */
export async function slidingWindowInference(input: Tensor, predict: WindowPredictor, options: SlidingWindowOptions): Promise<Tensor> {
  const roi = options.roiSize;
  const overlap = options.overlap ?? 0.25;
  if (!(overlap >= 0 && overlap < 1)) throw new Error(`overlap must be at least 0 and below 1, not ${overlap}`);
  if (roi.some((r) => !Number.isInteger(r) || r < 1)) throw new Error(`the ROI must be positive integers, not ${roi.join('×')}`);
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 1));
  const { channels } = input;
  const pads = paddingOf(input.dims, roi);
  const dims = input.dims.map((size, axis) => size + pads[axis][0] + pads[axis][1]) as Size3;
  const [D, H, W] = dims;
  const padded = pads.every(([before, after]) => before === 0 && after === 0) ? input.data : padVolume(input, dims, pads, options.padValue ?? 0);

  const [zs, ys, xs] = dims.map((size, axis) => windowStarts(size, roi[axis], overlap));
  const windows: Size3[] = [];
  for (const z of zs) for (const y of ys) for (const x of xs) windows.push([z, y, x]);
  const weights = importanceMap(roi, options.blend ?? 'constant', options.sigmaScale ?? 0.125);
  const [rd, rh, rw] = roi;
  const roiVoxels = rd * rh * rw;
  const batchValues = Math.min(batchSize, windows.length) * channels * roiVoxels;
  // Two batch buffers: the next batch is cut out and sent while the one before it is blended, so that a
  // model running off this thread (the inference worker, or a server) overlaps the blending.
  const batches = [new Float32Array(batchValues), windows.length > batchSize ? new Float32Array(batchValues) : undefined];
  let sums: Float32Array | undefined;
  let outChannels = 0;
  const weightSum = new Float32Array(D * H * W);

  const send = (first: number): { group: Size3[]; prediction: Promise<WindowPrediction> } => {
    if (options.signal?.aborted) throw new SlidingWindowAbortedError();
    const group = windows.slice(first, first + batchSize);
    const batch = batches[(first / batchSize) % 2] as Float32Array;
    group.forEach((start, b) => cutWindow(padded, channels, dims, start, roi, batch, b));
    const view = group.length * channels * roiVoxels === batch.length ? batch : batch.subarray(0, group.length * channels * roiVoxels);
    return { group, prediction: predict(view, group.length) };
  };

  let next = send(0);
  for (let first = 0; first < windows.length; first += batchSize) {
    const { group, prediction: predicting } = next;
    const prediction = await predicting;
    if (first + batchSize < windows.length) {
      next = send(first + batchSize);
      // Thrown where it is awaited; not unhandled while this batch is blended.
      next.prediction.catch(() => undefined);
    }
    if (!sums) {
      outChannels = prediction.channels;
      sums = new Float32Array(outChannels * D * H * W);
    }
    if (prediction.channels !== outChannels || prediction.data.length !== group.length * outChannels * roiVoxels) {
      throw new Error(`the model returned ${prediction.data.length} values for ${group.length} window(s) of ${outChannels}×${rd}×${rh}×${rw}`);
    }
    for (let b = 0; b < group.length; b++) blendWindow(prediction.data, b, outChannels, weights, group[b], roi, dims, sums, weightSum);
    options.onProgress?.(Math.min(first + batchSize, windows.length), windows.length);
  }

  // Divide by the accumulated weight, and cut the padding away again.
  const [d, h, w] = input.dims;
  const result = new Float32Array(outChannels * d * h * w);
  for (let c = 0; c < outChannels; c++) {
    for (let z = 0; z < d; z++) {
      for (let y = 0; y < h; y++) {
        const from = ((z + pads[0][0]) * H + y + pads[1][0]) * W + pads[2][0];
        const to = ((c * d + z) * h + y) * w;
        for (let x = 0; x < w; x++) result[to + x] = sums![c * D * H * W + from + x] / weightSum[from + x];
      }
    }
  }
  return { data: result, channels: outChannels, dims: input.dims };
}

/** Copies window `start` (every channel) out of the padded volume into slot `b` of a batch. */
function cutWindow(padded: Float32Array, channels: number, [D, H, W]: Size3, [z0, y0, x0]: Size3, [rd, rh, rw]: Size3, batch: Float32Array, b: number): void {
  const roiVoxels = rd * rh * rw;
  for (let c = 0; c < channels; c++) {
    const base = (b * channels + c) * roiVoxels;
    for (let z = 0; z < rd; z++) {
      for (let y = 0; y < rh; y++) {
        const from = ((c * D + z0 + z) * H + y0 + y) * W + x0;
        batch.set(padded.subarray(from, from + rw), base + (z * rh + y) * rw);
      }
    }
  }
}

/** Adds window `b` of a prediction, weighted, into the sums, and its weights into the weight volume. */
function blendWindow(predicted: Float32Array, b: number, outChannels: number, weights: Float32Array, [z0, y0, x0]: Size3, [rd, rh, rw]: Size3, [D, H, W]: Size3, sums: Float32Array, weightSum: Float32Array): void {
  const roiVoxels = rd * rh * rw;
  const volumeVoxels = D * H * W;
  for (let z = 0; z < rd; z++) {
    for (let y = 0; y < rh; y++) {
      const row = (z * rh + y) * rw;
      const target = ((z0 + z) * H + y0 + y) * W + x0;
      for (let x = 0; x < rw; x++) weightSum[target + x] += weights[row + x];
      for (let c = 0; c < outChannels; c++) {
        const source = (b * outChannels + c) * roiVoxels + row;
        const out = c * volumeVoxels + target;
        for (let x = 0; x < rw; x++) sums[out + x] += predicted[source + x] * weights[row + x];
      }
    }
  }
}

function padVolume(input: Tensor, dims: Size3, pads: Array<[number, number]>, value: number): Float32Array {
  const [D, H, W] = dims;
  const [d, h, w] = input.dims;
  const out = new Float32Array(input.channels * D * H * W).fill(value);
  for (let c = 0; c < input.channels; c++) {
    for (let z = 0; z < d; z++) {
      for (let y = 0; y < h; y++) {
        const from = ((c * d + z) * h + y) * w;
        out.set(input.data.subarray(from, from + w), ((c * D + z + pads[0][0]) * H + y + pads[1][0]) * W + pads[2][0]);
      }
    }
  }
  return out;
}

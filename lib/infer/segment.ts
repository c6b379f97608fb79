/**
 * One study's image channels through a segmentation model, end to end, as MONAI's pre and post transforms
 * do it: every channel onto the model's grid through world coordinates (Orientation RAS + Spacing,
 * trilinear) → optional crop to the foreground → intensity normalisation → sliding-window inference →
 * activation and decision → clean-up → labels resampled (nearest) onto the reference series' exact grid.
 * The model is anything that runs a batch of windows: an embedded onnxruntime session or a KServe v2
 * server.
 */
import type { Volume } from '../volume/types';
import type { ModelMetadata, NamedTensor } from './kserve/types';
import { type Activation, fillHoles, keepLargestComponent, labelsFromChannels } from './postprocess';
import { applyAffine } from '../volume/geometry';
import { type Grid, invertAffine, orientedGridAtSpacing, realValues, resample, sameGrid, zScoreNonZero } from './resample';
import { type BlendMode, type Size3, slidingWindowInference } from './sliding-window';

/** Runs one batch of windows; the embedded model's run() and a KServe client's infer() both fit. */
export type BatchRunner = (inputs: NamedTensor[]) => Promise<NamedTensor[]>;

export type Normalization =
  | { kind: 'none' }
  /** MONAI NormalizeIntensity(nonzero=True); `channelWise` as its channel_wise (statistics per channel). */
  | { kind: 'zscore-nonzero'; channelWise?: boolean }
  /** MONAI ScaleIntensityRange: [aMin, aMax] → [bMin, bMax], clipped to it when `clip`. */
  | { kind: 'scale-range'; aMin: number; aMax: number; bMin: number; bMax: number; clip: boolean };

/**
 * How a window's voxels are laid out in the tensor after [N, C]. NCZYX: x fastest, as the volume is stored
 * (ITK and SimpleITK arrays, this project's bundled model). NCXYZ: z fastest, as MONAI and Clara Train see a
 * NIfTI loaded with nibabel (a bundle exported to ONNX or TorchScript expects this).
 */
export type TensorLayout = 'NCZYX' | 'NCXYZ';

export interface SegmentationSpec {
  inputName: string;
  outputName: string;
  /** MONAI Orientation("RAS") before resampling: voxel axes permuted and flipped, never interpolated. Default true. */
  orientRas?: boolean;
  /** Voxel size the model expects, mm along the (oriented) x, y, z axes; undefined keeps the series' own. */
  spacing?: [number, number, number];
  /** MONAI CropForeground: infer only inside the box of voxels that are non-zero in some channel, grown by `margin` voxels. */
  cropForeground?: { margin: number };
  normalization: Normalization;
  /** Window size in voxels along x, y, z of the model grid (MONAI roi_size for a NIfTI-loaded image). */
  roiSize: Size3;
  layout?: TensorLayout;
  overlap: number;
  batchSize: number;
  blend: BlendMode;
  /** Value the volume is padded with where it is smaller than the window (after normalisation). */
  padValue?: number;
  activation: Activation;
  decision: 'threshold' | 'argmax';
  threshold?: number;
  labels?: number[];
  paintOrder?: number[];
  keepLargestComponent?: boolean;
  fillHoles?: boolean;
}

export interface SegmentProgress {
  stage: 'preprocess' | 'infer' | 'postprocess';
  windowsDone?: number;
  windowsTotal?: number;
}

export interface SegmentationResult {
  /** uint8 labels on the reference (first) channel's grid: same dims and affine. */
  labels: Volume;
  /** The grid the model saw (before cropping). */
  modelGrid: Grid;
  /** The part of the model grid that was inferred: first voxel and size along x, y, z. */
  crop: Box;
  windows: number;
  /** Voxels per label value, on the reference grid. */
  labelCounts: Record<number, number>;
  /** Seconds spent waiting for the model alone (the rest is this package's overhead). */
  modelSeconds: number;
  seconds: number;
}

/** Refused before any window is sent: the spec does not fit the model. */
export class ModelContractError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelContractError';
  }
}

/**
 * Checks a spec against the model's metadata (ModelMetadata from Triton, or the ORT session's inputs) before
 * anything is sent: tensor names, FP32, rank 5, and every fixed dimension (channels, window size).
 */
export function checkModelContract(metadata: ModelMetadata, spec: SegmentationSpec, channels: number): void {
  const where = `model ${metadata.name}`;
  const input = metadata.inputs.find((t) => t.name === spec.inputName);
  if (!input) throw new ModelContractError(`${where} has no input "${spec.inputName}"; its inputs are ${metadata.inputs.map((t) => `"${t.name}"`).join(', ') || 'none'}`);
  const output = metadata.outputs.find((t) => t.name === spec.outputName);
  if (!output) throw new ModelContractError(`${where} has no output "${spec.outputName}"; its outputs are ${metadata.outputs.map((t) => `"${t.name}"`).join(', ') || 'none'}`);
  for (const [what, tensor] of [['input', input], ['output', output]] as const) {
    if (tensor.datatype !== 'FP32') throw new ModelContractError(`${where}: ${what} "${tensor.name}" is ${tensor.datatype}; this node sends and reads FP32`);
    if (tensor.shape.length !== 5) throw new ModelContractError(`${where}: ${what} "${tensor.name}" has shape [${tensor.shape.join(', ')}]; a 3D segmentation model takes [N, C, spatial×3]`);
  }
  const window = tensorOrder(spec.roiSize, spec.layout ?? 'NCZYX');
  const expected = [-1, channels, ...window];
  const wrong = input.shape.map((d, k) => (k > 0 && d !== -1 && d !== expected[k] ? k : -1)).filter((k) => k >= 0);
  if (wrong.length > 0) {
    throw new ModelContractError(
      `${where}: input "${input.name}" has shape [${input.shape.join(', ')}], but this node would send [batch, ${channels}, ${window.join(', ')}]` +
        ` (${channels} channel(s), window ${spec.roiSize.join('×')} as ${spec.layout ?? 'NCZYX'})`,
    );
  }
  const outSpatial = output.shape.slice(2);
  if (outSpatial.some((d, k) => d !== -1 && d !== window[k])) throw new ModelContractError(`${where}: output "${output.name}" has shape [${output.shape.join(', ')}], not windows of ${window.join('×')}`);
  const outChannels = output.shape[1];
  const labelCount = spec.labels?.length;
  if (outChannels !== -1 && labelCount !== undefined && labelCount !== outChannels) {
    throw new ModelContractError(`${where}: output "${output.name}" has ${outChannels} channel(s), but ${labelCount} label(s) are mapped`);
  }
}

/** x, y, z sizes as the tensor's spatial axes are ordered. */
function tensorOrder(xyz: Size3, layout: TensorLayout): Size3 {
  return layout === 'NCXYZ' ? [xyz[0], xyz[1], xyz[2]] : [xyz[2], xyz[1], xyz[0]];
}

/** Swaps the spatial axes of a batch of windows between [.., a, b, c] and [.., c, b, a] (the same operation both ways). */
function reverseSpatialAxes(data: Float32Array, blocks: number, [a, b, c]: Size3): Float32Array {
  const out = new Float32Array(data.length);
  const block = a * b * c;
  for (let n = 0; n < blocks; n++) {
    const base = n * block;
    for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) for (let k = 0; k < c; k++) out[base + (k * b + j) * a + i] = data[base + (i * b + j) * c + k];
  }
  return out;
}

/** The model grid the spec asks for, from the reference channel's grid. */
export function modelGridOf(source: Grid, spec: Pick<SegmentationSpec, 'orientRas' | 'spacing'>): Grid {
  if (spec.orientRas === false && !spec.spacing) return source;
  return orientedGridAtSpacing(source, spec.spacing, spec.orientRas !== false);
}

function normalizeChannels(data: Float32Array, channels: number, n: Normalization): void {
  if (n.kind === 'none') return;
  const voxels = data.length / channels;
  if (n.kind === 'zscore-nonzero') {
    if (n.channelWise === false || channels === 1) zScoreNonZero(data, data);
    else for (let c = 0; c < channels; c++) zScoreNonZero(data.subarray(c * voxels, (c + 1) * voxels), data.subarray(c * voxels, (c + 1) * voxels));
    return;
  }
  const scale = (n.bMax - n.bMin) / (n.aMax - n.aMin);
  const lo = Math.min(n.bMin, n.bMax);
  const hi = Math.max(n.bMin, n.bMax);
  for (let i = 0; i < data.length; i++) {
    const v = (data[i] - n.aMin) * scale + n.bMin;
    data[i] = n.clip ? Math.min(Math.max(v, lo), hi) : v;
  }
}

interface Box {
  start: Size3;
  size: Size3;
}

/** The box (x, y, z) of voxels non-zero in any channel, grown by `margin` and kept inside the grid; undefined when there are none. */
function foregroundBox(data: ArrayLike<number>, channels: number, dims: Size3, margin: number): Box | undefined {
  const [nx, ny, nz] = dims;
  const voxels = nx * ny * nz;
  const min = [nx, ny, nz];
  const max = [-1, -1, -1];
  for (let k = 0, v = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, v++) {
    let on = false;
    for (let c = 0; c < channels && !on; c++) on = data[c * voxels + v] !== 0;
    if (!on) continue;
    if (i < min[0]) min[0] = i;
    if (i > max[0]) max[0] = i;
    if (j < min[1]) min[1] = j;
    if (j > max[1]) max[1] = j;
    if (k < min[2]) min[2] = k;
    if (k > max[2]) max[2] = k;
  }
  if (max[0] < 0) return undefined;
  const start = min.map((m) => Math.max(0, m - margin)) as Size3;
  const end = max.map((m, a) => Math.min(dims[a] - 1, m + margin));
  return { start, size: end.map((e, a) => e - start[a] + 1) as Size3 };
}

function cropChannels(data: Float32Array, channels: number, dims: Size3, box: Box): Float32Array {
  const [nx, ny, nz] = dims;
  const [cx, cy, cz] = box.size;
  const [x0, y0, z0] = box.start;
  if (cx === nx && cy === ny && cz === nz) return data;
  const out = new Float32Array(channels * cx * cy * cz);
  for (let c = 0; c < channels; c++) {
    for (let k = 0; k < cz; k++) {
      for (let j = 0; j < cy; j++) {
        const from = ((c * nz + z0 + k) * ny + y0 + j) * nx + x0;
        out.set(data.subarray(from, from + cx), ((c * cz + k) * cy + j) * cx);
      }
    }
  }
  return out;
}

/**
 * Segments `channels` (the first is the reference: the labels come back on its grid). Every channel is
 * sampled onto the model grid through world coordinates, so series of one frame of reference with other
 * matrices, spacings or orientations line up voxel for voxel; the caller checks they share a frame.
 */
export async function segmentVolume(
  input: Volume | Volume[],
  run: BatchRunner,
  spec: SegmentationSpec,
  options: { onProgress?: (p: SegmentProgress) => void; signal?: AbortSignal } = {},
): Promise<SegmentationResult> {
  const started = process.hrtime.bigint();
  const volumes = Array.isArray(input) ? input : [input];
  if (volumes.length === 0) throw new Error('no input volume');
  const reference = volumes[0];
  const channels = volumes.length;
  const layout = spec.layout ?? 'NCZYX';
  options.onProgress?.({ stage: 'preprocess' });
  const source: Grid = { dims: reference.dims, affine: reference.affine };
  const modelGrid = modelGridOf(source, spec);
  const [nx, ny, nz] = modelGrid.dims;
  const gridVoxels = nx * ny * nz;
  const stacked = new Float32Array(channels * gridVoxels);
  volumes.forEach((v, c) => realValues(v, modelGrid, stacked.subarray(c * gridVoxels, (c + 1) * gridVoxels)));
  const wholeGrid: Box = { start: [0, 0, 0], size: modelGrid.dims };
  const crop = (spec.cropForeground && foregroundBox(stacked, channels, modelGrid.dims, spec.cropForeground.margin)) || wholeGrid;
  const tensor = cropChannels(stacked, channels, modelGrid.dims, crop);
  normalizeChannels(tensor, channels, spec.normalization);
  const [cx, cy, cz] = crop.size;
  const window = tensorOrder(spec.roiSize, layout);
  // The sliding window works on x-fastest tensors; an NCXYZ model gets each window's axes reversed on the way in and out.
  const roiZyx: Size3 = [spec.roiSize[2], spec.roiSize[1], spec.roiSize[0]];
  let modelSeconds = 0;
  let windows = 0;
  const prediction = await slidingWindowInference(
    { data: tensor, channels, dims: [cz, cy, cx] },
    async (batch, count) => {
      const sent = layout === 'NCXYZ' ? reverseSpatialAxes(batch, count * channels, roiZyx) : batch;
      const callStarted = process.hrtime.bigint();
      const outputs = await run([{ name: spec.inputName, datatype: 'FP32', shape: [count, channels, ...window], data: sent }]);
      modelSeconds += Number(process.hrtime.bigint() - callStarted) / 1e9;
      const output = outputs.find((o) => o.name === spec.outputName);
      if (!output) throw new Error(`the model answered ${outputs.map((o) => o.name).join(', ') || 'nothing'}, not ${spec.outputName}`);
      if (!(output.data instanceof Float32Array)) throw new Error(`output ${spec.outputName} is ${output.datatype}, not FP32`);
      if (output.shape.length !== 5 || output.shape[0] !== count || output.shape.slice(2).join() !== window.join()) {
        throw new Error(`output ${spec.outputName} has shape [${output.shape.join(', ')}], not [${count}, C, ${window.join(', ')}]`);
      }
      windows += count;
      const data = layout === 'NCXYZ' ? reverseSpatialAxes(output.data, count * output.shape[1], window) : output.data;
      return { data, channels: output.shape[1] };
    },
    {
      roiSize: roiZyx,
      overlap: spec.overlap,
      batchSize: spec.batchSize,
      blend: spec.blend,
      padValue: spec.padValue,
      signal: options.signal,
      onProgress: (done, total) => options.onProgress?.({ stage: 'infer', windowsDone: done, windowsTotal: total }),
    },
  );
  options.onProgress?.({ stage: 'postprocess' });
  let labels = labelsFromChannels(prediction.data, prediction.channels, cx * cy * cz, {
    activation: spec.activation,
    decision: spec.decision,
    threshold: spec.threshold,
    labels: spec.labels,
    paintOrder: spec.paintOrder,
  });
  // Outside the crop every voxel is background: label 0 for a threshold, the first channel's label for argmax.
  const background = spec.decision === 'argmax' ? (spec.labels?.[0] ?? 0) : 0;
  // Clean-up inside the crop equals clean-up on the whole grid: the crop is ringed by background that reaches the border.
  if (spec.keepLargestComponent) labels = keepLargestComponent(labels, crop.size);
  if (spec.fillHoles) labels = fillHoles(labels, crop.size);
  const full = uncrop(labels, modelGrid.dims, crop, background);
  const { data, labelCounts } = labelsOnSource(full, modelGrid, source, background);
  return {
    labels: { dims: reference.dims, type: 'uint8', data, affine: reference.affine, description: 'segmentation' },
    modelGrid,
    crop,
    windows,
    labelCounts,
    modelSeconds,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}

function uncrop(labels: Uint8Array, dims: Size3, box: Box, background: number): Uint8Array {
  const [nx, ny, nz] = dims;
  const [cx, cy, cz] = box.size;
  if (cx === nx && cy === ny && cz === nz) return labels;
  const [x0, y0, z0] = box.start;
  const out = new Uint8Array(nx * ny * nz).fill(background);
  for (let k = 0; k < cz; k++) for (let j = 0; j < cy; j++) out.set(labels.subarray((k * cy + j) * cx, (k * cy + j + 1) * cx), ((z0 + k) * ny + y0 + j) * nx + x0);
  return out;
}

/**
 * The labels, nearest neighbour, on the source grid, and the voxels per label. Only the source voxels
 * within the labelled region's box (one model voxel around it) are sampled: a lesion is small, the source
 * grid is large, and the rest is background anyway.
 */
function labelsOnSource(labels: Uint8Array, modelGrid: Grid, source: Grid, background: number): { data: Uint8Array; labelCounts: Record<number, number> } {
  const [sx, sy, sz] = source.dims;
  const data = new Uint8Array(sx * sy * sz);
  const counts = new Map<number, number>();
  const count = (values: Uint8Array) => {
    for (let i = 0; i < values.length; i++) if (values[i]) counts.set(values[i], (counts.get(values[i]) ?? 0) + 1);
  };
  const labelCountsOf = () => Object.fromEntries([...counts.entries()].sort((a, b) => a[0] - b[0]));
  if (sameGrid(modelGrid, source)) {
    data.set(labels);
    count(data);
    return { data, labelCounts: labelCountsOf() };
  }
  if (background !== 0) {
    resample(labels, modelGrid, source, 'nearest', background, data);
    count(data);
    return { data, labelCounts: labelCountsOf() };
  }
  const labelled = foregroundBox(labels, 1, modelGrid.dims, 1);
  if (!labelled) return { data, labelCounts: {} };
  // The labelled box's corners in source voxel indices bound every source voxel that can land inside it.
  const toSource = invertAffine(source.affine);
  const min = [Infinity, Infinity, Infinity];
  const max = [-Infinity, -Infinity, -Infinity];
  for (const i of [labelled.start[0] - 0.5, labelled.start[0] + labelled.size[0] - 0.5]) {
    for (const j of [labelled.start[1] - 0.5, labelled.start[1] + labelled.size[1] - 0.5]) {
      for (const k of [labelled.start[2] - 0.5, labelled.start[2] + labelled.size[2] - 0.5]) {
        const p = applyAffine(toSource, applyAffine(modelGrid.affine, [i, j, k]));
        for (let a = 0; a < 3; a++) {
          min[a] = Math.min(min[a], p[a]);
          max[a] = Math.max(max[a], p[a]);
        }
      }
    }
  }
  const start = min.map((m, a) => Math.min(source.dims[a] - 1, Math.max(0, Math.floor(m)))) as Size3;
  const end = max.map((m, a) => Math.max(0, Math.min(source.dims[a] - 1, Math.ceil(m))));
  const size = end.map((e, a) => e - start[a] + 1) as Size3;
  const origin = applyAffine(source.affine, start);
  const box: Grid = { dims: size, affine: source.affine.map((row, r) => (r < 3 ? [row[0], row[1], row[2], origin[r]] : row)) };
  const inBox = resample(labels, modelGrid, box, 'nearest', 0, new Uint8Array(size[0] * size[1] * size[2]));
  count(inBox);
  for (let k = 0; k < size[2]; k++) {
    for (let j = 0; j < size[1]; j++) data.set(inBox.subarray((k * size[1] + j) * size[0], (k * size[1] + j + 1) * size[0]), ((start[2] + k) * sy + start[1] + j) * sx + start[0]);
  }
  return { data, labelCounts: labelCountsOf() };
}

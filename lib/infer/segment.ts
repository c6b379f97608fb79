/**
 * One volume through a segmentation model, end to end: real values → RAS grid at the model's spacing →
 * intensity normalisation → sliding-window inference → activation and decision → clean-up → labels
 * resampled (nearest) onto the source volume's exact grid. The model is anything that runs a batch of
 * windows: an embedded onnxruntime session or a KServe v2 server.
 */
import type { Volume } from '../volume/types';
import type { NamedTensor } from './kserve/types';
import { type Activation, fillHoles, keepLargestComponent, labelsFromChannels } from './postprocess';
import { type Grid, rasGridCovering, realValues, resample, zScoreNonZero } from './resample';
import { type BlendMode, type Size3, slidingWindowInference } from './sliding-window';

/** Runs one batch of windows; the embedded model's run() and a KServe client's infer() both fit. */
export type BatchRunner = (inputs: NamedTensor[]) => Promise<NamedTensor[]>;

export type Normalization =
  | { kind: 'none' }
  /** MONAI NormalizeIntensity(nonzero=True). */
  | { kind: 'zscore-nonzero' }
  /** MONAI ScaleIntensityRange: [aMin, aMax] → [bMin, bMax], clipped to it when `clip`. */
  | { kind: 'scale-range'; aMin: number; aMax: number; bMin: number; bMax: number; clip: boolean };

export interface SegmentationSpec {
  inputName: string;
  outputName: string;
  /** Voxel size the model expects, mm along R, A, S; undefined keeps the source grid (no resampling). */
  spacing?: [number, number, number];
  normalization: Normalization;
  /** In tensor order [D, H, W] = [S, A, R] axes of the RAS grid. */
  roiSize: Size3;
  overlap: number;
  batchSize: number;
  blend: BlendMode;
  activation: Activation;
  decision: 'threshold' | 'argmax';
  threshold?: number;
  labels?: number[];
  keepLargestComponent?: boolean;
  fillHoles?: boolean;
}

export interface SegmentProgress {
  stage: 'preprocess' | 'infer' | 'postprocess';
  windowsDone?: number;
  windowsTotal?: number;
}

export interface SegmentationResult {
  /** uint8 labels on the source volume's grid (same dims and affine). */
  labels: Volume;
  /** The grid the model saw. */
  modelGrid: Grid;
  windows: number;
  /** Voxels per label value, on the source grid. */
  labelCounts: Record<number, number>;
  /** Seconds spent in the model calls alone (the rest is this package's overhead). */
  modelSeconds: number;
}

function normalize(values: Float32Array, n: Normalization): Float32Array {
  if (n.kind === 'none') return values;
  if (n.kind === 'zscore-nonzero') return zScoreNonZero(values);
  const out = new Float32Array(values.length);
  const scale = (n.bMax - n.bMin) / (n.aMax - n.aMin);
  for (let i = 0; i < values.length; i++) {
    let v = (values[i] - n.aMin) * scale + n.bMin;
    if (n.clip) v = Math.min(Math.max(v, Math.min(n.bMin, n.bMax)), Math.max(n.bMin, n.bMax));
    out[i] = v;
  }
  return out;
}

export async function segmentVolume(
  volume: Volume,
  run: BatchRunner,
  spec: SegmentationSpec,
  options: { onProgress?: (p: SegmentProgress) => void; signal?: AbortSignal } = {},
): Promise<SegmentationResult> {
  options.onProgress?.({ stage: 'preprocess' });
  const source: Grid = { dims: volume.dims, affine: volume.affine };
  const modelGrid = spec.spacing ? rasGridCovering(source, spec.spacing) : source;
  const real = realValues(volume);
  const onModelGrid = spec.spacing ? resample(real, source, modelGrid, 'linear', 0) : real;
  const input = normalize(onModelGrid, spec.normalization);
  const [nx, ny, nz] = modelGrid.dims;
  let modelSeconds = 0;
  let windows = 0;
  const prediction = await slidingWindowInference(
    { data: input, channels: 1, dims: [nz, ny, nx] },
    async (batch, count) => {
      const started = process.hrtime.bigint();
      const outputs = await run([{ name: spec.inputName, datatype: 'FP32', shape: [count, 1, ...spec.roiSize], data: batch }]);
      modelSeconds += Number(process.hrtime.bigint() - started) / 1e9;
      const output = outputs.find((o) => o.name === spec.outputName);
      if (!output) throw new Error(`the model answered ${outputs.map((o) => o.name).join(', ') || 'nothing'}, not ${spec.outputName}`);
      if (!(output.data instanceof Float32Array)) throw new Error(`output ${spec.outputName} is ${output.datatype}, not FP32`);
      if (output.shape.length !== 5 || output.shape[0] !== count || output.shape.slice(2).join() !== spec.roiSize.join()) {
        throw new Error(`output ${spec.outputName} has shape [${output.shape.join(', ')}], not [${count}, C, ${spec.roiSize.join(', ')}]`);
      }
      windows += count;
      return { data: output.data, channels: output.shape[1] };
    },
    {
      roiSize: spec.roiSize,
      overlap: spec.overlap,
      batchSize: spec.batchSize,
      blend: spec.blend,
      signal: options.signal,
      onProgress: (done, total) => options.onProgress?.({ stage: 'infer', windowsDone: done, windowsTotal: total }),
    },
  );
  options.onProgress?.({ stage: 'postprocess' });
  let labels = labelsFromChannels(prediction.data, prediction.channels, nx * ny * nz, {
    activation: spec.activation,
    decision: spec.decision,
    threshold: spec.threshold,
    labels: spec.labels,
  });
  if (spec.keepLargestComponent) labels = keepLargestComponent(labels, modelGrid.dims);
  if (spec.fillHoles) labels = fillHoles(labels, modelGrid.dims);
  const onSource = spec.spacing ? resample(labels, modelGrid, source, 'nearest', 0) : labels;
  const data = Uint8Array.from(onSource);
  const labelCounts: Record<number, number> = {};
  for (const v of data) if (v) labelCounts[v] = (labelCounts[v] ?? 0) + 1;
  return {
    labels: { dims: volume.dims, type: 'uint8', data, affine: volume.affine, description: 'segmentation' },
    modelGrid,
    windows,
    labelCounts,
    modelSeconds,
  };
}

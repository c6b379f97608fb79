/**
 * What the clara-triton-infer editor, the CLI and Clara pipeline imports say about a model, checked and
 * turned into a SegmentationSpec. Presets fill every field for a known model; any field given explicitly
 * overrides the preset. Tensor names left empty are taken from the model's metadata.
 */
import type { ModelMetadata } from './kserve/types';
import type { BlendMode, Size3 } from './sliding-window';
import type { Normalization, SegmentationSpec, TensorLayout } from './segment';

export type PresetName = 'demo' | 'clara-brain-tumor-t1c2tc' | 'monai-brats' | 'custom';

/** The editor's fields as Node-RED stores them: strings, numbers and booleans, any of them missing. */
export interface InferenceFields {
  preset?: string;
  model?: string;
  version?: string;
  inputName?: string;
  outputName?: string;
  /** Selection names, one per input channel, comma-separated; empty: the first selection. */
  channels?: string;
  /** Channels from another frame of reference: 'none' fails the job, 'rigid' registers them with elastix. */
  registration?: string;
  layout?: string;
  orientRas?: boolean | string;
  /** "2,2,2", "2" for all axes, or "" / "none" to keep the series' own. */
  spacing?: string;
  cropForeground?: boolean | string;
  cropMargin?: number | string;
  /** zscore-nonzero | zscore-nonzero-joint | scale-range | none */
  normalization?: string;
  aMin?: number | string;
  aMax?: number | string;
  bMin?: number | string;
  bMax?: number | string;
  clip?: boolean | string;
  roi?: string;
  overlap?: number | string;
  swBatchSize?: number | string;
  blend?: string;
  padValue?: number | string;
  activation?: string;
  decision?: string;
  threshold?: number | string;
  /** Label per output channel, comma-separated. */
  labels?: string;
  /** Threshold decision: channels in painting order (last wins), comma-separated. */
  paintOrder?: string;
  keepLargest?: boolean | string;
  fillHoles?: boolean | string;
}

export interface InferenceConfig {
  preset: PresetName;
  model: string;
  version: string;
  /** Selection names per channel; [] = the first selection, every series of it segmented on its own. */
  channels: string[];
  registration: 'none' | 'rigid';
  /** Everything but the tensor names, which may wait for the model's metadata. */
  spec: Omit<SegmentationSpec, 'inputName' | 'outputName'> & { inputName?: string; outputName?: string };
}

export class InferenceConfigError extends Error {}

/**
 * The presets. "demo" is the bundled model (models/brain-tumor-tc, its card gives the contract). The other
 * two follow what their public sources say: Clara's brain tumour core model (Clara Train conventions:
 * NV_MODEL_INPUT/NV_MODEL_OUTPUT, 1 mm, z-score over non-zero voxels, windows of 224×224×128 as its
 * sibling br16_full) and MONAI's brats_mri_segmentation bundle (inference.json: 4 channels T1c, T1, T2,
 * FLAIR, channel-wise z-score, no resampling, roi 240×240×160, overlap 0.5, sigmoid > 0.5, ET → 4 over
 * TC → 1 over WT → 2). Names of tensors of exported bundles vary: check them with "Test connection".
 */
export const PRESETS: Record<Exclude<PresetName, 'custom'>, Required<Pick<InferenceFields, 'model' | 'channels' | 'layout' | 'spacing' | 'normalization' | 'roi' | 'overlap' | 'swBatchSize' | 'blend' | 'activation' | 'decision' | 'threshold' | 'labels' | 'paintOrder'>> & InferenceFields> = {
  demo: {
    model: 'brain-tumor-tc', inputName: 'image', outputName: 'logits', channels: '', layout: 'NCZYX', spacing: '2,2,2', normalization: 'zscore-nonzero',
    roi: '64,64,64', overlap: 0.25, swBatchSize: 4, blend: 'constant', activation: 'sigmoid', decision: 'threshold', threshold: 0.5, labels: '1', paintOrder: '',
    cropForeground: true, cropMargin: 4, keepLargest: false, fillHoles: false,
  },
  'clara-brain-tumor-t1c2tc': {
    model: 'segmentation_mri_brain_tumors_br16_t1c2tc_v1', inputName: 'NV_MODEL_INPUT', outputName: 'NV_MODEL_OUTPUT', channels: '', layout: 'NCXYZ', spacing: '1,1,1',
    normalization: 'zscore-nonzero', roi: '224,224,128', overlap: 0.25, swBatchSize: 1, blend: 'constant', activation: 'sigmoid', decision: 'threshold', threshold: 0.5,
    labels: '1', paintOrder: '', cropForeground: false, keepLargest: true, fillHoles: false,
  },
  'monai-brats': {
    model: 'brats_mri_segmentation', channels: 'T1C,T1,T2,FLAIR', layout: 'NCXYZ', spacing: '', orientRas: false, normalization: 'zscore-nonzero',
    roi: '240,240,160', overlap: 0.5, swBatchSize: 1, blend: 'constant', activation: 'sigmoid', decision: 'threshold', threshold: 0.5,
    labels: '1,2,4', paintOrder: '1,0,2', cropForeground: false, keepLargest: false, fillHoles: false,
  },
};

const has = (v: unknown): boolean => v !== undefined && v !== null && v !== '';

function bool(value: unknown, fallback: boolean): boolean {
  if (!has(value)) return fallback;
  return value === true || value === 'true';
}

function number(value: unknown, what: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new InferenceConfigError(`${what} must be a number from ${min} to ${max}, not ${JSON.stringify(value)}`);
  return n;
}

function integers(text: string, what: string, min: number, max: number): number[] {
  const values = text.split(/[\s,x×]+/).filter(Boolean).map(Number);
  if (values.some((v) => !Number.isInteger(v) || v < min || v > max)) throw new InferenceConfigError(`${what} must be integers from ${min} to ${max}, not "${text}"`);
  return values;
}

function triple(text: string, what: string, parse: (v: string) => number): Size3 {
  const parts = text.split(/[\s,x×]+/).filter(Boolean);
  const values = (parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts).map(parse);
  if (values.length !== 3) throw new InferenceConfigError(`${what} takes three values (x, y, z) or one for all, not "${text}"`);
  return values as Size3;
}

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new InferenceConfigError(`${what} must be one of ${allowed.join(', ')}, not ${JSON.stringify(value)}`);
  return value as T;
}

/** Checks the fields and fills what they leave out from the preset (default: the bundled demo model). */
export function inferenceConfigFromFields(fields: InferenceFields): InferenceConfig {
  const preset = oneOf((fields.preset || 'demo') as string, ['demo', 'clara-brain-tumor-t1c2tc', 'monai-brats', 'custom'] as const, 'preset');
  // A custom model starts from the demo's processing, with its own name and the tensor names its metadata gives.
  const base: InferenceFields = preset === 'custom' ? { ...PRESETS.demo, model: '', inputName: '', outputName: '' } : PRESETS[preset];
  const pick = <K extends keyof InferenceFields>(key: K): InferenceFields[K] => (has(fields[key]) ? fields[key] : base[key]);
  const model = String(pick('model') ?? '').trim();
  if (!model) throw new InferenceConfigError('a model name is needed');
  const channels = String(pick('channels') ?? '').split(',').map((c) => c.trim()).filter(Boolean);
  const spacingText = String(pick('spacing') ?? '').trim();
  const spacing = spacingText === '' || spacingText === 'none' ? undefined : triple(spacingText, 'spacing', (v) => number(v, 'spacing (mm)', 0.01, 100));
  const roi = triple(String(pick('roi')), 'window size', (v) => number(v, 'window size', 1, 4096));
  if (roi.some((v) => !Number.isInteger(v))) throw new InferenceConfigError(`window size must be whole voxels, not "${pick('roi')}"`);
  const normalizationKind = oneOf(String(pick('normalization')), ['zscore-nonzero', 'zscore-nonzero-joint', 'scale-range', 'none'] as const, 'normalization');
  let normalization: Normalization;
  if (normalizationKind === 'scale-range') {
    const value = (k: 'aMin' | 'aMax' | 'bMin' | 'bMax', fallback: number) => (has(fields[k]) ? number(fields[k], k, -1e9, 1e9) : fallback);
    normalization = { kind: 'scale-range', aMin: value('aMin', 0), aMax: value('aMax', 1000), bMin: value('bMin', 0), bMax: value('bMax', 1), clip: bool(fields.clip, true) };
    if (normalization.aMax === normalization.aMin) throw new InferenceConfigError('the intensity range needs a maximum above its minimum');
  } else if (normalizationKind === 'none') {
    normalization = { kind: 'none' };
  } else {
    normalization = { kind: 'zscore-nonzero', channelWise: normalizationKind === 'zscore-nonzero' };
  }
  const labels = integers(String(pick('labels') ?? ''), 'labels', 0, 255);
  const paintOrderText = String(pick('paintOrder') ?? '').trim();
  const decision = oneOf(String(pick('decision')), ['threshold', 'argmax'] as const, 'decision');
  const activation = oneOf(String(pick('activation')), ['sigmoid', 'softmax', 'none'] as const, 'activation');
  if (decision === 'threshold' && activation === 'softmax') throw new InferenceConfigError('softmax goes with argmax, not a threshold');
  const text = (k: 'inputName' | 'outputName') => (has(pick(k)) ? String(pick(k)).trim() : undefined);
  return {
    preset,
    model,
    version: String(fields.version ?? '').trim(),
    channels,
    registration: oneOf(String(fields.registration || 'none'), ['none', 'rigid'] as const, 'registration'),
    spec: {
      inputName: text('inputName'),
      outputName: text('outputName'),
      orientRas: bool(pick('orientRas'), true),
      spacing,
      cropForeground: bool(pick('cropForeground'), false) ? { margin: Math.round(number(pick('cropMargin') ?? 0, 'crop margin', 0, 1000)) } : undefined,
      normalization,
      roiSize: roi,
      layout: oneOf(String(pick('layout')), ['NCZYX', 'NCXYZ'] as const, 'tensor layout') as TensorLayout,
      overlap: number(pick('overlap'), 'overlap', 0, 0.95),
      batchSize: Math.round(number(pick('swBatchSize'), 'windows per request', 1, 1024)),
      blend: oneOf(String(pick('blend')), ['constant', 'gaussian'] as const, 'blending') as BlendMode,
      padValue: has(fields.padValue) ? number(fields.padValue, 'padding value', -1e9, 1e9) : undefined,
      activation,
      decision,
      threshold: number(pick('threshold'), 'threshold', -1e9, 1e9),
      labels: labels.length > 0 ? labels : undefined,
      paintOrder: paintOrderText ? integers(paintOrderText, 'paint order', 0, 255) : undefined,
      keepLargestComponent: bool(pick('keepLargest'), false),
      fillHoles: bool(pick('fillHoles'), false),
    },
  };
}

/** The spec with its tensor names: the configured ones, else the model's first input and output. */
export function resolveSpec(config: InferenceConfig, metadata: ModelMetadata): SegmentationSpec {
  return {
    ...config.spec,
    inputName: config.spec.inputName ?? metadata.inputs[0]?.name ?? '',
    outputName: config.spec.outputName ?? metadata.outputs[0]?.name ?? '',
  };
}

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { InferenceError } from '../infer/kserve/types';
import { ModelRepositoryError } from '../infer/model-repository';
import { type ModelHandle, type ServerSettings, connectInferenceServer, serverSettingsFromUrl } from '../infer/server';
import type { Normalization, SegmentationSpec } from '../infer/segment';
import { segmentVolume } from '../infer/segment';
import type { BlendMode } from '../infer/sliding-window';
import { readMetaImage, writeMetaImage } from '../volume/metaimage';
import { readNifti, writeNifti } from '../volume/nifti';
import type { Volume } from '../volume/types';
import { InputError, type ParsedArgs, UsageError, intOption, parseArgs, rejectUnknownOptions, stringOption } from './args';

const FLAGS = ['keep-largest', 'fill-holes'];
const OPTIONS = [
  'model-repo', 'model', 'version', 'server', 'input', 'output', 'spacing', 'roi', 'overlap', 'batch', 'blend', 'normalize', 'activation', 'decision',
  'threshold', 'labels', 'threads', 'deadline', ...FLAGS,
];

function numbersOption(args: ParsedArgs, name: string, count: number, fallback: number[] | undefined): number[] | undefined {
  const raw = args.options.get(name);
  if (raw === undefined) return fallback;
  if (raw === true) throw new UsageError(`--${name} needs a value`);
  if (raw === 'none') return undefined;
  const values = raw.split(/[,x×]/).map(Number);
  const expanded = values.length === 1 ? Array<number>(count).fill(values[0]) : values;
  if (expanded.length !== count || expanded.some((v) => !Number.isFinite(v) || v <= 0)) throw new UsageError(`--${name} takes ${count} positive numbers (a,b,c) or one for all`);
  return expanded;
}

function numberOption(args: ParsedArgs, name: string, fallback: number, min: number, max: number): number {
  const raw = args.options.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw === true || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number from ${min} to ${max}`);
  return n;
}

function readVolume(path: string): Volume {
  if (!existsSync(path)) throw new InputError(`${path} does not exist`);
  try {
    return path.endsWith('.mhd') ? readMetaImage(path) : readNifti(path);
  } catch (err) {
    throw new InputError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * clara-dicom infer <volume> <out> (--model-repo DIR | --server URL) --model NAME [options]
 * Segments one volume (NIfTI or MetaImage) and writes the uint8 label volume on the same grid.
 */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, FLAGS);
  rejectUnknownOptions(args, OPTIONS);
  if (args.positional.length !== 2) throw new UsageError(`expected an input volume and an output file, got ${args.positional.length} argument(s)`);
  const [inputPath, outputPath] = args.positional.map((p) => resolve(p));
  const repo = args.options.get('model-repo');
  const server = args.options.get('server');
  const modelName = args.options.get('model');
  if (typeof modelName !== 'string' || !modelName) throw new UsageError('--model NAME is required');
  if ((typeof repo === 'string') === (typeof server === 'string')) throw new UsageError('give either --model-repo DIR (embedded onnxruntime) or --server URL (Triton / KServe v2)');
  const version = typeof args.options.get('version') === 'string' ? String(args.options.get('version')) : '';
  const spacing = numbersOption(args, 'spacing', 3, [2, 2, 2]) as [number, number, number] | undefined;
  const roi = numbersOption(args, 'roi', 3, [64, 64, 64]) as [number, number, number];
  const labels = typeof args.options.get('labels') === 'string' ? String(args.options.get('labels')).split(',').map(Number) : undefined;
  const normalizationKind = stringOption(args, 'normalize', ['zscore', 'none'] as const, 'zscore');
  const normalization: Normalization = normalizationKind === 'zscore' ? { kind: 'zscore-nonzero' } : { kind: 'none' };
  const deadlineMs = intOption(args, 'deadline', 120, 1, 86400) * 1000;
  const volume = readVolume(inputPath);

  let settings: ServerSettings;
  try {
    settings = typeof repo === 'string'
      ? { mode: 'embedded', repository: resolve(repo), intraOpThreads: intOption(args, 'threads', 0, 0, 256) }
      : serverSettingsFromUrl(String(server), { deadlineMs });
  } catch (err) {
    throw new UsageError(`--server: ${(err as Error).message}`);
  }
  if (typeof server === 'string' && settings.mode === 'embedded') throw new UsageError(`--server must look like grpc://host:8001 or http://host:8000, not ${server}`);
  const inferenceServer = connectInferenceServer(settings);
  const where = `model ${modelName} on ${inferenceServer.description}`;
  let model: ModelHandle;
  try {
    model = await inferenceServer.model(modelName, version || undefined);
  } catch (err) {
    await inferenceServer.close();
    if (err instanceof InferenceError || err instanceof ModelRepositoryError) throw new InputError(err.message);
    throw err;
  }
  const { metadata } = model;
  try {
    const inputName = String(args.options.get('input') ?? metadata.inputs[0]?.name ?? '');
    const outputName = String(args.options.get('output') ?? metadata.outputs[0]?.name ?? '');
    if (!metadata.inputs.some((t) => t.name === inputName)) throw new InputError(`${where} has no input ${inputName || '(none named)'}; it has ${metadata.inputs.map((t) => t.name).join(', ')}`);
    if (!metadata.outputs.some((t) => t.name === outputName)) throw new InputError(`${where} has no output ${outputName || '(none named)'}; it has ${metadata.outputs.map((t) => t.name).join(', ')}`);
    const spec: SegmentationSpec = {
      inputName,
      outputName,
      spacing,
      normalization,
      // The model sees [D, H, W] = [S, A, R]; --roi is given as x,y,z like --spacing.
      roiSize: [roi[2], roi[1], roi[0]],
      overlap: numberOption(args, 'overlap', 0.25, 0, 0.95),
      batchSize: intOption(args, 'batch', 4, 1, 1024),
      blend: stringOption(args, 'blend', ['gaussian', 'constant'] as BlendMode[], 'gaussian'),
      activation: stringOption(args, 'activation', ['sigmoid', 'softmax', 'none'] as const, 'sigmoid'),
      decision: stringOption(args, 'decision', ['threshold', 'argmax'] as const, 'threshold'),
      threshold: numberOption(args, 'threshold', 0.5, -1e9, 1e9),
      labels,
      keepLargestComponent: args.options.has('keep-largest'),
      fillHoles: args.options.has('fill-holes'),
    };
    const started = process.hrtime.bigint();
    let result;
    try {
      result = await segmentVolume(volume, model.run, spec);
    } catch (err) {
      if (err instanceof InferenceError) throw new InputError(err.message);
      throw new InputError(`inference failed: ${(err as Error).message}`);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (outputPath.endsWith('.mhd')) await writeMetaImage(outputPath, result.labels);
    else writeNifti(outputPath, result.labels);
    const counts = Object.entries(result.labelCounts).map(([label, n]) => `label ${label}: ${n} voxels`).join(', ') || 'no voxel labelled';
    process.stdout.write(
      `${outputPath}  ${result.labels.dims.join('×')}  ${counts}\n` +
        `${result.windows} window(s) of ${roi.join('×')} on a ${result.modelGrid.dims.join('×')} grid via ${where}; ` +
        `${seconds.toFixed(2)} s, of which model ${result.modelSeconds.toFixed(2)} s\n`,
    );
    return 0;
  } finally {
    await inferenceServer.close();
  }
}

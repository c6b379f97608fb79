import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { type InferenceFields, InferenceConfigError, inferenceConfigFromFields, resolveSpec } from '../infer/config';
import { InferenceError } from '../infer/kserve/types';
import { ModelRepositoryError } from '../infer/model-repository';
import { BUNDLED_MODEL_REPOSITORY, type ModelHandle, type ServerSettings, connectInferenceServer, serverSettingsFromUrl } from '../infer/server';
import { ModelContractError, checkModelContract, segmentVolume } from '../infer/segment';
import { readVolumeFile, writeVolumeFile } from '../volume/file';
import type { Volume } from '../volume/types';
import { InputError, UsageError, intOption, parseArgs, rejectUnknownOptions } from './args';

const FLAGS = ['keep-largest', 'fill-holes', 'no-orient'];
/** Options that are inference fields of the same meaning (lib/infer/config), by CLI name. */
const FIELD_OPTIONS: Record<string, keyof InferenceFields> = {
  preset: 'preset', model: 'model', version: 'version', input: 'inputName', output: 'outputName', layout: 'layout', spacing: 'spacing', roi: 'roi',
  overlap: 'overlap', batch: 'swBatchSize', blend: 'blend', normalize: 'normalization', 'a-min': 'aMin', 'a-max': 'aMax', 'b-min': 'bMin', 'b-max': 'bMax',
  'pad-value': 'padValue', activation: 'activation', decision: 'decision', threshold: 'threshold', labels: 'labels', 'paint-order': 'paintOrder',
};
const OPTIONS = ['model-repo', 'server', 'threads', 'deadline', 'crop', ...Object.keys(FIELD_OPTIONS), ...FLAGS];

function readVolume(path: string): Volume {
  if (!existsSync(path)) throw new InputError(`${path} does not exist`);
  try {
    return readVolumeFile(path);
  } catch (err) {
    throw new InputError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * clara-dicom infer <volume> <out> [--model-repo DIR | --server URL] [--preset P | --model NAME] [options]
 * Segments one volume (NIfTI or MetaImage) and writes the uint8 label volume on the same grid. With no
 * repository or server, the bundled demo model runs embedded.
 */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, FLAGS);
  rejectUnknownOptions(args, OPTIONS);
  if (args.positional.length !== 2) throw new UsageError(`expected an input volume and an output file, got ${args.positional.length} argument(s)`);
  const [inputPath, outputPath] = args.positional.map((p) => resolve(p));
  const repo = args.options.get('model-repo');
  const server = args.options.get('server');
  if (typeof repo === 'string' && typeof server === 'string') throw new UsageError('give either --model-repo DIR (embedded onnxruntime) or --server URL (Triton / KServe v2), not both');
  const fields: InferenceFields = {};
  for (const [option, field] of Object.entries(FIELD_OPTIONS)) {
    const value = args.options.get(option);
    if (value === true) throw new UsageError(`--${option} needs a value`);
    if (value !== undefined) (fields as Record<string, string>)[field] = value;
  }
  // A named model without a preset is a custom one: its tensor names come from its metadata.
  if (fields.model && !fields.preset) fields.preset = 'custom';
  if (args.options.has('no-orient')) fields.orientRas = false;
  const crop = args.options.get('crop');
  if (crop !== undefined) Object.assign(fields, { cropForeground: crop !== 'none', cropMargin: crop === true || crop === 'none' ? 0 : crop });
  if (args.options.has('keep-largest')) fields.keepLargest = true;
  if (args.options.has('fill-holes')) fields.fillHoles = true;
  let config;
  try {
    config = inferenceConfigFromFields(fields);
  } catch (err) {
    if (err instanceof InferenceConfigError) throw new UsageError(err.message);
    throw err;
  }
  const deadlineMs = intOption(args, 'deadline', 120, 1, 86400) * 1000;
  const volume = readVolume(inputPath);

  let settings: ServerSettings;
  try {
    settings = typeof server === 'string'
      ? serverSettingsFromUrl(server, { deadlineMs })
      : { mode: 'embedded', repository: typeof repo === 'string' ? resolve(repo) : BUNDLED_MODEL_REPOSITORY, intraOpThreads: intOption(args, 'threads', 0, 0, 256) };
  } catch (err) {
    throw new UsageError(`--server: ${(err as Error).message}`);
  }
  if (typeof server === 'string' && settings.mode === 'embedded') throw new UsageError(`--server must look like grpc://host:8001 or http://host:8000, not ${server}`);
  const inferenceServer = connectInferenceServer(settings);
  const where = `model ${config.model} on ${inferenceServer.description}`;
  try {
    let model: ModelHandle;
    try {
      model = await inferenceServer.model(config.model, config.version || undefined);
    } catch (err) {
      if (err instanceof InferenceError || err instanceof ModelRepositoryError) throw new InputError(err.message);
      throw err;
    }
    const spec = resolveSpec(config, model.metadata);
    try {
      checkModelContract(model.metadata, spec, 1);
    } catch (err) {
      if (err instanceof ModelContractError) throw new InputError(err.message);
      throw err;
    }
    let result;
    try {
      result = await segmentVolume(volume, model.run, spec);
    } catch (err) {
      if (err instanceof InferenceError) throw new InputError(err.message);
      throw new InputError(`inference failed: ${(err as Error).message}`);
    }
    await writeVolumeFile(outputPath, result.labels);
    const counts = Object.entries(result.labelCounts).map(([label, n]) => `label ${label}: ${n} voxels`).join(', ') || 'no voxel labelled';
    process.stdout.write(
      `${outputPath}  ${result.labels.dims.join('×')}  ${counts}\n` +
        `${result.windows} window(s) of ${spec.roiSize.join('×')} on a ${result.crop.size.join('×')} crop of a ${result.modelGrid.dims.join('×')} grid via ${where}; ` +
        `${result.seconds.toFixed(2)} s, of which model ${result.modelSeconds.toFixed(2)} s\n`,
    );
    return 0;
  } finally {
    await inferenceServer.close();
  }
}

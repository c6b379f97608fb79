/**
 * Inference overhead: the whole of segmentVolume (RAS orientation and resampling onto the model grid,
 * z-score, window extraction, stitching, activation, threshold, resampling back) on the bundled demo model,
 * against bare onnxruntime `session.run` over exactly the same window batches, in the same process and the
 * same run, rounds interleaved. The overhead share is (pipeline − bare) / pipeline.
 *
 * Run as a script this module is the probe, in a fresh process each time: `--probe <volume> <rounds>` times
 * both contenders; `--bare <volume> <batch sizes>` only loads the volume and the model and runs batches of
 * those sizes. The difference of the two processes' peak RSS (from /usr/bin/time) is the memory the
 * pipeline adds around the model, measured against the float32 size of the input.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS, inferenceConfigFromFields, resolveSpec } from '../lib/infer/config';
import type { NamedTensor } from '../lib/infer/kserve/types';
import { openEmbeddedModel } from '../lib/infer/model-repository';
import { segmentVolume } from '../lib/infer/segment';
import { BUNDLED_MODEL_REPOSITORY } from '../lib/infer/server';
import { writePhantomStudy } from '../lib/phantom';
import { readNifti } from '../lib/volume/nifti';
import { parseStudy } from '../lib/volume/parse';
import { median, timeProcess } from './process';
import type { BenchOptions, BenchRow } from './types';

interface ProbeResult {
  pipelineSeconds: number[];
  /** Of which waiting for session.run, inside the pipeline. */
  pipelineModelSeconds: number[];
  bareSeconds: number[];
  windows: number;
  batches: number;
  modelGrid: number[];
  /** Windows in each batch the pipeline sent, for the bare memory probe. */
  batchSizes: number[];
  float32InputMb: number;
}

/** The memory reference: the same volume read and the same model running batches of the same sizes, nothing else. */
async function bareProbe(volumePath: string, batchSizes: number[]): Promise<void> {
  const volume = readNifti(volumePath);
  const model = await openEmbeddedModel(BUNDLED_MODEL_REPOSITORY, PRESETS.demo.model);
  const spec = resolveSpec(inferenceConfigFromFields({ preset: 'demo' }), model.metadata);
  const [d, h, w] = [spec.roiSize[2], spec.roiSize[1], spec.roiSize[0]];
  for (const count of batchSizes) await model.run([{ name: spec.inputName, datatype: 'FP32', shape: [count, 1, d, h, w], data: new Float32Array(count * d * h * w) }]);
  process.stdout.write(JSON.stringify({ voxels: volume.data.length }));
  await model.close();
}

async function probe(volumePath: string, rounds: number): Promise<ProbeResult> {
  const volume = readNifti(volumePath);
  const config = inferenceConfigFromFields({ preset: 'demo' });
  const model = await openEmbeddedModel(BUNDLED_MODEL_REPOSITORY, PRESETS.demo.model);
  const spec = resolveSpec(config, model.metadata);
  // The batches the pipeline sends, kept to be sent again bare; the first round records them.
  const recorded: NamedTensor[][] = [];
  const recordingRunner = async (inputs: NamedTensor[]) => {
    recorded.push(inputs.map((t) => ({ ...t, data: (t.data as Float32Array).slice() })));
    return model.run(inputs);
  };
  // Warm-up: one window, so neither contender pays onnxruntime's first-run allocations.
  const [d, h, w] = [spec.roiSize[2], spec.roiSize[1], spec.roiSize[0]];
  await model.run([{ name: spec.inputName, datatype: 'FP32', shape: [1, 1, d, h, w], data: new Float32Array(d * h * w) }]);
  const first = await segmentVolume(volume, recordingRunner, spec);
  const result: ProbeResult = {
    pipelineSeconds: [],
    pipelineModelSeconds: [],
    bareSeconds: [],
    windows: first.windows,
    batches: recorded.length,
    modelGrid: first.modelGrid.dims,
    batchSizes: recorded.map((batch) => batch[0].shape[0]),
    float32InputMb: (volume.dims[0] * volume.dims[1] * volume.dims[2] * 4) / 2 ** 20,
  };
  for (let round = 0; round < rounds; round++) {
    const pipeline = await segmentVolume(volume, model.run, spec);
    result.pipelineSeconds.push(pipeline.seconds);
    result.pipelineModelSeconds.push(pipeline.modelSeconds);
    const started = process.hrtime.bigint();
    for (const batch of recorded) await model.run(batch);
    result.bareSeconds.push(Number(process.hrtime.bigint() - started) / 1e9);
  }
  await model.close();
  return result;
}

async function studyVolume(dir: string, size: number, slices: number): Promise<string> {
  const study = writePhantomStudy(join(dir, 'study'), { size, slices, seed: 3 });
  const parsed = await parseStudy(join(dir, 'study', 'dicom'), join(dir, 'parsed'), { format: 'nifti' });
  const target = parsed.volumes.find((v) => v.seriesInstanceUID === study.targetSeriesInstanceUID && v.stack === 1);
  if (!target) throw new Error('the phantom target was not parsed');
  return join(dir, 'parsed', target.file);
}

export async function run(options: BenchOptions): Promise<BenchRow[]> {
  const root = join(tmpdir(), `clara-bench-infer-${process.pid}`);
  mkdirSync(root, { recursive: true });
  const sizes = options.quick ? [{ size: 128, slices: 80 }] : [{ size: 128, slices: 80 }, { size: 256, slices: 160 }];
  const rounds = options.quick ? 2 : 5;
  const rows: BenchRow[] = [];
  try {
    for (const { size, slices } of sizes) {
      const volume = await studyVolume(join(root, `${size}`), size, slices);
      const timing = await timeProcess(process.execPath, [__filename, '--probe', volume, String(rounds)]);
      const r = JSON.parse(timing.stdout) as ProbeResult;
      const pipeline = median(r.pipelineSeconds);
      const bare = median(r.bareSeconds);
      const overhead = (pipeline - bare) / pipeline;
      const bareMemory = await timeProcess(process.execPath, [__filename, '--bare', volume, r.batchSizes.join(',')]);
      // The probe keeps a copy of every window for the bare rounds; that copy is the peer's, not the pipeline's.
      const recordedMb = (r.windows * 64 ** 3 * 4) / 2 ** 20;
      const addedMb = timing.peakRssMb - bareMemory.peakRssMb - recordedMb;
      const memoryMet = addedMb <= 3 * r.float32InputMb;
      rows.push({
        name: 'inference overhead (demo model, embedded)',
        input: `T1c ${size}×${size}×${slices} → model grid ${r.modelGrid.join('×')}, ${r.windows} windows of 64³ in ${r.batches} batches`,
        ours: pipeline,
        peer: bare,
        peerName: 'bare session.run, same windows',
        unit: 's',
        ratio: bare / pipeline,
        target: '≥ 0.85 (overhead ≤ 15 % of the total)',
        met: overhead <= 0.15,
        higherIsBetter: true,
        oursPeakRssMb: timing.peakRssMb,
        peerPeakRssMb: bareMemory.peakRssMb,
        notes: `overhead against bare session.run ${(overhead * 100).toFixed(1)} %; time outside the model calls ${((1 - median(r.pipelineModelSeconds) / pipeline) * 100).toFixed(1)} % (model time inside the pipeline ${median(r.pipelineModelSeconds).toFixed(2)} s); memory the pipeline adds over the model alone (peak RSS of the pipeline process − that of a process running only the model on the same batches) ${addedMb.toFixed(0)} MB = ${(addedMb / r.float32InputMb).toFixed(2)}× the float32 input (${r.float32InputMb.toFixed(0)} MB; target ≤ 3×: ${memoryMet ? 'met' : 'NOT met'}; the windows the probe copies for the bare rounds, ${recordedMb.toFixed(0)} MB, are left out); medians of ${rounds} interleaved rounds`,
      });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

if (require.main === module && (process.argv[2] === '--probe' || process.argv[2] === '--bare')) {
  (process.argv[2] === '--bare'
    ? bareProbe(process.argv[3], process.argv[4].split(',').map(Number))
    : probe(process.argv[3], Number(process.argv[4] ?? 3)).then((r) => void process.stdout.write(JSON.stringify(r))))
    .catch((err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    });
}

/**
 * Inference overhead: the whole of segmentVolume (RAS orientation and resampling onto the model grid,
 * z-score, window extraction, stitching, activation, threshold, resampling back) on the bundled demo model,
 * against bare onnxruntime `session.run` over exactly the same window batches, in the same process and the
 * same run, rounds interleaved. The overhead share is (pipeline − bare) / pipeline.
 *
 * Run as a script (`node infer.js --probe <volume> <rounds>`) this module is the probe: one fresh process,
 * so its peak RSS (from /usr/bin/time) is the pipeline's, and the memory it adds over the loaded volume and
 * model is measured against the float32 size of the input.
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
  /** RSS just before the first segmentVolume (volume read, model loaded and warmed). */
  rssBeforeMb: number;
  float32InputMb: number;
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
  const rssBeforeMb = process.memoryUsage().rss / 2 ** 20;
  const first = await segmentVolume(volume, recordingRunner, spec);
  const result: ProbeResult = {
    pipelineSeconds: [],
    pipelineModelSeconds: [],
    bareSeconds: [],
    windows: first.windows,
    batches: recorded.length,
    modelGrid: first.modelGrid.dims,
    rssBeforeMb,
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
  return target.file;
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
      const addedMb = timing.peakRssMb - r.rssBeforeMb;
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
        notes: `overhead ${(overhead * 100).toFixed(1)} %; model time inside the pipeline ${median(r.pipelineModelSeconds).toFixed(2)} s; memory added by the pipeline ${addedMb.toFixed(0)} MB = ${(addedMb / r.float32InputMb).toFixed(2)}× the float32 input (${r.float32InputMb.toFixed(0)} MB; target ≤ 3×); medians of ${rounds} interleaved rounds`,
      });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

if (require.main === module && process.argv[2] === '--probe') {
  probe(process.argv[3], Number(process.argv[4] ?? 3))
    .then((r) => process.stdout.write(JSON.stringify(r)))
    .catch((err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    });
}

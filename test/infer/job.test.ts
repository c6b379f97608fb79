import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inferenceConfigFromFields } from '../../lib/infer/config';
import { InferenceInputError, inferJob } from '../../lib/infer/job';
import { realValues } from '../../lib/infer/resample';
import { connectInferenceServer } from '../../lib/infer/server';
import { type JobRef, JobStore, operatorDir } from '../../lib/job';
import { compileRules } from '../../lib/select/rules';
import { runSelection } from '../../lib/select/run';
import { readVolumeFile } from '../../lib/volume/file';
import { readNifti } from '../../lib/volume/nifti';
import type { DicomMetadataFile } from '../../lib/volume/parse';
import { copyJob, selectedPhantomJob } from '../support/clara';
import { scratchDir } from '../support/tools';

const FIXTURES = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'models');
const TARGET = 'Ax 3D T1c MPRAGE';
const REFERENCE = 'Ax T1c 2x2 ref';

/** Re-selects a job with rules of our own (selector/selected-images.json is rewritten). */
function select(job: JobRef, selections: Array<{ name: string; descriptions: string[]; allMatched?: boolean }>): void {
  const rules = {
    selections: selections.map((s) => ({ name: s.name, all_matched: s.allMatched ?? false, conditions: { SeriesDescription: `^(${s.descriptions.map((d) => d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$` } })),
  };
  runSelection(join(job.dir, 'parser'), operatorDir(job.dir, 'selector'), compileRules(rules));
}

describe('lib/infer inferJob: a selected job to segmentation/ and publish/', function () {
  this.timeout(180000);
  const scratch = scratchDir('infer-job');
  const store = new JobStore(join(scratch.dir, 'jobs'));
  let base: JobRef;
  // The identity model answers every input channel as an output channel: a threshold shows which channel said what.
  const server = connectInferenceServer({ mode: 'embedded', repository: FIXTURES });
  const identity = (extra: Record<string, string> = {}) => inferenceConfigFromFields({
    preset: 'custom', model: 'identity', spacing: '4', roi: '16', normalization: 'zscore-nonzero', activation: 'none', threshold: '1.5', labels: '1,2', ...extra,
  });

  before(async () => {
    base = (await selectedPhantomJob(store, join(scratch.dir, 'phantom'), { size: 64, slices: 40, seed: 7 })).job;
  });
  after(async () => {
    await server.close();
    scratch.cleanup();
  });

  it('segments every series of the first selection on its own when no channels are named', async () => {
    const job = copyJob(store, base);
    select(job, [{ name: 'T1C', descriptions: [TARGET, REFERENCE], allMatched: true }]);
    const result = await inferJob(job.dir, { server, config: identity({ labels: '1' }) });
    assert.equal(result.series.length, 2);
    for (const series of result.series) {
      assert.equal(series.channels.length, 1);
      const labels = readNifti(series.segmentation);
      const source = readNifti(series.channels[0].image);
      assert.deepEqual(labels.dims, source.dims);
      assert.deepEqual(labels.affine, source.affine);
    }
    const meta = JSON.parse(readFileSync(join(result.publishDir, 'config.meta'), 'utf8')) as { density: string; seg_masks: string[] };
    assert.equal(meta.seg_masks.length, 2);
    // publish/ holds each series' volume as parsed and its mask, whole, and no temporary files.
    assert.equal(meta.density, `${result.series[0].seriesInstanceUID}.nii.gz`);
    for (const [index, series] of result.series.entries()) {
      const image = readNifti(join(result.publishDir, `${series.seriesInstanceUID}.nii.gz`));
      const source = readNifti(series.channels[0].image);
      assert.deepEqual([image.dims, image.affine, image.type], [source.dims, source.affine, source.type]);
      assert.ok(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength).equals(Buffer.from(source.data.buffer, source.data.byteOffset, source.data.byteLength)));
      assert.equal(meta.seg_masks[index], `${series.seriesInstanceUID}.output.nii.gz`);
      const mask = readNifti(join(result.publishDir, meta.seg_masks[index]));
      const labels = readNifti(series.segmentation);
      assert.deepEqual([mask.dims, mask.affine, Array.from(mask.data)], [labels.dims, labels.affine, Array.from(labels.data)]);
    }
    assert.deepEqual(readdirSync(result.publishDir).filter((f) => f.endsWith('.part')), []);
  });

  it('writes publish/ as MetaImages, each header with its own .raw, a rescaled series as its real values, when asked for mhd', async () => {
    const job = copyJob(store, base);
    select(job, [{ name: 'T1C', descriptions: [TARGET] }]);
    const result = await inferJob(job.dir, { server, config: identity({ labels: '1' }), format: 'mhd' });
    const [series] = result.series;
    const uid = series.seriesInstanceUID;
    const meta = JSON.parse(readFileSync(join(result.publishDir, 'config.meta'), 'utf8')) as { density: string; seg_masks: string[] };
    assert.deepEqual([meta.density, meta.seg_masks], [`${uid}.mhd`, [`${uid}.output.mhd`]]);
    assert.match(readFileSync(join(result.publishDir, `${uid}.output.mhd`), 'utf8'), new RegExp(`ElementDataFile = ${uid.replace(/\./g, '\\.')}\\.output\\.raw`));
    // MetaImage has no rescale fields: the real values (stored value · slope + intercept).
    const image = readVolumeFile(join(result.publishDir, meta.density));
    const source = readNifti(series.channels[0].image);
    assert.deepEqual([image.dims, Array.from(image.data)], [source.dims, Array.from(realValues(source))]);
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) assert.ok(Math.abs(image.affine[r][c] - source.affine[r][c]) < 1e-4, `affine ${JSON.stringify(image.affine)}`);
    assert.deepEqual(Array.from(readVolumeFile(join(result.publishDir, meta.seg_masks[0])).data), Array.from(readVolumeFile(series.segmentation).data));
  });

  it('stacks named selections as channels when they share a frame of reference, and refuses them when they do not', async () => {
    const job = copyJob(store, base);
    select(job, [{ name: 'T1C', descriptions: [TARGET] }, { name: 'REF', descriptions: [REFERENCE] }]);
    const stacked = await inferJob(job.dir, { server, config: identity({ channels: 'T1C,REF' }) });
    assert.equal(stacked.series.length, 1);
    assert.deepEqual(stacked.series[0].channels.map((c) => c.selection), ['T1C', 'REF']);
    assert.deepEqual(stacked.series[0].registrations, []);
    // Both channels are the same anatomy: the bright tumour passes the threshold in both, the later channel wins.
    assert.ok((stacked.series[0].labelCounts[2] ?? 0) > 0, JSON.stringify(stacked.series[0].labelCounts));

    // The reference series as if from another session: another Frame of Reference UID.
    const metadataFile = join(job.dir, 'parser', 'dicom-metadata.json');
    const metadata = JSON.parse(readFileSync(metadataFile, 'utf8')) as DicomMetadataFile;
    const series = metadata.studies[0].series.find((s) => s.SeriesDescription === REFERENCE)!;
    series.attributes['00200052'] = { vr: 'UI', Value: ['2.25.1234567890'] };
    writeFileSync(metadataFile, JSON.stringify(metadata));
    await assert.rejects(inferJob(job.dir, { server, config: identity({ channels: 'T1C,REF' }) }), (err: Error) => {
      assert.ok(err instanceof InferenceInputError);
      assert.match(err.message, /channel REF \(series [\d.]+\) is not in the frame of reference of T1C \(2\.25\.1234567890 vs [\d.]+\).*rigid registration/);
      return true;
    });
    const registered = await inferJob(job.dir, { server, config: identity({ channels: 'T1C,REF', registration: 'rigid' }) });
    const [record] = registered.series[0].registrations;
    assert.equal(record.selection, 'REF');
    // The two series were written in one frame: the registration must find (nearly) the identity. Voxels are
    // 4 and 8 mm here, so 3° (0.05) and 2 mm are well inside a voxel; lib/infer/register's own tests check millimetres.
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) assert.ok(Math.abs(record.fixedToMoving[r][c] - (r === c ? 1 : 0)) < (c === 3 ? 2 : 0.05), `fixedToMoving ${JSON.stringify(record.fixedToMoving)}`);
    assert.ok((registered.series[0].labelCounts[2] ?? 0) > 0);
  });

  it('says what is missing: no selection of that name, nothing selected, no selected-images.json', async () => {
    const job = copyJob(store, base);
    await assert.rejects(inferJob(job.dir, { server, config: identity({ channels: 'T1C,FLAIR' }) }), /channel FLAIR: there is no selection named FLAIR \(there are T1C\)/);
    select(job, [{ name: 'T1C', descriptions: ['nothing like this'] }]);
    await assert.rejects(inferJob(job.dir, { server, config: identity() }), /no series was selected \(selections T1C are empty\)/);
    await assert.rejects(inferJob(job.dir, { server, config: identity(), selectedImages: join(job.dir, 'nope.json') }), /no selected-images\.json at .*nope\.json: run clara-series-selector/);
  });
});

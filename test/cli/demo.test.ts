import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../support/tools';

const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');

describe('clara-dicom demo (the quick start)', function () {
  this.timeout(180000);
  const scratch = scratchDir('demo');
  after(() => scratch.cleanup());

  it('sends the phantom study through a real Node-RED flow, prints every volume, the T1c series selected and its segmentation', () => {
    const run = spawnSync(process.execPath, [CLI, 'demo', '--work-dir', scratch.dir, '--size', '48', '--slices', '16'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr + run.stdout);
    const out = run.stdout;
    assert.match(out, /phantom study: 7 series, \d+ instances/);
    assert.match(out, /C-STORE: \d+ instances sent/);
    // 7 series, the 3-plane localizer split in three: 9 volumes, none skipped.
    assert.match(out, /\n {2}9 volumes, 0 skipped/);
    const jobDir = /job folder: (.+)/.exec(out)?.[1].trim();
    assert.ok(jobDir && existsSync(join(jobDir, 'job.json')), 'job folder printed');
    const job = JSON.parse(readFileSync(join(jobDir, 'job.json'), 'utf8'));
    assert.equal(job.state, 'inferred');
    const manifest = JSON.parse(readFileSync(join(scratch.dir, 'study', 'phantom.json'), 'utf8'));
    assert.equal(job.counts.instances, manifest.series.reduce((n: number, s: { instanceCount: number }) => n + s.instanceCount, 0));
    const seriesImages = JSON.parse(readFileSync(join(jobDir, 'parser', 'series-images.json'), 'utf8'));
    const target = seriesImages[manifest.targetSeriesInstanceUID];
    assert.ok(target, 'the T1c target series was converted');
    assert.deepEqual(target.dims, [48, 48, 16]);
    assert.ok(existsSync(join(jobDir, 'parser', target.image)));
    assert.match(out, new RegExp(`${target.image.replace(/\./g, '\\.')}\\s+48×48×16`));
    // The example flow's selector applies the Clara pipeline's Base64 rule: the T1c target, nothing else.
    assert.match(out, new RegExp(`\\n  selection T1C: series 4 "Ax 3D T1c MPRAGE" → ${target.image.replace(/\./g, '\\.')}\\n`));
    assert.equal(out.match(/selection T1C:/g)?.length, 1);
    const selected = JSON.parse(readFileSync(join(jobDir, 'selector', 'selected-images.json'), 'utf8'));
    assert.deepEqual(Object.keys(selected.T1C), [manifest.targetSeriesInstanceUID]);
    // The bundled model segmented the selected series, embedded; the labels are on its grid.
    const segmentation = join('segmentation', `${manifest.targetSeriesInstanceUID}.nii.gz`);
    assert.match(out, new RegExp(`\\n  segmentation \\(brain-tumor-tc, embedded onnxruntime, repository [^)]+\\): ${segmentation.replace(/\./g, '\\.')}  (label 1: \\d+ voxels|no findings)(, Dice [\\d.]+ against the phantom's ground truth)?\\n`));
    assert.match(out, /\n {4}\d+ windows in [\d.]+ s, of which the model [\d.]+ s\n/);
    assert.ok(existsSync(join(jobDir, segmentation)));
    assert.ok(existsSync(join(jobDir, 'publish', 'config.meta')));
  });

  it('exits 2 on wrong usage', () => {
    const run = spawnSync(process.execPath, [CLI, 'demo', '--size', 'big'], { encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--size must be an integer/);
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readDicomHeader } from '../../lib/dicom/reader';
import { Tag } from '../../lib/dicom/tags';
import { allFilesUnder, scratchDir } from '../support/tools';

const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const SEG_STORAGE = '1.2.840.10008.5.1.4.1.1.66.4';
const RTSTRUCT_STORAGE = '1.2.840.10008.5.1.4.1.1.481.3';

/** The README's main command: the seed pipeline, end to end, on the phantom study, with the embedded model. */
describe('clara-dicom demo (the quick start)', function () {
  this.timeout(300000);
  const scratch = scratchDir('demo');
  after(() => scratch.cleanup());

  it("runs Clara's imported pipeline on the phantom: C-STORE in, SEG and RTSTRUCT to the MYPACS archive, viewer, per-stage times", () => {
    const run = spawnSync(process.execPath, [CLI, 'demo', '--work-dir', scratch.dir, '--size', '96', '--slices', '60', '--seed', '3'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr + run.stdout);
    const out = run.stdout;
    const manifest = JSON.parse(readFileSync(join(scratch.dir, 'study', 'phantom.json'), 'utf8'));
    const instances = manifest.series.reduce((n: number, s: { instanceCount: number }) => n + s.instanceCount, 0);
    assert.match(out, new RegExp(`phantom study: 7 series, ${instances} instances`));
    assert.match(out, /flow: examples\/03 Clara advanced DICOM integration\.json/);
    assert.match(out, new RegExp(`C-STORE: ${instances} of ${instances} instances stored`));
    for (const [type, name] of [['clara-dicom-parser', 'dicom-parser'], ['clara-series-selector', 'dicom-parser rules'], ['clara-triton-infer', 'brain-tumor-segmentation'], ['clara-seg-writer', 'dicom-seg-writer'], ['clara-rtstruct-writer', 'rtstruct-writer'], ['clara-render-register', 'register-volume-images-for-rendering'], ['clara-scu-out', 'register-dicom-output']]) {
      assert.match(out, new RegExp(`\\n {4}${type} +${name} +\\d+\\.\\d\\d s\\n`), `${type} timed`);
    }
    const jobDir = /wrote \d+ volume\(s\) in (.+)[\\/]parser\n/.exec(out)?.[1];
    assert.ok(jobDir && existsSync(join(jobDir, 'job.json')), 'job folder printed');
    const selected = JSON.parse(readFileSync(join(jobDir, 'selector', 'selected-images.json'), 'utf8'));
    assert.deepEqual(Object.keys(selected.T1C), [manifest.targetSeriesInstanceUID], 'the seed rule chose the T1c target');
    const archive = /archive MYPACS: 2 instance\(s\) in (.+)\n/.exec(out)?.[1];
    assert.ok(archive, 'both results delivered to the archive');
    const classes = allFilesUnder(archive).filter((f) => /[\\/]dicom[\\/][^\\/]+\.dcm$/.test(f)).map((f) => readDicomHeader(f).dataset.string(Tag.SOPClassUID)).sort();
    assert.deepEqual(classes, [SEG_STORAGE, RTSTRUCT_STORAGE].sort());
    const dice = Number(/Dice of the T1c segmentation against the phantom's ground truth: ([\d.]+)/.exec(out)?.[1]);
    assert.ok(dice > 0.7, `Dice ${dice}`);
    assert.match(out, /\n {4}viewer http:\/\/127\.0\.0\.1:\d+\/clara-dicom\/viewer\/\S+ \(while the run lasts\)\n/);
    assert.match(out, /npx node-red --settings \S+[\\/]node-red[\\/]settings\.js\n/);
    assert.ok(existsSync(join(jobDir, 'render', 'montage.png')), 'snapshots rendered');
  });

  it('exits 2 on wrong usage', () => {
    const run = spawnSync(process.execPath, [CLI, 'demo', '--size', 'big'], { encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--size must be an integer/);
  });
});

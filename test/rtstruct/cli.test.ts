import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePhantomStudy } from '../../lib/phantom';
import { readNifti, writeNifti } from '../../lib/volume/nifti';
import { scratchDir } from '../support/tools';

const MAIN = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const MODULE = join(__dirname, '..', '..', 'lib', 'cli', 'rtstruct.js');

/**
 * How to start `clara-dicom rtstruct`: the built CLI itself once lib/cli/main.ts registers the command, until
 * then main.js with the command registered by a one-line shim (same exit-code handling).
 */
function cliArgs(): string[] {
  const help = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' });
  if (/^\s+rtstruct /m.test(help.stdout)) return [MAIN];
  const shim = `const m = require(${JSON.stringify(MAIN)}); m.registerCommand('rtstruct', { usage: 'rtstruct <mask> <source-series-dir> <out-dir> [--labels JSON]', summary: '', load: async () => require(${JSON.stringify(MODULE)}) }); m.main(process.argv.slice(1)).then((c) => process.exit(c));`;
  return ['-e', shim];
}

describe('clara-dicom rtstruct', function () {
  this.timeout(120000);
  const scratch = scratchDir('rtstruct-cli');
  let cli: string[];
  let mask: string;
  let target: string;
  let other: string;
  const run = (...args: string[]) => spawnSync(process.execPath, [...cli, 'rtstruct', ...args], { encoding: 'utf8' });

  before(() => {
    cli = cliArgs();
    const study = writePhantomStudy(join(scratch.dir, 'study'), { size: 48, slices: 24, seed: 6 });
    mask = join(scratch.dir, 'study', study.maskPath);
    target = join(scratch.dir, 'study', study.series.find((s) => s.isTarget)!.dir);
    other = join(scratch.dir, 'study', study.series.find((s) => s.description === 'Ax T1 SE')!.dir);
  });
  after(() => scratch.cleanup());

  it('writes <SOPInstanceUID>.dcm and lists the ROIs (exit 0), or the same as JSON', () => {
    const out = join(scratch.dir, 'out');
    const text = run(mask, target, out, '--labels', '["Tumor core"]', '--uid-root', '1.2.826.0.1.3680043.10.99', '--tolerance', '0.25', '--label', 'TEST');
    assert.equal(text.status, 0, text.stderr);
    const [file] = readdirSync(out);
    assert.match(file, /^1\.2\.826\.0\.1\.3680043\.10\.99\.\d+\.dcm$/);
    assert.match(text.stdout, new RegExp(`${file.replace(/\./g, '\\.')}  RTSTRUCT of series `));
    assert.match(text.stdout, /ROI 1 Tumor core \(GTV\): \d+ contour\(s\) on \d+ slice\(s\), \d+ points/);
    const json = run(mask, target, join(scratch.dir, 'out-json'), '--json', '--styles', '[{"color": "#ffff00", "type": "CTV"}]');
    assert.equal(json.status, 0, json.stderr);
    const result = JSON.parse(json.stdout) as { written: boolean; file: string; rois: Array<{ name: string; interpretedType: string; color: number[] }> };
    assert.equal(result.written, true);
    assert.deepEqual([result.rois[0].name, result.rois[0].interpretedType, result.rois[0].color], ['Tumor-seg', 'CTV', [255, 255, 0]]);
  });

  it('says so and writes nothing for an empty mask (exit 0)', () => {
    const empty = join(scratch.dir, 'empty.nii.gz');
    const volume = readNifti(mask);
    writeNifti(empty, { ...volume, data: new Uint8Array(volume.data.length) });
    const out = join(scratch.dir, 'out-empty');
    const result = run(empty, target, out);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /no labelled voxel: no structure set written/);
    assert.deepEqual(readdirSync(out), []);
  });

  it('exits 1 with one line for bad input, 2 for wrong usage', () => {
    const cases: Array<[string[], number, RegExp]> = [
      [[mask, other, join(scratch.dir, 'x1')], 1, /^clara-dicom rtstruct: the mask grid does not match the source series: /],
      [[mask, target, join(scratch.dir, 'x2'), '--labels', '[]'], 2, /the label list must be a non-empty JSON list/],
      [[join(scratch.dir, 'missing.nii.gz'), target, join(scratch.dir, 'x3')], 1, /missing\.nii\.gz does not exist/],
      [[mask, target], 2, /expected a mask, the source series folder and an output folder, got 2/],
      [[mask, target, join(scratch.dir, 'x4'), '--tolerance', '0.3'], 2, /--tolerance must be a number of pixels from 0 to 0\.25/],
      [[mask, target, join(scratch.dir, 'x5'), '--labels', 'Tumor'], 2, /--labels takes JSON/],
      [[mask, target, join(scratch.dir, 'x6'), '--uid-root', '1.02'], 2, /--uid-root: invalid UID root/],
      [[mask, target, join(scratch.dir, 'x7'), '--colour', 'red'], 2, /unknown option --colour/],
    ];
    for (const [args, code, pattern] of cases) {
      const result = run(...args);
      assert.equal(result.status, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, pattern);
      if (code === 1) assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
    const labelsFile = join(scratch.dir, 'labels.json');
    writeFileSync(labelsFile, '["From file"]');
    const fromFile = run(mask, target, join(scratch.dir, 'x8'), '--labels', labelsFile);
    assert.equal(fromFile.status, 0, fromFile.stderr);
    assert.match(fromFile.stdout, /ROI 1 From file/);
  });
});

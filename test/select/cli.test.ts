import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import type { SelectedImagesFile } from '../../lib/select/run';
import { parseStudy } from '../../lib/volume/parse';
import { scratchDir } from '../support/tools';
import { seedSelectionRulesBase64 } from '../support/clara';

const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const SEED_BASE64 = seedSelectionRulesBase64();

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'select', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('clara-dicom select (CLI)', function () {
  this.timeout(60000);
  const scratch = scratchDir('select-cli');
  let study: PhantomStudy;
  const parsed = () => join(scratch.dir, 'parsed');

  before(async () => {
    study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 32, slices: 12, seed: 21 });
    await parseStudy(join(scratch.dir, 'phantom', 'dicom'), parsed(), { format: 'nifti-gz' });
  });
  after(() => scratch.cleanup());

  it('applies the seed Base64 rule and writes selected-images.json beside the parser output (exit 0)', () => {
    const r = cli('--rules', SEED_BASE64, parsed());
    assert.equal(r.code, 0, r.stderr);
    const target = study.series.find((s) => s.isTarget)!;
    assert.match(r.stdout, new RegExp(`^T1C: 4 Ax 3D T1c MPRAGE  ${target.seriesInstanceUID.replace(/\./g, '\\.')}  ${target.seriesInstanceUID.replace(/\./g, '\\.')}\\.nii\\.gz$`, 'm'));
    const mapping = JSON.parse(readFileSync(join(parsed(), 'selected-images.json'), 'utf8')) as SelectedImagesFile;
    assert.deepEqual(Object.keys(mapping.T1C), [target.seriesInstanceUID]);
    assert.ok(existsSync(join(parsed(), mapping.T1C[target.seriesInstanceUID].image)));
  });

  it('reads a rules file, writes to --out with image paths relative to it, and prints JSON with --json', () => {
    const rulesFile = join(scratch.dir, 'rules.json');
    writeFileSync(rulesFile, JSON.stringify({ selections: [{ name: 'AX', conditions: { ImageOrientationPatient: 'Axial', ImageType: ['!LOCALIZER'] }, all_matched: true }] }));
    const out = join(scratch.dir, 'out');
    const r = cli('--rules', rulesFile, '--out', out, '--json', parsed());
    assert.equal(r.code, 0, r.stderr);
    const printed = JSON.parse(r.stdout) as SelectedImagesFile;
    assert.deepEqual(Object.values(printed.AX).map((s) => s.SeriesDescription), ['Ax T1 SE', 'Ax T2 FLAIR', 'Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref']);
    for (const s of Object.values(printed.AX)) {
      assert.ok(s.image.startsWith('../parsed/'), s.image);
      assert.ok(existsSync(join(out, s.image)));
    }
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'selected-images.json'), 'utf8')), printed);
  });

  it('exits 3 when a selection matches nothing, listing each series and why', () => {
    const r = cli('--rules', '{"selections":[{"name":"CT","conditions":{"Modality":"CT"}}]}', '--out', join(scratch.dir, 'nomatch'), parsed());
    assert.equal(r.code, 3);
    assert.match(r.stdout, /^CT: no match$/m);
    assert.match(r.stdout, /✗ 5 Ax T1c 2x2 ref: Modality is "MR": neither equal to nor matching "CT"/);
  });

  it('selects every image series without rules, and refuses bad rules (exit 1) and bad usage (exit 2)', () => {
    const all = cli('--out', join(scratch.dir, 'all'), parsed());
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout.split('\n').filter((l) => l.startsWith('(every series): ')).length, study.series.length);
    const bad = cli('--rules', '{"selections":[{"name":"T1C","conditions":{"SeriesDescription":"(?i:t1c)"}}]}', parsed());
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^clara-dicom select: invalid selection rules: selection "T1C", condition SeriesDescription: .*only supported at the start/);
    const missing = cli('--rules', 'nonexistent-rules.json', parsed());
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read the rules file nonexistent-rules.json: ENOENT/);
    const notParsed = cli(join(scratch.dir, 'phantom'));
    assert.equal(notParsed.code, 1);
    assert.match(notParsed.stderr, /cannot read the parser metadata .*dicom-metadata\.json: ENOENT/);
    assert.equal(cli().code, 2);
    assert.equal(cli('--bogus', 'x', parsed()).code, 2);
  });
});

import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writePhantomStudy } from '../../lib/phantom';
import { nativeLayout } from '../../lib/volume/native';
import { readNifti } from '../../lib/volume/nifti';
import { type DicomMetadataFile, type SeriesImagesFile, parseStudy } from '../../lib/volume/parse';
import { layoutOnSource, readJobSourceSeries, readSourceSeries } from '../../lib/volume/source';
import { scratchDir } from '../support/tools';

describe('lib/volume source series: the slices a mask was computed on, and how its voxels lie on them', function () {
  this.timeout(60000);
  const scratch = scratchDir('source-series');
  const parsed = join(scratch.dir, 'parsed');
  let seriesImages: SeriesImagesFile;
  let metadata: DicomMetadataFile;
  before(async () => {
    writePhantomStudy(join(scratch.dir, 'study'), { size: 40, slices: 12, seed: 5 });
    await parseStudy(join(scratch.dir, 'study', 'dicom'), parsed, { format: 'nifti' });
    seriesImages = JSON.parse(readFileSync(join(parsed, 'series-images.json'), 'utf8')) as SeriesImagesFile;
    metadata = JSON.parse(readFileSync(join(parsed, 'dicom-metadata.json'), 'utf8')) as DicomMetadataFile;
  });
  after(() => scratch.cleanup());

  it('derives from geometry alone the layout the parser recorded, for every single-stack series', () => {
    let checked = 0;
    for (const entry of Object.values(seriesImages)) {
      if (entry.stacks) continue;
      const source = readJobSourceSeries(parsed, metadata, entry.SeriesInstanceUID);
      assert.deepEqual(source.slices.map((s) => s.sopInstanceUID), entry.slices.map((s) => s.sopInstanceUID), `${entry.SeriesDescription}: slice order`);
      const volume = readNifti(join(parsed, entry.image));
      assert.deepEqual(layoutOnSource(volume, source), nativeLayout(entry), entry.SeriesDescription);
      checked++;
    }
    assert.ok(checked >= 5, `${checked} series`);
  });

  it('refuses a mask on another grid, a series of several orientations, and a missing instance, saying why', () => {
    const entries = Object.values(seriesImages);
    const target = entries.find((e) => e.SeriesDescription === 'Ax 3D T1c MPRAGE')!;
    const coarse = entries.find((e) => e.SeriesDescription === 'Ax T1c 2x2 ref')!;
    const source = readJobSourceSeries(parsed, metadata, target.SeriesInstanceUID);
    const other = readNifti(join(parsed, coarse.image));
    assert.throws(() => layoutOnSource(other, source), /the mask grid does not match the source series: voxel axis i is [\d.]+ mm, the series' column step [\d.]+ mm/);
    const own = readNifti(join(parsed, target.image));
    const shifted = { dims: own.dims, affine: own.affine.map((row, r) => (r === 0 ? [row[0], row[1], row[2], row[3] + 0.7] : row)) };
    assert.throws(() => layoutOnSource(shifted, source), /slice 1 \([\d.]+\) lies 0\.70 mm from the mask's voxels/);
    const cropped = { dims: [own.dims[0], own.dims[1], own.dims[2] - 1] as [number, number, number], affine: own.affine };
    assert.throws(() => layoutOnSource(cropped, source), /voxels along k for \d+ (slices|rows|columns)/);
    const localizer = entries.find((e) => e.stacks)!;
    assert.throws(() => readJobSourceSeries(parsed, metadata, localizer.SeriesInstanceUID), /its orientation differs from the rest of series/);
    rmSync(join(scratch.dir, 'study', 'dicom', metadata.studies[0].series.find((s) => s.SeriesInstanceUID === target.SeriesInstanceUID)!.instances[3].file));
    assert.throws(() => readJobSourceSeries(parsed, metadata, target.SeriesInstanceUID), /source instance .* is missing/);
    assert.throws(() => readSourceSeries(join(scratch.dir, 'study', 'dicom')), /the files hold 7 series/);
  });
});

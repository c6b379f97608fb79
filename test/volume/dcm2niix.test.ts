import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readNifti } from '../../lib/volume/nifti';
import { type ParseResult, parseStudy } from '../../lib/volume/parse';
import { writePhantomStudy, type PhantomStudy } from '../../lib/phantom';
import { scratchDir } from '../support/tools';
import { type Dcm2niixVolume, compareWithDcm2niix, runDcm2niix, transcodeTree, valueAt, writeSeries } from './helpers';

/**
 * Geometry and values against dcm2niix, the reference converter: for every volume dcm2niix writes from
 * the same input, ours has the same dims, an affine within 1e-3 mm and identical values after rescale.
 */
describe('volumes match dcm2niix', function () {
  this.timeout(600000);
  const scratch = scratchDir('volume-d2n');
  let study: PhantomStudy;
  let phantomDicom: string;
  let original: { ours: ParseResult; theirs: Dcm2niixVolume[] };

  before(async () => {
    study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 48, slices: 16, seed: 3 });
    phantomDicom = join(scratch.dir, 'phantom', 'dicom');
    original = {
      ours: await parseStudy(phantomDicom, join(scratch.dir, 'ours-original'), { format: 'nifti' }),
      theirs: runDcm2niix(phantomDicom, join(scratch.dir, 'd2n-original')),
    };
  });
  after(() => scratch.cleanup());

  it('on the phantom study: every series, the 3-plane localizer as three volumes', () => {
    const { ours, theirs } = original;
    assert.equal(theirs.length, 9, `dcm2niix wrote ${theirs.map((t) => t.file).join(', ')}`);
    const compared = compareWithDcm2niix(ours, theirs);
    assert.equal(compared.length, 9);
    // One volume per stack and no other: the localizer's three planes, never one garbage volume.
    assert.equal(ours.volumes.length, 9);
    const localizer = study.series.find((s) => s.orientationKind === 'three-plane')!;
    const stacks = ours.volumes.filter((v) => v.seriesInstanceUID === localizer.seriesInstanceUID);
    assert.deepEqual(stacks.map((v) => v.plane).sort(), ['axial', 'coronal', 'sagittal']);
    assert.deepEqual(stacks.map((v) => v.file).sort(), [
      `${localizer.seriesInstanceUID}.nii`, `${localizer.seriesInstanceUID}_stack2.nii`, `${localizer.seriesInstanceUID}_stack3.nii`,
    ]);
    for (const v of stacks) assert.equal(v.slices.length, 3);
    // Each volume is named by its series UID, so Clara's writers find it.
    for (const s of study.series.filter((x) => x !== localizer)) {
      assert.ok(ours.volumes.some((v) => v.file === `${s.seriesInstanceUID}.nii`), `no ${s.seriesInstanceUID}.nii`);
    }
  });

  it('agrees with the phantom ground truth on slice order and axes (independent of dcm2niix)', () => {
    const target = study.series.find((s) => s.isTarget)!;
    const v = original.ours.volumes.find((x) => x.seriesInstanceUID === target.seriesInstanceUID)!;
    // Native slice order is ascending along the normal, which the phantom lists the same way.
    assert.deepEqual(v.slices.map((s) => s.sopInstanceUID), target.stacks[0].sopInstanceUIDs);
    // The file's voxel (0,0,0) must be one of the stack's 8 corners: the layout only permutes and reflects.
    const native = target.stacks[0].affineRas;
    const dims = [target.columns, target.rows, target.stacks[0].sliceCount];
    const corners = [0, 1, 2, 3, 4, 5, 6, 7].map((c) => [c & 1 ? dims[0] - 1 : 0, c & 2 ? dims[1] - 1 : 0, c & 4 ? dims[2] - 1 : 0]);
    const world = (m: number[][], ijk: number[]) => [0, 1, 2].map((r) => m[r][0] * ijk[0] + m[r][1] * ijk[1] + m[r][2] * ijk[2] + m[r][3]);
    const origin = [v.affine[0][3], v.affine[1][3], v.affine[2][3]];
    assert.ok(corners.some((c) => world(native, c).every((x, a) => Math.abs(x - origin[a]) < 1e-6)), 'origin is a corner of the phantom grid');
  });

  // Lossless copies: dcm2niix must agree on each one it can read; where it cannot (JPEG-LS and deflate
  // need build options Debian's dcm2niix lacks), ours on the copy must equal dcm2niix on the original.
  const lossless: Array<{ name: string; tool: string; args: string[]; dcm2niixReads: boolean }> = [
    { name: 'JPEG 2000 (gdcmconv --j2k)', tool: 'gdcmconv', args: ['--j2k'], dcm2niixReads: true },
    { name: 'JPEG-LS (gdcmconv --jpegls)', tool: 'gdcmconv', args: ['--jpegls'], dcm2niixReads: false },
    { name: 'RLE (gdcmconv --rle)', tool: 'gdcmconv', args: ['--rle'], dcm2niixReads: true },
    { name: 'implicit VR little endian (dcmconv +ti)', tool: 'dcmconv', args: ['+ti'], dcm2niixReads: true },
    { name: 'explicit VR big endian (dcmconv +tb)', tool: 'dcmconv', args: ['+tb'], dcm2niixReads: true },
    { name: 'deflated explicit VR (dcmconv +td)', tool: 'dcmconv', args: ['+td'], dcm2niixReads: false },
    { name: 'JPEG lossless SV1 (dcmcjpeg)', tool: 'dcmcjpeg', args: [], dcm2niixReads: true },
  ];
  for (const c of lossless) {
    it(`on a copy in ${c.name}`, async () => {
      const slug = c.args.join('') || 'jpeg-lossless';
      const copy = join(scratch.dir, `copy${slug}`);
      transcodeTree(phantomDicom, copy, c.tool, c.args);
      const ours = await parseStudy(copy, join(scratch.dir, `ours${slug}`), { format: 'nifti' });
      assert.equal(ours.volumes.length, 9, JSON.stringify(ours.skipped.slice(0, 3)));
      assert.equal(ours.skipped.length, 0);
      compareWithDcm2niix(ours, original.theirs);
      if (c.dcm2niixReads) {
        const theirs = runDcm2niix(copy, join(scratch.dir, `d2n${slug}`));
        assert.equal(theirs.length, 9);
        compareWithDcm2niix(ours, theirs);
      }
    });
  }

  it('on a JPEG baseline copy (dcmcjpeg +eb, lossy 8-bit): geometry as dcm2niix; values as dcmdjpeg decodes them', async () => {
    const lossy = join(scratch.dir, 'copy-eb');
    transcodeTree(phantomDicom, lossy, 'dcmcjpeg', ['+eb']);
    const decoded = join(scratch.dir, 'copy-eb-dcmdjpeg');
    transcodeTree(lossy, decoded, 'dcmdjpeg', []);
    const ours = await parseStudy(lossy, join(scratch.dir, 'ours-eb'), { format: 'nifti' });
    assert.equal(ours.volumes.length, 9);
    // dcmtk's IJG decoder and ours are both exact IDCTs of the same code stream: identical pixels.
    compareWithDcm2niix(ours, runDcm2niix(decoded, join(scratch.dir, 'd2n-eb-decoded')));
    // dcm2niix's own JPEG decoder rounds differently: same geometry, values within a few grey levels.
    const theirs = runDcm2niix(lossy, join(scratch.dir, 'd2n-eb'));
    assert.equal(theirs.length, 9);
    const compared = compareWithDcm2niix(ours, theirs, 12);
    assert.ok(compared.every((c) => c.affineError < 1e-3));
  });

  it('on synthetic series: oblique, descending, interleaved, signed CT, varying slopes, 3D sagittal and coronal, rectangular pixels, single slice, uneven 3D', async () => {
    const dir = join(scratch.dir, 'synthetic');
    const studyUid = '1.2.826.0.1.3680043.10.1.1';
    // A double oblique: rows turned 20° about z, columns tilted 25° out of the axial plane.
    const a = (20 * Math.PI) / 180;
    const b = (-25 * Math.PI) / 180;
    const row: [number, number, number] = [Math.cos(a), Math.sin(a), 0];
    const col: [number, number, number] = [-Math.sin(a) * Math.cos(b), Math.cos(a) * Math.cos(b), Math.sin(b)];
    const steps = (n: number, step: number) => Array.from({ length: n }, (_, k) => k * step);
    writeSeries(join(dir, 'a'), studyUid, {
      seriesNumber: 11, description: 'oblique 2D descending', rows: 20, columns: 24, pixelSpacing: [0.9, 0.9],
      rowCosine: row, columnCosine: col, origin: [-10, 12, 30], offsets: steps(7, 3), order: 'descending',
    });
    writeSeries(join(dir, 'b'), studyUid, {
      seriesNumber: 12, description: 'signed CT with rescale', modality: 'CT', rows: 16, columns: 16, pixelSpacing: [0.7, 0.7],
      rowCosine: [1, 0, 0], columnCosine: [0, 1, 0], origin: [-5, -5, -40], offsets: steps(6, 2.5), order: 'interleaved',
      signed: true, slope: 1, intercept: -1024,
    });
    writeSeries(join(dir, 'c'), studyUid, {
      seriesNumber: 13, description: 'slope varies per slice', rows: 12, columns: 14, pixelSpacing: [1.5, 1.5],
      rowCosine: [1, 0, 0], columnCosine: [0, 1, 0], origin: [0, 0, 0], offsets: steps(5, 4),
      slope: (s) => 0.5 + s * 0.25, intercept: (s) => s * 10,
    });
    writeSeries(join(dir, 'd'), studyUid, {
      seriesNumber: 14, description: '3D sagittal', rows: 18, columns: 16, pixelSpacing: [1, 1.2],
      rowCosine: [0, 1, 0], columnCosine: [0, 0, -1], origin: [-20, -30, 40], offsets: steps(9, 1.1), acquisitionType: '3D',
    });
    writeSeries(join(dir, 'e'), studyUid, {
      seriesNumber: 15, description: '3D coronal reversed rows', rows: 14, columns: 20, pixelSpacing: [0.8, 0.6],
      rowCosine: [-1, 0, 0], columnCosine: [0, 0, 1], origin: [20, 10, -30], offsets: steps(8, 2), acquisitionType: '3D', order: 'descending',
    });
    writeSeries(join(dir, 'f'), studyUid, {
      seriesNumber: 16, description: '3D oblique', rows: 16, columns: 16, pixelSpacing: [1, 1],
      rowCosine: row, columnCosine: col, origin: [3, -4, 5], offsets: steps(10, 1.5), acquisitionType: '3D',
      signed: true, slope: 0.75, intercept: 400,
    });
    writeSeries(join(dir, 'g'), studyUid, {
      seriesNumber: 17, description: 'single slice', rows: 10, columns: 12, pixelSpacing: [0.5, 0.8],
      rowCosine: [1, 0, 0], columnCosine: [0, 0, -1], origin: [1, 2, 3], offsets: [0],
    });
    writeSeries(join(dir, 'h'), studyUid, {
      seriesNumber: 18, description: '3D uneven (a missing slice)', rows: 12, columns: 12, pixelSpacing: [1, 1],
      rowCosine: [1, 0, 0], columnCosine: [0, 1, 0], origin: [0, 0, 0], offsets: [0, 2, 4, 8, 10, 12], acquisitionType: '3D',
    });
    const ours = await parseStudy(dir, join(scratch.dir, 'ours-synthetic'), { format: 'nifti' });
    const theirs = runDcm2niix(dir, join(scratch.dir, 'd2n-synthetic'));
    assert.equal(theirs.length, 8, theirs.map((t) => t.file).join(', '));
    assert.equal(ours.volumes.length, 8);
    compareWithDcm2niix(ours, theirs);
    // Types: varying slopes become float32 values; the same slope everywhere stays in the header.
    const byDescription = (d: string) => ours.volumes.find((v) => v.description === d)!;
    assert.equal(byDescription('slope varies per slice').voxelType, 'float32');
    assert.equal(byDescription('slope varies per slice').rescale, undefined);
    assert.deepEqual(byDescription('3D oblique').rescale, { slope: 0.75, intercept: 400 });
    assert.equal(byDescription('3D oblique').voxelType, 'int16');
    // The gap is reported, not hidden.
    assert.match(byDescription('3D uneven (a missing slice)').warnings.join(' '), /missing slice/);
    // 3D stacks are reordered (sagittal: slices become the x axis), 2D ones only have their rows flipped.
    assert.deepEqual(byDescription('3D sagittal').axes, ['+slice', '-column', '-row']);
    assert.deepEqual(byDescription('oblique 2D descending').axes, ['+column', '-row', '+slice']);
  });

  it('with MetaImage output: the same values (rescaled into the voxels) and the same geometry, in LPS', async () => {
    const { readMetaImage } = await import('../../lib/volume/metaimage');
    const mhd = await parseStudy(phantomDicom, join(scratch.dir, 'ours-mhd'), { format: 'mhd' });
    assert.equal(mhd.volumes.length, 9);
    for (const v of mhd.volumes) {
      const fromMhd = readMetaImage(join(mhd.outDir, v.file));
      const twin = original.ours.volumes.find((o) => o.seriesInstanceUID === v.seriesInstanceUID && o.stack === v.stack)!;
      const fromNifti = readNifti(join(original.ours.outDir, twin.file));
      assert.deepEqual(fromMhd.dims, fromNifti.dims);
      for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) assert.ok(Math.abs(fromMhd.affine[r][c] - fromNifti.affine[r][c]) < 1e-4, `${v.file} affine[${r}][${c}]`);
      for (let n = 0; n < fromNifti.data.length; n++) {
        const expected = Math.fround(valueAt(fromNifti, n));
        assert.equal(fromMhd.data[n], fromMhd.type === 'float32' ? expected : valueAt(fromNifti, n), `${v.file} voxel ${n}`);
      }
    }
    // The signed target (slope 0.75) needs float; the sagittal MPR (slope 2, intercept -1024) stays integer.
    const target = study.series.find((s) => s.isTarget)!;
    assert.equal(mhd.volumes.find((v) => v.seriesInstanceUID === target.seriesInstanceUID)!.voxelType, 'float32');
    const mpr = study.series.find((s) => s.rescaleSlope === 2)!;
    assert.equal(mhd.volumes.find((v) => v.seriesInstanceUID === mpr.seriesInstanceUID)!.voxelType, 'int32');
  });
});

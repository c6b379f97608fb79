import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';
import { writePhantomStudy } from '../../lib/phantom';
import { readVolumeFile, readVolumeHeader, writeVolumeFile } from '../../lib/volume/file';
import { encodeNifti } from '../../lib/volume/nifti';
import type { Volume } from '../../lib/volume/types';
import { scratchDir } from '../support/tools';

/** An oblique, anisotropic int16 volume whose voxels do not compress to nothing, so a .nii.gz is many KB long. */
function testVolume(withRescale: boolean): Volume {
  const dims: [number, number, number] = [61, 47, 23];
  const data = new Int16Array(dims[0] * dims[1] * dims[2]);
  let seed = 12345;
  for (let n = 0; n < data.length; n++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    data[n] = (seed >> 8) % 4000 - 1000;
  }
  const c = Math.cos(0.3);
  const s = Math.sin(0.3);
  return {
    dims,
    type: 'int16',
    data,
    affine: [
      [-0.75 * c, 0, 2.5 * s, 91.5],
      [0, -0.875, 0, 120.25],
      [0.75 * s, 0, 2.5 * c, -40.125],
      [0, 0, 0, 1],
    ],
    ...(withRescale ? { slope: 0.5, intercept: -1024, description: 'header test' } : {}),
  };
}

const withoutData = ({ data: _data, ...rest }: Volume) => rest;

/** A gzip member with a long FCOMMENT field: the deflate stream, and so the NIfTI header, starts far into the file. */
function gzipWithComment(raw: Buffer, commentBytes: number): Buffer {
  const header = Buffer.from([0x1f, 0x8b, 8, 0x10, 0, 0, 0, 0, 0, 3]);
  const comment = Buffer.alloc(commentBytes + 1, 'c'.charCodeAt(0));
  comment[commentBytes] = 0;
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(raw) >>> 0, 0);
  trailer.writeUInt32LE(raw.length, 4);
  return Buffer.concat([header, comment, deflateRawSync(raw, { level: 1 }), trailer]);
}

describe('lib/volume readVolumeHeader: a volume file\'s geometry without its voxels', function () {
  this.timeout(60000);
  const scratch = scratchDir('volume-header');
  after(() => scratch.cleanup());

  for (const name of ['image.nii', 'image.nii.gz', 'image.mhd']) {
    it(`gives what the full reader gives, less the voxels, for a ${name.slice(6)} file`, async () => {
      const path = join(scratch.dir, name);
      const volume = testVolume(!name.endsWith('.mhd'));
      await writeVolumeFile(path, volume);
      const full = readVolumeFile(path);
      const header = readVolumeHeader(path);
      assert.equal('data' in header, false);
      assert.deepEqual(header, withoutData(full));
      assert.deepEqual(header.dims, volume.dims);
      assert.equal(header.type, 'int16');
      // NIfTI stores the affine as float32
      for (const [r, row] of volume.affine.entries()) for (const [c, value] of row.entries()) assert.ok(Math.abs(header.affine[r][c] - value) < 1e-5, `affine[${r}][${c}]`);
    });
  }

  it('reads a .nii.gz only as far as its header: the voxels may be cut off', async () => {
    const path = join(scratch.dir, 'cut.nii.gz');
    await writeVolumeFile(path, testVolume(true));
    const expected = withoutData(readVolumeFile(path));
    const size = readFileSync(path).length;
    assert.ok(size > 8 * 2048, `the test file is ${size} bytes: too small to show a partial read`);
    truncateSync(path, 2048);
    assert.deepEqual(readVolumeHeader(path), expected);
    assert.throws(() => readVolumeFile(path), /unexpected end of file/);
  });

  it('reads a .nii only as far as its header, while the full reader refuses a file cut short', async () => {
    const path = join(scratch.dir, 'cut.nii');
    await writeVolumeFile(path, testVolume(true));
    const expected = withoutData(readVolumeFile(path));
    truncateSync(path, 1000);
    assert.deepEqual(readVolumeHeader(path), expected);
    assert.throws(() => readVolumeFile(path), /cut\.nii: truncated NIfTI-1 image \(1000 bytes, 61×47×23 int16 voxels need 132234\)/);
  });

  it('reads a MetaImage header without its data file', async () => {
    const path = join(scratch.dir, 'alone.mhd');
    await writeVolumeFile(path, testVolume(false));
    const expected = withoutData(readVolumeFile(path));
    rmSync(join(scratch.dir, 'alone.raw'));
    assert.deepEqual(readVolumeHeader(path), expected);
    assert.throws(() => readVolumeFile(path), /ENOENT/);
  });

  it('finds a .nii.gz header that starts past the first read (long gzip comment field)', () => {
    const path = join(scratch.dir, 'comment.nii.gz');
    const volume = testVolume(true);
    writeFileSync(path, gzipWithComment(encodeNifti(volume), 20000));
    const full = readVolumeFile(path);
    assert.deepEqual(Array.from(full.data.subarray(0, 5)), Array.from(volume.data.subarray(0, 5)));
    assert.deepEqual(readVolumeHeader(path), withoutData(full));
  });

  it('agrees with the full reader on .nii.gz files written by dcm2niix', () => {
    writePhantomStudy(join(scratch.dir, 'phantom'), { size: 32, slices: 8, seed: 5 });
    const out = join(scratch.dir, 'd2n');
    mkdirSync(out);
    const run = spawnSync('dcm2niix', ['-z', 'y', '-b', 'n', '-f', '%s_%j', '-o', out, join(scratch.dir, 'phantom', 'dicom')], { encoding: 'utf8' });
    if (run.error) throw run.error;
    // 8: some files not converted (a stack dcm2niix could not equalise); it still wrote the others.
    assert.ok(run.status === 0 || run.status === 8, `dcm2niix exited ${run.status}: ${run.stderr}`);
    const files = readdirSync(out).filter((f) => f.endsWith('.nii.gz'));
    assert.ok(files.length >= 5, `dcm2niix wrote ${files.join(', ')}`);
    for (const file of files) assert.deepEqual(readVolumeHeader(join(out, file)), withoutData(readVolumeFile(join(out, file))), file);
  });

  describe('refuses, naming the file and what is wrong', () => {
    const nifti = encodeNifti(testVolume(true));
    const cases: Array<{ name: string; bytes: () => Buffer; error: RegExp; fullError?: RegExp }> = [
      { name: 'short.nii', bytes: () => nifti.subarray(0, 200), error: /short\.nii: truncated NIfTI-1 header \(200 of 348 bytes\)/ },
      { name: 'empty.nii', bytes: () => Buffer.alloc(0), error: /empty\.nii: truncated NIfTI-1 header \(0 of 348 bytes\)/ },
      {
        name: 'short.nii.gz',
        bytes: () => gzipSync(nifti).subarray(0, 40),
        error: /short\.nii\.gz: truncated NIfTI-1 header \(\d+ of 348 bytes\)/,
        // The full reader inflates the whole stream and finds its end missing.
        fullError: /short\.nii\.gz: not a readable gzip stream \(unexpected end of file\)/,
      },
      { name: 'corrupt.nii.gz', bytes: () => Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), Buffer.alloc(600, 0xff)]), error: /corrupt\.nii\.gz: not a readable gzip stream/ },
      { name: 'other.nii', bytes: () => Buffer.concat([Buffer.from('not a nifti file at all'), Buffer.alloc(400)]), error: /other\.nii: not a little-endian NIfTI-1 file/ },
      {
        name: 'datatype.nii',
        bytes: () => {
          const b = Buffer.from(nifti);
          b.writeInt16LE(128, 70); // RGB24: not a voxel type of this package
          return b;
        },
        error: /datatype\.nii: unsupported NIfTI datatype 128/,
      },
      {
        name: 'zero-dim.nii',
        bytes: () => {
          const b = Buffer.from(nifti);
          b.writeInt16LE(0, 44);
          return b;
        },
        error: /zero-dim\.nii: NIfTI-1 header gives dimensions 61×0×23/,
      },
      { name: 'nodims.mhd', bytes: () => Buffer.from('ObjectType = Image\nNDims = 3\nElementType = MET_SHORT\nElementDataFile = x.raw\n'), error: /nodims\.mhd: no DimSize/ },
      { name: 'baddims.mhd', bytes: () => Buffer.from('NDims = 3\nDimSize = 10 x 4\nElementType = MET_SHORT\nElementDataFile = x.raw\n'), error: /baddims\.mhd: DimSize must be 3 numbers, not "10 x 4"/ },
      { name: 'fraction.mhd', bytes: () => Buffer.from('NDims = 3\nDimSize = 10 2.5 4\nElementType = MET_SHORT\nElementDataFile = x.raw\n'), error: /fraction\.mhd: DimSize 10 2\.5 4 is not three positive whole numbers/ },
      { name: 'cut.mhd', bytes: () => Buffer.from('NDims = 3\nDimSize = 10 10 4\nElementSpacing = 1 1\nElementType = MET_SHORT\nElementDataFile = x.raw\n'), error: /cut\.mhd: ElementSpacing must be 3 numbers/ },
    ];
    for (const { name, bytes, error, fullError } of cases) {
      it(name, () => {
        const path = join(scratch.dir, name);
        writeFileSync(path, bytes());
        assert.throws(() => readVolumeHeader(path), error);
        // The full reader gives the same reason (it parses the header the same way).
        assert.throws(() => readVolumeFile(path), fullError ?? error);
      });
    }
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readVolumeFile, readVolumeFileAsync, writeVolumeFile } from '../../lib/volume/file';
import { blockIndexOf } from '../../lib/volume/gzip-index';
import { encodeNifti } from '../../lib/volume/nifti';
import type { Volume } from '../../lib/volume/types';
import { scratchDir } from '../support/tools';

/** 192×160×96 int16 (5.6 MiB of voxels, two 4 MiB blocks and a part), smooth with noise: compresses, but not to nothing. */
function largeVolume(): Volume {
  const dims: [number, number, number] = [192, 160, 96];
  const data = new Int16Array(dims[0] * dims[1] * dims[2]);
  let seed = 7;
  for (let n = 0; n < data.length; n++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    data[n] = ((n % 192) * 5 + Math.floor(n / 30720) * 3 + ((seed >> 12) % 40)) | 0;
  }
  return { dims, type: 'int16', data, affine: [[-0.9, 0, 0, 90], [0, -0.9, 0, 100], [0, 0, 1.5, -70], [0, 0, 0, 1]], slope: 1, intercept: 0 };
}

function sameVoxels(a: Volume, b: Volume): boolean {
  if (a.data.length !== b.data.length) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}

describe('volume: .nii.gz with a block index in the gzip header (parallel inflate)', function () {
  this.timeout(120000);
  const scratch = scratchDir('gzip-index');
  const volume = largeVolume();
  const path = join(scratch.dir, 'large.nii.gz');
  after(() => scratch.cleanup());

  before(async () => {
    await writeVolumeFile(path, volume);
  });

  it('writes one ordinary gzip member that gzip, Python and zlib read to the exact NIfTI bytes', () => {
    const expected = encodeNifti(volume);
    const gunzip = spawnSync('gzip', ['-dc', path], { maxBuffer: 64 << 20 });
    assert.equal(gunzip.status, 0, gunzip.stderr.toString());
    assert.ok(gunzip.stdout.equals(expected), 'gzip -dc gives the NIfTI bytes');
    assert.equal(spawnSync('gzip', ['-t', path]).status, 0, 'gzip -t: CRC and length check');
    const python = spawnSync('python3', ['-c', 'import gzip,sys,hashlib; print(hashlib.sha256(gzip.open(sys.argv[1]).read()).hexdigest())', path]);
    assert.equal(python.status, 0, python.stderr.toString());
    assert.equal(python.stdout.toString().trim(), createHash('sha256').update(expected).digest('hex'));
  });

  it('carries an index of every block whose sizes add up to the file and the stated size', () => {
    const gz = readFileSync(path);
    const index = blockIndexOf(gz);
    assert.ok(index, 'the index is found');
    // The 352-byte NIfTI header is a block of its own, then 4 MiB blocks of voxels.
    assert.deepEqual(index.blocks.map((b) => b.inflated), [352, 4 << 20, volume.data.byteLength - (4 << 20)]);
    assert.equal(index.inflatedSize, encodeNifti(volume).length);
    assert.equal(index.dataStart + index.blocks.reduce((n, b) => n + b.compressed, 0) + 8, gz.length);
  });

  it('reads the same volume with the parallel reader as with the one-piece reader', async () => {
    const parallel = await readVolumeFileAsync(path);
    const whole = readVolumeFile(path);
    assert.deepEqual(parallel.dims, volume.dims);
    assert.ok(sameVoxels(parallel, volume), 'parallel read equals what was written');
    assert.ok(sameVoxels(whole, volume), 'one-piece read equals what was written');
  });

  it('reads gzip files without the index (another tool’s) through the same call', async () => {
    const plain = join(scratch.dir, 'plain.nii.gz');
    writeFileSync(plain, gzipSync(encodeNifti(volume), { level: 6 }));
    assert.equal(blockIndexOf(readFileSync(plain)), undefined);
    assert.ok(sameVoxels(await readVolumeFileAsync(plain), volume));
  });

  it('refuses damaged files with the file name and the reason, in both readers', async () => {
    const gz = readFileSync(path);
    const index = blockIndexOf(gz)!;
    const cases: Array<{ name: string; bytes: Buffer; reason: RegExp }> = [];
    // A byte changed inside the second block's deflate data: a bad stream, or bytes the CRC does not match.
    const flipped = Buffer.from(gz);
    flipped[index.dataStart + index.blocks[0].compressed + 1000] ^= 0x5a;
    cases.push({ name: 'flipped.nii.gz', bytes: flipped, reason: /flipped\.nii\.gz: not a readable gzip stream \((invalid|incorrect|block 2 of 3|too many|unexpected)/ });
    // The trailer's CRC changed: every block inflates, the whole does not match.
    const badCrc = Buffer.from(gz);
    badCrc[badCrc.length - 8] ^= 0xff;
    cases.push({ name: 'bad-crc.nii.gz', bytes: badCrc, reason: /bad-crc\.nii\.gz: not a readable gzip stream \(incorrect data check/ });
    // Cut short: the index no longer adds up, so the plain path reads it and finds the end missing.
    cases.push({ name: 'short.nii.gz', bytes: gz.subarray(0, gz.length - 5000), reason: /short\.nii\.gz: not a readable gzip stream \(unexpected end of file\)/ });
    for (const c of cases) {
      const file = join(scratch.dir, c.name);
      writeFileSync(file, c.bytes);
      await assert.rejects(() => readVolumeFileAsync(file), c.reason, c.name);
      assert.throws(() => readVolumeFile(file), /not a readable gzip stream/, c.name);
    }
    assert.equal(blockIndexOf(gz.subarray(0, gz.length - 5000)), undefined);
  });
});

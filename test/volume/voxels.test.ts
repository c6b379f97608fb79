import assert from 'node:assert/strict';
import { forEachNonZeroVoxel } from '../../lib/volume/voxels';
import type { VoxelArray } from '../../lib/volume/types';

function visited(data: VoxelArray): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  forEachNonZeroVoxel(data, (index, value) => out.push([index, value]));
  return out;
}

/** The plain definition: every voxel, one by one. */
function expected(data: VoxelArray): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let n = 0; n < data.length; n++) if (data[n] !== 0) out.push([n, data[n]]);
  return out;
}

describe('lib/volume forEachNonZeroVoxel', () => {
  it('visits every non-zero voxel of a one-byte mask once, in order, aligned or not and with a tail shorter than a word', () => {
    const bytes = new Uint8Array(4099);
    for (const n of [0, 3, 4, 5, 1023, 1024, 2050, 4095, 4096, 4098]) bytes[n] = (n % 7) + 1;
    for (const offset of [0, 1, 2, 4]) {
      const view = new Uint8Array(bytes.buffer, offset, bytes.length - offset);
      assert.deepEqual(visited(view), expected(view), `byte offset ${offset}`);
    }
    assert.deepEqual(visited(bytes).map(([n]) => n), [0, 3, 4, 5, 1023, 1024, 2050, 4095, 4096, 4098]);
    const signed = new Int8Array([0, 0, 0, 0, -1, 0, 0, 0, 0, 5]);
    assert.deepEqual(visited(signed), [[4, -1], [9, 5]]);
  });

  it('visits wider types voxel by voxel, NaN included and -0 left out, like a comparison with 0', () => {
    const floats = new Float32Array([0, -0, 1.5, NaN, 0, 2]);
    const seen = visited(floats);
    assert.equal(seen.length, 3);
    assert.deepEqual(seen.map(([n]) => n), [2, 3, 5]);
    assert.ok(Number.isNaN(seen[1][1]));
    assert.deepEqual(visited(new Int16Array([0, 300, 0, -2])), [[1, 300], [3, -2]]);
    assert.deepEqual(visited(new Uint8Array(0)), []);
  });
});

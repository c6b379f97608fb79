import type { VoxelArray } from './types';

/**
 * Calls `visit` with the file index and value of every voxel that is not zero, in file order. A label mask
 * is mostly zeros, so a one-byte mask (what inference writes) is tested four voxels at a time where its
 * bytes are aligned; only the voxels visited cost more than that test.
 */
export function forEachNonZeroVoxel(data: VoxelArray, visit: (index: number, value: number) => void): void {
  let n = 0;
  if ((data instanceof Uint8Array || data instanceof Int8Array) && data.byteOffset % 4 === 0) {
    const words = new Uint32Array(data.buffer, data.byteOffset, data.length >> 2);
    for (let w = 0; w < words.length; w++) {
      if (words[w] === 0) continue;
      for (let b = w * 4; b < w * 4 + 4; b++) if (data[b] !== 0) visit(b, data[b]);
    }
    n = words.length * 4;
  }
  for (; n < data.length; n++) if (data[n] !== 0) visit(n, data[n]);
}

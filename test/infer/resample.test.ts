import assert from 'node:assert/strict';
import { type Grid, invertAffine, rasGridCovering, realValues, resample, zScoreNonZero } from '../../lib/infer/resample';
import { applyAffine } from '../../lib/volume/geometry';
import type { Matrix4 } from '../../lib/volume/types';
import { dice } from './helpers';

/** An oblique, anisotropic, flipped grid, like a scanner's (LPS axes turned RAS, 10° about z, 0.9 × 0.9 × 1.5 mm). */
const OBLIQUE: Grid = (() => {
  const t = (10 * Math.PI) / 180;
  const [c, s] = [Math.cos(t), Math.sin(t)];
  return {
    dims: [40, 36, 24],
    affine: [
      [-0.9 * c, 0.9 * s, 0, 20],
      [-0.9 * s, -0.9 * c, 0, 15],
      [0, 0, 1.5, -18],
      [0, 0, 0, 1],
    ],
  };
})();

function sample(grid: Grid, f: (p: number[]) => number): Float32Array {
  const [nx, ny, nz] = grid.dims;
  const out = new Float32Array(nx * ny * nz);
  for (let k = 0, n = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, n++) out[n] = f(applyAffine(grid.affine, [i, j, k]));
  return out;
}

const linear = (p: number[]) => 2 * p[0] + 3 * p[1] - p[2] + 5;

describe('lib/infer resampling through world coordinates', () => {
  it('inverts an affine', () => {
    const inverse = invertAffine(OBLIQUE.affine);
    const p = applyAffine(OBLIQUE.affine, [3, 7, 11]);
    const back = applyAffine(inverse, p);
    back.forEach((v, a) => assert.ok(Math.abs(v - [3, 7, 11][a]) < 1e-9));
    assert.throws(() => invertAffine([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] as Matrix4), /cannot be inverted/);
  });

  it('leaves a volume unchanged on its own grid, linear and nearest', () => {
    const values = sample(OBLIQUE, (p) => Math.sin(p[0]) * 100 + p[2]);
    assert.deepEqual(resample(values, OBLIQUE, OBLIQUE, 'linear'), values);
    assert.deepEqual(resample(values, OBLIQUE, OBLIQUE, 'nearest'), values);
  });

  it('reproduces a linear function exactly on a RAS grid at another spacing (trilinear is exact for linear data)', () => {
    const values = sample(OBLIQUE, linear);
    const target = rasGridCovering(OBLIQUE, [2, 2, 2]);
    const out = resample(values, OBLIQUE, target, 'linear', Number.NaN);
    let inside = 0;
    let worst = 0;
    const [nx, ny, nz] = target.dims;
    for (let k = 0, n = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, n++) {
      if (Number.isNaN(out[n])) continue;
      const source = applyAffine(invertAffine(OBLIQUE.affine), applyAffine(target.affine, [i, j, k]));
      // Only where the point lies between voxel centres (the half-voxel rim holds the edge value).
      if (source.some((v, a) => v < 0 || v > OBLIQUE.dims[a] - 1)) continue;
      inside++;
      worst = Math.max(worst, Math.abs(out[n] - linear(applyAffine(target.affine, [i, j, k]))));
    }
    assert.ok(inside > 1000, `${inside} voxels inside`);
    assert.ok(worst < 1e-3, `worst ${worst}`);
  });

  it('covers the whole volume with the RAS grid: every source corner lies inside it', () => {
    const target = rasGridCovering(OBLIQUE, [2, 2, 2]);
    assert.deepEqual([target.affine[0][0], target.affine[1][1], target.affine[2][2]], [2, 2, 2]);
    const toTarget = invertAffine(target.affine);
    for (const i of [0, 39]) for (const j of [0, 35]) for (const k of [0, 23]) {
      const v = applyAffine(toTarget, applyAffine(OBLIQUE.affine, [i, j, k]));
      v.forEach((x, a) => assert.ok(x > -1e-6 && x < target.dims[a] - 1 + 1e-6, `corner ${[i, j, k]} at ${v}`));
    }
  });

  it('takes a label map to a coarse RAS grid and back with nearest neighbour, keeping the labels and the shape', () => {
    const centre = applyAffine(OBLIQUE.affine, [20, 18, 12]);
    const sphere = sample(OBLIQUE, (p) => (Math.hypot(p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]) <= 9 ? 3 : 0));
    const coarse = rasGridCovering(OBLIQUE, [2, 2, 2]);
    const there = resample(sphere, OBLIQUE, coarse, 'nearest');
    assert.ok(there.every((v) => v === 0 || v === 3), 'nearest never invents a label');
    const back = resample(there, coarse, OBLIQUE, 'nearest');
    const score = dice(sphere, back);
    assert.ok(score > 0.9, `Dice ${score}`);
  });

  it('applies rescale slope and intercept, and z-scores over the non-zero voxels', () => {
    const real = realValues({ dims: [2, 2, 1], type: 'int16', data: Int16Array.from([0, 10, 20, 30]), affine: OBLIQUE.affine, slope: 0.5, intercept: 400 });
    assert.deepEqual(Array.from(real), [400, 405, 410, 415]);
    const z = zScoreNonZero(Float32Array.from([0, 2, 4, 6, 0]));
    assert.equal(z[0], 0);
    assert.equal(z[4], 0);
    const nonZero = [z[1], z[2], z[3]];
    const mean = nonZero.reduce((s, v) => s + v, 0) / 3;
    const std = Math.sqrt(nonZero.reduce((s, v) => s + (v - mean) ** 2, 0) / 3);
    assert.ok(Math.abs(mean) < 1e-6 && Math.abs(std - 1) < 1e-6);
    assert.deepEqual(Array.from(zScoreNonZero(Float32Array.from([0, 5, 5]))), [0, 0, 0]);
  });
});

import assert from 'node:assert/strict';
import { type Grid, invertAffine, orientedGridAtSpacing, realValues, resample, zScoreNonZero } from '../../lib/infer/resample';
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

  it('reproduces a linear function exactly on the oriented grid at another spacing (trilinear is exact for linear data)', () => {
    const values = sample(OBLIQUE, linear);
    const target = orientedGridAtSpacing(OBLIQUE, [2, 2, 2]);
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

  it('orients the grid to RAS as MONAI does (axes permuted and flipped, rotation kept) and never samples past the last voxel centre', () => {
    const target = orientedGridAtSpacing(OBLIQUE, [2, 2, 2]);
    // OBLIQUE's x runs towards −R and y towards −A: both flip; each column is 2 mm and points along +R, +A, +S.
    for (let c = 0; c < 3; c++) {
      const col = [target.affine[0][c], target.affine[1][c], target.affine[2][c]];
      assert.ok(Math.abs(Math.hypot(...col) - 2) < 1e-9, `column ${c} is ${Math.hypot(...col)} mm`);
      assert.ok(col[c] > 0 && Math.abs(col[c]) === Math.max(...col.map(Math.abs)), `column ${c} ${col} points along +${'RAS'[c]}`);
    }
    // The rotation stays: the x column is 10° off R.
    assert.ok(Math.abs(Math.atan2(target.affine[1][0], target.affine[0][0]) - (10 * Math.PI) / 180) < 1e-9);
    // First voxel centre = the source corner voxel (39, 35, 0); last = within the source.
    assert.deepEqual(applyAffine(target.affine, [0, 0, 0]).map((v) => +v.toFixed(9)), applyAffine(OBLIQUE.affine, [39, 35, 0]).map((v) => +v.toFixed(9)));
    assert.deepEqual(target.dims, [Math.floor((39 * 0.9) / 2) + 1, Math.floor((35 * 0.9) / 2) + 1, Math.floor((23 * 1.5) / 2) + 1]);
    const toSource = invertAffine(OBLIQUE.affine);
    for (const i of [0, target.dims[0] - 1]) for (const j of [0, target.dims[1] - 1]) for (const k of [0, target.dims[2] - 1]) {
      const v = applyAffine(toSource, applyAffine(target.affine, [i, j, k]));
      v.forEach((x, a) => assert.ok(x > -1e-6 && x < OBLIQUE.dims[a] - 1 + 1e-6, `corner ${[i, j, k]} at source ${v}`));
    }
    // A permuted (sagittal-like) grid: voxel x runs along A, y along S, z along R.
    const sagittal: Grid = { dims: [30, 20, 10], affine: [[0, 0, 3, -15], [1, 0, 0, -15], [0, -1, 0, 10], [0, 0, 0, 1]] };
    const reoriented = orientedGridAtSpacing(sagittal);
    assert.deepEqual(reoriented.dims, [10, 30, 20]);
    assert.deepEqual(reoriented.affine, [[3, 0, 0, -15], [0, 1, 0, -15], [0, 0, 1, -9], [0, 0, 0, 1]]);
    // Spacing without orientation keeps each voxel axis where it is.
    const unoriented = orientedGridAtSpacing(sagittal, [2, 2, 6], false);
    assert.deepEqual(unoriented.dims, [15, 10, 5]);
    assert.deepEqual(unoriented.affine[1], [2, 0, 0, -15]);
  });

  it('takes a label map to a coarse oriented grid and back with nearest neighbour, keeping the labels and the shape', () => {
    const centre = applyAffine(OBLIQUE.affine, [20, 18, 12]);
    const sphere = sample(OBLIQUE, (p) => (Math.hypot(p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]) <= 9 ? 3 : 0));
    const coarse = orientedGridAtSpacing(OBLIQUE, [2, 2, 2]);
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

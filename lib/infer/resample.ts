/**
 * Moving volumes between grids through world (RAS) coordinates: onto a RAS-aligned grid at a model's
 * spacing before inference, and back onto the source series' exact grid afterwards (trilinear for
 * images, nearest neighbour for labels). Also a second series onto a reference series' grid, when both
 * share a frame of reference.
 */
import { applyAffine } from '../volume/geometry';
import type { Matrix4, Volume } from '../volume/types';

/** A voxel grid: its size (x fastest) and its voxel → RAS mm affine. */
export interface Grid {
  dims: [number, number, number];
  affine: Matrix4;
}

export type Interpolation = 'linear' | 'nearest';

/** The inverse of a 4×4 affine (rotation/scale/shear plus translation). */
export function invertAffine(m: Matrix4): Matrix4 {
  const [a, b, c] = [m[0], m[1], m[2]];
  const det = a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0]) + a[2] * (b[0] * c[1] - b[1] * c[0]);
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) throw new Error('the affine cannot be inverted (a zero voxel size or collinear axes)');
  const inv = [
    [(b[1] * c[2] - b[2] * c[1]) / det, (a[2] * c[1] - a[1] * c[2]) / det, (a[1] * b[2] - a[2] * b[1]) / det],
    [(b[2] * c[0] - b[0] * c[2]) / det, (a[0] * c[2] - a[2] * c[0]) / det, (a[2] * b[0] - a[0] * b[2]) / det],
    [(b[0] * c[1] - b[1] * c[0]) / det, (a[1] * c[0] - a[0] * c[1]) / det, (a[0] * b[1] - a[1] * b[0]) / det],
  ];
  const t = [m[0][3], m[1][3], m[2][3]];
  return [
    [...inv[0], -(inv[0][0] * t[0] + inv[0][1] * t[1] + inv[0][2] * t[2])],
    [...inv[1], -(inv[1][0] * t[0] + inv[1][1] * t[1] + inv[1][2] * t[2])],
    [...inv[2], -(inv[2][0] * t[0] + inv[2][1] * t[1] + inv[2][2] * t[2])],
    [0, 0, 0, 1],
  ];
}

/** The product a · b of two 4×4 affines: b applied first. */
export function multiplyAffine(a: Matrix4, b: Matrix4): Matrix4 {
  return a.map((row) => [0, 1, 2, 3].map((j) => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j] + row[3] * b[3][j]));
}

/**
 * The grid a model sees, as MONAI's Orientation("RAS") then Spacing(pixdim) build it: the voxel axes are
 * permuted and flipped (no interpolation) so that axis a runs along the world axis it is closest to
 * (R, A, S) in the positive direction, then each axis is resampled to `spacing[a]` mm along its own
 * direction, so an oblique acquisition keeps its rotation. The first voxel centre stays where it was and no
 * sample lies past the last source voxel centre: n_out = floor((n_in − 1) · s_in / s_out) + 1. This is the
 * bundled model's training contract (models/brain-tumor-tc/README.md); an axis-aligned grid instead would
 * show an oblique series to the network rotated, which it never saw. Without `spacing`, each axis keeps
 * its voxel size (orientation only). With `orientRas` false, voxel axis a keeps its place and direction
 * and takes `spacing[a]` (MONAI's Spacing alone).
 */
export function orientedGridAtSpacing(source: Grid, spacing?: [number, number, number], orientRas = true): Grid {
  const columns = [0, 1, 2].map((c) => [source.affine[0][c], source.affine[1][c], source.affine[2][c]]);
  // Each world axis takes the voxel axis pointing most along it; a greedy pick by the largest
  // component is exact for every acquisition that is less than 45° oblique, and never reuses an axis.
  const worldOfVoxel = [-1, -1, -1];
  const taken = [false, false, false];
  const candidates = columns.flatMap((col, voxel) => col.map((v, world) => ({ voxel, world, weight: Math.abs(v) / Math.hypot(...col) })));
  candidates.sort((a, b) => b.weight - a.weight);
  for (const { voxel, world } of orientRas ? candidates : [0, 1, 2].map((a) => ({ voxel: a, world: a }))) {
    if (worldOfVoxel[voxel] !== -1 || taken[world]) continue;
    worldOfVoxel[voxel] = world;
    taken[world] = true;
  }
  const dims = [0, 0, 0] as [number, number, number];
  const affine: Matrix4 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  const firstVoxel = [0, 0, 0];
  for (let voxel = 0; voxel < 3; voxel++) {
    const world = worldOfVoxel[voxel];
    const col = columns[voxel];
    const size = Math.hypot(...col);
    const flip = orientRas && col[world] < 0 ? -1 : 1;
    if (flip < 0) firstVoxel[voxel] = source.dims[voxel] - 1;
    const step = spacing ? spacing[world] / size : 1;
    dims[world] = Math.floor((source.dims[voxel] - 1) / step + 1e-3) + 1;
    // "|| 0" keeps -0 (a flipped zero component) out of the affine, where it would print as a sign.
    for (let r = 0; r < 3; r++) affine[r][world] = col[r] * flip * step || 0;
  }
  const origin = applyAffine(source.affine, firstVoxel);
  for (let r = 0; r < 3; r++) affine[r][3] = origin[r];
  return { dims, affine };
}

/**
 * Real voxel values (slope and intercept applied) as float32, x fastest, on the volume's own grid or
 * sampled onto another one (trilinear; outside the volume 0).
 */
export function realValues(volume: Volume, grid: Grid = { dims: volume.dims, affine: volume.affine }, into?: Float32Array): Float32Array {
  const source: Grid = { dims: volume.dims, affine: volume.affine };
  const slope = volume.slope && volume.slope !== 0 ? volume.slope : 1;
  const intercept = volume.intercept ?? 0;
  const out = into ?? new Float32Array(grid.dims[0] * grid.dims[1] * grid.dims[2]);
  if (sameGrid(source, grid)) {
    for (let i = 0; i < out.length; i++) out[i] = volume.data[i] * slope + intercept;
    return out;
  }
  // Interpolation is linear, so rescaling after it equals rescaling before, on far fewer voxels; NaN marks
  // the outside, which stays 0 rather than becoming the intercept.
  resample(volume.data, source, grid, 'linear', Number.NaN, out);
  for (let i = 0; i < out.length; i++) out[i] = Number.isNaN(out[i]) ? 0 : out[i] * slope + intercept;
  return out;
}

/** Where resampled values can go: labels straight into a uint8 volume, images into float32. */
export type ResampleTarget = Float32Array | Uint8Array;

/** True when two grids are the same voxels (resampling between them would copy). */
export function sameGrid(a: Grid, b: Grid): boolean {
  return a.dims.every((n, i) => n === b.dims[i]) && a.affine.every((row, r) => row.every((v, c) => Math.abs(v - b.affine[r][c]) < 1e-6));
}

/**
 * Samples `values` (on `source`) at every voxel centre of `target`. Outside the source, the value is
 * `outside`. Linear interpolation is trilinear between the eight neighbours; nearest takes the closest.
 * `into` takes the result instead of a new float32 array (a uint8 label volume, say).
 */
export function resample<T extends ResampleTarget = Float32Array>(values: ArrayLike<number>, source: Grid, target: Grid, mode: Interpolation, outside = 0, into?: T): T {
  const [tx, ty, tz] = target.dims;
  // target voxel → world → source voxel, as one affine: position = origin + i·di + j·dj + k·dk.
  const m = multiplyAffine(invertAffine(source.affine), target.affine);
  if (into && into.length !== tx * ty * tz) throw new Error(`resample: the output holds ${into.length} voxels, not ${tx * ty * tz}`);
  const out = (into ?? new Float32Array(tx * ty * tz)) as T;
  // One loop per mode, each a small function of its own: V8 optimises them early, with no mode test per voxel.
  if (mode === 'nearest') sampleNearest(values, source.dims, m, target.dims, outside, out);
  else sampleLinear(values, source.dims, m, target.dims, outside, out);
  return out;
}

function sampleNearest(values: ArrayLike<number>, [sx, sy, sz]: readonly number[], m: Matrix4, [tx, ty, tz]: readonly number[], outside: number, out: ResampleTarget): void {
  const sxy = sx * sy;
  const [dx, dy, dz] = [m[0][0], m[1][0], m[2][0]];
  let n = 0;
  for (let k = 0; k < tz; k++) {
    for (let j = 0; j < ty; j++) {
      let x = m[0][1] * j + m[0][2] * k + m[0][3];
      let y = m[1][1] * j + m[1][2] * k + m[1][3];
      let z = m[2][1] * j + m[2][2] * k + m[2][3];
      for (let i = 0; i < tx; i++, n++, x += dx, y += dy, z += dz) {
        const ri = Math.round(x);
        const rj = Math.round(y);
        const rk = Math.round(z);
        out[n] = ri < 0 || rj < 0 || rk < 0 || ri >= sx || rj >= sy || rk >= sz ? outside : values[rk * sxy + rj * sx + ri];
      }
    }
  }
}

/** Trilinear between the eight neighbours; within half a voxel of the edge the edge value holds (no fade to `outside` at the border). */
function sampleLinear(values: ArrayLike<number>, [sx, sy, sz]: readonly number[], m: Matrix4, [tx, ty, tz]: readonly number[], outside: number, out: ResampleTarget): void {
  const sxy = sx * sy;
  const [dx, dy, dz] = [m[0][0], m[1][0], m[2][0]];
  // A single-voxel axis has no second neighbour: its step is 0 and its fraction 0.
  const x1 = sx > 1 ? 1 : 0;
  const y1 = sy > 1 ? sx : 0;
  const z1 = sz > 1 ? sxy : 0;
  const [xLast, yLast, zLast] = [Math.max(0, sx - 2), Math.max(0, sy - 2), Math.max(0, sz - 2)];
  let n = 0;
  for (let k = 0; k < tz; k++) {
    for (let j = 0; j < ty; j++) {
      let x = m[0][1] * j + m[0][2] * k + m[0][3];
      let y = m[1][1] * j + m[1][2] * k + m[1][3];
      let z = m[2][1] * j + m[2][2] * k + m[2][3];
      for (let i = 0; i < tx; i++, n++, x += dx, y += dy, z += dz) {
        if (x < -0.5 || y < -0.5 || z < -0.5 || x > sx - 0.5 || y > sy - 0.5 || z > sz - 0.5) {
          out[n] = outside;
          continue;
        }
        const cx = x < 0 ? 0 : x > sx - 1 ? sx - 1 : x;
        const cy = y < 0 ? 0 : y > sy - 1 ? sy - 1 : y;
        const cz = z < 0 ? 0 : z > sz - 1 ? sz - 1 : z;
        // Clamped to 0 and above, so truncation is the floor.
        const x0 = Math.min(cx | 0, xLast);
        const y0 = Math.min(cy | 0, yLast);
        const z0 = Math.min(cz | 0, zLast);
        const fx = x1 ? cx - x0 : 0;
        const fy = y1 ? cy - y0 : 0;
        const fz = z1 ? cz - z0 : 0;
        const base = z0 * sxy + y0 * sx + x0;
        const c00 = values[base] * (1 - fx) + values[base + x1] * fx;
        const c10 = values[base + y1] * (1 - fx) + values[base + y1 + x1] * fx;
        const c01 = values[base + z1] * (1 - fx) + values[base + z1 + x1] * fx;
        const c11 = values[base + z1 + y1] * (1 - fx) + values[base + z1 + y1 + x1] * fx;
        out[n] = (c00 * (1 - fy) + c10 * fy) * (1 - fz) + (c01 * (1 - fy) + c11 * fy) * fz;
      }
    }
  }
}

/**
 * Z-score over the non-zero voxels (MONAI's NormalizeIntensity with nonzero=True): those get
 * (v − mean) / std, zero voxels stay 0. A constant image (std 0) is only centred. `into` may be
 * `values` itself (in place: each voxel is read before it is written).
 */
export function zScoreNonZero(values: Float32Array, into: Float32Array = new Float32Array(values.length)): Float32Array {
  let count = 0;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    if (values[i] !== 0) {
      count++;
      sum += values[i];
    }
  }
  const out = into;
  if (count === 0) return out.fill(0);
  const mean = sum / count;
  let squares = 0;
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) squares += (values[i] - mean) ** 2;
  const std = Math.sqrt(squares / count);
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) out[i] = std > 0 ? (values[i] - mean) / std : values[i] - mean;
  return out;
}

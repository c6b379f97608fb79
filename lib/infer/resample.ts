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

function multiply(a: Matrix4, b: Matrix4): Matrix4 {
  return a.map((row) => [0, 1, 2, 3].map((j) => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j] + row[3] * b[3][j]));
}

/**
 * The RAS-aligned grid at `spacing` mm that covers the volume: axes along +x (R), +y (A), +z (S), its
 * first voxel centre at the corner of the volume's bounding box nearest to −∞ on each axis.
 */
export function rasGridCovering(source: Grid, spacing: [number, number, number]): Grid {
  const [nx, ny, nz] = source.dims;
  const min = [Infinity, Infinity, Infinity];
  const max = [-Infinity, -Infinity, -Infinity];
  for (const i of [0, nx - 1]) for (const j of [0, ny - 1]) for (const k of [0, nz - 1]) {
    const p = applyAffine(source.affine, [i, j, k]);
    for (let a = 0; a < 3; a++) {
      min[a] = Math.min(min[a], p[a]);
      max[a] = Math.max(max[a], p[a]);
    }
  }
  const dims = [0, 1, 2].map((a) => Math.max(1, Math.ceil((max[a] - min[a]) / spacing[a] - 1e-6) + 1)) as [number, number, number];
  return {
    dims,
    affine: [
      [spacing[0], 0, 0, min[0]],
      [0, spacing[1], 0, min[1]],
      [0, 0, spacing[2], min[2]],
      [0, 0, 0, 1],
    ],
  };
}

/** Real voxel values (slope and intercept applied) as float32, x fastest. */
export function realValues(volume: Volume): Float32Array {
  const slope = volume.slope && volume.slope !== 0 ? volume.slope : 1;
  const intercept = volume.intercept ?? 0;
  const out = new Float32Array(volume.data.length);
  for (let i = 0; i < out.length; i++) out[i] = volume.data[i] * slope + intercept;
  return out;
}

/**
 * Samples `values` (on `source`) at every voxel centre of `target`. Outside the source, the value is
 * `outside`. Linear interpolation is trilinear between the eight neighbours; nearest takes the closest.
 */
export function resample(values: ArrayLike<number>, source: Grid, target: Grid, mode: Interpolation, outside = 0): Float32Array {
  const [sx, sy, sz] = source.dims;
  const [tx, ty, tz] = target.dims;
  // target voxel → world → source voxel, as one affine: position = origin + i·di + j·dj + k·dk.
  const m = multiply(invertAffine(source.affine), target.affine);
  const out = new Float32Array(tx * ty * tz);
  const sxy = sx * sy;
  let n = 0;
  for (let k = 0; k < tz; k++) {
    for (let j = 0; j < ty; j++) {
      let x = m[0][1] * j + m[0][2] * k + m[0][3];
      let y = m[1][1] * j + m[1][2] * k + m[1][3];
      let z = m[2][1] * j + m[2][2] * k + m[2][3];
      for (let i = 0; i < tx; i++, n++, x += m[0][0], y += m[1][0], z += m[2][0]) {
        if (mode === 'nearest') {
          const ri = Math.round(x);
          const rj = Math.round(y);
          const rk = Math.round(z);
          out[n] = ri < 0 || rj < 0 || rk < 0 || ri >= sx || rj >= sy || rk >= sz ? outside : values[rk * sxy + rj * sx + ri];
          continue;
        }
        // Within half a voxel of the edge, the edge value holds (no fade to `outside` at the border).
        if (x < -0.5 || y < -0.5 || z < -0.5 || x > sx - 0.5 || y > sy - 0.5 || z > sz - 0.5) {
          out[n] = outside;
          continue;
        }
        const cx = Math.min(Math.max(x, 0), sx - 1);
        const cy = Math.min(Math.max(y, 0), sy - 1);
        const cz = Math.min(Math.max(z, 0), sz - 1);
        const x0 = Math.min(Math.floor(cx), sx - 2 < 0 ? 0 : sx - 2);
        const y0 = Math.min(Math.floor(cy), sy - 2 < 0 ? 0 : sy - 2);
        const z0 = Math.min(Math.floor(cz), sz - 2 < 0 ? 0 : sz - 2);
        const fx = sx > 1 ? cx - x0 : 0;
        const fy = sy > 1 ? cy - y0 : 0;
        const fz = sz > 1 ? cz - z0 : 0;
        const x1 = sx > 1 ? 1 : 0;
        const y1 = sy > 1 ? sx : 0;
        const z1 = sz > 1 ? sxy : 0;
        const base = z0 * sxy + y0 * sx + x0;
        const c00 = values[base] * (1 - fx) + values[base + x1] * fx;
        const c10 = values[base + y1] * (1 - fx) + values[base + y1 + x1] * fx;
        const c01 = values[base + z1] * (1 - fx) + values[base + z1 + x1] * fx;
        const c11 = values[base + z1 + y1] * (1 - fx) + values[base + z1 + y1 + x1] * fx;
        out[n] = (c00 * (1 - fy) + c10 * fy) * (1 - fz) + (c01 * (1 - fy) + c11 * fy) * fz;
      }
    }
  }
  return out;
}

/**
 * Z-score over the non-zero voxels (MONAI's NormalizeIntensity with nonzero=True): those get
 * (v − mean) / std, zero voxels stay 0. A constant image (std 0) is only centred.
 */
export function zScoreNonZero(values: Float32Array): Float32Array {
  let count = 0;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    if (values[i] !== 0) {
      count++;
      sum += values[i];
    }
  }
  const out = new Float32Array(values.length);
  if (count === 0) return out;
  const mean = sum / count;
  let squares = 0;
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) squares += (values[i] - mean) ** 2;
  const std = Math.sqrt(squares / count);
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) out[i] = std > 0 ? (values[i] - mean) / std : values[i] - mean;
  return out;
}

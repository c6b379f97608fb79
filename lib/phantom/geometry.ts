import type { Matrix4 } from '../volume/types';

/** A point or direction in patient LPS millimetres (DICOM: x to the left, y to the back, z to the head). */
export type Vec3 = [number, number, number];

export function add(a: Vec3, b: Vec3): Vec3 {
  return [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
}

export function scale(a: Vec3, s: number): Vec3 {
  return [a[0] * s, a[1] * s, a[2] * s];
}

export function dot(a: Vec3, b: Vec3): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

export function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

/** Rotates v about the x axis (L-R) by `degrees`, then about the z axis (S-I) by `twistDegrees`. */
export function rotateXThenZ(v: Vec3, degrees: number, twistDegrees: number): Vec3 {
  const a = (degrees * Math.PI) / 180;
  const b = (twistDegrees * Math.PI) / 180;
  const y1 = v[1] * Math.cos(a) - v[2] * Math.sin(a);
  const z1 = v[1] * Math.sin(a) + v[2] * Math.cos(a);
  return [v[0] * Math.cos(b) - y1 * Math.sin(b), v[0] * Math.sin(b) + y1 * Math.cos(b), z1];
}

/**
 * One stack of parallel, equally spaced slices, as a scanner plans it: a centre, the row and column
 * direction cosines (ImageOrientationPatient), the in-plane matrix and spacing, and the slice step
 * along the normal (row × column).
 */
export interface StackGrid {
  /** Direction in which the column index increases along a row (IOP values 1-3). */
  rowCosine: Vec3;
  /** Direction in which the row index increases down a column (IOP values 4-6). */
  columnCosine: Vec3;
  rows: number;
  columns: number;
  /** PixelSpacing[0]: distance between the centres of adjacent rows. */
  rowSpacing: number;
  /** PixelSpacing[1]: distance between the centres of adjacent columns. */
  columnSpacing: number;
  sliceCount: number;
  /** Centre-to-centre distance between adjacent slices, along the normal. */
  sliceStep: number;
  /** World position of the centre of the whole stack. */
  centre: Vec3;
}

export function normalOf(grid: StackGrid): Vec3 {
  return cross(grid.rowCosine, grid.columnCosine);
}

/** ImagePositionPatient of slice k (k increasing along the normal): the centre of its first pixel. */
export function slicePosition(grid: StackGrid, k: number): Vec3 {
  const n = normalOf(grid);
  const di = -((grid.columns - 1) / 2) * grid.columnSpacing;
  const dj = -((grid.rows - 1) / 2) * grid.rowSpacing;
  const dk = (k - (grid.sliceCount - 1) / 2) * grid.sliceStep;
  return [0, 1, 2].map((a) => grid.centre[a] + di * grid.rowCosine[a] + dj * grid.columnCosine[a] + dk * n[a]) as Vec3;
}

/** The world position of voxel (i = column, j = row, k = slice along the normal). */
export function voxelPosition(grid: StackGrid, i: number, j: number, k: number): Vec3 {
  const origin = slicePosition(grid, k);
  return [0, 1, 2].map((a) => origin[a] + i * grid.columnSpacing * grid.rowCosine[a] + j * grid.rowSpacing * grid.columnCosine[a]) as Vec3;
}

/** Inverse of voxelPosition (fractional indices): the grid axes are orthonormal, so projections suffice. */
export function voxelIndexOf(grid: StackGrid, p: Vec3): Vec3 {
  const origin = slicePosition(grid, 0);
  const d: Vec3 = [p[0] - origin[0], p[1] - origin[1], p[2] - origin[2]];
  return [dot(d, grid.rowCosine) / grid.columnSpacing, dot(d, grid.columnCosine) / grid.rowSpacing, dot(d, normalOf(grid)) / grid.sliceStep];
}

/**
 * The voxel-to-world affine of the stack in RAS+ mm, the NIfTI sform convention: column i, row j,
 * slice k along the normal. LPS becomes RAS by negating x and y.
 */
export function affineRas(grid: StackGrid): Matrix4 {
  const n = normalOf(grid);
  const origin = slicePosition(grid, 0);
  const flip = [-1, -1, 1];
  const rows: Matrix4 = [0, 1, 2].map((a) => [
    flip[a] * grid.rowCosine[a] * grid.columnSpacing,
    flip[a] * grid.columnCosine[a] * grid.rowSpacing,
    flip[a] * n[a] * grid.sliceStep,
    flip[a] * origin[a],
  ].map((v) => (Object.is(v, -0) ? 0 : v)));
  rows.push([0, 0, 0, 1]);
  return rows;
}

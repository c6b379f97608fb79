import type { Matrix4 } from './types';

/** A point or direction in millimetres. DICOM positions are LPS; NIfTI affines are RAS. */
export type Vec3 = [number, number, number];

export function dot(a: readonly number[], b: readonly number[]): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

export function cross(a: readonly number[], b: readonly number[]): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

export function distance(a: readonly number[], b: readonly number[]): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/**
 * Which input axis each output axis reads, and whether it runs backwards. Input axes of a stack are
 * 0 = column (along a row), 1 = row, 2 = slice (ascending along the normal row × column cosines).
 */
export interface AxisLayout {
  from: [number, number, number];
  reversed: [boolean, boolean, boolean];
}

export const NATIVE_LAYOUT: AxisLayout = { from: [0, 1, 2], reversed: [false, false, false] };
/** Rows stored bottom-up: dcm2niix's default for 2D acquisitions ("flipY"). */
export const ROWS_FLIPPED_LAYOUT: AxisLayout = { from: [0, 1, 2], reversed: [false, true, false] };

export interface StackGeometry {
  /** ImageOrientationPatient[0..2]: direction of increasing column index, LPS. */
  rowCosine: Vec3;
  /** ImageOrientationPatient[3..5]: direction of increasing row index, LPS. */
  columnCosine: Vec3;
  /** PixelSpacing: [between rows, between columns] mm. */
  pixelSpacing: [number, number];
  /** Distance between slice centres, mm (positive), along the normal. */
  sliceStep: number;
  /**
   * Step from one slice to the next, LPS, when the stack is sheared (CT gantry tilt): the positions
   * then drift sideways and the third affine column must follow them rather than the normal.
   */
  sliceVector?: Vec3;
  /** ImagePositionPatient of the first slice (lowest along the normal), LPS. */
  origin: Vec3;
  columns: number;
  rows: number;
  slices: number;
}

export function normalOf(g: Pick<StackGeometry, 'rowCosine' | 'columnCosine'>): Vec3 {
  return cross(g.rowCosine, g.columnCosine);
}

/**
 * The stack's voxel-to-world affine in RAS mm before any reordering: i = column, j = row, k = slice
 * along the normal. DICOM LPS becomes RAS by negating x and y.
 */
export function nativeAffineRas(g: StackGeometry): Matrix4 {
  const n = normalOf(g);
  const step = g.sliceVector ?? ([0, 1, 2].map((a) => n[a] * g.sliceStep) as Vec3);
  const sign = [-1, -1, 1];
  const m: Matrix4 = [0, 1, 2].map((a) => [
    sign[a] * g.rowCosine[a] * g.pixelSpacing[1],
    sign[a] * g.columnCosine[a] * g.pixelSpacing[0],
    sign[a] * step[a],
    sign[a] * g.origin[a],
  ]);
  m.push([0, 0, 0, 1]);
  return m;
}

/** World position of a voxel index under an affine. */
export function applyAffine(m: Matrix4, ijk: readonly number[]): Vec3 {
  return [0, 1, 2].map((r) => m[r][0] * ijk[0] + m[r][1] * ijk[1] + m[r][2] * ijk[2] + m[r][3]) as Vec3;
}

/** Dims and affine of the image once its axes are laid out as `layout` says. */
export function applyLayout(dims: [number, number, number], affine: Matrix4, layout: AxisLayout): { dims: [number, number, number]; affine: Matrix4 } {
  const outDims = layout.from.map((a) => dims[a]) as [number, number, number];
  // The output origin is the input voxel that output index (0,0,0) reads.
  const start = [0, 0, 0];
  layout.from.forEach((a, o) => {
    if (layout.reversed[o]) start[a] = dims[a] - 1;
  });
  const origin = applyAffine(affine, start);
  const out: Matrix4 = [0, 1, 2].map((r) => {
    const row = layout.from.map((a, o) => (layout.reversed[o] ? -affine[r][a] : affine[r][a]));
    return [...row, origin[r]];
  });
  out.push([0, 0, 0, 1]);
  return { dims: outDims, affine: out };
}

/**
 * dcm2niix's reorientation of 3D acquisitions (its nii_setOrtho, re-derived here): pick the corner
 * of the box nearest to the box's minimum world corner as the new origin, which fixes the axis
 * reflections, then the axis permutation whose direction matrix has the largest trace. The result
 * stores the image as close to RAS+ as an axis permutation can, without resampling.
 */
export function nearestCanonicalLayout(dims: [number, number, number], affine: Matrix4): AxisLayout {
  const canonical = [0, 1, 2].every((r) => [0, 1, 2].every((c) => (r === c ? affine[r][c] > 0 : affine[r][c] === 0)));
  if (canonical) return NATIVE_LAYOUT;
  const corners: Array<{ flips: boolean[]; world: Vec3 }> = [];
  for (let i = 0; i < 8; i++) {
    const flips = [(i & 1) !== 0, (i & 2) !== 0, (i & 4) !== 0];
    corners.push({ flips, world: applyAffine(affine, flips.map((f, a) => (f ? dims[a] - 1 : 0))) });
  }
  const min = [0, 1, 2].map((a) => Math.min(...corners.map((c) => c.world[a])));
  let best = corners[0];
  let bestDistance = distance(best.world, min);
  for (const c of corners.slice(1)) {
    const d = distance(c.world, min);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  // Output axis o reads input axis perm[o]; the reflections belong to input axes.
  const permutations: Array<[number, number, number]> = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]];
  let chosen = permutations[0];
  let bestTrace = 0;
  for (const perm of permutations) {
    const trace = perm.reduce((sum, a, o) => sum + (best.flips[a] ? -1 : 1) * affine[o][a], 0);
    if (trace > bestTrace) {
      bestTrace = trace;
      chosen = perm;
    }
  }
  return { from: [...chosen] as [number, number, number], reversed: chosen.map((a) => best.flips[a]) as [boolean, boolean, boolean] };
}

export function isNativeLayout(layout: AxisLayout): boolean {
  return layout.from.every((a, o) => a === o) && layout.reversed.every((r) => !r);
}

/** The plane a stack is closest to, from its normal (the largest component). */
export function planeOf(rowCosine: readonly number[], columnCosine: readonly number[]): 'axial' | 'coronal' | 'sagittal' | 'oblique' {
  const n = cross(rowCosine, columnCosine).map(Math.abs);
  const max = Math.max(...n);
  const axis = n.indexOf(max);
  const plane = (['sagittal', 'coronal', 'axial'] as const)[axis];
  // Within about 1° of an axis counts as that plane; scanners write cosines like 0.99999.
  return max > 0.9998 ? plane : 'oblique';
}

/** Voxel sizes (column norms of the affine). */
export function spacingOf(affine: Matrix4): [number, number, number] {
  return [0, 1, 2].map((c) => Math.hypot(affine[0][c], affine[1][c], affine[2][c])) as [number, number, number];
}

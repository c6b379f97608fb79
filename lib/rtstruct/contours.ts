/**
 * Closed contours of one label on one image plane, by marching squares, and their point reduction.
 *
 * Coordinates are in pixel units of the DICOM image: x = column, y = row, the centre of pixel (c, r) at
 * (c, r). The iso-line is taken at 0.5 between the centres of a labelled pixel and an unlabelled neighbour,
 * so every vertex lies on a pixel edge, half-way along it: (c ± 0.5, r) or (c, r ± 0.5). No pixel centre is
 * ever closer than √2/4 ≈ 0.354 pixel to a contour, which is why rasterizers that test pixel centres
 * (point in polygon) give back exactly the mask, and why point reduction up to 0.25 pixel keeps that true.
 * docs/rtstruct.md gives the reasoning.
 */

export interface PlanarContour {
  /** x, y pairs (column, row), closed implicitly: the last point joins the first. */
  points: Float64Array;
  /**
   * True for the boundary of a hole (unlabelled pixels enclosed by labelled ones). Outer boundaries and
   * holes run in opposite directions: with rows drawn downwards, outer boundaries run counter-clockwise.
   */
  hole: boolean;
}

/**
 * Segments of each marching-squares case, as pairs of cell edges (0 top, 1 right, 2 bottom, 3 left),
 * directed so that the labelled corners lie on the left (rows drawn downwards). Corner bits: 1 top-left,
 * 2 top-right, 4 bottom-right, 8 bottom-left. The saddles (5, 10) join their two labelled corners: the cell
 * centre, the mean of its corners, is exactly the 0.5 level and counts as labelled. Labelled pixels are thus
 * 8-connected, unlabelled ones 4-connected, the same on every slice.
 */
const TOP = 0;
const RIGHT = 1;
const BOTTOM = 2;
const LEFT = 3;
const SEGMENTS: ReadonlyArray<ReadonlyArray<readonly [number, number]>> = [
  [],
  [[LEFT, TOP]],
  [[TOP, RIGHT]],
  [[LEFT, RIGHT]],
  [[RIGHT, BOTTOM]],
  [[RIGHT, TOP], [LEFT, BOTTOM]],
  [[TOP, BOTTOM]],
  [[LEFT, BOTTOM]],
  [[BOTTOM, LEFT]],
  [[BOTTOM, TOP]],
  [[TOP, LEFT], [BOTTOM, RIGHT]],
  [[BOTTOM, RIGHT]],
  [[RIGHT, LEFT]],
  [[RIGHT, TOP]],
  [[TOP, LEFT]],
  [],
];

/** Scratch buffers grown on demand and reused between slices: a 512² slice needs about 3 MB. */
class Scratch {
  inside = new Uint8Array(0);
  next = new Int32Array(0);
  starts = new Int32Array(0);

  ensure(cells: number, edges: number): void {
    if (this.inside.length < cells) this.inside = new Uint8Array(cells);
    if (this.next.length < edges) {
      this.next = new Int32Array(edges).fill(-1);
      this.starts = new Int32Array(edges);
    }
  }
}
const scratch = new Scratch();

/** The pixel bounding box of `value` in a slice, or undefined when the value is absent. */
export interface PixelBox {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export function boxOf(slice: ArrayLike<number>, columns: number, rows: number, value: number): PixelBox | undefined {
  let x0 = columns, y0 = rows, x1 = -1, y1 = -1;
  for (let y = 0, n = 0; y < rows; y++) {
    for (let x = 0; x < columns; x++, n++) {
      if (slice[n] !== value) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      y1 = y;
    }
  }
  return x1 < 0 ? undefined : { x0, y0, x1, y1 };
}

/**
 * Every closed boundary of the pixels equal to `value` in a slice of `rows` × `columns` values (row by row),
 * outer boundaries and holes alike, each a separate contour. Pixels outside the slice count as unlabelled,
 * so a region touching the border is closed half a pixel beyond its last pixel centres. `box` limits the
 * work to where the value is (as boxOf gives it). Contours come in the order their first edge is met
 * scanning rows downwards, which makes the output deterministic.
 */
export function traceContours(slice: ArrayLike<number>, columns: number, rows: number, value: number, box = boxOf(slice, columns, rows, value)): PlanarContour[] {
  if (!box) return [];
  // A local grid around the box, one unlabelled pixel wider on every side.
  const width = box.x1 - box.x0 + 3;
  const height = box.y1 - box.y0 + 3;
  const originX = box.x0 - 1;
  const originY = box.y0 - 1;
  const horizontalEdges = (width - 1) * height;
  const edges = horizontalEdges + width * (height - 1);
  scratch.ensure(width * height, edges);
  const { inside, next, starts } = scratch;
  inside.fill(0, 0, width * height);
  for (let y = box.y0; y <= box.y1; y++) {
    const row = y * columns;
    const local = (y - originY) * width - originX;
    for (let x = box.x0; x <= box.x1; x++) if (slice[row + x] === value) inside[local + x] = 1;
  }
  // Edge ids: horizontal edges by their left end, then vertical edges by their top end.
  const horizontal = (i: number, j: number) => j * (width - 1) + i;
  const vertical = (i: number, j: number) => horizontalEdges + j * width + i;
  let startCount = 0;
  const cellEdges = [0, 0, 0, 0];
  for (let j = 0; j < height - 1; j++) {
    for (let i = 0; i < width - 1; i++) {
      const top = j * width + i;
      const bottom = top + width;
      const kind = inside[top] | (inside[top + 1] << 1) | (inside[bottom + 1] << 2) | (inside[bottom] << 3);
      if (kind === 0 || kind === 15) continue;
      cellEdges[TOP] = horizontal(i, j);
      cellEdges[RIGHT] = vertical(i + 1, j);
      cellEdges[BOTTOM] = horizontal(i, j + 1);
      cellEdges[LEFT] = vertical(i, j);
      for (const [from, to] of SEGMENTS[kind]) {
        const start = cellEdges[from];
        next[start] = cellEdges[to];
        starts[startCount++] = start;
      }
    }
  }
  const contours: PlanarContour[] = [];
  const xs: number[] = [];
  const ys: number[] = [];
  for (let s = 0; s < startCount; s++) {
    let edge = starts[s];
    if (next[edge] === -1) continue;
    xs.length = 0;
    ys.length = 0;
    while (next[edge] !== -1) {
      if (edge < horizontalEdges) {
        xs.push(originX + (edge % (width - 1)) + 0.5);
        ys.push(originY + Math.floor(edge / (width - 1)));
      } else {
        const v = edge - horizontalEdges;
        xs.push(originX + (v % width));
        ys.push(originY + Math.floor(v / width) + 0.5);
      }
      const following = next[edge];
      next[edge] = -1;
      edge = following;
    }
    const points = new Float64Array(xs.length * 2);
    let twiceArea = 0;
    for (let k = 0; k < xs.length; k++) {
      points[2 * k] = xs[k];
      points[2 * k + 1] = ys[k];
      const n = k + 1 === xs.length ? 0 : k + 1;
      twiceArea += xs[k] * ys[n] - xs[n] * ys[k];
    }
    // Labelled corners lie left of the direction of travel, so an outer boundary has negative area with
    // rows downwards (counter-clockwise on screen), a hole positive.
    contours.push({ points, hole: twiceArea > 0 });
  }
  return contours;
}

/** The largest point-reduction tolerance, in pixels: half the distance (√2/4) from a pixel centre to a contour, rounded down. */
export const MAX_TOLERANCE_PX = 0.25;

/**
 * Drops the points where a closed contour goes straight on (runs along pixel edges, 45° staircases). Vertices
 * are exact multiples of 0.5, so "straight" is an exact test, and nothing changes shape.
 */
export function removeCollinear(points: Float64Array): Float64Array {
  const n = points.length / 2;
  if (n <= 3) return points;
  const xs = new Float64Array(n);
  const ys = new Float64Array(n);
  let m = 0;
  const straight = (ax: number, ay: number, bx: number, by: number, cx: number, cy: number) => (bx - ax) * (cy - by) - (by - ay) * (cx - bx) === 0;
  for (let k = 0; k < n; k++) {
    const x = points[2 * k];
    const y = points[2 * k + 1];
    while (m >= 2 && straight(xs[m - 2], ys[m - 2], xs[m - 1], ys[m - 1], x, y)) m--;
    xs[m] = x;
    ys[m] = y;
    m++;
  }
  // Where the ring closes: the last kept points may run straight into the first ones.
  let first = 0;
  for (let changed = true; changed && m - first > 3; ) {
    changed = false;
    if (straight(xs[m - 2], ys[m - 2], xs[m - 1], ys[m - 1], xs[first], ys[first])) {
      m--;
      changed = true;
    } else if (straight(xs[m - 1], ys[m - 1], xs[first], ys[first], xs[first + 1], ys[first + 1])) {
      first++;
      changed = true;
    }
  }
  const out = new Float64Array((m - first) * 2);
  for (let k = first; k < m; k++) {
    out[2 * (k - first)] = xs[k];
    out[2 * (k - first) + 1] = ys[k];
  }
  return out;
}

/** Distance from (px, py) to the segment (ax, ay)–(bx, by). */
function segmentDistance(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const length2 = dx * dx + dy * dy;
  let t = length2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / length2 : 0;
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  return Math.hypot(px - ax - t * dx, py - ay - t * dy);
}

/**
 * Reduces a closed contour: collinear points always go (lossless); with a tolerance, Douglas–Peucker on the
 * ring then drops every point that stays within `tolerance` pixels of the segment replacing it. The ring is
 * split at its leftmost point and at the point farthest from it, both corners of its convex hull, so no
 * corner is kept for being an arbitrary start. The result is a subset of the input points, in order.
 */
export function simplifyContour(points: Float64Array, tolerance: number): Float64Array {
  if (!(tolerance >= 0 && tolerance <= MAX_TOLERANCE_PX)) throw new RangeError(`point reduction tolerance must be from 0 to ${MAX_TOLERANCE_PX} pixel, not ${tolerance}`);
  const ring = removeCollinear(points);
  const n = ring.length / 2;
  if (tolerance === 0 || n <= 3) return ring;
  let first = 0;
  for (let k = 1; k < n; k++) {
    if (ring[2 * k] < ring[2 * first] || (ring[2 * k] === ring[2 * first] && ring[2 * k + 1] < ring[2 * first + 1])) first = k;
  }
  let far = first;
  let farDistance = -1;
  for (let k = 0; k < n; k++) {
    const d = Math.hypot(ring[2 * k] - ring[2 * first], ring[2 * k + 1] - ring[2 * first + 1]);
    if (d > farDistance) {
      farDistance = d;
      far = k;
    }
  }
  const keep = new Uint8Array(n);
  keep[first] = 1;
  keep[far] = 1;
  // Spans are (from, to) in ring order, `to` possibly past the end (indices taken modulo n).
  const to = far > first ? far : far + n;
  const stack: number[] = [first, to, to, first + n];
  while (stack.length) {
    const b = stack.pop()!;
    const a = stack.pop()!;
    if (b - a < 2) continue;
    const ax = ring[2 * (a % n)], ay = ring[2 * (a % n) + 1];
    const bx = ring[2 * (b % n)], by = ring[2 * (b % n) + 1];
    let worst = -1;
    let worstDistance = 0;
    for (let k = a + 1; k < b; k++) {
      const d = segmentDistance(ring[2 * (k % n)], ring[2 * (k % n) + 1], ax, ay, bx, by);
      if (d > worstDistance) {
        worstDistance = d;
        worst = k;
      }
    }
    if (worst >= 0 && worstDistance > tolerance) {
      keep[worst % n] = 1;
      stack.push(a, worst, worst, b);
    }
  }
  let kept = 0;
  for (let k = 0; k < n; k++) kept += keep[k];
  // A ring needs three points; marching-squares rings are at least a pixel wide, so this only guards.
  if (kept < 3) return ring;
  const out = new Float64Array(kept * 2);
  for (let k = 0, m = 0; k < n; k++) {
    if (!keep[k]) continue;
    out[2 * m] = ring[2 * k];
    out[2 * m + 1] = ring[2 * k + 1];
    m++;
  }
  return out;
}

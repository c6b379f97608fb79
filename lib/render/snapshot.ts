/**
 * Render snapshots of a segmentation: three orthogonal slices (axial, coronal, sagittal) through the
 * lesion centre, windowed greyscale with the label mask blended on top, as PNGs. The slices are cut on
 * the volume's RAS-oriented grid (axes permuted and flipped so i → R, j → A, k → S), so every series
 * looks the same way round whatever its acquisition layout: neurological convention (patient's right on
 * the image's right, as niivue shows it by default), anterior up on axial, superior up on coronal and
 * sagittal, anterior to the right on sagittal (as the viewer's niivue tiles show them, so both agree).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Grid, invertAffine, multiplyAffine, orientedGridAtSpacing, realValues, resample } from '../infer/resample';
import type { Volume } from '../volume/types';
import { encodePng, type RgbImage } from './png';

export type Plane = 'axial' | 'coronal' | 'sagittal';
export const PLANES: readonly Plane[] = ['axial', 'coronal', 'sagittal'];

/** RGB per label value; labels past the table cycle through it. Label 1 (tumour core) is red. */
export const LABEL_COLOURS: readonly [number, number, number][] = [
  [255, 0, 0], [0, 220, 0], [0, 120, 255], [255, 220, 0], [255, 0, 255], [0, 230, 230], [255, 128, 0], [160, 80, 255],
];

export function labelColour(label: number): [number, number, number] {
  return LABEL_COLOURS[(label - 1) % LABEL_COLOURS.length];
}

export interface SnapshotOptions {
  /** Overlay opacity, 0–1 (default 0.5). */
  alpha?: number;
  /** Percentiles of the non-zero voxels that map to black and white (default [1, 99]). */
  window?: [number, number];
}

export interface SnapshotResult {
  /** Absolute paths of the written PNGs. */
  files: Record<Plane | 'montage', string>;
  /** The montage PNG itself (the three slices side by side), for msg.payload. */
  montage: Buffer;
  /** Slice indices on the RAS-oriented grid (i, j, k) and whether they are the lesion centroid. */
  centre: [number, number, number];
  lesion: boolean;
  /** The grey levels the window maps to 0 and 255. */
  window: [number, number];
  /** Labelled voxels seen, per label value. */
  labelCounts: Record<string, number>;
}

export interface SliceImages {
  images: Record<Plane, RgbImage>;
  centre: [number, number, number];
  lesion: boolean;
  window: [number, number];
  labelCounts: Record<string, number>;
}

/** The p-th percentile (0–100) of the non-zero values; a strided sample keeps big volumes quick. */
export function nonZeroPercentiles(values: Float32Array, percents: number[]): number[] {
  return nonZeroPercentilesOf(values.length, (index) => values[index], percents);
}

/**
 * nonZeroPercentiles over `count` values given one at a time by `valueAt` (float32 values), so that only
 * the strided sample is ever read.
 */
function nonZeroPercentilesOf(count: number, valueAt: (index: number) => number, percents: number[]): number[] {
  const stride = Math.max(1, Math.floor(count / 500_000));
  const buffer = new Float32Array(Math.ceil(count / stride));
  let n = 0;
  for (let i = 0; i < count; i += stride) {
    const v = valueAt(i);
    if (v !== 0 && Number.isFinite(v)) buffer[n++] = v;
  }
  if (n === 0) return percents.map(() => 0);
  // Only a few ranks are wanted: selecting each is linear, where sorting the sample is not.
  const sample = buffer.subarray(0, n);
  return percents.map((p) => selectRank(sample, Math.min(n - 1, Math.max(0, Math.round((p / 100) * (n - 1))))));
}

/**
 * The value of rank `k` (0-based, ascending) in `values`, which is reordered in place (Hoare's
 * quickselect, median-of-three pivots): the same value sorting would put at `k`.
 */
function selectRank(values: Float32Array, k: number): number {
  let left = 0;
  let right = values.length - 1;
  while (right > left) {
    const middle = (left + right) >>> 1;
    const a = values[left], b = values[middle], c = values[right];
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    let i = left;
    let j = right;
    while (i <= j) {
      while (values[i] < pivot) i++;
      while (values[j] > pivot) j--;
      if (i <= j) {
        const t = values[i];
        values[i] = values[j];
        values[j] = t;
        i++;
        j--;
      }
    }
    // [left, j] ≤ pivot ≤ [i, right], and anything between j and i equals the pivot.
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return values[k];
  }
  return values[k];
}

/**
 * How the voxels of one grid are those of another re-indexed (axes permuted and flipped, nothing
 * interpolated): target axis c runs along source axis `sourceAxis[c]`, backwards where `flip[c]`.
 */
interface Reindexing {
  sourceAxis: [number, number, number];
  flip: [boolean, boolean, boolean];
  /** Source linear index of target voxel (i, j, k): base + i·strides[0] + j·strides[1] + k·strides[2]. */
  base: number;
  strides: [number, number, number];
}

const identityReindexing = (dims: [number, number, number]): Reindexing => ({ sourceAxis: [0, 1, 2], flip: [false, false, false], base: 0, strides: [1, dims[0], dims[0] * dims[1]] });

/**
 * The reindexing that takes `target`'s voxels to `source`'s, when every target voxel centre is a source
 * voxel centre and both grids cover the same voxels; otherwise undefined. Sampling between such grids
 * (nearest or trilinear) only copies, so reading through the reindexing gives the same values without
 * resampling the whole volume.
 */
function reindexing(source: Grid, target: Grid): Reindexing | undefined {
  const m = multiplyAffine(invertAffine(source.affine), target.affine);
  const sourceStrides = [1, source.dims[0], source.dims[0] * source.dims[1]];
  const result: Reindexing = { sourceAxis: [-1, -1, -1], flip: [false, false, false], base: 0, strides: [0, 0, 0] };
  const near = (a: number, b: number) => Math.abs(a - b) < 1e-6;
  for (let a = 0; a < 3; a++) {
    let axis = -1;
    for (let c = 0; c < 3; c++) {
      if (near(Math.abs(m[a][c]), 1) && axis === -1) axis = c;
      else if (!near(m[a][c], 0)) return undefined;
    }
    if (axis === -1 || result.sourceAxis[axis] !== -1 || target.dims[axis] !== source.dims[a]) return undefined;
    const flip = m[a][axis] < 0;
    const first = flip ? source.dims[a] - 1 : 0;
    if (!near(m[a][3], first)) return undefined;
    result.sourceAxis[axis] = a;
    result.flip[axis] = flip;
    result.strides[axis] = (flip ? -1 : 1) * sourceStrides[a];
    result.base += first * sourceStrides[a];
  }
  return result;
}

/**
 * The label values of `mask` seen from `grid` (nearest neighbour), with how to index them: the mask's own
 * voxels when they are the grid's re-indexed (the usual case: the mask on the series' grid), otherwise
 * the mask resampled onto the whole grid.
 */
function labelsOn(mask: Volume, grid: Grid): { labels: ArrayLike<number>; dims: [number, number, number]; index: Reindexing } {
  const source: Grid = { dims: mask.dims, affine: mask.affine };
  const index = reindexing(source, grid);
  if (index) return { labels: mask.data, dims: mask.dims, index };
  const labels = resample(mask.data, source, grid, 'nearest', 0, new Uint8Array(grid.dims[0] * grid.dims[1] * grid.dims[2]));
  return { labels, dims: grid.dims, index: identityReindexing(grid.dims) };
}

/**
 * Cuts the three slices of `volume` with `mask` (a label volume, any grid in the same world; nearest
 * neighbour onto the image's) blended in. Without mask or with an empty one, the slices go through the
 * volume centre. Only the three planes' voxels (and the window's strided sample) are read: the RAS grid
 * is the volume's own voxels re-indexed, so nothing is resampled.
 */
export function sliceImages(volume: Volume, mask: Volume | undefined, options: SnapshotOptions = {}): SliceImages {
  const alpha = Math.min(1, Math.max(0, options.alpha ?? 0.5));
  const source: Grid = { dims: volume.dims, affine: volume.affine };
  // Orientation only (no spacing): a permutation and flips of the voxel axes, so the image is copied,
  // not interpolated.
  const grid = orientedGridAtSpacing(source);
  const [nx, ny, nz] = grid.dims;

  // Real values (slope and intercept applied, as float32, as realValues gives them), read through the
  // reindexing; should the grid ever not be one (it is by construction), the whole image is resampled.
  const imageIndex = reindexing(source, grid);
  const image = imageIndex
    ? { data: volume.data, slope: volume.slope && volume.slope !== 0 ? volume.slope : 1, intercept: volume.intercept ?? 0, index: imageIndex }
    : { data: realValues(volume, grid), slope: 1, intercept: 0, index: identityReindexing(grid.dims) };
  const real = (sourceIndex: number) => Math.fround(image.data[sourceIndex] * image.slope + image.intercept);
  const maskLabels = mask ? labelsOn(mask, grid) : undefined;

  // Lesion centroid and label counts, in one pass over the mask in its own voxel order; the sums of the
  // grid's indices follow from the source's (an index flipped is n − 1 minus it).
  const counts = new Float64Array(256);
  const centre: [number, number, number] = [Math.floor(nx / 2), Math.floor(ny / 2), Math.floor(nz / 2)];
  let n = 0;
  if (maskLabels) {
    const { labels, dims: [mx, my], index } = maskLabels;
    const sums = [0, 0, 0];
    const visit = (v: number) => {
      // "& 255": the value a uint8 label volume would hold.
      const l = labels[v] & 255;
      if (l === 0) return;
      counts[l]++;
      sums[0] += v % mx; sums[1] += Math.floor(v / mx) % my; sums[2] += Math.floor(v / (mx * my)); n++;
    };
    // Most of a mask is background: a uint8 one is skipped four voxels at a time.
    const words = labels instanceof Uint8Array && labels.byteOffset % 4 === 0 ? new Uint32Array(labels.buffer, labels.byteOffset, labels.length >>> 2) : undefined;
    let v = 0;
    if (words) for (let w = 0; w < words.length; w++, v += 4) if (words[w] !== 0) for (let q = v; q < v + 4; q++) visit(q);
    for (; v < labels.length; v++) visit(v);
    if (n > 0) {
      for (let axis = 0; axis < 3; axis++) {
        const sum = sums[index.sourceAxis[axis]];
        centre[axis] = Math.round((index.flip[axis] ? n * (grid.dims[axis] - 1) - sum : sum) / n);
      }
    }
  }
  const lesion = n > 0;
  const labelCounts: Record<string, number> = {};
  for (let l = 1; l < 256; l++) if (counts[l] > 0) labelCounts[l] = counts[l];

  const { base, strides: [si, sj, sk] } = image.index;
  const [lo, hi] = nonZeroPercentilesOf(nx * ny * nz, (v) => real(base + (v % nx) * si + (Math.floor(v / nx) % ny) * sj + Math.floor(v / (nx * ny)) * sk), options.window ?? [1, 99]);
  const range = hi > lo ? hi - lo : 1;
  const grey = (v: number) => Math.round(Math.min(255, Math.max(0, ((v - lo) / range) * 255)));

  // One slice: width × height pixels from the grid voxel `start`, stepping `column` per pixel to the
  // right and `row` per pixel down (grid voxel steps), read through each volume's reindexing.
  type Step = [number, number, number];
  const offset = (index: Reindexing, v: Step) => index.strides[0] * v[0] + index.strides[1] * v[1] + index.strides[2] * v[2];
  const cut = (width: number, height: number, start: Step, column: Step, row: Step): RgbImage => {
    const data = new Uint8Array(width * height * 3);
    const img = { at: image.index.base + offset(image.index, start), column: offset(image.index, column), row: offset(image.index, row) };
    const lab = maskLabels && { at: maskLabels.index.base + offset(maskLabels.index, start), column: offset(maskLabels.index, column), row: offset(maskLabels.index, row) };
    for (let r = 0, p = 0; r < height; r++) for (let c = 0; c < width; c++, p += 3) {
      const g = grey(real(img.at + r * img.row + c * img.column));
      const l = maskLabels && lab ? maskLabels.labels[lab.at + r * lab.row + c * lab.column] & 255 : 0;
      if (l === 0) {
        data[p] = data[p + 1] = data[p + 2] = g;
      } else {
        const colour = labelColour(l);
        for (let ch = 0; ch < 3; ch++) data[p + ch] = Math.round(g * (1 - alpha) + colour[ch] * alpha);
      }
    }
    return { width, height, channels: 3, data };
  };
  const [ci, cj, ck] = centre;
  // Anterior up on axial, superior up on coronal and sagittal (rows run down the grid's j or k).
  const images: Record<Plane, RgbImage> = {
    axial: cut(nx, ny, [0, ny - 1, ck], [1, 0, 0], [0, -1, 0]),
    coronal: cut(nx, nz, [0, cj, nz - 1], [1, 0, 0], [0, 0, -1]),
    sagittal: cut(ny, nz, [ci, 0, nz - 1], [0, 1, 0], [0, 0, -1]),
  };
  return { images, centre, lesion, window: [lo, hi], labelCounts };
}

/** The images side by side, top-aligned on black, with a 4-pixel gap. */
export function montage(images: RgbImage[], gap = 4): RgbImage {
  const width = images.reduce((w, im) => w + im.width, 0) + gap * (images.length - 1);
  const height = Math.max(...images.map((im) => im.height));
  const data = new Uint8Array(width * height * 3);
  let x0 = 0;
  for (const im of images) {
    for (let r = 0; r < im.height; r++) data.set(im.data.subarray(r * im.width * 3, (r + 1) * im.width * 3), (r * width + x0) * 3);
    x0 += im.width + gap;
  }
  return { width, height, channels: 3, data };
}

/** Writes axial.png, coronal.png, sagittal.png and montage.png into `outDir`. */
export function writeSnapshots(volume: Volume, mask: Volume | undefined, outDir: string, options: SnapshotOptions = {}): SnapshotResult {
  const slices = sliceImages(volume, mask, options);
  mkdirSync(outDir, { recursive: true });
  const files = {} as Record<Plane | 'montage', string>;
  for (const plane of PLANES) {
    files[plane] = join(outDir, `${plane}.png`);
    writeFileSync(files[plane], encodePng(slices.images[plane]));
  }
  const combined = encodePng(montage(PLANES.map((p) => slices.images[p])));
  files.montage = join(outDir, 'montage.png');
  writeFileSync(files.montage, combined);
  return { files, montage: combined, centre: slices.centre, lesion: slices.lesion, window: slices.window, labelCounts: slices.labelCounts };
}

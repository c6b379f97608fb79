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
import { type Grid, orientedGridAtSpacing, realValues, resample } from '../infer/resample';
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
  const stride = Math.max(1, Math.floor(values.length / 500_000));
  const sample: number[] = [];
  for (let i = 0; i < values.length; i += stride) if (values[i] !== 0 && Number.isFinite(values[i])) sample.push(values[i]);
  if (sample.length === 0) return percents.map(() => 0);
  sample.sort((a, b) => a - b);
  return percents.map((p) => sample[Math.min(sample.length - 1, Math.max(0, Math.round((p / 100) * (sample.length - 1))))]);
}

/**
 * Cuts the three slices of `volume` with `mask` (a label volume, any grid in the same world; nearest
 * neighbour onto the image's) blended in. Without mask or with an empty one, the slices go through the
 * volume centre.
 */
export function sliceImages(volume: Volume, mask: Volume | undefined, options: SnapshotOptions = {}): SliceImages {
  const alpha = Math.min(1, Math.max(0, options.alpha ?? 0.5));
  const source: Grid = { dims: volume.dims, affine: volume.affine };
  // Orientation only (no spacing): a permutation and flips of the voxel axes, so the image is copied,
  // not interpolated.
  const grid = orientedGridAtSpacing(source);
  const values = realValues(volume, grid);
  const labels = new Uint8Array(values.length);
  if (mask) resample(mask.data, { dims: mask.dims, affine: mask.affine }, grid, 'nearest', 0, labels);

  const [nx, ny, nz] = grid.dims;
  let sx = 0, sy = 0, sz = 0, n = 0;
  const labelCounts: Record<string, number> = {};
  for (let k = 0, v = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, v++) {
    const l = labels[v];
    if (l === 0) continue;
    labelCounts[l] = (labelCounts[l] ?? 0) + 1;
    sx += i; sy += j; sz += k; n++;
  }
  const lesion = n > 0;
  const centre: [number, number, number] = lesion
    ? [Math.round(sx / n), Math.round(sy / n), Math.round(sz / n)]
    : [Math.floor(nx / 2), Math.floor(ny / 2), Math.floor(nz / 2)];

  const [lo, hi] = nonZeroPercentiles(values, options.window ?? [1, 99]);
  const range = hi > lo ? hi - lo : 1;
  const grey = (v: number) => Math.round(Math.min(255, Math.max(0, ((v - lo) / range) * 255)));

  // One slice: width × height pixels, `at(column, row)` giving the voxel index on the oriented grid.
  const cut = (width: number, height: number, at: (c: number, r: number) => number): RgbImage => {
    const data = new Uint8Array(width * height * 3);
    for (let r = 0, p = 0; r < height; r++) for (let c = 0; c < width; c++, p += 3) {
      const v = at(c, r);
      const g = grey(values[v]);
      const l = labels[v];
      if (l === 0) {
        data[p] = data[p + 1] = data[p + 2] = g;
      } else {
        const colour = labelColour(l);
        for (let ch = 0; ch < 3; ch++) data[p + ch] = Math.round(g * (1 - alpha) + colour[ch] * alpha);
      }
    }
    return { width, height, channels: 3, data };
  };
  const index = (i: number, j: number, k: number) => i + nx * (j + ny * k);
  const [ci, cj, ck] = centre;
  const images: Record<Plane, RgbImage> = {
    axial: cut(nx, ny, (c, r) => index(c, ny - 1 - r, ck)),
    coronal: cut(nx, nz, (c, r) => index(c, cj, nz - 1 - r)),
    sagittal: cut(ny, nz, (c, r) => index(ci, c, nz - 1 - r)),
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

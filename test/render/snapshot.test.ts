import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishedFiles, readPublishMeta, renderPublished } from '../../lib/render/publish';
import { orientedGridAtSpacing, realValues, resample } from '../../lib/infer/resample';
import { labelColour, nonZeroPercentiles, type SliceImages, sliceImages, writeSnapshots } from '../../lib/render/snapshot';
import { writeNifti } from '../../lib/volume/nifti';
import type { Matrix4, Volume } from '../../lib/volume/types';
import { decodePng, pixel } from './helpers';

// An LPS-stored grid (i runs to the left, j to the posterior), anisotropic: the snapshot must turn it to RAS.
const DIMS: [number, number, number] = [32, 40, 16];
const AFFINE: Matrix4 = [[-2, 0, 0, 30], [0, -1.5, 0, 40], [0, 0, 3, -10], [0, 0, 0, 1]];
const LESION = [10, 20, 8]; // voxel of the stored grid

function phantom(): { volume: Volume; mask: Volume } {
  const count = DIMS[0] * DIMS[1] * DIMS[2];
  const image = new Int16Array(count);
  const labels = new Uint8Array(count);
  for (let k = 0, v = 0; k < DIMS[2]; k++) for (let j = 0; j < DIMS[1]; j++) for (let i = 0; i < DIMS[0]; i++, v++) {
    // A zero border (air) around tissue graded 1…200, so the window comes from the non-zero voxels only.
    if (i > 0 && j > 0 && i < DIMS[0] - 1 && j < DIMS[1] - 1) image[v] = 1 + ((i * 7 + j * 3 + k) % 200);
    if (Math.hypot(i - LESION[0], j - LESION[1], k - LESION[2]) <= 2.5) labels[v] = 1;
  }
  return {
    volume: { dims: DIMS, type: 'int16', data: image, affine: AFFINE },
    mask: { dims: DIMS, type: 'uint8', data: labels, affine: AFFINE },
  };
}

/**
 * The slices as resampling the whole volume and mask onto the RAS grid gives them (what sliceImages did
 * before it read only the three planes): the oracle for the plane-only reads.
 */
function slicesByWholeResample(volume: Volume, mask: Volume): Pick<SliceImages, 'images' | 'centre' | 'window' | 'labelCounts'> {
  const grid = orientedGridAtSpacing({ dims: volume.dims, affine: volume.affine });
  const values = realValues(volume, grid);
  const labels = resample(mask.data, { dims: mask.dims, affine: mask.affine }, grid, 'nearest', 0, new Uint8Array(values.length));
  const [nx, ny, nz] = grid.dims;
  const sums = [0, 0, 0];
  let n = 0;
  const labelCounts: Record<string, number> = {};
  for (let k = 0, v = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, v++) {
    if (labels[v] === 0) continue;
    labelCounts[labels[v]] = (labelCounts[labels[v]] ?? 0) + 1;
    sums[0] += i; sums[1] += j; sums[2] += k; n++;
  }
  const centre = sums.map((sum) => Math.round(sum / n)) as [number, number, number];
  const nonZero = Array.from(values).filter((v) => v !== 0).sort((a, b) => a - b);
  const window: [number, number] = [nonZero[Math.round(0.01 * (nonZero.length - 1))], nonZero[Math.round(0.99 * (nonZero.length - 1))]];
  const grey = (v: number) => Math.round(Math.min(255, Math.max(0, ((v - window[0]) / (window[1] - window[0])) * 255)));
  const cut = (width: number, height: number, at: (c: number, r: number) => number) => {
    const data = new Uint8Array(width * height * 3);
    for (let r = 0, p = 0; r < height; r++) for (let c = 0; c < width; c++, p += 3) {
      const g = grey(values[at(c, r)]);
      const l = labels[at(c, r)];
      for (let ch = 0; ch < 3; ch++) data[p + ch] = l === 0 ? g : Math.round(g * 0.5 + labelColour(l)[ch] * 0.5);
    }
    return { width, height, channels: 3 as const, data };
  };
  const index = (i: number, j: number, k: number) => i + nx * (j + ny * k);
  const [ci, cj, ck] = centre;
  return {
    images: {
      axial: cut(nx, ny, (c, r) => index(c, ny - 1 - r, ck)),
      coronal: cut(nx, nz, (c, r) => index(c, cj, nz - 1 - r)),
      sagittal: cut(ny, nz, (c, r) => index(ci, c, nz - 1 - r)),
    },
    centre,
    window,
    labelCounts,
  };
}

/** The same voxels with the axes stored in another order (k, i, j) and directions: a sagittal-like acquisition. */
function permuted(volume: Volume, type: 'int16' | 'float32' | 'uint8'): Volume {
  const [nx, ny, nz] = volume.dims;
  const dims: [number, number, number] = [nz, nx, ny];
  const data = type === 'int16' ? new Int16Array(volume.data.length) : type === 'float32' ? new Float32Array(volume.data.length) : new Uint8Array(volume.data.length);
  // New voxel (a, b, c) is old voxel (i, j, k) = (b, ny − 1 − c, nz − 1 − a).
  for (let c = 0, v = 0; c < ny; c++) for (let b = 0; b < nx; b++) for (let a = 0; a < nz; a++, v++) data[v] = volume.data[b + nx * (ny - 1 - c + ny * (nz - 1 - a))];
  const m = volume.affine;
  const column = (col: number, sign: number) => [0, 1, 2].map((r) => m[r][col] * sign);
  const [ci, cj, ck] = [column(0, 1), column(1, -1), column(2, -1)];
  const origin = [0, 1, 2].map((r) => m[r][1] * (ny - 1) + m[r][2] * (nz - 1) + m[r][3]);
  const affine: Matrix4 = [0, 1, 2].map((r) => [ck[r], ci[r], cj[r], origin[r]]) as Matrix4;
  affine.push([0, 0, 0, 1]);
  return { dims, type, data, affine };
}

describe('render/snapshot', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'clara-snap-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('cuts through the lesion centroid on the RAS-oriented grid', () => {
    const { volume, mask } = phantom();
    const s = sliceImages(volume, mask);
    assert.equal(s.lesion, true);
    // i' = 31 − 10 (x flipped), j' = 39 − 20 (y flipped), k unchanged.
    assert.deepEqual(s.centre, [21, 19, 8]);
    assert.ok(s.labelCounts['1'] > 50);
    assert.ok(s.window[0] >= 1 && s.window[0] <= 5 && s.window[1] >= 195 && s.window[1] <= 200, `window ${s.window}`);
    assert.deepEqual([s.images.axial.width, s.images.axial.height], [32, 40]);
    assert.deepEqual([s.images.coronal.width, s.images.coronal.height], [32, 16]);
    assert.deepEqual([s.images.sagittal.width, s.images.sagittal.height], [40, 16]);
  });

  it('writes PNGs with the mask in red (alpha 0.5) at the lesion and plain grey elsewhere', () => {
    const { volume, mask } = phantom();
    const out = join(dir, 'render');
    const r = writeSnapshots(volume, mask, out);
    // Where the lesion lands in each view (world x → column; anterior up on axial, superior up elsewhere;
    // anterior to the right on sagittal): worked out from the world position, not from the code.
    const at: Record<string, [number, number]> = { axial: [21, 20], coronal: [21, 7], sagittal: [19, 7] };
    for (const [plane, [x, y]] of Object.entries(at)) {
      const png = decodePng(r.files[plane as 'axial']);
      const [red, green, blue] = pixel(png, x, y);
      assert.ok(red >= 128 && green === blue && red > green, `${plane} lesion pixel ${[red, green, blue]}`);
      // Far from the lesion: grey (R = G = B).
      const far = pixel(png, 2, 2);
      assert.ok(far[0] === far[1] && far[1] === far[2], `${plane} background ${far}`);
    }
    const m = decodePng(r.files.montage);
    assert.deepEqual([m.width, m.height], [32 + 4 + 32 + 4 + 40, 40]);
    assert.ok(r.montage.length < 300_000);
  });

  it('gives the slices resampling the whole volume onto the RAS grid gives, from the three planes alone', () => {
    const { volume, mask } = phantom();
    const same = (actual: SliceImages, expected: ReturnType<typeof slicesByWholeResample>, what: string) => {
      assert.deepEqual(actual.centre, expected.centre, `${what}: centre`);
      assert.deepEqual(actual.window, expected.window, `${what}: window`);
      assert.deepEqual(actual.labelCounts, expected.labelCounts, `${what}: label counts`);
      for (const plane of ['axial', 'coronal', 'sagittal'] as const) assert.deepEqual(actual.images[plane], expected.images[plane], `${what}: ${plane}`);
    };
    // Each of these grids is a reindexing of the RAS one: the planes are read straight from the voxels.
    same(sliceImages(volume, mask), slicesByWholeResample(volume, mask), 'LPS grid');
    const sagittal = { ...permuted(volume, 'int16'), slope: 0.5, intercept: -3 };
    same(sliceImages(sagittal, mask), slicesByWholeResample(sagittal, mask), 'permuted axes, rescaled, mask on the other grid');
    same(sliceImages(sagittal, permuted(mask, 'float32')), slicesByWholeResample(sagittal, permuted(mask, 'float32')), 'float32 mask');
    // A mask on a grid that is not a reindexing (half the voxel count per axis, shifted): resampled whole.
    const coarse: Volume = { dims: [16, 20, 8], type: 'uint8', data: new Uint8Array(16 * 20 * 8), affine: [[-4, 0, 0, 29], [0, -3, 0, 39.25], [0, 0, 6, -8.5], [0, 0, 0, 1]] };
    for (let v = 0; v < coarse.data.length; v++) if (v % 16 >= 4 && v % 16 < 7 && Math.floor(v / 16) % 20 >= 9) coarse.data[v] = 2;
    const both = sliceImages(volume, coarse);
    assert.ok((both.labelCounts['2'] ?? 0) > 0);
    same(both, slicesByWholeResample(volume, coarse), 'mask on a coarser grid');
  });

  it('takes the window percentiles as sorting the non-zero voxels would', () => {
    let seed = 5;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let round = 0; round < 50; round++) {
      const values = new Float32Array(1 + Math.floor(random() * 3000));
      const levels = 1 + Math.floor(random() * 40);
      for (let i = 0; i < values.length; i++) values[i] = random() < 0.3 ? 0 : Math.floor(random() * levels) - levels / 3;
      const sorted = Array.from(values).filter((v) => v !== 0).sort((a, b) => a - b);
      const percents = [0, 1, 37, 50, 99, 100];
      const expected = percents.map((p) => (sorted.length ? sorted[Math.round((p / 100) * (sorted.length - 1))] : 0));
      assert.deepEqual(nonZeroPercentiles(values, percents), expected, `round ${round}`);
    }
  });

  it('goes through the volume centre when the mask is empty or absent', () => {
    const { volume, mask } = phantom();
    mask.data.fill(0);
    const s = sliceImages(volume, mask);
    assert.equal(s.lesion, false);
    assert.deepEqual(s.centre, [16, 20, 8]);
    assert.deepEqual(sliceImages(volume, undefined).centre, [16, 20, 8]);
  });

  it('renders a publish folder from its config.meta (.nii.gz) and lists only the files it names', async () => {
    const { volume, mask } = phantom();
    const pub = join(dir, 'publish');
    const uid = '1.2.3.4';
    const render = join(dir, 'render2');
    mkdirSync(pub, { recursive: true });
    writeNifti(join(pub, `${uid}.nii.gz`), volume);
    writeNifti(join(pub, `${uid}.output.nii.gz`), mask);
    writeFileSync(join(pub, 'config.meta'), JSON.stringify({ name: 'm', density: `${uid}.nii.gz`, settings: 'config_render.json', seg_masks: [`${uid}.output.nii.gz`] }));
    writeFileSync(join(pub, 'config_render.json'), '{}');
    writeFileSync(join(pub, 'unlisted.txt'), 'x');
    const r = await renderPublished(pub, render);
    assert.deepEqual(r.centre, [21, 19, 8]);
    assert.deepEqual(publishedFiles(pub).sort(), ['1.2.3.4.nii.gz', '1.2.3.4.output.nii.gz', 'config.meta', 'config_render.json']);
    writeFileSync(join(pub, 'config.meta'), JSON.stringify({ density: '../../etc/passwd', seg_masks: [] }));
    assert.throws(() => publishedFiles(pub, readPublishMeta(pub)), /escapes/);
  });
});

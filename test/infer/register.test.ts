import { strict as assert } from 'node:assert';
import { type RigidRegistration, registerRigid, resampleRegistered } from '../../lib/infer/register';
import { type Grid, invertAffine, realValues } from '../../lib/infer/resample';
import { applyAffine } from '../../lib/volume/geometry';
import type { Matrix4, Volume } from '../../lib/volume/types';

type Point = [number, number, number];

/** Rotation by `degrees` about `axis` through `centre`, then a shift: p ↦ R·(p − c) + c + t. */
function rigid(axis: Point, degrees: number, centre: Point, shift: Point): Matrix4 {
  const n = Math.hypot(...axis);
  const [x, y, z] = axis.map((v) => v / n);
  const t = (degrees * Math.PI) / 180;
  const [c, s, v] = [Math.cos(t), Math.sin(t), 1 - Math.cos(t)];
  const r = [
    [c + x * x * v, x * y * v - z * s, x * z * v + y * s],
    [y * x * v + z * s, c + y * y * v, y * z * v - x * s],
    [z * x * v - y * s, z * y * v + x * s, c + z * z * v],
  ];
  return [0, 1, 2].map((i) => [...r[i], centre[i] + shift[i] - (r[i][0] * centre[0] + r[i][1] * centre[1] + r[i][2] * centre[2])]).concat([[0, 0, 0, 1]]);
}

/** A scanner-like grid: axes rotated from RAS by `degrees` about `axis`, then scaled by `spacing`, centred on `centre`. */
function obliqueGrid(dims: Point, spacing: Point, axis: Point, degrees: number, centre: Point, axisOrder: [number, number, number], signs: Point): Grid {
  const rot = rigid(axis, degrees, [0, 0, 0], [0, 0, 0]);
  // Column a of the voxel axes: a (possibly reversed) RAS axis, rotated; like LPS or sagittal storage.
  const columns = axisOrder.map((w, a) => [0, 1, 2].map((r) => rot[r][w] * signs[a] * spacing[a]));
  const origin = [0, 1, 2].map((r) => centre[r] - columns.reduce((sum, col, a) => sum + (col[r] * (dims[a] - 1)) / 2, 0));
  return { dims: [...dims], affine: [0, 1, 2].map((r) => [columns[0][r], columns[1][r], columns[2][r], origin[r]]).concat([[0, 0, 0, 1]]) };
}

const HEAD_CENTRE: Point = [3, -12, 20];

/** Tissue intensities for the shells and blobs of the head, in one MR contrast. */
interface Contrast {
  scalp: number;
  skull: number;
  csf: number;
  grey: number;
  white: number;
  bright: number;
  dark: number;
}
const T1: Contrast = { scalp: 600, skull: 80, csf: 200, grey: 500, white: 700, bright: 1000, dark: 150 };
const T2: Contrast = { scalp: 400, skull: 60, csf: 1000, grey: 550, white: 330, bright: 250, dark: 800 };

const step = (d: number) => 1 / (1 + Math.exp(-d / 0.6));

/**
 * A head in its own anatomical space (mm, RAS): nested ellipsoid shells (scalp, skull, CSF, grey,
 * white), ventricles, and off-centre blobs that break every symmetry a rigid fit could slip along.
 */
function head(p: readonly number[], k: Contrast): number {
  const [x, y, z] = [p[0] - HEAD_CENTRE[0], p[1] - HEAD_CENTRE[1], p[2] - HEAD_CENTRE[2]];
  const r = Math.hypot(x / 70, y / 90, z / 75);
  if (r > 1.1) return 0;
  const shell = (scale: number) => step((scale - r) * 75);
  const blob = (c: Point, radius: number) => step(radius - Math.hypot(x - c[0], y - c[1], z - c[2]));
  const ventricle = (c: Point) => step((1 - Math.hypot((x - c[0]) / 6, (y - c[1]) / 22, (z - c[2]) / 9)) * 6);
  let v = k.scalp * shell(1) + (k.skull - k.scalp) * shell(0.93) + (k.csf - k.skull) * shell(0.87) + (k.grey - k.csf) * shell(0.83) + (k.white - k.grey) * shell(0.62);
  v += (k.csf - k.white) * (ventricle([-9, 4, 8]) + ventricle([11, 2, 6]));
  v += (k.bright - k.white) * blob([24, 31, 12], 10) + (k.dark - k.white) * blob([-28, -22, -14], 8);
  // An "eye" in front on the left only, outside the skull.
  v += (k.bright - k.scalp) * blob([-30, 78, -25], 9);
  return v;
}

/** A seeded pseudo-random normal sequence, so the noise is the same on every run. */
function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** The head as seen on `grid`, whose world is related to the head's by `worldToAnatomy`, stored as int16 with a rescale slope. */
function scan(grid: Grid, worldToAnatomy: Matrix4, k: Contrast, noise: number, seed: number): Volume {
  const [nx, ny, nz] = grid.dims;
  const slope = 0.5;
  const data = new Int16Array(nx * ny * nz);
  const next = gaussian(seed);
  for (let z = 0, n = 0; z < nz; z++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, n++) {
    const v = head(applyAffine(worldToAnatomy, applyAffine(grid.affine, [i, j, z])), k);
    data[n] = Math.round((v + noise * next()) / slope);
  }
  return { dims: grid.dims, type: 'int16', data, affine: grid.affine, slope, intercept: 0 };
}

const IDENTITY: Matrix4 = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];

/** Mean and worst distance between where two fixed→moving maps send points spread through the head. */
function displacementError(estimate: Matrix4, truth: Matrix4): { mean: number; max: number } {
  let sum = 0;
  let max = 0;
  let count = 0;
  for (let a = -1; a <= 1; a += 0.2) for (let b = -1; b <= 1; b += 0.2) for (let c = -1; c <= 1; c += 0.2) {
    if (Math.hypot(a, b, c) > 1) continue;
    const p = [HEAD_CENTRE[0] + 65 * a, HEAD_CENTRE[1] + 85 * b, HEAD_CENTRE[2] + 70 * c];
    const e = applyAffine(estimate, p);
    const t = applyAffine(truth, p);
    const d = Math.hypot(e[0] - t[0], e[1] - t[1], e[2] - t[2]);
    sum += d;
    max = Math.max(max, d);
    count++;
  }
  return { mean: sum / count, max };
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let [sa, sb, saa, sbb, sab] = [0, 0, 0, 0, 0];
  for (let i = 0; i < a.length; i++) {
    sa += a[i];
    sb += b[i];
    saa += a[i] * a[i];
    sbb += b[i] * b[i];
    sab += a[i] * b[i];
  }
  const n = a.length;
  return (sab - (sa * sb) / n) / Math.sqrt((saa - (sa * sa) / n) * (sbb - (sb * sb) / n));
}

function describe3(m: Matrix4): string {
  return m.slice(0, 3).map((row) => row.map((v) => v.toFixed(4)).join(' ')).join(' | ');
}

describe('lib/infer registerRigid: rigid MR-to-MR registration across frames of reference with elastix (wasm)', function () {
  this.timeout(300_000);

  // Fixed: a 1 mm 256 × 256 × 160 axial-oblique stack stored LPS-like (x and y reversed), tilted 10°.
  const fixedGrid = obliqueGrid([256, 256, 160], [1, 1, 1], [1, 0, 0], 10, [4, -10, 22], [0, 1, 2], [-1, -1, 1]);
  // The moving series' world is another frame of reference: the same anatomy lies 6° about an
  // oblique axis and 7 mm away (fixedToMoving below), on a 2 mm sagittal-oblique grid.
  const truth = rigid([1, 2, 0.5], 6, HEAD_CENTRE, [4, -5, 3.6]);
  const movingCentre = applyAffine(truth, [0, -8, 18]) as Point;
  const movingGrid = obliqueGrid([128, 128, 80], [1.9, 1.9, 2.2], [0.3, 1, 0.2], 15, movingCentre, [1, 2, 0], [1, -1, 1]);

  let fixed: Volume;
  let moving: Volume;
  let registration: RigidRegistration;

  before(() => {
    fixed = scan(fixedGrid, IDENTITY, T1, 12, 1);
    // A voxel of the moving series at moving-world q shows the anatomy at fixed-world truth⁻¹·q.
    moving = scan(movingGrid, invertAffine(truth), T1, 12, 2);
  });

  it('recovers a known 6° + 7 mm rigid transform between a 256×256×160 and a 128×128×80 volume to under 1 mm', async () => {
    const started = Date.now();
    registration = await registerRigid(fixed, moving);
    const seconds = (Date.now() - started) / 1000;
    const error = displacementError(registration.fixedToMoving, truth);
    console.log(`      registration: ${seconds.toFixed(1)} s, mean error ${error.mean.toFixed(3)} mm (max ${error.max.toFixed(3)}), metric ${registration.metric?.toFixed(4)}`);
    console.log(`      estimate ${describe3(registration.fixedToMoving)}\n      truth    ${describe3(truth)}`);
    assert.ok(error.mean < 1, `mean displacement error ${error.mean} mm`);
    assert.ok(error.max < 2, `max displacement error ${error.max} mm`);
    assert.ok(registration.seconds > 0 && registration.seconds <= seconds + 0.5);
    assert.ok(seconds < 60, `took ${seconds} s`);
    assert.ok(registration.metric !== undefined && registration.metric < -0.3, `metric ${registration.metric}`);
  });

  it('resamples the moving volume onto the fixed grid through the registration, matching the fixed volume', () => {
    const onFixed = resampleRegistered(moving, fixedGrid, registration);
    assert.equal(onFixed.length, fixed.data.length);
    const r = correlation(onFixed, realValues(fixed));
    // Through the identity instead, the same comparison shows what the registration fixed.
    const unregistered = correlation(resampleRegistered(moving, fixedGrid, { fixedToMoving: IDENTITY, seconds: 0 }), realValues(fixed));
    console.log(`      correlation with the fixed volume: ${r.toFixed(4)} registered, ${unregistered.toFixed(4)} through world coordinates alone`);
    assert.ok(r > 0.95, `correlation ${r}`);
    assert.ok(unregistered < 0.9, `unregistered correlation ${unregistered}`);
  });

  it('registers across contrasts (T1 fixed, T2-like moving) by mutual information', async () => {
    // Smaller grids here: the point is the metric, not the size.
    const smallFixedGrid = obliqueGrid([128, 128, 80], [2, 2, 2], [1, 0, 0], 10, [4, -10, 22], [0, 1, 2], [-1, -1, 1]);
    const smallFixed = scan(smallFixedGrid, IDENTITY, T1, 12, 3);
    const t2 = scan(movingGrid, invertAffine(truth), T2, 12, 4);
    const result = await registerRigid(smallFixed, t2);
    const error = displacementError(result.fixedToMoving, truth);
    console.log(`      T1→T2: ${result.seconds.toFixed(1)} s, mean error ${error.mean.toFixed(3)} mm (max ${error.max.toFixed(3)})`);
    assert.ok(error.mean < 1, `mean displacement error ${error.mean} mm`);
  });

  it('finds the anatomy across a 5 cm frame-of-reference offset and 12° (centre-of-gravity start)', async () => {
    const smallFixedGrid = obliqueGrid([128, 128, 80], [2, 2, 2], [1, 0, 0], 10, [4, -10, 22], [0, 1, 2], [-1, -1, 1]);
    const smallFixed = scan(smallFixedGrid, IDENTITY, T1, 12, 9);
    const far = rigid([-0.4, 0.3, 1], 12, HEAD_CENTRE, [30, -25, 32]);
    const farGrid = obliqueGrid([120, 120, 72], [2, 2, 2.4], [0.3, 1, 0.2], 15, applyAffine(far, [0, -8, 18]) as Point, [1, 2, 0], [1, -1, 1]);
    const result = await registerRigid(smallFixed, scan(farGrid, invertAffine(far), T1, 12, 10));
    const error = displacementError(result.fixedToMoving, far);
    console.log(`      far: ${result.seconds.toFixed(1)} s, mean error ${error.mean.toFixed(3)} mm (max ${error.max.toFixed(3)})`);
    assert.ok(error.mean < 1, `mean displacement error ${error.mean} mm`);
  });

  it('gives a near-identity transform for a volume registered to itself', async () => {
    const smallGrid = obliqueGrid([96, 96, 64], [2.2, 2.2, 2.5], [0.2, 0.1, 1], 20, [4, -10, 22], [0, 1, 2], [-1, -1, 1]);
    const volume = scan(smallGrid, IDENTITY, T1, 12, 5);
    const result = await registerRigid(volume, volume);
    const error = displacementError(result.fixedToMoving, IDENTITY);
    console.log(`      self: ${result.seconds.toFixed(1)} s, mean deviation from identity ${error.mean.toFixed(3)} mm`);
    assert.ok(error.mean < 0.3, `mean deviation from identity ${error.mean} mm`);
    assert.equal(result.fixedToMoving.length, 4);
    assert.deepEqual(result.fixedToMoving[3], [0, 0, 0, 1]);
  });

  it('rejects empty or inconsistent volumes with a clear error, before starting elastix', async () => {
    const small = scan(obliqueGrid([16, 16, 16], [2, 2, 2], [0, 0, 1], 0, [0, 0, 0], [0, 1, 2], [1, 1, 1]), IDENTITY, T1, 0, 6);
    const empty: Volume = { ...small, dims: [0, 16, 16], data: new Int16Array(0) };
    await assert.rejects(registerRigid(empty, small), /fixed volume has zero voxels/);
    await assert.rejects(registerRigid(small, { ...small, dims: [16, 16, 15] }), /moving volume's data holds 4096 voxels but its dims 16×16×15 need 3840/);
    const flat = small.affine.map((row, r) => (r === 2 ? [0, 0, 0, row[3]] : row));
    await assert.rejects(registerRigid(small, { ...small, affine: flat }), /moving volume's affine: the affine cannot be inverted/);
    const slab = scan(obliqueGrid([64, 64, 2], [2, 2, 2], [0, 0, 1], 0, [0, 0, 0], [0, 1, 2], [1, 1, 1]), IDENTITY, T1, 0, 7);
    await assert.rejects(registerRigid(small, slab), /moving volume is too thin to register in 3D/);
    await assert.rejects(registerRigid(small, small, { iterations: 0 }), /iterations must be a positive integer/);
    assert.throws(() => resampleRegistered(empty, small, { fixedToMoving: IDENTITY, seconds: 0 }), /moving volume has zero voxels/);
  });

  it("reports elastix's own failure (volumes that never overlap) as an error, not a crash", async () => {
    const grid = obliqueGrid([48, 48, 40], [2, 2, 2], [0, 0, 1], 0, [4, -10, 22], [0, 1, 2], [1, 1, 1]);
    const volume = scan(grid, IDENTITY, T1, 0, 11);
    const away: Volume = { ...volume, affine: volume.affine.map((row, r) => (r === 0 ? [...row.slice(0, 3), row[3] + 500] : row)) };
    await assert.rejects(registerRigid(volume, away, { initialization: 'world' }), /elastix failed: a C\+\+ exception .*barely overlap/);
  });

  it('stops when its signal aborts, before or during the elastix run', async () => {
    const volume = scan(obliqueGrid([96, 96, 64], [2, 2, 2.5], [0, 0, 1], 5, [4, -10, 22], [0, 1, 2], [-1, -1, 1]), IDENTITY, T1, 12, 8);
    await assert.rejects(registerRigid(volume, volume, { signal: AbortSignal.abort() }), { name: 'AbortError' });
    const controller = new AbortController();
    const started = Date.now();
    const running = registerRigid(volume, volume, { iterations: 5000, signal: controller.signal });
    setTimeout(() => controller.abort(), 300);
    await assert.rejects(running, { name: 'AbortError' });
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms to stop`);
  });
});

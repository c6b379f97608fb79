/**
 * Rigid (6-DOF) registration of two volumes whose DICOM frames of reference differ (a second MR
 * session, another scanner), with elastix compiled to WebAssembly (@itk-wasm/elastix, its Node
 * build: the .wasm ships inside the npm package, so nothing is fetched at run time).
 *
 * elastix runs in a worker thread: one registration keeps a core busy for seconds, and on the main
 * thread that would stall the DICOM listener and Node-RED's runtime; a worker can also be stopped
 * mid-run, which the wasm build offers no other way to do.
 */
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { applyAffine, dot, spacingOf } from '../volume/geometry';
import type { Matrix4, Volume } from '../volume/types';
import { type Grid, invertAffine, multiplyAffine, realValues, resample } from './resample';

export interface RigidRegistration {
  /** 4x4 matrix mapping a point in the FIXED volume's world (RAS mm) to the same anatomy in the MOVING volume's world. */
  fixedToMoving: number[][];
  /**
   * Negative mutual information (nats, 32 × 32 bins) between the fixed volume and the registered
   * moving volume over their overlap, at the working resolution: lower is better, 0 means unrelated.
   * elastix's own final metric value is not returned by its wasm build (it logs nothing and the
   * transform parameter object omits it), so this is measured here after the fact, in the same
   * sense as elastix's AdvancedMattesMutualInformation.
   */
  metric?: number;
  /** Wall-clock seconds for the whole call, preparation and worker start included. */
  seconds: number;
}

export interface RegisterOptions {
  /**
   * Optimizer iterations at each coarse resolution level (default 250); the finest level runs twice
   * as many, with shorter steps, since that is where the last fraction of a millimetre is settled.
   */
  iterations?: number;
  /** Stops the registration: the worker running elastix is terminated and the promise rejects. */
  signal?: AbortSignal;
  /**
   * Working voxel size in mm (default 2): finer volumes are smoothed and resampled to it before
   * elastix sees them; coarser axes keep their own spacing.
   */
  workingSpacing?: number;
  /**
   * Starting estimate before the optimizer runs. 'center-of-gravity' (the default) lines up the
   * intensity centroids, because world coordinates from different frames of reference may be
   * centimetres apart; 'world' starts from the identity, for series known to be nearly aligned.
   */
  initialization?: 'center-of-gravity' | 'world';
}

/** Voxel cap on a working image (about 136³): past it the working voxels grow, bounding memory and preparation time. */
const MAX_WORKING_VOXELS = 2_500_000;
const DEFAULT_ITERATIONS = 250;
const HISTOGRAM_BINS = 32;

export async function registerRigid(fixed: Volume, moving: Volume, options: RegisterOptions = {}): Promise<RigidRegistration> {
  const started = Date.now();
  const signal = options.signal;
  signal?.throwIfAborted();
  checkVolume(fixed, 'fixed', 'registerRigid');
  checkVolume(moving, 'moving', 'registerRigid');
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < 1) throw new Error(`registerRigid: iterations must be a positive integer, not ${iterations}`);
  const spacing = options.workingSpacing ?? 2;
  if (!(spacing > 0)) throw new Error(`registerRigid: workingSpacing must be positive, not ${spacing}`);

  const fixedWork = workingImage(fixed, spacing, 'fixed');
  const moveWork = workingImage(moving, spacing, 'moving');
  const levels = Math.max(1, Math.min(3, Math.floor(Math.log2(Math.min(...fixedWork.grid.dims, ...moveWork.grid.dims) / 8)) + 1));
  const voxel = (spacingOf(fixedWork.grid.affine).reduce((a, b) => a + b) + spacingOf(moveWork.grid.affine).reduce((a, b) => a + b)) / 6;
  const parameterMap = rigidParameterMap(iterations, levels, voxel, options.initialization ?? 'center-of-gravity');

  // Preparation above is synchronous and can take a second or two on a 1 mm volume.
  signal?.throwIfAborted();
  const fixedToMovingLps = transformFromParameters(await runElastix(parameterMap, toItkImage(fixedWork), toItkImage(moveWork), signal));
  // ITK works in LPS; our worlds are RAS. Flipping x and y on both sides of the LPS map gives the
  // RAS map (F·T·F with F = diag(−1, −1, 1), F its own inverse): entry (r, c) changes sign when
  // exactly one of r, c is x or y.
  const flip = [-1, -1, 1, 1];
  const fixedToMoving = fixedToMovingLps.slice(0, 3).map((row, r) => row.map((v, c) => flip[r] * flip[c] * v)).concat([[0, 0, 0, 1]]);

  const registered = resample(moveWork.values, moveWork.grid, { dims: fixedWork.grid.dims, affine: multiplyAffine(fixedToMoving, fixedWork.grid.affine) }, 'linear', Number.NaN);
  return { fixedToMoving, metric: negativeMutualInformation(fixedWork.values, registered), seconds: (Date.now() - started) / 1000 };
}

/** The moving volume's real values resampled onto the fixed grid through the registration (trilinear). */
export function resampleRegistered(moving: Volume, fixedGrid: Grid, registration: RigidRegistration): Float32Array {
  checkVolume(moving, 'moving', 'resampleRegistered');
  // A fixed voxel's world position, carried into the moving world, is where to read the moving
  // image: so the target grid seen from the moving world is fixedToMoving · fixedAffine.
  const target: Grid = { dims: fixedGrid.dims, affine: multiplyAffine(registration.fixedToMoving, fixedGrid.affine) };
  return resample(realValues(moving), moving, target, 'linear', 0);
}

function checkVolume(volume: Volume, role: string, caller: string): void {
  const dims = volume?.dims;
  if (!Array.isArray(dims) || dims.length !== 3 || !dims.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new Error(`${caller}: the ${role} volume has no valid dims (expected three non-negative integers, got ${JSON.stringify(dims)})`);
  }
  const count = dims[0] * dims[1] * dims[2];
  if (count === 0) throw new Error(`${caller}: the ${role} volume has zero voxels (dims ${dims.join('×')})`);
  if (!volume.data || volume.data.length !== count) {
    throw new Error(`${caller}: the ${role} volume's data holds ${volume.data?.length ?? 0} voxels but its dims ${dims.join('×')} need ${count}`);
  }
  const a = volume.affine;
  if (!Array.isArray(a) || a.length < 3 || a.slice(0, 3).some((row) => !Array.isArray(row) || row.length < 4 || row.some((v) => !Number.isFinite(v)))) {
    throw new Error(`${caller}: the ${role} volume's affine is not a finite 4×4 matrix`);
  }
  try {
    invertAffine(a);
  } catch (err) {
    throw new Error(`${caller}: the ${role} volume's affine: ${(err as Error).message}`);
  }
}

interface WorkingImage {
  grid: Grid;
  values: Float32Array;
}

/**
 * The volume smoothed and resampled onto a grid with its own axes but voxels of at least
 * `spacing` mm, covering the original. elastix's cost grows with the image for pyramid building,
 * so a 1 mm head would spend most of its time there for no gain in a rigid fit; MI is also steadier
 * on the less noisy coarse image.
 */
function workingImage(volume: Volume, spacing: number, role: string): WorkingImage {
  const own = spacingOf(volume.affine);
  let axes = [0, 1, 2].map((c) => [0, 1, 2].map((r) => volume.affine[r][c] / own[c]));
  const orthogonal = Math.abs(dot(axes[0], axes[1])) < 1e-3 && Math.abs(dot(axes[0], axes[2])) < 1e-3 && Math.abs(dot(axes[1], axes[2])) < 1e-3;
  let size = [0, 1, 2].map((a) => Math.max(own[a], spacing));
  if (!orthogonal) {
    // A sheared stack (CT gantry tilt) has no orthonormal ITK direction matrix: register it on a
    // RAS-aligned grid covering it, which ITK can describe exactly.
    axes = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
    size = [0, 1, 2].map(() => Math.max(...size));
  }
  // The volume's corners in the working axes: the working grid spans them, centred on the volume.
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-Infinity, -Infinity, -Infinity];
  for (const i of [0, volume.dims[0] - 1]) for (const j of [0, volume.dims[1] - 1]) for (const k of [0, volume.dims[2] - 1]) {
    const p = applyAffine(volume.affine, [i, j, k]);
    axes.forEach((u, a) => {
      lo[a] = Math.min(lo[a], dot(u, p));
      hi[a] = Math.max(hi[a], dot(u, p));
    });
  }
  const dimsAt = (s: number[]) => s.map((v, a) => Math.floor((hi[a] - lo[a]) / v + 1e-6) + 1) as [number, number, number];
  while (dimsAt(size).reduce((p, n) => p * n, 1) > MAX_WORKING_VOXELS) size = size.map((v) => v * 1.25);
  const dims = dimsAt(size);
  const first = [0, 1, 2].map((a) => (lo[a] + hi[a]) / 2 - (size[a] * (dims[a] - 1)) / 2);
  const origin = [0, 1, 2].map((r) => axes.reduce((sum, u, a) => sum + u[r] * first[a], 0));
  const grid: Grid = { dims, affine: [0, 1, 2].map((r) => [axes[0][r] * size[0], axes[1][r] * size[1], axes[2][r] * size[2], origin[r]]).concat([[0, 0, 0, 1]]) };
  if (dims.some((n) => n < 4)) {
    throw new Error(`registerRigid: the ${role} volume is too thin to register in 3D (${volume.dims.join('×')} voxels of ${own.map((v) => v.toFixed(2)).join('×')} mm)`);
  }

  let values = realValues(volume);
  // Decimating without a low-pass aliases MR noise and fine texture into structure the metric
  // would chase; a binomial pre-filter with sigma ≈ ½·√(f² − 1) voxels is the usual pyramid choice.
  for (let a = 0; a < 3; a++) {
    const factor = (orthogonal ? size[a] : size[0]) / own[a];
    const passes = factor >= 1.5 ? Math.round(0.5 * (factor ** 2 - 1)) : 0;
    for (let p = 0; p < passes; p++) values = binomialAlong(values, volume.dims, a);
  }
  return { grid, values: resample(values, volume, grid, 'linear', 0) };
}

/** One [1 2 1]/4 pass along axis `axis`, the edge voxel repeated beyond the ends. */
function binomialAlong(values: Float32Array, dims: [number, number, number], axis: number): Float32Array {
  const n = dims[axis];
  if (n < 2) return values;
  const stride = axis === 0 ? 1 : axis === 1 ? dims[0] : dims[0] * dims[1];
  const out = new Float32Array(values.length);
  const [nx, ny, nz] = dims;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    const idx = (k * ny + j) * nx + i;
    const pos = axis === 0 ? i : axis === 1 ? j : k;
    const before = pos > 0 ? values[idx - stride] : values[idx];
    const after = pos < n - 1 ? values[idx + stride] : values[idx];
    out[idx] = 0.25 * before + 0.5 * values[idx] + 0.25 * after;
  }
  return out;
}

/** The itk-wasm Image shape, written out here so as not to import itk-wasm (an ES module) into this CommonJS build. */
interface ItkImage {
  imageType: { dimension: 3; componentType: 'float32'; pixelType: 'Scalar'; components: 1 };
  name: string;
  origin: number[];
  spacing: number[];
  direction: Float64Array;
  size: number[];
  metadata: Map<string, unknown>;
  data: Float32Array;
}

/**
 * ITK's physical space is LPS: origin and axis directions are our RAS ones with x and y negated.
 * itk-wasm's `direction` is flat with element (row r, column c) at r·3 + c, column c being the
 * direction of index axis c (row-major, as ITK's own Matrix stores it). Verified against elastix
 * with a moving image stored under a 90° rotated direction; a transposed matrix only shows on
 * non-symmetric (oblique) directions, which is why the tests use them.
 */
function toItkImage(work: WorkingImage): ItkImage {
  const a = work.grid.affine;
  const spacing = spacingOf(a);
  const flip = [-1, -1, 1];
  const direction = new Float64Array(9);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) direction[r * 3 + c] = (flip[r] * a[r][c]) / spacing[c];
  return {
    imageType: { dimension: 3, componentType: 'float32', pixelType: 'Scalar', components: 1 },
    name: 'image',
    origin: [0, 1, 2].map((r) => flip[r] * a[r][3]),
    spacing,
    direction,
    size: [...work.grid.dims],
    metadata: new Map(),
    data: work.values,
  };
}

type ParameterMap = Record<string, string[]>;

function rigidParameterMap(iterations: number, levels: number, voxel: number, initialization: 'center-of-gravity' | 'world'): ParameterMap {
  const byLevel = (coarse: number, finest: number) => Array.from({ length: levels }, (_, l) => String(l === levels - 1 ? finest : coarse));
  return {
    Registration: ['MultiResolutionRegistration'],
    NumberOfResolutions: [String(levels)],
    // Recursive pyramids shrink as well as smooth, so the coarse levels are cheap to build.
    FixedImagePyramid: ['FixedRecursiveImagePyramid'],
    MovingImagePyramid: ['MovingRecursiveImagePyramid'],
    Transform: ['EulerTransform'],
    // Rotations (radians) and translations (mm) differ by orders of magnitude in their effect; let
    // elastix measure the scales rather than guess a fixed ratio for a head-sized field of view.
    AutomaticScalesEstimation: ['true'],
    AutomaticTransformInitialization: [initialization === 'world' ? 'false' : 'true'],
    AutomaticTransformInitializationMethod: ['CenterOfGravity'],
    HowToCombineTransforms: ['Compose'],
    // MI, not correlation: the two series may be T1 and T2/FLAIR, with no linear intensity relation.
    Metric: ['AdvancedMattesMutualInformation'],
    NumberOfHistogramBins: [String(HISTOGRAM_BINS)],
    Optimizer: ['AdaptiveStochasticGradientDescent'],
    AutomaticParameterEstimation: ['true'],
    // The step-size estimate aims each first step at this largest voxel displacement. elastix's
    // default (one voxel) crawls on a rigid head fit: a few hundred iterations stopped ~1° short on
    // 2 mm data, while three voxels converged to ~0.1 mm in the same count and four overshot. At the
    // finest level the long steps keep jittering on sampling noise (0.2 mm off on identical
    // images), so it takes half the length and twice the iterations.
    MaximumStepLength: byLevel(3 * voxel, 1.5 * voxel),
    MaximumNumberOfIterations: byLevel(iterations, 2 * iterations),
    // Fresh random samples each iteration keep stochastic gradient descent unbiased; more at the
    // finest level is where the last fraction of a millimetre is decided.
    ImageSampler: ['RandomCoordinate'],
    NewSamplesEveryIteration: ['true'],
    NumberOfSpatialSamples: byLevel(2048, 4096),
    MaximumNumberOfSamplingAttempts: ['8'],
    CheckNumberOfSamples: ['true'],
    Interpolator: ['LinearInterpolator'],
    // We resample ourselves on the caller's grids; keep elastix's own result image as cheap as it goes.
    WriteResultImage: ['false'],
    ResampleInterpolator: ['FinalLinearInterpolator'],
    Resampler: ['DefaultResampler'],
    DefaultPixelValue: ['0'],
    ResultImagePixelType: ['float'],
    FixedInternalImagePixelType: ['float'],
    MovingInternalImagePixelType: ['float'],
    UseDirectionCosines: ['true'],
    WriteIterationInfo: ['false'],
  };
}

/**
 * The worker's source. A string evaluated as the worker, because @itk-wasm/elastix is an ES module
 * whose loader uses top-level await: TypeScript's CommonJS output turns import() into require(),
 * which cannot load such a module, while import() written in plain JavaScript here stays native.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  try {
    const { elastixNode } = await import(workerData.moduleUrl);
    const result = await elastixNode([workerData.parameterMap], { fixed: workerData.fixed, moving: workerData.moving });
    parentPort.postMessage({ parameterObject: result.transformParameterObject });
  } catch (err) {
    // The release wasm build throws C++ exceptions as bare pointers (numbers), without text.
    const text = err instanceof Error ? err.message : typeof err === 'number' ? 'a C++ exception (the release wasm build carries no message)' : String(err);
    parentPort.postMessage({ error: text });
  }
})();
`;

function runElastix(parameterMap: ParameterMap, fixed: ItkImage, moving: ItkImage, signal?: AbortSignal): Promise<ParameterMap[]> {
  // require.resolve applies the "node" export condition, which is the package's Node (non-browser) entry.
  const moduleUrl = pathToFileURL(require.resolve('@itk-wasm/elastix')).href;
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // Copied, not transferred: the working images are still needed here for the metric.
      workerData: { moduleUrl, parameterMap, fixed, moving },
      // itk-wasm prints its own failure banner to the console; keep it out of the host's log and
      // fold anything informative into the error instead.
      stdout: true,
      stderr: true,
    });
    let printed = '';
    const keep = (chunk: Buffer) => {
      printed = (printed + chunk.toString()).slice(-4000);
    };
    worker.stdout.on('data', keep);
    worker.stderr.on('data', keep);
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      fn();
    };
    const onAbort = () => finish(() => reject(signal?.reason ?? new Error('registerRigid: aborted')));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (msg: { parameterObject?: ParameterMap[]; error?: string }) => {
      if (msg.error !== undefined || !msg.parameterObject) {
        const said = printed
          .split('\n')
          .map((line) => line.trim())
          .filter((line) => line && !/^(Exception while running pipeline:|stdout:|stderr:|Build module in Debug mode)/.test(line));
        const detail = said.length ? ` (${said.join(' ').slice(-500)})` : '';
        finish(() => reject(new Error(`registerRigid: elastix failed: ${msg.error ?? 'no transform returned'}${detail}. Usual causes: the volumes barely overlap after initialization, or one is nearly empty.`)));
      } else {
        const parameterObject = msg.parameterObject;
        finish(() => resolve(parameterObject));
      }
    });
    worker.once('error', (err) => finish(() => reject(new Error(`registerRigid: the elastix worker failed: ${err.message}`))));
    worker.once('exit', (code) => finish(() => reject(new Error(`registerRigid: the elastix worker exited (code ${code}) without a result`))));
  });
}

/**
 * The fixed→moving LPS map from elastix's transform parameter object: T(p) = R·(p − c) + c + t,
 * with R from ITK's Euler3D angles (Rz·Rx·Ry, or Rz·Ry·Rx when ComputeZYX is true), c the
 * CenterOfRotationPoint and t the last three TransformParameters.
 */
function transformFromParameters(parameterObject: ParameterMap[]): Matrix4 {
  if (!Array.isArray(parameterObject) || parameterObject.length !== 1) {
    throw new Error(`registerRigid: elastix returned ${parameterObject?.length ?? 0} transforms, expected one`);
  }
  const map = parameterObject[0];
  if (map.Transform?.[0] !== 'EulerTransform') throw new Error(`registerRigid: elastix returned a ${map.Transform?.[0]} transform, expected EulerTransform`);
  const p = (map.TransformParameters ?? []).map(Number);
  const c = (map.CenterOfRotationPoint ?? []).map(Number);
  if (p.length !== 6 || c.length !== 3 || [...p, ...c].some((v) => !Number.isFinite(v))) {
    throw new Error(`registerRigid: elastix returned unusable Euler parameters ${JSON.stringify(map.TransformParameters)} about ${JSON.stringify(map.CenterOfRotationPoint)}`);
  }
  const [ax, ay, az, tx, ty, tz] = p;
  const rx = [[1, 0, 0], [0, Math.cos(ax), -Math.sin(ax)], [0, Math.sin(ax), Math.cos(ax)]];
  const ry = [[Math.cos(ay), 0, Math.sin(ay)], [0, 1, 0], [-Math.sin(ay), 0, Math.cos(ay)]];
  const rz = [[Math.cos(az), -Math.sin(az), 0], [Math.sin(az), Math.cos(az), 0], [0, 0, 1]];
  const mul = (a: number[][], b: number[][]) => a.map((row) => [0, 1, 2].map((j) => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j]));
  const r = map.ComputeZYX?.[0] === 'true' ? mul(rz, mul(ry, rx)) : mul(rz, mul(rx, ry));
  const t = [tx, ty, tz];
  return [0, 1, 2].map((i) => [r[i][0], r[i][1], r[i][2], c[i] + t[i] - (r[i][0] * c[0] + r[i][1] * c[1] + r[i][2] * c[2])]).concat([[0, 0, 0, 1]]);
}

/** −MI over the voxels where both are defined (the moving sample is NaN outside its image). */
function negativeMutualInformation(fixed: Float32Array, moving: Float32Array): number | undefined {
  let fMin = Infinity;
  let fMax = -Infinity;
  let mMin = Infinity;
  let mMax = -Infinity;
  for (let i = 0; i < fixed.length; i++) {
    if (Number.isNaN(moving[i])) continue;
    fMin = Math.min(fMin, fixed[i]);
    fMax = Math.max(fMax, fixed[i]);
    mMin = Math.min(mMin, moving[i]);
    mMax = Math.max(mMax, moving[i]);
  }
  if (!(fMax > fMin && mMax > mMin)) return undefined;
  const bins = HISTOGRAM_BINS;
  const joint = new Float64Array(bins * bins);
  const fScale = (bins - 1e-6) / (fMax - fMin);
  const mScale = (bins - 1e-6) / (mMax - mMin);
  let total = 0;
  for (let i = 0; i < fixed.length; i++) {
    if (Number.isNaN(moving[i])) continue;
    joint[Math.floor((fixed[i] - fMin) * fScale) * bins + Math.floor((moving[i] - mMin) * mScale)]++;
    total++;
  }
  const pf = new Float64Array(bins);
  const pm = new Float64Array(bins);
  for (let a = 0; a < bins; a++) for (let b = 0; b < bins; b++) {
    pf[a] += joint[a * bins + b] / total;
    pm[b] += joint[a * bins + b] / total;
  }
  let mi = 0;
  for (let a = 0; a < bins; a++) for (let b = 0; b < bins; b++) {
    const p = joint[a * bins + b] / total;
    if (p > 0) mi += p * Math.log(p / (pf[a] * pm[b]));
  }
  return -mi;
}

import { type StackGrid, type Vec3, slicePosition, voxelIndexOf, voxelPosition } from './geometry';
import { derivedSeed, seededRandom } from './random';

/**
 * The synthetic head, defined analytically in patient LPS millimetres so that every series, whatever
 * its plane, samples the same anatomy and a viewer can cross-reference them. Tissues are nested
 * ellipsoids (scalp, skull, CSF, cortex, white matter) with a folded cortex, lateral and third
 * ventricles, deep grey nuclei, an interhemispheric fissure, and a tumour: necrotic centre, enhancing
 * rim, and oedema around it.
 */
export const Tissue = {
  Air: 0,
  Scalp: 1,
  Skull: 2,
  Csf: 3,
  Grey: 4,
  White: 5,
  Oedema: 6,
  EnhancingRim: 7,
  Necrosis: 8,
} as const;
const TISSUE_COUNT = 9;

/** Signal of each tissue in one pulse sequence, indexed by Tissue. */
export type Contrast = Float32Array;

function contrast(values: Record<keyof typeof Tissue, number>): Contrast {
  const table = new Float32Array(TISSUE_COUNT);
  for (const [name, value] of Object.entries(values)) table[Tissue[name as keyof typeof Tissue]] = value;
  return table;
}

/** Relative signals, roughly as the sequences show them: only T1c enhances the rim, FLAIR nulls CSF. */
export const Contrasts = {
  localizer: contrast({ Air: 0, Scalp: 600, Skull: 50, Csf: 350, Grey: 420, White: 460, Oedema: 480, EnhancingRim: 470, Necrosis: 400 }),
  t1: contrast({ Air: 0, Scalp: 850, Skull: 60, Csf: 180, Grey: 420, White: 600, Oedema: 360, EnhancingRim: 390, Necrosis: 220 }),
  t1c: contrast({ Air: 0, Scalp: 700, Skull: 40, Csf: 90, Grey: 380, White: 620, Oedema: 330, EnhancingRim: 1150, Necrosis: 160 }),
  flair: contrast({ Air: 0, Scalp: 520, Skull: 40, Csf: 50, Grey: 470, White: 360, Oedema: 820, EnhancingRim: 650, Necrosis: 300 }),
};

/** Standard deviation of the added noise, in the same units as the contrast tables. */
const NOISE_SD = 12;
/** Receive-coil shading: signal rises this fraction per 100 mm towards the head. */
const COIL_SHADING_PER_100MM = 0.05;

export interface Tumor {
  /** Centre in patient LPS mm; always the centre of a voxel of the target series. */
  centerLps: Vec3;
  /** Radius of the tumour core (enhancing rim plus necrosis): the ground-truth mask. */
  radiusMm: number;
  necrosisRadiusMm: number;
  edemaRadiusMm: number;
}

// Semi-axes (mm) of the skin surface, centred at the origin; inner layers are set in from it.
const SKIN: Vec3 = [78, 98, 86];
const SCALP_MM = 5;
const SKULL_MM = 7;
const CSF_MM = 3;
const BRAIN: Vec3 = SKIN.map((s) => s - SCALP_MM - SKULL_MM - CSF_MM) as Vec3;
/** White matter fills this fraction of the brain's normalised radius on average; the cortex folds around it. */
const WHITE_MATTER_FRACTION = 0.88;

interface Ellipsoid {
  centre: Vec3;
  semiAxes: Vec3;
}
/** The right lateral ventricle (x < 0); the left one is its mirror image. */
const LATERAL_VENTRICLE: Ellipsoid = { centre: [-11, 2, 14], semiAxes: [6, 26, 9] };
const THIRD_VENTRICLE: Ellipsoid = { centre: [0, 4, -2], semiAxes: [2, 10, 8] };
/** Basal ganglia and thalamus, lumped together, mirrored like the ventricles. */
const DEEP_GREY: Ellipsoid = { centre: [-20, -2, 2], semiAxes: [10, 15, 10] };
const FISSURE_HALF_WIDTH_MM = 1.5;
const FISSURE_FLOOR_Z = 20;

export class HeadModel {
  // Inverse squared semi-axes of each surface, so that the per-voxel tests are multiply-adds only.
  private readonly skin: Vec3;
  private readonly skullOuter: Vec3;
  private readonly skullInner: Vec3;
  private readonly brain: Vec3;
  private readonly cx: number;
  private readonly cy: number;
  private readonly cz: number;
  private readonly core2: number;
  private readonly necrosis2: number;
  private readonly edema2: number;

  constructor(tumor: Tumor) {
    const inv = (semi: Vec3, inset: number): Vec3 => semi.map((s) => 1 / ((s - inset) * (s - inset))) as Vec3;
    this.skin = inv(SKIN, 0);
    this.skullOuter = inv(SKIN, SCALP_MM);
    this.skullInner = inv(SKIN, SCALP_MM + SKULL_MM);
    this.brain = inv(BRAIN, 0);
    [this.cx, this.cy, this.cz] = tumor.centerLps;
    this.core2 = tumor.radiusMm * tumor.radiusMm;
    this.necrosis2 = tumor.necrosisRadiusMm * tumor.necrosisRadiusMm;
    this.edema2 = tumor.edemaRadiusMm * tumor.edemaRadiusMm;
  }

  /** The tissue at a world position. Called once per voxel of every series: no allocation here. */
  tissueAt(x: number, y: number, z: number): number {
    const x2 = x * x, y2 = y * y, z2 = z * z;
    if (x2 * this.skin[0] + y2 * this.skin[1] + z2 * this.skin[2] >= 1) return Tissue.Air;
    if (x2 * this.skullOuter[0] + y2 * this.skullOuter[1] + z2 * this.skullOuter[2] >= 1) return Tissue.Scalp;
    if (x2 * this.skullInner[0] + y2 * this.skullInner[1] + z2 * this.skullInner[2] >= 1) return Tissue.Skull;
    const tx = x - this.cx, ty = y - this.cy, tz = z - this.cz;
    const t2 = tx * tx + ty * ty + tz * tz;
    // The tumour displaces whatever it grows into, so its core wins over every brain structure.
    if (t2 < this.core2) return t2 < this.necrosis2 ? Tissue.Necrosis : Tissue.EnhancingRim;
    const rho2 = x2 * this.brain[0] + y2 * this.brain[1] + z2 * this.brain[2];
    if (rho2 >= 1) return Tissue.Csf;
    const ax = x < 0 ? x : -x; // mirror the paired structures onto the right side
    if (inEllipsoid(ax, y, z, LATERAL_VENTRICLE) || inEllipsoid(x, y, z, THIRD_VENTRICLE)) return Tissue.Csf;
    if (z > FISSURE_FLOOR_Z && x < FISSURE_HALF_WIDTH_MM && x > -FISSURE_HALF_WIDTH_MM) return Tissue.Csf;
    let tissue: number = Tissue.White;
    if (rho2 > 0.64) {
      // Gyri and sulci: a smooth 3D fold pattern moves both the pial surface and the grey/white boundary.
      const fold = Math.sin(0.21 * x + 0.7) * Math.sin(0.19 * y) * Math.sin(0.23 * z + 1.1);
      const rho = Math.sqrt(rho2);
      if (rho > 1 - 0.07 * (fold > 0 ? fold : 0)) return Tissue.Csf;
      if (rho > WHITE_MATTER_FRACTION - 0.06 * fold) tissue = Tissue.Grey;
    }
    if (tissue === Tissue.White && inEllipsoid(ax, y, z, DEEP_GREY)) tissue = Tissue.Grey;
    return t2 < this.edema2 ? Tissue.Oedema : tissue;
  }
}

function inEllipsoid(x: number, y: number, z: number, e: Ellipsoid): boolean {
  const dx = (x - e.centre[0]) / e.semiAxes[0];
  const dy = (y - e.centre[1]) / e.semiAxes[1];
  const dz = (z - e.centre[2]) / e.semiAxes[2];
  return dx * dx + dy * dy + dz * dz < 1;
}

/** The least distance from p to the surface of e, measured on a dense grid of surface points. */
function distanceToEllipsoidSurface(p: Vec3, e: Ellipsoid): number {
  let best = Infinity;
  for (let a = 0; a < 24; a++) {
    const theta = ((a + 0.5) / 24) * Math.PI;
    for (let b = 0; b < 48; b++) {
      const phi = (b / 48) * 2 * Math.PI;
      const q: Vec3 = [
        e.centre[0] + e.semiAxes[0] * Math.sin(theta) * Math.cos(phi),
        e.centre[1] + e.semiAxes[1] * Math.sin(theta) * Math.sin(phi),
        e.centre[2] + e.semiAxes[2] * Math.cos(theta),
      ];
      best = Math.min(best, Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]));
    }
  }
  return best;
}

const mirrored = (e: Ellipsoid): Ellipsoid => ({ centre: [-e.centre[0], e.centre[1], e.centre[2]], semiAxes: e.semiAxes });

/**
 * Places the tumour for a seed: a random point deep in the white matter, snapped to a voxel centre of
 * the target grid (so the ground-truth mask always holds at least that voxel), clear of the ventricles,
 * and with the whole core inside the target volume.
 */
export function placeTumor(seed: number, target: StackGrid): Tumor {
  const random = seededRandom(derivedSeed(seed, 'tumor'));
  const radiusMm = Math.round((10 + 6 * random()) * 2) / 2;
  const necrosisRadiusMm = Math.round(radiusMm * 0.5 * 2) / 2;
  const edemaRadiusMm = Math.round((radiusMm + 8 + 8 * random()) * 2) / 2;
  // A sphere lies inside an ellipsoid of semi-axes a if its centre lies inside the ellipsoid scaled by
  // 1 - r / min(a): the scaled surface is at least r from the original along every normal.
  const white = BRAIN.map((s) => s * 0.85) as Vec3;
  const inner = white.map((s) => s * (1 - (radiusMm + 2) / Math.min(...white))) as Vec3;
  const ventricles = [LATERAL_VENTRICLE, mirrored(LATERAL_VENTRICLE), THIRD_VENTRICLE];
  const margins: Vec3 = [radiusMm / target.columnSpacing, radiusMm / target.rowSpacing, radiusMm / target.sliceStep];
  const limits: Vec3 = [target.columns - 1, target.rows - 1, target.sliceCount - 1];
  for (let attempt = 0; attempt < 5000; attempt++) {
    const u: Vec3 = [2 * random() - 1, 2 * random() - 1, 2 * random() - 1];
    if (u[0] * u[0] + u[1] * u[1] + u[2] * u[2] > 1) continue;
    const index = voxelIndexOf(target, [u[0] * inner[0], u[1] * inner[1], u[2] * inner[2]]).map(Math.round) as Vec3;
    if (index.some((v, a) => v - margins[a] < 0 || v + margins[a] > limits[a])) continue;
    const centre = voxelPosition(target, index[0], index[1], index[2]);
    const q = centre.map((c, a) => c / inner[a]);
    if (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] > 1) continue;
    if (ventricles.some((v) => inEllipsoid(centre[0], centre[1], centre[2], v) || distanceToEllipsoidSurface(centre, v) < radiusMm + 2)) continue;
    return { centerLps: centre, radiusMm, necrosisRadiusMm, edemaRadiusMm };
  }
  throw new Error(`no room for a ${radiusMm} mm tumour inside the ${target.columns}×${target.rows}×${target.sliceCount} target grid`);
}

export interface PixelEncoding {
  signed: boolean;
  bitsStored: number;
  /** Stored value = round((signal - intercept) / slope). */
  slope: number;
  intercept: number;
}

/**
 * Samples slice k of a stack into stored pixel values, row by row with columns fastest (DICOM order).
 * Adds seeded noise (magnitude images, so never negative) and, when `coreMask` is given, marks the
 * voxels of the tumour core: exactly the voxels that show rim or necrosis in the image.
 */
export function sampleSlice(
  model: HeadModel,
  grid: StackGrid,
  k: number,
  signal: Contrast,
  encoding: PixelEncoding,
  noiseSeed: number,
  out: Int16Array | Uint16Array,
  coreMask?: Uint8Array,
): void {
  const origin = slicePosition(grid, k);
  const [ax, ay, az] = grid.rowCosine.map((v) => v * grid.columnSpacing);
  const [bx, by, bz] = grid.columnCosine.map((v) => v * grid.rowSpacing);
  const lo = encoding.signed ? -(2 ** (encoding.bitsStored - 1)) : 0;
  const hi = encoding.signed ? 2 ** (encoding.bitsStored - 1) - 1 : 2 ** encoding.bitsStored - 1;
  const invSlope = 1 / encoding.slope;
  const noiseScale = NOISE_SD * Math.sqrt(6); // the sum of two uniforms minus one has variance 1/6
  const shading = COIL_SHADING_PER_100MM / 100;
  let state = noiseSeed | 0;
  let index = 0;
  for (let j = 0; j < grid.rows; j++) {
    const rx = origin[0] + j * bx, ry = origin[1] + j * by, rz = origin[2] + j * bz;
    for (let i = 0; i < grid.columns; i++, index++) {
      const x = rx + i * ax, y = ry + i * ay, z = rz + i * az;
      const tissue = model.tissueAt(x, y, z);
      // xorshift32, inlined: two uniforms per voxel for a cheap, roughly Gaussian noise.
      state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
      const u1 = (state >>> 0) / 4294967296;
      state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
      const u2 = (state >>> 0) / 4294967296;
      let value = signal[tissue] * (1 + shading * z) + (u1 + u2 - 1) * noiseScale;
      if (value < 0) value = -value;
      let stored = Math.round((value - encoding.intercept) * invSlope);
      if (stored < lo) stored = lo;
      else if (stored > hi) stored = hi;
      out[index] = stored;
      if (coreMask) coreMask[index] = tissue === Tissue.EnhancingRim || tissue === Tissue.Necrosis ? 1 : 0;
    }
  }
}

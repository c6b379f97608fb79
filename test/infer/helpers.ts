import { applyAffine } from '../../lib/volume/geometry';
import type { Volume } from '../../lib/volume/types';

/** An oblique, anisotropic MR-like volume (int16 with a rescale) holding a bright sphere of radius 12 mm. */
export function sphereVolume(): { volume: Volume; truth: Uint8Array } {
  const t = (12 * Math.PI) / 180;
  const [c, s] = [Math.cos(t), Math.sin(t)];
  const dims: [number, number, number] = [60, 56, 40];
  const affine = [
    [-c, s * 0.95, 0, 30],
    [-s, -c * 0.95, 0, 25],
    [0, 0, 1.8, -36],
    [0, 0, 0, 1],
  ];
  const centre = applyAffine(affine, [28, 30, 19]);
  const data = new Int16Array(dims[0] * dims[1] * dims[2]);
  const truth = new Uint8Array(data.length);
  for (let k = 0, n = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++, n++) {
    const p = applyAffine(affine, [i, j, k]);
    const r = Math.hypot(p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]);
    const inside = r <= 12;
    truth[n] = inside ? 1 : 0;
    // Tissue everywhere (non-zero), brighter in the sphere, with a ripple so the z-score is not trivial.
    data[n] = Math.round((inside ? 900 : 300 + 40 * Math.sin(i / 3)) / 0.75);
  }
  return { volume: { dims, type: 'int16', data, affine, slope: 0.75, intercept: 0 }, truth };
}

export { dice } from '../../lib/infer/metrics';

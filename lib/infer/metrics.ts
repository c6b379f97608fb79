/** How well a segmentation matches a reference: what the tests, the demo and the benchmarks report. */
import type { Volume } from '../volume/types';
import { resample } from './resample';

/** Dice overlap of two label arrays of the same grid (non-zero is foreground); 1 when both are empty. */
export function dice(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`Dice of ${a.length} and ${b.length} voxels`);
  let both = 0;
  let total = 0;
  for (let i = 0; i < a.length; i++) {
    const inA = a[i] !== 0;
    const inB = b[i] !== 0;
    if (inA && inB) both++;
    total += Number(inA) + Number(inB);
  }
  return total ? (2 * both) / total : 1;
}

/** Dice of a label volume against a reference mask on another grid, taken onto the labels' grid (nearest). */
export function diceOnGrid(labels: Volume, reference: Volume): number {
  const onGrid = resample(reference.data, { dims: reference.dims, affine: reference.affine }, { dims: labels.dims, affine: labels.affine }, 'nearest', 0, new Uint8Array(labels.data.length));
  return dice(labels.data, onGrid);
}

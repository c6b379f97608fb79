import { existsSync } from 'node:fs';
import { readVolumeFileAsync } from '../volume/file';
import type { Volume } from '../volume/types';
import { RtStructInputError } from './structure-set';

/** Reads a label volume: NIfTI (.nii, .nii.gz) or MetaImage (.mhd). Apart from job.ts, so the CLI loads no job code. */
export async function readMaskVolume(path: string): Promise<Volume> {
  if (!existsSync(path)) throw new RtStructInputError(`the mask ${path} does not exist`);
  try {
    return await readVolumeFileAsync(path);
  } catch (err) {
    throw new RtStructInputError(`cannot read the mask ${path}: ${(err as Error).message}`);
  }
}

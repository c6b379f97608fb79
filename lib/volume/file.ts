/** Volume files by their names: MetaImage (`.mhd` with its `.raw`) or NIfTI-1 (`.nii`, `.nii.gz`). */
import { readMetaImage, writeMetaImage } from './metaimage';
import { readNifti } from './nifti';
import { writeNiftiStream } from './stream';
import type { Volume } from './types';

const isMetaImage = (path: string) => path.toLowerCase().endsWith('.mhd');

export function readVolumeFile(path: string): Volume {
  return isMetaImage(path) ? readMetaImage(path) : readNifti(path);
}

export async function writeVolumeFile(path: string, volume: Volume): Promise<void> {
  if (isMetaImage(path)) await writeMetaImage(path, volume);
  // Streamed: a .nii.gz is deflated on the thread pool, in parallel blocks, not on the event loop.
  else await writeNiftiStream(path, volume);
}

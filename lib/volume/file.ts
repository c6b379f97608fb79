/** Volume files by their names: MetaImage (`.mhd` with its `.raw`) or NIfTI-1 (`.nii`, `.nii.gz`). */
import { readMetaImage, readMetaImageHeader, writeMetaImage } from './metaimage';
import { readNifti, readNiftiAsync, readNiftiHeader } from './nifti';
import { writeNiftiStream } from './stream';
import type { Volume, VolumeHeader } from './types';

const isMetaImage = (path: string) => path.toLowerCase().endsWith('.mhd');

export function readVolumeFile(path: string): Volume {
  return isMetaImage(path) ? readMetaImage(path) : readNifti(path);
}

/**
 * readVolumeFile for the pipeline's stages, which run beside others in one event loop: a .nii.gz is read and
 * inflated off it (in parallel blocks when this package wrote it). A MetaImage's raw data is one plain read.
 */
export async function readVolumeFileAsync(path: string): Promise<Volume> {
  return isMetaImage(path) ? readMetaImage(path) : readNiftiAsync(path);
}

/**
 * A volume file's geometry, datatype and rescale without its voxels, for a stage that needs only the grid:
 * a .nii.gz is inflated only as far as its header, a MetaImage's data file is not opened.
 */
export function readVolumeHeader(path: string): VolumeHeader {
  return isMetaImage(path) ? readMetaImageHeader(path) : readNiftiHeader(path);
}

export async function writeVolumeFile(path: string, volume: Volume): Promise<void> {
  if (isMetaImage(path)) await writeMetaImage(path, volume);
  // Streamed: a .nii.gz is deflated on the thread pool, in parallel blocks, not on the event loop.
  else await writeNiftiStream(path, volume);
}

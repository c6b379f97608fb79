import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, openSync, writeSync } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { niftiHeader } from './nifti';
import { yieldToEventLoop } from './scan';
import type { Volume } from './types';

/** Chunks handed to the stream at a time: views on the volume, never copies. */
const CHUNK_BYTES = 1 << 20;

function* inChunks(parts: Uint8Array[]): Generator<Uint8Array> {
  for (const part of parts) {
    for (let o = 0; o < part.byteLength; o += CHUNK_BYTES) yield part.subarray(o, Math.min(part.byteLength, o + CHUNK_BYTES));
  }
}

/**
 * Writes the parts one after another (gzipped when asked) to a temporary file beside `path`, then
 * renames it into place, like writeFileAtomic but without first joining a whole volume into one buffer.
 */
export async function writeStreamAtomic(path: string, parts: Uint8Array[], gzip: boolean): Promise<void> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.part`;
  try {
    if (gzip) {
      // Level 1: the fast end of gzip; volumes are large and this runs on every study.
      await pipeline(Readable.from(inChunks(parts), { objectMode: false }), createGzip({ level: 1 }), createWriteStream(temp));
    } else {
      // Plain bytes go out with positional writes, chunk by chunk, yielding between chunks: no stream buffers.
      const fd = openSync(temp, 'w');
      try {
        for (const chunk of inChunks(parts)) {
          for (let done = 0; done < chunk.byteLength; ) done += writeSync(fd, chunk, done);
          await yieldToEventLoop();
        }
      } finally {
        closeSync(fd);
      }
    }
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}

/** Writes a NIfTI-1 file (.nii, or .nii.gz when the path says so) by streaming the voxels after the header. */
export async function writeNiftiStream(path: string, volume: Volume): Promise<void> {
  const data = new Uint8Array(volume.data.buffer, volume.data.byteOffset, volume.data.byteLength);
  await writeStreamAtomic(path, [niftiHeader(volume), data], path.endsWith('.gz'));
}

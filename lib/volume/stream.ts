import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { constants as zlibConstants, crc32, deflateRaw } from 'node:zlib';
import { encodeBlockIndex, gzipHeaderWithIndex, inBlockOrder } from './gzip-index';
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

/** Input bytes per gzip block: blocks are deflated side by side on libuv's thread pool, as pigz does. */
const GZIP_BLOCK_BYTES = 4 << 20;

function writeAll(fd: number, bytes: Uint8Array, position?: number): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done, position === undefined ? null : position + done);
}

/** Output chunk of a block's deflate: zlib's 16 KB default made each block hundreds of trips through the event loop. */
const DEFLATE_CHUNK_BYTES = 1 << 20;

/**
 * A block deflated on its own (no window carried over from the block before it), so that a reader that
 * knows where the blocks are can inflate them side by side. Cut by a sync flush (byte-aligned, not final),
 * so the blocks joined in order are still one valid deflate stream; the last block finishes it.
 */
function deflateBlock(block: Uint8Array, last: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    deflateRaw(block, { level: 1, chunkSize: DEFLATE_CHUNK_BYTES, finishFlush: last ? zlibConstants.Z_FINISH : zlibConstants.Z_SYNC_FLUSH }, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

/**
 * One gzip member written to `fd`: its blocks deflated in parallel off the main thread (the CRC is computed
 * here meanwhile) and written in order as they finish. The header's block index (see gzip-index.ts) is
 * reserved first and filled in at the end, once the compressed sizes are known. The blocks are views on the parts.
 */
async function writeGzip(fd: number, parts: Uint8Array[]): Promise<void> {
  const blocks: Uint8Array[] = [];
  for (const part of parts) for (let o = 0; o < part.byteLength; o += GZIP_BLOCK_BYTES) blocks.push(part.subarray(o, Math.min(part.byteLength, o + GZIP_BLOCK_BYTES)));
  if (blocks.length === 0) blocks.push(new Uint8Array(0));
  const header = gzipHeaderWithIndex(blocks.length);
  writeAll(fd, header.bytes);
  const compressedSizes: number[] = [];
  let crc = 0;
  let size = 0;
  await inBlockOrder(
    blocks.length,
    (i) => deflateBlock(blocks[i], i === blocks.length - 1),
    (out, i) => {
      crc = crc32(blocks[i], crc);
      size += blocks[i].byteLength;
      writeAll(fd, out);
      compressedSizes.push(out.byteLength);
    },
  );
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(size % 2 ** 32, 4);
  writeAll(fd, trailer);
  if (header.indexAt !== undefined) writeAll(fd, encodeBlockIndex(blocks.map((b, i) => ({ compressed: compressedSizes[i], inflated: b.byteLength }))), header.indexAt);
}

/**
 * Writes the parts one after another (gzipped when asked) to a temporary file beside `path`, then
 * renames it into place, like writeFileAtomic but without first joining a whole volume into one buffer.
 */
export async function writeStreamAtomic(path: string, parts: Uint8Array[], gzip: boolean): Promise<void> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.part`;
  try {
    const fd = openSync(temp, 'w');
    try {
      if (gzip) {
        // Level 1: the fast end of gzip; volumes are large and this runs on every study.
        await writeGzip(fd, parts);
      } else {
        // Plain bytes go out with positional writes, chunk by chunk, yielding between chunks: no stream buffers.
        for (const chunk of inChunks(parts)) {
          writeAll(fd, chunk);
          await yieldToEventLoop();
        }
      }
    } finally {
      closeSync(fd);
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

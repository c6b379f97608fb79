/**
 * A block index in the gzip header, so that a .nii.gz written here can be inflated on several threads.
 *
 * The file stays one ordinary gzip member (RFC 1952), read the same by every tool. Its header carries an
 * extra field (FEXTRA) with one subfield, ID "C" "z", which readers that do not know it skip, as the RFC
 * says they must. The subfield holds the block count, then, per block, its compressed and inflated sizes.
 * The writer deflates each block on its own and ends it on a byte boundary (sync flush), so each block's
 * bytes inflate without the blocks before them. The gzip CRC and size in the trailer still cover the whole.
 */
import { constants as zlibConstants, crc32, gunzip, inflateRaw } from 'node:zlib';

const SUBFIELD_ID = [0x43, 0x7a]; // "Cz"
/** Magic, deflate, the given flags, no mtime, "fastest" (level 1), Unix. */
const FIXED_HEADER = (flags: number) => Buffer.from([0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 4, 3]);
const FEXTRA = 0x04;
/** XLEN is 16 bits: the subfield (4 bytes of ID and length) and its payload must fit in 65,535 bytes. */
const MAX_EXTRA_BYTES = 0xffff;
const BYTES_PER_BLOCK_ENTRY = 8;

export interface IndexedBlock {
  compressed: number;
  inflated: number;
}

function payloadBytes(blocks: number): number {
  return 4 + blocks * BYTES_PER_BLOCK_ENTRY;
}

/**
 * The gzip header for a member of `blocks` blocks, with room for their index at `indexAt` (the bytes are
 * zero until the sizes are known). Too many blocks for the 16-bit extra field: a plain header and no index.
 */
export function gzipHeaderWithIndex(blocks: number): { bytes: Buffer; indexAt?: number } {
  const payload = payloadBytes(blocks);
  if (4 + payload > MAX_EXTRA_BYTES) return { bytes: FIXED_HEADER(0) };
  const extra = Buffer.alloc(2 + 4 + payload);
  extra.writeUInt16LE(4 + payload, 0);
  extra[2] = SUBFIELD_ID[0];
  extra[3] = SUBFIELD_ID[1];
  extra.writeUInt16LE(payload, 4);
  return { bytes: Buffer.concat([FIXED_HEADER(FEXTRA), extra]), indexAt: 10 + 6 };
}

export function encodeBlockIndex(blocks: readonly IndexedBlock[]): Buffer {
  const out = Buffer.alloc(payloadBytes(blocks.length));
  out.writeUInt32LE(blocks.length, 0);
  blocks.forEach((b, i) => {
    out.writeUInt32LE(b.compressed, 4 + i * BYTES_PER_BLOCK_ENTRY);
    out.writeUInt32LE(b.inflated, 8 + i * BYTES_PER_BLOCK_ENTRY);
  });
  return out;
}

/**
 * The block index of a gzip file written here, and where its deflate data starts; undefined for any other
 * gzip file, or one whose index does not add up to the file's length and the size its trailer states.
 */
export function blockIndexOf(gz: Buffer): { blocks: IndexedBlock[]; dataStart: number; inflatedSize: number } | undefined {
  if (gz.length < 18 || gz[0] !== 0x1f || gz[1] !== 0x8b || gz[2] !== 8 || gz[3] !== FEXTRA) return undefined;
  const xlen = gz.readUInt16LE(10);
  const dataStart = 12 + xlen;
  if (dataStart + 8 > gz.length) return undefined;
  for (let at = 12; at + 4 <= dataStart; ) {
    const length = gz.readUInt16LE(at + 2);
    const payloadAt = at + 4;
    if (payloadAt + length > dataStart) return undefined;
    if (gz[at] === SUBFIELD_ID[0] && gz[at + 1] === SUBFIELD_ID[1] && length >= 4) {
      const count = gz.readUInt32LE(payloadAt);
      if (count < 1 || length !== payloadBytes(count)) return undefined;
      const blocks: IndexedBlock[] = [];
      let compressedTotal = 0;
      let inflatedTotal = 0;
      for (let i = 0; i < count; i++) {
        const block = { compressed: gz.readUInt32LE(payloadAt + 4 + i * BYTES_PER_BLOCK_ENTRY), inflated: gz.readUInt32LE(payloadAt + 8 + i * BYTES_PER_BLOCK_ENTRY) };
        compressedTotal += block.compressed;
        inflatedTotal += block.inflated;
        blocks.push(block);
      }
      // An index left zero by a writer that stopped, or one that another tool kept while rewriting the data, does not add up.
      if (compressedTotal !== gz.length - dataStart - 8 || inflatedTotal % 2 ** 32 !== gz.readUInt32LE(gz.length - 4)) return undefined;
      return { blocks, dataStart, inflatedSize: inflatedTotal };
    }
    at = payloadAt + length;
  }
  return undefined;
}

function inflateBlock(bytes: Buffer, inflated: number, last: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    inflateRaw(bytes, { chunkSize: Math.max(64 * 1024, inflated + 1), finishFlush: last ? zlibConstants.Z_FINISH : zlibConstants.Z_SYNC_FLUSH }, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

/**
 * zlib's output chunk for inflating a whole .gz in one piece: the size its trailer states (bounded by how far
 * deflate can expand), instead of 16 KB chunks joined by a copy of the whole volume at the end. One byte more
 * than stated, so that a full buffer does not make zlib allocate another just to find the end; a wrong stated
 * size only costs that join again.
 */
export function wholeInflateChunkSize(gz: Buffer): number {
  const stated = gz.length >= 18 ? gz.readUInt32LE(gz.length - 4) : 0;
  return Math.max(64 * 1024, Math.min(stated + 1, gz.length * 1032 + 1024, 2 ** 30));
}

/** Blocks being deflated or inflated at once: libuv's pool has 4 threads by default, and each finished block is held until used. */
const BLOCKS_IN_FLIGHT = 4;

/**
 * Starts `work` for blocks 0 … count−1 on the thread pool, at most BLOCKS_IN_FLIGHT at once, and hands each
 * result to `each` in block order, starting the next block as one is taken. A failure is thrown in block
 * order; blocks still in flight after it are left to settle unobserved.
 */
export async function inBlockOrder<T>(count: number, work: (block: number) => Promise<T>, each: (result: T, block: number) => void): Promise<void> {
  const pending: Array<Promise<T>> = [];
  let next = 0;
  const launch = () => {
    const working = work(next++);
    working.catch(() => undefined);
    pending.push(working);
  };
  while (next < Math.min(count, BLOCKS_IN_FLIGHT)) launch();
  for (let block = 0; block < count; block++) {
    const result = await (pending.shift() as Promise<T>);
    if (next < count) launch();
    each(result, block);
  }
}

/**
 * A whole .gz file inflated off the event loop: an indexed file (above) block by block in parallel on the
 * thread pool, with the CRC checked here meanwhile; any other gzip file in one piece on one pool thread.
 */
export async function gunzipOffThread(gz: Buffer): Promise<Buffer> {
  const index = blockIndexOf(gz);
  if (!index) return new Promise((resolve, reject) => gunzip(gz, { chunkSize: wholeInflateChunkSize(gz) }, (err, out) => (err ? reject(err) : resolve(out))));
  const { blocks, dataStart, inflatedSize } = index;
  const out = Buffer.allocUnsafe(inflatedSize);
  const starts: number[] = [];
  for (let i = 0, at = dataStart; i < blocks.length; at += blocks[i].compressed, i++) starts.push(at);
  let crc = 0;
  let written = 0;
  await inBlockOrder(
    blocks.length,
    (i) => inflateBlock(gz.subarray(starts[i], starts[i] + blocks[i].compressed), blocks[i].inflated, i === blocks.length - 1),
    (inflated, i) => {
      if (inflated.length !== blocks[i].inflated) throw new Error(`block ${i + 1} of ${blocks.length} inflated to ${inflated.length} bytes, not the ${blocks[i].inflated} its index states`);
      inflated.copy(out, written);
      crc = crc32(inflated, crc);
      written += inflated.length;
    },
  );
  if (crc >>> 0 !== gz.readUInt32LE(gz.length - 8)) throw new Error('incorrect data check (the inflated bytes do not match the gzip CRC)');
  return out;
}

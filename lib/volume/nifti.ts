import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { constants as zlibConstants, gunzipSync, gzipSync } from 'node:zlib';
import { writeFileAtomic } from '../dicom/writer';
import { gunzipOffThread, wholeInflateChunkSize } from './gzip-index';
import { BYTES_PER_VOXEL, Matrix4, Volume, type VolumeHeader, type VoxelArray, VoxelType, allocateVoxels, voxelView } from './types';

const NIFTI_CODES: Record<VoxelType, number> = {
  uint8: 2, int16: 4, int32: 8, float32: 16, float64: 64, int8: 256, uint16: 512, uint32: 768,
};
const TYPE_BY_CODE = new Map<number, VoxelType>(Object.entries(NIFTI_CODES).map(([t, c]) => [c, t as VoxelType]));
const HEADER_SIZE = 348;
const VOX_OFFSET = 352;
/** NIFTI_XFORM_SCANNER_ANAT: the sform and qform give scanner coordinates. */
const XFORM_SCANNER_ANAT = 1;
const NIFTI_UNITS_MM = 2;

/**
 * The NIfTI quaternion form of an affine (NIfTI-1 nifti_mat44_to_quatern): qfac, b, c, d, offsets and
 * voxel sizes. Readers that trust the qform over the sform then see the same geometry.
 */
function toQuaternion(m: Matrix4): { b: number; c: number; d: number; qfac: number; pixdim: [number, number, number] } {
  let r = [0, 1, 2].map((row) => [0, 1, 2].map((col) => m[row][col]));
  const pixdim = [0, 1, 2].map((col) => Math.hypot(r[0][col], r[1][col], r[2][col]) || 1) as [number, number, number];
  r = r.map((row) => row.map((v, col) => v / pixdim[col]));
  const det =
    r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) -
    r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0]) +
    r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
  let qfac = 1;
  if (det < 0) {
    qfac = -1;
    for (let row = 0; row < 3; row++) r[row][2] = -r[row][2];
  }
  const [[r11, r12, r13], [r21, r22, r23], [r31, r32, r33]] = r;
  let a = r11 + r22 + r33 + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd); c = (0.25 * (r12 + r21)) / b; d = (0.25 * (r13 + r31)) / b; a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd); b = (0.25 * (r12 + r21)) / c; d = (0.25 * (r23 + r32)) / c; a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd); b = (0.25 * (r13 + r31)) / d; c = (0.25 * (r23 + r32)) / d; a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) { b = -b; c = -c; d = -d; }
  }
  return { b, c, d, qfac, pixdim };
}

/** Encodes a volume as a single-file NIfTI-1 image (.nii): header, 4 bytes of extension flag, voxels. */
export function encodeNifti(volume: Volume): Buffer {
  const data = Buffer.from(volume.data.buffer, volume.data.byteOffset, volume.data.byteLength);
  return Buffer.concat([niftiHeader(volume), data]);
}

/**
 * The 352 bytes before the voxels of a single-file NIfTI-1 image (header and extension flag), for
 * writers that stream the voxels after it instead of copying a whole volume into one buffer.
 */
export function niftiHeader(volume: Volume): Buffer {
  const [nx, ny, nz] = volume.dims;
  const header = Buffer.alloc(VOX_OFFSET);
  header.writeInt32LE(HEADER_SIZE, 0);
  header.writeInt16LE(3, 40);
  header.writeInt16LE(nx, 42);
  header.writeInt16LE(ny, 44);
  header.writeInt16LE(nz, 46);
  for (let i = 4; i <= 7; i++) header.writeInt16LE(1, 40 + 2 * i);
  header.writeInt16LE(NIFTI_CODES[volume.type], 70);
  header.writeInt16LE(BYTES_PER_VOXEL[volume.type] * 8, 72);
  const q = toQuaternion(volume.affine);
  header.writeFloatLE(q.qfac, 76);
  header.writeFloatLE(q.pixdim[0], 80);
  header.writeFloatLE(q.pixdim[1], 84);
  header.writeFloatLE(q.pixdim[2], 88);
  header.writeFloatLE(VOX_OFFSET, 108);
  header.writeFloatLE(volume.slope ?? 1, 112);
  header.writeFloatLE(volume.intercept ?? 0, 116);
  header.writeUInt8(NIFTI_UNITS_MM, 123);
  header.write((volume.description ?? '').slice(0, 79), 148, 'latin1');
  header.writeInt16LE(XFORM_SCANNER_ANAT, 252);
  header.writeInt16LE(XFORM_SCANNER_ANAT, 254);
  header.writeFloatLE(q.b, 256);
  header.writeFloatLE(q.c, 260);
  header.writeFloatLE(q.d, 264);
  header.writeFloatLE(volume.affine[0][3], 268);
  header.writeFloatLE(volume.affine[1][3], 272);
  header.writeFloatLE(volume.affine[2][3], 276);
  for (let row = 0; row < 3; row++) for (let col = 0; col < 4; col++) header.writeFloatLE(volume.affine[row][col], 280 + 16 * row + 4 * col);
  header.write('n+1\0', 344, 'latin1');
  return header;
}

/** Writes .nii, or .nii.gz when the path says so (gzip level 1: the fast end, as the volumes are large). */
export function writeNifti(path: string, volume: Volume): void {
  const raw = encodeNifti(volume);
  writeFileAtomic(path, path.endsWith('.gz') ? gzipSync(raw, { level: 1 }) : raw);
}


/**
 * The voxels as a view on the bytes read (the buffer is this reader's own) when they are aligned and
 * complete, else copied: a copy of a whole volume less per read.
 */
function voxelsOf(buf: Buffer, type: VoxelType, offset: number, count: number): VoxelArray {
  const size = BYTES_PER_VOXEL[type];
  if (offset >= 0 && (buf.byteOffset + offset) % size === 0 && offset + count * size <= buf.length) {
    return voxelView(type, buf.buffer, buf.byteOffset + offset, count);
  }
  const data = allocateVoxels(type, count);
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  buf.copy(bytes, 0, offset, offset + bytes.length);
  return data;
}

/** The header fields of a NIfTI-1 image in `buf` (its first 348 bytes at least), checked; `voxOffset` is where the voxels start. */
function parseNiftiHeader(buf: Buffer, path: string): VolumeHeader & { voxOffset: number } {
  if (buf.length < HEADER_SIZE) throw new Error(`${path}: truncated NIfTI-1 header (${buf.length} of ${HEADER_SIZE} bytes)`);
  if (buf.readInt32LE(0) !== HEADER_SIZE) throw new Error(`${path}: not a little-endian NIfTI-1 file`);
  const dims: [number, number, number] = [buf.readInt16LE(42), buf.readInt16LE(44), Math.max(1, buf.readInt16LE(46))];
  if (dims.some((d) => d < 1)) throw new Error(`${path}: NIfTI-1 header gives dimensions ${dims.join('×')}`);
  const code = buf.readInt16LE(70);
  const type = TYPE_BY_CODE.get(code);
  if (!type) throw new Error(`${path}: unsupported NIfTI datatype ${code}`);
  const affine: Matrix4 = [0, 1, 2].map((row) => [0, 1, 2, 3].map((col) => buf.readFloatLE(280 + 16 * row + 4 * col)));
  affine.push([0, 0, 0, 1]);
  const slope = buf.readFloatLE(112);
  return {
    dims,
    type,
    affine,
    slope: slope === 0 ? 1 : slope,
    intercept: buf.readFloatLE(116),
    description: buf.toString('latin1', 148, 228).replace(/\0.*$/s, ''),
    voxOffset: Math.round(buf.readFloatLE(108)),
  };
}

const isGzip = (buf: Buffer) => buf[0] === 0x1f && buf[1] === 0x8b;

function gzipError(path: string, err: unknown): Error {
  return new Error(`${path}: not a readable gzip stream (${(err as Error).message})`);
}

/** The volume in a NIfTI-1 file's (inflated) bytes, checked whole; the voxels are a view on `buf` where they can be. */
function niftiFromBytes(buf: Buffer, path: string): Volume {
  const { voxOffset, ...header } = parseNiftiHeader(buf, path);
  const count = header.dims[0] * header.dims[1] * header.dims[2];
  const needed = voxOffset + count * BYTES_PER_VOXEL[header.type];
  // A short file would otherwise come back with zeros where its voxels are missing.
  if (buf.length < needed) throw new Error(`${path}: truncated NIfTI-1 image (${buf.length} bytes, ${header.dims.join('×')} ${header.type} voxels need ${needed})`);
  return { ...header, data: voxelsOf(buf, header.type, voxOffset, count) };
}

/** Reads a NIfTI-1 file (.nii or .nii.gz) written by this package or another tool (dcm2niix). */
export function readNifti(path: string): Volume {
  let buf: Buffer = readFileSync(path);
  if (isGzip(buf)) {
    try {
      buf = gunzipSync(buf, { chunkSize: wholeInflateChunkSize(buf) });
    } catch (err) {
      throw gzipError(path, err);
    }
  }
  return niftiFromBytes(buf, path);
}

/**
 * readNifti for the pipeline's stages: the file is read and inflated off the event loop, and a .nii.gz
 * written here (with its block index) is inflated on several threads at once.
 */
export async function readNiftiAsync(path: string): Promise<Volume> {
  let buf: Buffer = await readFile(path);
  if (isGzip(buf)) {
    try {
      buf = await gunzipOffThread(buf);
    } catch (err) {
      throw gzipError(path, err);
    }
  }
  return niftiFromBytes(buf, path);
}

/** Compressed bytes read at first for a .nii.gz header: deflate at any level packs 348 bytes into far fewer. */
const GZ_HEADER_READ_BYTES = 4096;

/** Up to `length` bytes from the start of a file, fewer when it is shorter. */
function readStart(path: string, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    for (let n: number; got < length && (n = readSync(fd, buf, got, length - got, got)) > 0; ) got += n;
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/**
 * A NIfTI-1 file's geometry and datatype without its voxels: for a .nii the first 352 bytes; for a .nii.gz
 * only the start of the gzip stream is read and inflated (a sync flush gives what those bytes decode to, with
 * no error for the rest that is missing), read further only in the unlikely case it did not reach 348 bytes.
 */
export function readNiftiHeader(path: string): VolumeHeader {
  let head = readStart(path, VOX_OFFSET);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    for (let length = GZ_HEADER_READ_BYTES; ; length *= 4) {
      const compressed = readStart(path, length);
      let inflated: Buffer;
      try {
        inflated = gunzipSync(compressed, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
      } catch (err) {
        throw gzipError(path, err);
      }
      if (inflated.length >= HEADER_SIZE || compressed.length < length) {
        head = inflated;
        break;
      }
    }
  }
  const { voxOffset: _voxOffset, ...header } = parseNiftiHeader(head, path);
  return header;
}

import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../dicom/writer';
import { writeStreamAtomic } from './stream';
import { type Matrix4, type Volume, type VoxelType, BYTES_PER_VOXEL, allocateVoxels } from './types';

/** MetaImage element types (ITK's MET_* names) for each voxel type. */
const ELEMENT_TYPES: Record<VoxelType, string> = {
  uint8: 'MET_UCHAR', int8: 'MET_CHAR', int16: 'MET_SHORT', uint16: 'MET_USHORT',
  int32: 'MET_INT', uint32: 'MET_UINT', float32: 'MET_FLOAT', float64: 'MET_DOUBLE',
};
const TYPE_BY_ELEMENT = new Map<string, VoxelType>(Object.entries(ELEMENT_TYPES).map(([t, e]) => [e, t as VoxelType]));

/** Numbers as short as they can be written without losing the float64 value. */
const num = (v: number) => String(Object.is(v, -0) ? 0 : v);

/**
 * ITK's AnatomicalOrientation code for an image whose axes point along `directions` (LPS): each letter
 * names where the axis starts, the opposite of where it points ("RAI" for the identity in LPS).
 */
function anatomicalOrientation(directions: number[][]): string {
  return directions
    .map((d) => {
      const a = [0, 1, 2].reduce((best, i) => (Math.abs(d[i]) > Math.abs(d[best]) ? i : best), 0);
      return (d[a] > 0 ? 'RAI' : 'LPS')[a];
    })
    .join('');
}

/**
 * The header of a MetaImage (.mhd) for a volume, in ITK's conventions: physical space LPS, Offset is
 * the centre of the first voxel, TransformMatrix lists each axis' direction cosines in turn.
 */
export function metaImageHeader(volume: Volume, dataFileName: string): string {
  const lpsSign = [-1, -1, 1];
  const spacing = [0, 1, 2].map((c) => Math.hypot(volume.affine[0][c], volume.affine[1][c], volume.affine[2][c]) || 1);
  const directions = [0, 1, 2].map((c) => [0, 1, 2].map((r) => (lpsSign[r] * volume.affine[r][c]) / spacing[c]));
  const offset = [0, 1, 2].map((r) => lpsSign[r] * volume.affine[r][3]);
  const lines = [
    'ObjectType = Image',
    'NDims = 3',
    'BinaryData = True',
    'BinaryDataByteOrderMSB = False',
    'CompressedData = False',
    `TransformMatrix = ${directions.flat().map(num).join(' ')}`,
    `Offset = ${offset.map(num).join(' ')}`,
    'CenterOfRotation = 0 0 0',
    `AnatomicalOrientation = ${anatomicalOrientation(directions)}`,
    `ElementSpacing = ${spacing.map(num).join(' ')}`,
    `DimSize = ${volume.dims.join(' ')}`,
    `ElementType = ${ELEMENT_TYPES[volume.type]}`,
    `ElementDataFile = ${dataFileName}`,
  ];
  return lines.join('\n') + '\n';
}

/**
 * Writes `<name>.mhd` and its `<name>.raw` beside it. MetaImage has no rescale fields, so a volume
 * with a slope or intercept is refused: the caller must apply them to the values first.
 */
export async function writeMetaImage(mhdPath: string, volume: Volume): Promise<{ mhd: string; raw: string }> {
  if ((volume.slope ?? 1) !== 1 || (volume.intercept ?? 0) !== 0) {
    throw new Error('MetaImage cannot carry a rescale slope/intercept: apply them to the voxel values before writing');
  }
  if (!mhdPath.endsWith('.mhd')) throw new Error(`MetaImage header path must end in .mhd: ${mhdPath}`);
  const rawPath = mhdPath.slice(0, -4) + '.raw';
  const data = new Uint8Array(volume.data.buffer, volume.data.byteOffset, volume.data.byteLength);
  // The data first: a header never points at a missing or half-written .raw.
  await writeStreamAtomic(rawPath, [data], false);
  writeFileAtomic(mhdPath, Buffer.from(metaImageHeader(volume, basename(rawPath)), 'latin1'));
  return { mhd: mhdPath, raw: rawPath };
}

/** Reads a MetaImage written by writeMetaImage (or ITK: uncompressed, little-endian, 3D, separate data file). */
export function readMetaImage(mhdPath: string): Volume {
  const fields = new Map<string, string>();
  for (const line of readFileSync(mhdPath, 'latin1').split(/\r?\n/)) {
    const m = /^\s*(\w+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) fields.set(m[1], m[2]);
  }
  const need = (key: string) => {
    const v = fields.get(key);
    if (v === undefined) throw new Error(`${mhdPath}: no ${key}`);
    return v;
  };
  const numbers = (key: string, fallback?: number[]) => (fields.has(key) ? need(key).split(/\s+/).map(Number) : fallback ?? need(key).split(/\s+/).map(Number));
  if (need('NDims') !== '3') throw new Error(`${mhdPath}: only 3D images are supported`);
  if ((fields.get('CompressedData') ?? 'False') !== 'False') throw new Error(`${mhdPath}: compressed MetaImage is not supported`);
  const msb = (fields.get('BinaryDataByteOrderMSB') ?? fields.get('ElementByteOrderMSB') ?? 'False') === 'True';
  if (msb) throw new Error(`${mhdPath}: big-endian MetaImage is not supported`);
  const type = TYPE_BY_ELEMENT.get(need('ElementType'));
  if (!type) throw new Error(`${mhdPath}: unsupported ElementType ${fields.get('ElementType')}`);
  const dims = numbers('DimSize') as [number, number, number];
  const spacing = numbers('ElementSpacing', [1, 1, 1]);
  const offset = numbers('Offset', numbers('Position', [0, 0, 0]));
  const matrix = numbers('TransformMatrix', numbers('Rotation', [1, 0, 0, 0, 1, 0, 0, 0, 1]));
  const dataFile = need('ElementDataFile');
  if (dataFile === 'LOCAL' || dataFile.startsWith('LIST')) throw new Error(`${mhdPath}: ElementDataFile ${dataFile} is not supported`);
  const raw = readFileSync(join(dirname(mhdPath), dataFile));
  const count = dims[0] * dims[1] * dims[2];
  if (raw.length < count * BYTES_PER_VOXEL[type]) throw new Error(`${mhdPath}: ${dataFile} holds ${raw.length} bytes, ${count} voxels need ${count * BYTES_PER_VOXEL[type]}`);
  const data = allocateVoxels(type, count);
  raw.copy(Buffer.from(data.buffer, data.byteOffset, data.byteLength), 0, 0, data.byteLength);
  const rasSign = [-1, -1, 1];
  const affine: Matrix4 = [0, 1, 2].map((r) => [
    ...[0, 1, 2].map((c) => rasSign[r] * matrix[c * 3 + r] * spacing[c]),
    rasSign[r] * offset[r],
  ]);
  affine.push([0, 0, 0, 1]);
  return { dims, type, data, affine };
}

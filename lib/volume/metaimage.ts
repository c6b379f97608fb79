import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../dicom/writer';
import { writeStreamAtomic } from './stream';
import { type Matrix4, type Volume, type VolumeHeader, type VoxelType, BYTES_PER_VOXEL, allocateVoxels } from './types';

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

/**
 * The text header of a MetaImage, checked: geometry and element type, and the data file it names (beside
 * the header). Only what readMetaImage supports passes: 3D, uncompressed, little-endian, a separate data file.
 */
function parseMetaImageHeader(mhdPath: string): VolumeHeader & { dataFile: string } {
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
  const numbers = (key: string, count: number, fallback?: number[]) => {
    const values = fields.has(key) || !fallback ? need(key).split(/\s+/).map(Number) : fallback;
    if (values.length !== count || values.some((v) => !Number.isFinite(v))) throw new Error(`${mhdPath}: ${key} must be ${count} numbers, not "${fields.get(key)}"`);
    return values;
  };
  if (need('NDims') !== '3') throw new Error(`${mhdPath}: only 3D images are supported`);
  if ((fields.get('CompressedData') ?? 'False') !== 'False') throw new Error(`${mhdPath}: compressed MetaImage is not supported`);
  const msb = (fields.get('BinaryDataByteOrderMSB') ?? fields.get('ElementByteOrderMSB') ?? 'False') === 'True';
  if (msb) throw new Error(`${mhdPath}: big-endian MetaImage is not supported`);
  const type = TYPE_BY_ELEMENT.get(need('ElementType'));
  if (!type) throw new Error(`${mhdPath}: unsupported ElementType ${fields.get('ElementType')}`);
  const dims = numbers('DimSize', 3) as [number, number, number];
  if (dims.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`${mhdPath}: DimSize ${dims.join(' ')} is not three positive whole numbers`);
  const spacing = numbers('ElementSpacing', 3, [1, 1, 1]);
  const offset = fields.has('Offset') ? numbers('Offset', 3) : numbers('Position', 3, [0, 0, 0]);
  const matrix = fields.has('TransformMatrix') ? numbers('TransformMatrix', 9) : numbers('Rotation', 9, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const dataFile = need('ElementDataFile');
  if (dataFile === 'LOCAL' || dataFile.startsWith('LIST')) throw new Error(`${mhdPath}: ElementDataFile ${dataFile} is not supported`);
  const rasSign = [-1, -1, 1];
  const affine: Matrix4 = [0, 1, 2].map((r) => [
    ...[0, 1, 2].map((c) => rasSign[r] * matrix[c * 3 + r] * spacing[c]),
    rasSign[r] * offset[r],
  ]);
  affine.push([0, 0, 0, 1]);
  return { dims, type, affine, dataFile };
}

/** A MetaImage's geometry and element type from its .mhd alone: the data file is not opened. */
export function readMetaImageHeader(mhdPath: string): VolumeHeader {
  const { dataFile: _dataFile, ...header } = parseMetaImageHeader(mhdPath);
  return header;
}

/** Reads a MetaImage written by writeMetaImage (or ITK: uncompressed, little-endian, 3D, separate data file). */
export function readMetaImage(mhdPath: string): Volume {
  const { dataFile, ...header } = parseMetaImageHeader(mhdPath);
  const { dims, type } = header;
  const raw = readFileSync(join(dirname(mhdPath), dataFile));
  const count = dims[0] * dims[1] * dims[2];
  if (raw.length < count * BYTES_PER_VOXEL[type]) throw new Error(`${mhdPath}: ${dataFile} holds ${raw.length} bytes, ${count} voxels need ${count * BYTES_PER_VOXEL[type]}`);
  const data = allocateVoxels(type, count);
  raw.copy(Buffer.from(data.buffer, data.byteOffset, data.byteLength), 0, 0, data.byteLength);
  return { ...header, data };
}

export type VoxelType = 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';
export type VoxelArray = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

/** A 4×4 matrix, row-major: world = M · [i, j, k, 1]. */
export type Matrix4 = number[][];

/**
 * A 3D image: voxels with x (i) fastest, then y (j), then z (k), and the voxel-to-world affine in
 * RAS+ millimetres, as a NIfTI sform. Pixel values are stored as scanned; value = raw·slope + intercept.
 */
export interface Volume {
  dims: [number, number, number];
  type: VoxelType;
  data: VoxelArray;
  affine: Matrix4;
  slope?: number;
  intercept?: number;
  description?: string;
}

/** What a volume file says about its voxels without them: grid, datatype, rescale and description. */
export type VolumeHeader = Omit<Volume, 'data'>;

export const BYTES_PER_VOXEL: Record<VoxelType, number> = {
  uint8: 1, int8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4, float32: 4, float64: 8,
};

export function allocateVoxels(type: VoxelType, count: number): VoxelArray {
  switch (type) {
    case 'uint8': return new Uint8Array(count);
    case 'int8': return new Int8Array(count);
    case 'int16': return new Int16Array(count);
    case 'uint16': return new Uint16Array(count);
    case 'int32': return new Int32Array(count);
    case 'uint32': return new Uint32Array(count);
    case 'float32': return new Float32Array(count);
    case 'float64': return new Float64Array(count);
  }
}

/** A typed array of `count` voxels over existing bytes; `byteOffset` must be a multiple of the voxel size. */
export function voxelView(type: VoxelType, buffer: ArrayBufferLike, byteOffset: number, count: number): VoxelArray {
  switch (type) {
    case 'uint8': return new Uint8Array(buffer, byteOffset, count);
    case 'int8': return new Int8Array(buffer, byteOffset, count);
    case 'int16': return new Int16Array(buffer, byteOffset, count);
    case 'uint16': return new Uint16Array(buffer, byteOffset, count);
    case 'int32': return new Int32Array(buffer, byteOffset, count);
    case 'uint32': return new Uint32Array(buffer, byteOffset, count);
    case 'float32': return new Float32Array(buffer, byteOffset, count);
    case 'float64': return new Float64Array(buffer, byteOffset, count);
  }
}

import { closeSync, openSync, readSync } from 'node:fs';
import { decodeFrames, decodesToStoredCells, frameByteLength } from '../dicom/pixels';
import { readDicomHeader } from '../dicom/reader';
import { Tag } from '../dicom/tags';
import { TransferSyntax } from '../dicom/uids';
import {
  type AxisLayout, NATIVE_LAYOUT, ROWS_FLIPPED_LAYOUT, applyLayout, distance, nativeAffineRas, nearestCanonicalLayout,
} from './geometry';
import { type ImageInstance, yieldToEventLoop } from './scan';
import type { SliceRef, Stack } from './stacks';
import { BYTES_PER_VOXEL, type Volume, type VoxelArray, type VoxelType, allocateVoxels } from './types';

/**
 * How rescale slope/intercept reach the file: kept in the header next to the stored integers (NIfTI
 * scl_slope/scl_inter, as dcm2niix does), or applied to the voxel values (MetaImage has no such field).
 */
export type RescaleMode = 'header' | 'values';

export interface BuiltVolume {
  volume: Volume;
  /** How the file's axes map to the DICOM stack (column, row, slice along the normal). */
  layout: AxisLayout;
  warnings: string[];
}

/**
 * dcm2niix's voxel layout, so that our files and its files compare voxel by voxel: slices ascending
 * along the normal; a 3D acquisition (MRAcquisitionType 3D, not echo-planar, more than one slice, slices
 * equidistant) is reordered to the axis permutation nearest RAS+; anything else has its rows stored
 * bottom-up.
 */
export function dcm2niixLayout(stack: Stack): AxisLayout {
  const first = stack.slices[0].instance;
  const n = stack.slices.length;
  if (first.acquisitionType === '3D' && !first.echoPlanar && n > 1) {
    if (!equidistantForDcm2niix(stack.slices)) return NATIVE_LAYOUT;
    const g = stack.geometry;
    return nearestCanonicalLayout([g.columns, g.rows, n], nativeAffineRas(g));
  }
  return ROWS_FLIPPED_LAYOUT;
}

/** dcm2niix rotates a 3D volume only when its slices are equidistant: steps within 0.2 mm or 10 % of the first. */
function equidistantForDcm2niix(slices: SliceRef[]): boolean {
  const p = (i: number) => slices[i].frame.position;
  const first = distance(p(1), p(0));
  let varies = false;
  let beyondTenPercent = false;
  for (let i = 1; i < slices.length; i++) {
    const step = distance(p(i), p(i - 1));
    if (Math.abs(step - first) > 0.2) varies = true;
    const fromFirst = distance(p(i), p(0)) - distance(p(i - 1), p(0));
    if (i >= 2 && Math.abs(first - fromFirst) > 0.1 * Math.abs(first)) beyondTenPercent = true;
  }
  return !(varies && beyondTenPercent);
}

interface ValuePlan {
  rawType: VoxelType;
  outType: VoxelType;
  /** Multiply-add per slice while copying (values mode, or slopes that vary between slices). */
  convert: boolean;
  headerSlope?: number;
  headerIntercept?: number;
}

function rawTypeOf(instance: ImageInstance): VoxelType {
  const pm = instance.pixel;
  if (instance.pixelData.tag === Tag.FloatPixelData) return 'float32';
  if (instance.pixelData.tag === Tag.DoubleFloatPixelData) return 'float64';
  const signed = pm.pixelRepresentation === 1;
  if (pm.bitsAllocated === 8) return signed ? 'int8' : 'uint8';
  if (pm.bitsAllocated === 16) return signed ? 'int16' : 'uint16';
  return signed ? 'int32' : 'uint32';
}

const RANGES: Partial<Record<VoxelType, [number, number]>> = {
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
};

/** dcm2niix compares scale factors in float precision; so do we, so that the same files get the same type. */
const sameScale = (a: number, b: number) => Math.abs(a - b) <= 1.1920929e-7;

function planValues(stack: Stack, mode: RescaleMode): ValuePlan {
  const first = stack.slices[0];
  const rawType = rawTypeOf(first.instance);
  const { slope, intercept } = first.frame;
  const uniform = stack.slices.every((s) => sameScale(s.frame.slope, slope) && sameScale(s.frame.intercept, intercept));
  const identity = slope === 1 && intercept === 0;
  const pm = first.instance.pixel;
  // Unsigned 16-bit data with at most 15 stored bits fits int16 unchanged; NIfTI tools prefer int16
  // (dcm2niix does the same when the values allow it).
  const narrowRaw: VoxelType = rawType === 'uint16' && pm.bitsStored <= 15 ? 'int16' : rawType;
  if (uniform && (mode === 'header' || identity)) {
    return { rawType, outType: narrowRaw, convert: false, headerSlope: identity ? undefined : slope, headerIntercept: identity ? undefined : intercept };
  }
  if (uniform && Number.isInteger(slope) && Number.isInteger(intercept) && !rawType.startsWith('float')) {
    // Integer rescale (CT's slope 1, intercept -1024): the values stay integers; pick the narrowest type.
    const signed = pm.pixelRepresentation === 1;
    const lo = signed ? -(2 ** (pm.bitsStored - 1)) : 0;
    const hi = signed ? 2 ** (pm.bitsStored - 1) - 1 : 2 ** pm.bitsStored - 1;
    const ends = [lo * slope + intercept, hi * slope + intercept];
    const min = Math.min(...ends);
    const max = Math.max(...ends);
    for (const t of ['int16', 'int32'] as const) {
      const [a, b] = RANGES[t]!;
      if (min >= a && max <= b) return { rawType, outType: t, convert: true };
    }
  }
  return { rawType, outType: rawType === 'float64' ? 'float64' : 'float32', convert: true };
}

/** Bytes of the voxel buffer a stack needs once converted. */
export function volumeBytes(stack: Stack, mode: RescaleMode): number {
  const g = stack.geometry;
  return g.columns * g.rows * stack.slices.length * BYTES_PER_VOXEL[planValues(stack, mode).outType];
}

/**
 * One voxel buffer reused for every volume of a study: stacks are converted and written one at a
 * time, so each needs the buffer only until its file is written. Sized up front for the largest
 * volume, it keeps peak memory at one volume instead of whatever the garbage collector has not yet
 * freed of the previous ones.
 */
export class VoxelArena {
  private buffer: ArrayBuffer;

  constructor(bytes = 0) {
    this.buffer = new ArrayBuffer(bytes);
  }

  /** A typed array over the start of the buffer; the previous one handed out becomes invalid. */
  take(type: VoxelType, count: number): VoxelArray {
    const bytes = count * BYTES_PER_VOXEL[type];
    if (bytes > this.buffer.byteLength) this.buffer = new ArrayBuffer(bytes);
    switch (type) {
      case 'uint8': return new Uint8Array(this.buffer, 0, count);
      case 'int8': return new Int8Array(this.buffer, 0, count);
      case 'int16': return new Int16Array(this.buffer, 0, count);
      case 'uint16': return new Uint16Array(this.buffer, 0, count);
      case 'int32': return new Int32Array(this.buffer, 0, count);
      case 'uint32': return new Uint32Array(this.buffer, 0, count);
      case 'float32': return new Float32Array(this.buffer, 0, count);
      case 'float64': return new Float64Array(this.buffer, 0, count);
    }
  }
}

function viewAs(type: VoxelType, bytes: Uint8Array, count: number): VoxelArray {
  const size = BYTES_PER_VOXEL[type];
  let b = bytes;
  // Typed arrays need aligned offsets; decoded frames from a shared pool may not be.
  if (b.byteOffset % size !== 0) b = new Uint8Array(b);
  const args = [b.buffer, b.byteOffset, count] as const;
  switch (type) {
    case 'uint8': return new Uint8Array(...args);
    case 'int8': return new Int8Array(...args);
    case 'int16': return new Int16Array(...args);
    case 'uint16': return new Uint16Array(...args);
    case 'int32': return new Int32Array(...args);
    case 'uint32': return new Uint32Array(...args);
    case 'float32': return new Float32Array(...args);
    case 'float64': return new Float64Array(...args);
  }
}

/**
 * Clears bits above BitsStored (unsigned) or sign-extends from BitsStored (signed). Well-formed data is
 * unchanged; old files carrying overlay bits or garbage in the high bits get their intended values.
 */
function fixStoredBits(data: VoxelArray, instance: ImageInstance): void {
  const { bitsStored, bitsAllocated, pixelRepresentation } = instance.pixel;
  if (bitsStored >= bitsAllocated || data instanceof Float32Array || data instanceof Float64Array) return;
  if (pixelRepresentation === 1) {
    const shift = 32 - bitsStored;
    for (let i = 0; i < data.length; i++) data[i] = (data[i] << shift) >> shift;
  } else {
    const mask = bitsStored >= 32 ? 0xffffffff : 2 ** bitsStored - 1;
    for (let i = 0; i < data.length; i++) data[i] = (data[i] & mask) >>> 0;
  }
}

/** Uncompressed little endian: slices are read from the file straight into the volume. */
const NATIVE_LITTLE_ENDIAN = new Set<string>([TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRLittleEndian]);

/** Where each native axis (column, row, slice) moves in the output array, as a signed stride, plus the start. */
function stridesFor(nativeDims: [number, number, number], layout: AxisLayout): { base: number; strides: [number, number, number] } {
  const outDims = layout.from.map((a) => nativeDims[a]);
  const outStrides = [1, outDims[0], outDims[0] * outDims[1]];
  const strides: [number, number, number] = [0, 0, 0];
  let base = 0;
  layout.from.forEach((a, o) => {
    strides[a] = layout.reversed[o] ? -outStrides[o] : outStrides[o];
    if (layout.reversed[o]) base += (outDims[o] - 1) * outStrides[o];
  });
  return { base, strides };
}

/** Reverses a slice stored as `rows` rows of `columns` voxels: its rows' order, each row, or both. */
function reverseInPlace(region: VoxelArray, rows: number, columns: number, reverseColumns: boolean, reverseRowOrder: boolean): void {
  if (reverseColumns && reverseRowOrder) {
    region.reverse();
  } else if (reverseColumns) {
    for (let j = 0; j < rows; j++) region.subarray(j * columns, (j + 1) * columns).reverse();
  } else if (reverseRowOrder) {
    const temp = region.slice(0, columns);
    for (let top = 0, bottom = rows - 1; top < bottom; top++, bottom--) {
      temp.set(region.subarray(top * columns, (top + 1) * columns));
      region.copyWithin(top * columns, bottom * columns, (bottom + 1) * columns);
      region.set(temp, bottom * columns);
    }
  }
}

/** An unsigned integer view of the same bytes (float64 stays float64: it is copied bit for bit either way). */
function unsignedView(a: VoxelArray): Uint8Array | Uint16Array | Uint32Array | Float64Array {
  switch (a.BYTES_PER_ELEMENT) {
    case 1: return new Uint8Array(a.buffer, a.byteOffset, a.length);
    case 2: return new Uint16Array(a.buffer, a.byteOffset, a.length);
    case 4: return new Uint32Array(a.buffer, a.byteOffset, a.length);
    default: return new Float64Array(a.buffer, a.byteOffset, a.length);
  }
}

/**
 * Copies a slice into the volume along signed strides: in one copy when the whole slice stays contiguous,
 * whole rows when a row stays a row, else voxel by voxel.
 */
function scatter(dst: VoxelArray, src: VoxelArray, base: number, strides: number[], rows: number, columns: number): void {
  const [si, sj] = strides;
  const plane = rows * columns;
  if (si === 1 && sj === columns) {
    dst.set(src.subarray(0, plane), base);
    return;
  }
  if (si === -1 && sj === -columns) {
    const start = base - (plane - 1);
    dst.set(src.subarray(0, plane), start);
    dst.subarray(start, start + plane).reverse();
    return;
  }
  for (let j = 0; j < rows; j++) {
    const rowStart = j * columns;
    const o = base + j * sj;
    if (si === 1) {
      dst.set(src.subarray(rowStart, rowStart + columns), o);
    } else if (si === -1) {
      const start = o - (columns - 1);
      dst.set(src.subarray(rowStart, rowStart + columns), start);
      dst.subarray(start, start + columns).reverse();
    } else {
      for (let i = 0, p = o; i < columns; i++, p += si) dst[p] = src[rowStart + i];
    }
  }
}

/** As scatter, applying value = raw × slope + intercept. */
function scatterScaled(dst: VoxelArray, src: VoxelArray, base: number, strides: number[], rows: number, columns: number, slope: number, intercept: number): void {
  const [si, sj] = strides;
  for (let j = 0; j < rows; j++) {
    const rowStart = j * columns;
    for (let i = 0, p = base + j * sj; i < columns; i++, p += si) dst[p] = src[rowStart + i] * slope + intercept;
  }
}

/** Reads one uncompressed little-endian frame straight from the file into `target` bytes. */
function readNativeFrame(fd: number, instance: ImageInstance, frame: number, target: Uint8Array): void {
  const bytes = frameByteLength(instance.pixel);
  const position = instance.pixelData.offset + frame * bytes;
  let got = 0;
  while (got < bytes) {
    const n = readSync(fd, target, got, bytes - got, position + got);
    if (n <= 0) throw new Error(`${instance.file}: pixel data ends after ${got} of ${bytes} bytes of frame ${frame + 1}`);
    got += n;
  }
}

/**
 * Decodes a stack's slices into one volume in dcm2niix's layout. Uncompressed little-endian slices are
 * read from the file straight into the volume buffer; other transfer syntaxes go through decodeFrames,
 * one instance at a time. Memory: the volume (in `arena` when given), plus one decoded instance.
 */
export async function buildVolume(stack: Stack, mode: RescaleMode, arena?: VoxelArena, layout: AxisLayout = dcm2niixLayout(stack)): Promise<BuiltVolume> {
  const g = stack.geometry;
  const nativeDims: [number, number, number] = [g.columns, g.rows, stack.slices.length];
  const { dims, affine } = applyLayout(nativeDims, nativeAffineRas(g), layout);
  const plan = planValues(stack, mode);
  const plane = g.columns * g.rows;
  // Every voxel is written below (each slice fills its plane), so a reused buffer needs no clearing.
  const data = arena ? arena.take(plan.outType, plane * stack.slices.length) : allocateVoxels(plan.outType, plane * stack.slices.length);
  const { base, strides } = stridesFor(nativeDims, layout);
  const warnings: string[] = [];
  const photometric = stack.slices[0].instance.pixel.photometricInterpretation;
  if (photometric === 'MONOCHROME1') warnings.push('MONOCHROME1 (white is low): values are stored as in the file, not inverted (as dcm2niix does)');

  // When a slice fills one contiguous block of the output (rows and columns at most reversed), it is
  // read straight into place and reversed there; otherwise it goes through scratch and is scattered.
  const sliceContiguous = Math.abs(strides[0]) === 1 && Math.abs(strides[1]) === g.columns;
  const regionOffset = (strides[0] < 0 ? (g.columns - 1) * strides[0] : 0) + (strides[1] < 0 ? (g.rows - 1) * strides[1] : 0);
  const scratch = allocateVoxels(plan.rawType, plane);
  const scratchBytes = new Uint8Array(scratch.buffer, scratch.byteOffset, scratch.byteLength);
  const size = BYTES_PER_VOXEL[plan.outType];
  const sameBits = !plan.convert && size === BYTES_PER_VOXEL[plan.rawType];
  let cached: { path: string; frames: Buffer[] } | undefined;
  let fd: number | undefined;
  let fdPath: string | undefined;
  try {
    for (let s = 0; s < stack.slices.length; s++) {
      if (s % 16 === 15) await yieldToEventLoop();
      const { instance, frame } = stack.slices[s];
      const sliceBase = base + s * strides[2];
      const native = NATIVE_LITTLE_ENDIAN.has(instance.transferSyntaxUID) && !instance.pixelData.encapsulated;
      // 1. Get the raw slice: straight into the volume when nothing needs converting, else into scratch.
      let raw: VoxelArray;
      let decodedValues = false;
      if (native) {
        if (fd === undefined || fdPath !== instance.path) {
          if (fd !== undefined) closeSync(fd);
          fd = openSync(instance.path, 'r');
          fdPath = instance.path;
        }
        const handle: number = fd;
        if (sameBits && sliceContiguous) {
          const target = new Uint8Array(data.buffer, data.byteOffset + (sliceBase + regionOffset) * size, plane * size);
          readNativeFrame(handle, instance, frame.frame, target);
          const region = viewAs(plan.rawType, target, plane);
          fixStoredBits(region, instance);
          reverseInPlace(region, g.rows, g.columns, strides[0] < 0, strides[1] < 0);
          continue;
        }
        readNativeFrame(handle, instance, frame.frame, scratchBytes);
        raw = scratch;
      } else {
        // JPEG, JPEG-LS and JPEG 2000 decoders return the sample values of their code stream, whose
        // signedness can disagree with PixelRepresentation (pydicom's J2K_pixelrep_mismatch): trust the
        // decoder there, as dcm2niix and pydicom do; uncompressed and RLE bytes are as stored.
        decodedValues = !decodesToStoredCells(instance.transferSyntaxUID);
        if (cached?.path !== instance.path) {
          cached = undefined; // let the previous instance's frames go before decoding the next
          const file = readDicomHeader(instance.path);
          cached = { path: instance.path, frames: await decodeFrames(instance.path, file) };
        }
        const bytes = cached.frames[frame.frame];
        if (!bytes) throw new Error(`${instance.file}: frame ${frame.frame + 1} is missing`);
        raw = viewAs(plan.rawType, bytes, plane);
      }
      if (!decodedValues) fixStoredBits(raw, instance);
      // 2. Place it: whole rows where they stay rows, else voxel by voxel.
      if (plan.convert) {
        scatterScaled(data, raw, sliceBase, strides, g.rows, g.columns, frame.slope, frame.intercept);
      } else if (sameBits) {
        // Same bits, whatever the signedness: copying through unsigned views keeps the loop monomorphic.
        scatter(unsignedView(data), unsignedView(raw), sliceBase, strides, g.rows, g.columns);
      } else {
        scatter(data, raw, sliceBase, strides, g.rows, g.columns);
      }
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return {
    volume: { dims, type: plan.outType, data, affine, slope: plan.headerSlope, intercept: plan.headerIntercept },
    layout,
    warnings,
  };
}

/**
 * From a parser volume back to the DICOM stack it came from. The parser stores voxels in dcm2niix's layout
 * (rows bottom-up, 3D acquisitions permuted towards RAS), and records in series-images.json how each file
 * axis runs over the stack ("+column", "-row", "+slice", ...). Writers of DICOM derived objects (SEG,
 * RTSTRUCT) need the opposite view: slice s of the stack (ascending along the row × column normal, as
 * `slices[s]` names its SOP instance), row r, column c, exactly as the source instance lays out its pixels.
 */
import type { SeriesImageStack } from './parse';
import type { VoxelArray } from './types';

export type StackAxis = 'column' | 'row' | 'slice';

export interface NativeLayout {
  /** Columns, rows and slices of the DICOM stack. */
  columns: number;
  rows: number;
  slices: number;
  /** For each native axis: the file axis (0 = i, 1 = j, 2 = k) it runs along, and whether it runs backwards. */
  fileAxis: Record<StackAxis, { axis: 0 | 1 | 2; reversed: boolean }>;
  /** The file's voxel strides along i, j, k. */
  dims: [number, number, number];
}

/** Reads a stack's `axes` (from series-images.json) into a layout; refuses one that does not name each native axis once. */
export function nativeLayout(stack: Pick<SeriesImageStack, 'axes' | 'dims'>): NativeLayout {
  const fileAxis = {} as NativeLayout['fileAxis'];
  stack.axes.forEach((text, axis) => {
    const m = /^([+-])(column|row|slice)$/.exec(text);
    if (!m) throw new Error(`series-images.json: axis ${'ijk'[axis]} is ${JSON.stringify(text)}, not ±column, ±row or ±slice`);
    const name = m[2] as StackAxis;
    if (fileAxis[name]) throw new Error(`series-images.json: axes ${stack.axes.join(', ')} name ${name} twice`);
    fileAxis[name] = { axis: axis as 0 | 1 | 2, reversed: m[1] === '-' };
  });
  const size = (name: StackAxis) => stack.dims[fileAxis[name].axis];
  return { columns: size('column'), rows: size('row'), slices: size('slice'), fileAxis, dims: stack.dims };
}

/** The file voxel index of native (column, row, slice). */
export function fileIndexOf(layout: NativeLayout, column: number, row: number, slice: number): number {
  const ijk = [0, 0, 0];
  const place = (name: StackAxis, value: number, size: number) => {
    const { axis, reversed } = layout.fileAxis[name];
    ijk[axis] = reversed ? size - 1 - value : value;
  };
  place('column', column, layout.columns);
  place('row', row, layout.rows);
  place('slice', slice, layout.slices);
  return (ijk[2] * layout.dims[1] + ijk[1]) * layout.dims[0] + ijk[0];
}

/**
 * Native slice `slice` of a volume in the file layout: rows × columns values, row by row, as the source
 * instance stores its pixels. `into` takes them instead of a new array of the volume's type.
 */
export function nativeSlice<T extends VoxelArray>(layout: NativeLayout, data: T, slice: number, into?: T): T {
  if (slice < 0 || slice >= layout.slices) throw new RangeError(`slice ${slice} is outside the stack's ${layout.slices} slices`);
  const count = layout.rows * layout.columns;
  const out = into ?? (new (data.constructor as new (n: number) => T)(count));
  // Stride of one native column and one native row step in the file, and the file index of (0, 0, slice).
  const start = fileIndexOf(layout, 0, 0, slice);
  const columnStep = layout.columns > 1 ? fileIndexOf(layout, 1, 0, slice) - start : 0;
  const rowStep = layout.rows > 1 ? fileIndexOf(layout, 0, 1, slice) - start : 0;
  for (let row = 0, n = 0; row < layout.rows; row++) {
    let index = start + row * rowStep;
    for (let column = 0; column < layout.columns; column++, n++, index += columnStep) out[n] = data[index];
  }
  return out;
}

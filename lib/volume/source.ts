/**
 * The DICOM series a label volume was computed on, as writers of derived objects (SEG, RTSTRUCT) need it:
 * every slice's SOP instance and position, the shared geometry, the first instance's header for copying
 * the patient, study and equipment modules, and how the label volume's voxels map onto the slices.
 *
 * The mapping comes from geometry alone (the mask's affine against each instance's ImagePositionPatient,
 * ImageOrientationPatient and PixelSpacing), so a mask from this package's parser, from dcm2niix or from any
 * tool that writes a correct NIfTI affine works, and a mask on another grid is refused with the reason.
 */
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DicomDataset } from '../dicom/dataset';
import { filesUnder } from '../dicom/files';
import { readDicomHeader } from '../dicom/reader';
import { Tag } from '../dicom/tags';
import { type Vec3, applyAffine, cross, dot } from './geometry';
import type { NativeLayout, StackAxis } from './native';
import type { DicomMetadataFile } from './parse';
import type { Matrix4 } from './types';

export interface SourceSlice {
  sopInstanceUID: string;
  sopClassUID: string;
  file: string;
  /** ImagePositionPatient (LPS mm): the centre of the first pixel. */
  position: Vec3;
}

export interface SourceSeries {
  studyInstanceUID: string;
  seriesInstanceUID: string;
  frameOfReferenceUID?: string;
  modality?: string;
  rows: number;
  columns: number;
  /** PixelSpacing as DICOM has it: [between rows, between columns] in mm. */
  pixelSpacing: [number, number];
  /** ImageOrientationPatient: the row direction (along increasing column), then the column direction (LPS). */
  orientation: [number, number, number, number, number, number];
  /** Row × column: the direction slices are sorted along. */
  normal: Vec3;
  sliceThickness?: number;
  /** Sorted ascending along the normal. */
  slices: SourceSlice[];
  /** The header of the first slice's instance, for the modules a derived object copies. */
  header: DicomDataset;
}

export class SourceSeriesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceSeriesError';
  }
}

/**
 * Reads the headers of `files` (or of every file below a folder) and returns the image series
 * `seriesInstanceUID`, or the only one there. Files that are not DICOM, or of other series, are passed over.
 */
export function readSourceSeries(filesOrDir: string | string[], seriesInstanceUID?: string): SourceSeries {
  const files = typeof filesOrDir === 'string' ? (statSync(filesOrDir).isDirectory() ? filesUnder(filesOrDir) : [filesOrDir]) : filesOrDir;
  const bySeries = new Map<string, Array<{ file: string; dataset: DicomDataset }>>();
  const unreadable: string[] = [];
  for (const file of files) {
    let dataset: DicomDataset;
    try {
      dataset = readDicomHeader(file).dataset;
    } catch (err) {
      // A missing file named by the job is an error: its slice would be missing from the derived object.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new SourceSeriesError(`source instance ${file} is missing`);
      unreadable.push(file);
      continue;
    }
    const series = dataset.string(Tag.SeriesInstanceUID) ?? '';
    if (seriesInstanceUID && series !== seriesInstanceUID) continue;
    if (!bySeries.has(series)) bySeries.set(series, []);
    bySeries.get(series)!.push({ file, dataset });
  }
  if (bySeries.size === 0) {
    throw new SourceSeriesError(
      seriesInstanceUID ? `no instance of series ${seriesInstanceUID} among ${files.length} file(s)` : `no DICOM instance among ${files.length} file(s)${unreadable.length ? ` (${unreadable.length} unreadable)` : ''}`,
    );
  }
  if (bySeries.size > 1) throw new SourceSeriesError(`the files hold ${bySeries.size} series (${[...bySeries.keys()].slice(0, 3).join(', ')}…): name the one the mask was made on`);
  const [[uid, instances]] = [...bySeries.entries()];
  const first = instances[0].dataset;
  const orientation = first.numbers(Tag.ImageOrientationPatient);
  const spacing = first.numbers(Tag.PixelSpacing);
  const rows = first.number(Tag.Rows);
  const columns = first.number(Tag.Columns);
  if (orientation.length !== 6 || spacing.length !== 2 || !rows || !columns) {
    throw new SourceSeriesError(`series ${uid} is not a stack of planar images (ImageOrientationPatient, PixelSpacing, Rows and Columns are needed)`);
  }
  if (first.number(Tag.NumberOfFrames) && (first.number(Tag.NumberOfFrames) ?? 1) > 1) {
    throw new SourceSeriesError(`series ${uid} is a multi-frame image: derived objects are written for single-frame source series only`);
  }
  const normal = cross(orientation.slice(0, 3), orientation.slice(3, 6));
  const slices: SourceSlice[] = instances.map(({ file, dataset }) => {
    const position = dataset.numbers(Tag.ImagePositionPatient);
    const sop = dataset.string(Tag.SOPInstanceUID);
    const iop = dataset.numbers(Tag.ImageOrientationPatient);
    if (position.length !== 3 || !sop) throw new SourceSeriesError(`${file}: no ImagePositionPatient or SOPInstanceUID`);
    if (iop.length !== 6 || iop.some((v, i) => Math.abs(v - orientation[i]) > 1e-3)) throw new SourceSeriesError(`${file}: its orientation differs from the rest of series ${uid}: one mask cannot cover both`);
    if (dataset.number(Tag.Rows) !== rows || dataset.number(Tag.Columns) !== columns) throw new SourceSeriesError(`${file}: its matrix differs from the rest of series ${uid}`);
    return { sopInstanceUID: sop, sopClassUID: dataset.string(Tag.SOPClassUID) ?? '', file, position: position as Vec3 };
  });
  slices.sort((a, b) => dot(normal, a.position) - dot(normal, b.position));
  return {
    studyInstanceUID: first.string(Tag.StudyInstanceUID) ?? '',
    seriesInstanceUID: uid,
    frameOfReferenceUID: first.string(Tag.FrameOfReferenceUID),
    modality: first.string(Tag.Modality),
    rows,
    columns,
    pixelSpacing: [spacing[0], spacing[1]],
    orientation: orientation as SourceSeries['orientation'],
    normal,
    sliceThickness: first.number(Tag.SliceThickness),
    slices,
    header: instances.find((i) => i.file === slices[0].file)!.dataset,
  };
}

/** The source series of a job, through the parser's dicom-metadata.json (which lists every instance's file). */
export function readJobSourceSeries(parserDir: string, metadata: DicomMetadataFile, seriesInstanceUID: string): SourceSeries {
  const dicomDir = resolve(parserDir, metadata.dicomFolder);
  const series = metadata.studies.flatMap((s) => s.series).find((s) => s.SeriesInstanceUID === seriesInstanceUID);
  if (!series) throw new SourceSeriesError(`series ${seriesInstanceUID} is not in the job's dicom-metadata.json`);
  return readSourceSeries(series.instances.map((i) => join(dicomDir, i.file)), seriesInstanceUID);
}

/** DICOM LPS to NIfTI RAS and back: x and y change sign. */
function lpsToRas(v: readonly number[]): Vec3 {
  return [-v[0], -v[1], v[2]];
}

/**
 * How a mask's voxels (dims, RAS affine) lie on the source series' slices, checked: each file axis must run
 * along the source's columns, rows or slices (either way) with their spacing, the sizes must match, and every
 * slice's first pixel must fall on a voxel centre (within a tenth of a voxel). Anything else is refused,
 * naming what differs, rather than written as a derived object that points at the wrong pixels.
 */
export function layoutOnSource(mask: { dims: [number, number, number]; affine: Matrix4 }, source: SourceSeries): NativeLayout {
  const steps: Record<StackAxis, Vec3> = {
    column: lpsToRas(source.orientation.slice(0, 3).map((v) => v * source.pixelSpacing[1])),
    row: lpsToRas(source.orientation.slice(3, 6).map((v) => v * source.pixelSpacing[0])),
    slice: source.slices.length > 1 ? lpsToRas(source.slices[1].position.map((v, i) => v - source.slices[0].position[i])) : lpsToRas(source.normal.map((v) => v * (source.sliceThickness || 1))),
  };
  const sizes: Record<StackAxis, number> = { column: source.columns, row: source.rows, slice: source.slices.length };
  const fileAxis = {} as NativeLayout['fileAxis'];
  const describe = () => `mask ${mask.dims.join('×')} vs series ${source.columns}×${source.rows}×${source.slices.length}`;
  for (let axis = 0 as 0 | 1 | 2; axis < 3; axis = (axis + 1) as 0 | 1 | 2) {
    const column: Vec3 = [mask.affine[0][axis], mask.affine[1][axis], mask.affine[2][axis]];
    const length = Math.hypot(...column);
    let matched: StackAxis | undefined;
    for (const name of ['column', 'row', 'slice'] as StackAxis[]) {
      const step = steps[name];
      const cosine = dot(column, step) / (length * Math.hypot(...step));
      if (Math.abs(cosine) < 0.999) continue;
      if (Math.abs(length - Math.hypot(...step)) > 0.01 * Math.hypot(...step) + 1e-4) {
        throw new SourceSeriesError(`the mask grid does not match the source series: voxel axis ${'ijk'[axis]} is ${length.toFixed(4)} mm, the series' ${name} step ${Math.hypot(...step).toFixed(4)} mm (${describe()})`);
      }
      if (fileAxis[name]) throw new SourceSeriesError(`the mask grid does not match the source series: two voxel axes run along its ${name}s`);
      fileAxis[name] = { axis, reversed: cosine < 0 };
      matched = name;
    }
    if (!matched) throw new SourceSeriesError(`the mask grid does not match the source series: voxel axis ${'ijk'[axis]} runs along none of its rows, columns or slices (${describe()})`);
    if (mask.dims[axis] !== sizes[matched]) throw new SourceSeriesError(`the mask grid does not match the source series: ${mask.dims[axis]} voxels along ${'ijk'[axis]} for ${sizes[matched]} ${matched}s (${describe()})`);
  }
  const layout: NativeLayout = { columns: source.columns, rows: source.rows, slices: source.slices.length, fileAxis, dims: mask.dims };
  // Every slice's first pixel, through the mask's affine, must be where the instance says it is.
  const voxel = Math.min(source.pixelSpacing[0], source.pixelSpacing[1], Math.hypot(...steps.slice));
  for (const [s, slice] of source.slices.entries()) {
    const ijk = [0, 0, 0];
    for (const name of ['column', 'row', 'slice'] as StackAxis[]) {
      const { axis, reversed } = fileAxis[name];
      const value = name === 'slice' ? s : 0;
      ijk[axis] = reversed ? sizes[name] - 1 - value : value;
    }
    const world = applyAffine(mask.affine, ijk);
    const expected = lpsToRas(slice.position);
    const off = Math.hypot(world[0] - expected[0], world[1] - expected[1], world[2] - expected[2]);
    if (off > 0.1 * voxel) {
      throw new SourceSeriesError(`the mask grid does not match the source series: slice ${s + 1} (${slice.sopInstanceUID}) lies ${off.toFixed(2)} mm from the mask's voxels (${describe()}; uneven or missing slices?)`);
    }
  }
  return layout;
}

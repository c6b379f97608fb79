import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { SopClass, generateUid } from '../../lib/dicom/uids';
import { type WriteDataset, writeDicomFile } from '../../lib/dicom/writer';
import { readNifti } from '../../lib/volume/nifti';
import type { ParseResult, VolumeRecord } from '../../lib/volume/parse';
import type { Matrix4, Volume } from '../../lib/volume/types';
import { allFilesUnder, runTool } from '../support/tools';

type Vec3 = [number, number, number];

const cross = (a: number[], b: number[]): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];

/** A small synthetic series, written slice by slice with lib/dicom's writer. */
export interface SeriesSpec {
  seriesNumber: number;
  description: string;
  modality?: 'MR' | 'CT';
  rows: number;
  columns: number;
  /** [between rows, between columns] mm. */
  pixelSpacing: [number, number];
  rowCosine: Vec3;
  columnCosine: Vec3;
  /** ImagePositionPatient of slice 0 (the lowest along the normal). */
  origin: Vec3;
  /** Positions along the normal, relative to slice 0, of the slices to write (gaps = missing slices). */
  offsets: number[];
  /** Instance numbering: along the normal, against it, or interleaved (odd then even). */
  order?: 'ascending' | 'descending' | 'interleaved';
  signed?: boolean;
  bitsStored?: number;
  slope?: number | ((slice: number) => number);
  intercept?: number | ((slice: number) => number);
  acquisitionType?: '2D' | '3D';
  photometric?: 'MONOCHROME1' | 'MONOCHROME2';
  /** Extra attributes for every instance (EchoNumbers, AcquisitionNumber...), or per slice. */
  extra?: WriteDataset | ((slice: number) => WriteDataset);
  /** Raw stored value of pixel (column i, row j) of slice s; default a pattern that shows flips. */
  pixel?: (i: number, j: number, s: number) => number;
  seriesInstanceUID?: string;
}

export interface WrittenSeries {
  seriesInstanceUID: string;
  files: string[];
}

/** A pattern with no symmetry: any flip, transpose or slice reordering changes it. */
export function defaultPixel(signed: boolean): (i: number, j: number, s: number) => number {
  return (i, j, s) => ((i * 7 + j * 13 + s * 31 + i * j) % 1000) - (signed ? 300 : 0);
}

export function writeSeries(dir: string, studyInstanceUID: string, spec: SeriesSpec): WrittenSeries {
  mkdirSync(dir, { recursive: true });
  const seriesInstanceUID = spec.seriesInstanceUID ?? generateUid();
  const normal = cross(spec.rowCosine, spec.columnCosine);
  const signed = spec.signed ?? false;
  const pixel = spec.pixel ?? defaultPixel(signed);
  const n = spec.offsets.length;
  const numbering = spec.order === 'descending'
    ? spec.offsets.map((_, s) => n - s)
    : spec.order === 'interleaved'
      ? spec.offsets.map((_, s) => (s % 2 === 0 ? s / 2 + 1 : Math.ceil(n / 2) + (s + 1) / 2))
      : spec.offsets.map((_, s) => s + 1);
  const files: string[] = [];
  spec.offsets.forEach((offset, s) => {
    const values = signed ? new Int16Array(spec.rows * spec.columns) : new Uint16Array(spec.rows * spec.columns);
    for (let j = 0; j < spec.rows; j++) for (let i = 0; i < spec.columns; i++) values[j * spec.columns + i] = pixel(i, j, s);
    const position = [0, 1, 2].map((a) => spec.origin[a] + offset * normal[a]);
    const slope = typeof spec.slope === 'function' ? spec.slope(s) : spec.slope;
    const intercept = typeof spec.intercept === 'function' ? spec.intercept(s) : spec.intercept;
    const extra = typeof spec.extra === 'function' ? spec.extra(s) : spec.extra;
    const path = join(dir, `s${spec.seriesNumber}-${String(s).padStart(4, '0')}.dcm`);
    writeDicomFile(path, {
      SOPClassUID: spec.modality === 'CT' ? SopClass.CtImageStorage : SopClass.MrImageStorage,
      SOPInstanceUID: generateUid(),
      Modality: spec.modality ?? 'MR',
      Manufacturer: 'Clara Test',
      SeriesDescription: spec.description,
      ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
      StudyInstanceUID: studyInstanceUID,
      SeriesInstanceUID: seriesInstanceUID,
      SeriesNumber: spec.seriesNumber,
      InstanceNumber: numbering[s],
      MRAcquisitionType: spec.modality === 'CT' ? undefined : spec.acquisitionType ?? '2D',
      SliceThickness: n > 1 ? Math.abs(spec.offsets[1] - spec.offsets[0]) : 2,
      ImagePositionPatient: position,
      ImageOrientationPatient: [...spec.rowCosine, ...spec.columnCosine],
      FrameOfReferenceUID: studyInstanceUID + '.1',
      SamplesPerPixel: 1,
      PhotometricInterpretation: spec.photometric ?? 'MONOCHROME2',
      Rows: spec.rows,
      Columns: spec.columns,
      PixelSpacing: spec.pixelSpacing,
      BitsAllocated: 16,
      BitsStored: spec.bitsStored ?? 16,
      HighBit: (spec.bitsStored ?? 16) - 1,
      PixelRepresentation: signed ? 1 : 0,
      RescaleSlope: slope,
      RescaleIntercept: intercept,
      ...extra,
      PixelData: { vr: 'OW', value: new Uint8Array(values.buffer) },
    });
    files.push(path);
  });
  return { seriesInstanceUID, files };
}


/** Transcodes every file of a folder tree with a command-line tool: `tool args... in out`. */
export function transcodeTree(source: string, target: string, tool: string, args: string[]): void {
  for (const file of allFilesUnder(source)) {
    const out = join(target, relative(source, file));
    mkdirSync(join(out, '..'), { recursive: true });
    runTool(tool, [...args, file, out]);
  }
}

export interface Dcm2niixVolume {
  file: string;
  seriesInstanceUID: string;
  volume: Volume;
}

/** Runs dcm2niix (uncompressed NIfTI, named <SeriesNumber>_<SeriesInstanceUID>[suffix]) and reads what it wrote. */
export function runDcm2niix(input: string, output: string): Dcm2niixVolume[] {
  mkdirSync(output, { recursive: true });
  const run = spawnSync('dcm2niix', ['-z', 'n', '-b', 'n', '-f', '%s_%j', '-o', output, input], { encoding: 'utf8' });
  // 8: some files not converted. dcm2niix says so for a stack it wrote but could not also equalise.
  if (run.error) throw run.error;
  if (run.status !== 0 && run.status !== 8) throw new Error(`dcm2niix exited ${run.status}: ${run.stdout}${run.stderr}`);
  return readdirSync(output)
    .filter((f) => f.endsWith('.nii'))
    .sort()
    .map((f) => {
      const m = /^\d+_([0-9.]+)/.exec(f);
      assert.ok(m, `unexpected dcm2niix output name ${f}`);
      return { file: f, seriesInstanceUID: m[1].replace(/\.$/, ''), volume: readNifti(join(output, f)) };
    });
}

/** Value of voxel n after the file's rescale (NIfTI scl_slope/scl_inter). */
export function valueAt(v: Volume, n: number): number {
  return v.data[n] * (v.slope ?? 1) + (v.intercept ?? 0);
}

export function affineError(a: Matrix4, b: Matrix4): number {
  let worst = 0;
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) worst = Math.max(worst, Math.abs(a[r][c] - b[r][c]));
  return worst;
}

export interface Comparison {
  theirs: string;
  ours: string;
  affineError: number;
  maxValueDifference: number;
  differingVoxels: number;
}

/**
 * For every volume dcm2niix wrote, finds ours (same series, same dims, nearest affine) and compares
 * geometry and rescaled values. `valueTolerance` is absolute; 0 means identical after rescale
 * (float32 results are compared at float32 precision).
 */
export function compareWithDcm2niix(result: ParseResult, theirs: Dcm2niixVolume[], valueTolerance = 0, readOurs = (v: VolumeRecord) => readNifti(join(result.outDir, v.file))): Comparison[] {
  const out: Comparison[] = [];
  for (const t of theirs) {
    const candidates = result.volumes.filter((v) => v.seriesInstanceUID === t.seriesInstanceUID && v.dims.join() === t.volume.dims.join());
    assert.ok(candidates.length > 0, `dcm2niix wrote ${t.file} (${t.volume.dims.join('×')}); we wrote no volume of that series with those dims: ${result.volumes.filter((v) => v.seriesInstanceUID === t.seriesInstanceUID).map((v) => v.dims.join('×')).join(', ') || 'none'}`);
    const best = candidates
      .map((v) => ({ v, error: affineError(v.affine, t.volume.affine) }))
      .sort((a, b) => a.error - b.error)[0];
    const ours = readOurs(best.v);
    let maxDiff = 0;
    let differing = 0;
    for (let n = 0; n < t.volume.data.length; n++) {
      const a = valueAt(ours, n);
      const b = valueAt(t.volume, n);
      const d = Math.abs(a - b);
      const floatSlack = 1e-6 * Math.max(1, Math.abs(a), Math.abs(b));
      if (d > floatSlack) differing++;
      if (d > maxDiff) maxDiff = d;
    }
    out.push({ theirs: t.file, ours: best.v.file, affineError: best.error, maxValueDifference: maxDiff, differingVoxels: valueTolerance === 0 ? differing : 0 });
    assert.ok(best.error < 1e-3, `${best.v.file} vs dcm2niix ${t.file}: affine differs by ${best.error} mm`);
    if (valueTolerance === 0) assert.equal(differing, 0, `${best.v.file} vs dcm2niix ${t.file}: ${differing} voxels differ after rescale (max ${maxDiff})`);
    else assert.ok(maxDiff <= valueTolerance, `${best.v.file} vs dcm2niix ${t.file}: values differ by up to ${maxDiff} (tolerance ${valueTolerance})`);
  }
  return out;
}

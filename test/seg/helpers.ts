import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SopClass, generateUid } from '../../lib/dicom/uids';
import { writeDicomFile } from '../../lib/dicom/writer';
import { type Vec3, cross, nativeAffineRas } from '../../lib/volume/geometry';
import { nativeSlice } from '../../lib/volume/native';
import { type SourceSeries, layoutOnSource } from '../../lib/volume/source';
import type { Matrix4, Volume } from '../../lib/volume/types';

export const PYTHON = '/usr/bin/python3';
const READBACK = join(__dirname, '..', '..', '..', 'test', 'support', 'seg_readback.py');

export interface ValidatorReport {
  errors: string[];
  warnings: string[];
  output: string;
}

/** dciodvfy (dicom3tools) on one file: its "Error" and "Warning" lines. */
export function dciodvfy(file: string): ValidatorReport {
  const run = spawnSync('dciodvfy', [file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (run.error) throw run.error;
  const output = `${run.stdout}${run.stderr}`;
  const lines = output.split('\n').map((l) => l.trim());
  return { errors: lines.filter((l) => /^Error\b/.test(l)), warnings: lines.filter((l) => /^Warning\b/.test(l)), output };
}

export interface ReadBack {
  labels: Uint8Array;
  sopInstanceUIDs: string[];
  rows: number;
  columns: number;
  frames: number;
  segmentationType: string;
  segments: Array<{ number: number; label: string }>;
  framesPerSegment: Record<string, number>;
  fractionalValues: number[] | null;
  studyInstanceUID: string;
  frameOfReferenceUID: string;
}

/** pydicom + numpy (Debian's python3) rebuild the SEG's labels on the source series (test/support/seg_readback.py). */
export function pydicomReadBack(segFile: string, sourceDir: string, scratch: string): ReadBack {
  const out = join(scratch, `readback-${Math.random().toString(36).slice(2)}.raw`);
  const run = spawnSync(PYTHON, [READBACK, segFile, sourceDir, out], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (run.error) throw run.error;
  if (run.status !== 0) throw new Error(`seg_readback.py failed (${run.status}): ${run.stderr}`);
  const summary = JSON.parse(run.stdout) as Omit<ReadBack, 'labels'>;
  return { ...summary, labels: new Uint8Array(readFileSync(out)) };
}

/**
 * The rebuilt labels equal the mask voxel for voxel: each source instance's frame (matched by SOP
 * Instance UID, pydicom's slice order being its own) against the mask's native slice of that instance.
 */
export function assertSameLabels(back: ReadBack, mask: Volume, source: SourceSeries, what: string): number {
  const layout = layoutOnSource(mask, source);
  const plane = source.rows * source.columns;
  assert.equal(back.sopInstanceUIDs.length, source.slices.length, `${what}: slices`);
  let labelled = 0;
  back.sopInstanceUIDs.forEach((sop, p) => {
    const s = source.slices.findIndex((slice) => slice.sopInstanceUID === sop);
    assert.ok(s >= 0, `${what}: ${sop} is not a source slice`);
    const expected = nativeSlice(layout, mask.data, s);
    const got = back.labels.subarray(p * plane, (p + 1) * plane);
    for (let i = 0; i < plane; i++) {
      if (got[i] !== expected[i]) assert.fail(`${what}: slice ${s} (${sop}) pixel row ${Math.floor(i / source.columns)} column ${i % source.columns}: SEG says ${got[i]}, mask ${expected[i]}`);
      if (got[i]) labelled++;
    }
  });
  return labelled;
}

interface DcmjsModule {
  data: {
    DicomMessage: { readFile(buffer: ArrayBuffer): { dict: Record<string, unknown> } };
    DicomMetaDictionary: { naturalizeDataset(dict: Record<string, unknown>): Record<string, unknown> };
  };
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dcmjs = require('dcmjs') as DcmjsModule;

/** dcmjs reads the SEG: its naturalized data set. */
export function dcmjsRead(file: string): Record<string, unknown> {
  const bytes = readFileSync(file);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(buffer).dict);
}

export interface SyntheticSeriesOptions {
  rows: number;
  columns: number;
  slices: number;
  rowCosine?: Vec3;
  columnCosine?: Vec3;
  /** [between rows, between columns] mm. */
  pixelSpacing?: [number, number];
  sliceStep?: number;
  origin?: Vec3;
  signed?: boolean;
  /** Write instances in reverse position order (InstanceNumber does not follow position). */
  reverse?: boolean;
}

export interface SyntheticSeries {
  dir: string;
  seriesInstanceUID: string;
  studyInstanceUID: string;
  /** Voxel (column, row, slice along the normal) → RAS mm: the grid a mask must be on. */
  affine: Matrix4;
  dims: [number, number, number];
}

/** A single-series MR source written with the package's own writer: any matrix, any orientation. */
export function writeSyntheticSeries(dir: string, options: SyntheticSeriesOptions): SyntheticSeries {
  mkdirSync(dir, { recursive: true });
  const rowCosine = options.rowCosine ?? [1, 0, 0];
  const columnCosine = options.columnCosine ?? [0, 1, 0];
  const normal = cross(rowCosine, columnCosine);
  const pixelSpacing = options.pixelSpacing ?? [0.9, 1.1];
  const sliceStep = options.sliceStep ?? 2.5;
  const origin = options.origin ?? [-100, -110, -20];
  const studyInstanceUID = generateUid();
  const seriesInstanceUID = generateUid();
  const frameOfReferenceUID = generateUid();
  const { rows, columns, slices } = options;
  const pixels = options.signed ? new Int16Array(rows * columns) : new Uint16Array(rows * columns);
  for (let i = 0; i < pixels.length; i++) pixels[i] = options.signed ? ((i * 37) % 2000) - 1000 : (i * 37) % 4000;
  for (let k = 0; k < slices; k++) {
    const position = [0, 1, 2].map((a) => origin[a] + normal[a] * sliceStep * k);
    writeDicomFile(join(dir, `slice-${String(k).padStart(3, '0')}.dcm`), {
      SpecificCharacterSet: 'ISO_IR 192',
      ImageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'],
      SOPClassUID: SopClass.MrImageStorage,
      SOPInstanceUID: generateUid(),
      StudyDate: '20240301',
      StudyTime: '101500',
      AccessionNumber: 'SYN0001',
      Modality: 'MR',
      Manufacturer: 'Synthetic',
      ReferringPhysicianName: null,
      StudyDescription: 'Synthetic brain',
      SeriesDescription: `Synthetic ${rows}x${columns}`,
      PatientName: 'SYNTHÉTIQUE^JOSÉ',
      PatientID: 'SYN-1',
      PatientBirthDate: '19700101',
      PatientSex: 'M',
      BodyPartExamined: 'BRAIN',
      ScanningSequence: ['GR'],
      SequenceVariant: ['SP'],
      ScanOptions: null,
      MRAcquisitionType: '3D',
      SliceThickness: sliceStep,
      EchoTime: 3,
      RepetitionTime: 2000,
      EchoTrainLength: 1,
      StudyInstanceUID: studyInstanceUID,
      SeriesInstanceUID: seriesInstanceUID,
      StudyID: '1',
      SeriesNumber: 7,
      InstanceNumber: options.reverse ? slices - k : k + 1,
      ImagePositionPatient: position,
      ImageOrientationPatient: [...rowCosine, ...columnCosine],
      FrameOfReferenceUID: frameOfReferenceUID,
      PositionReferenceIndicator: null,
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Rows: rows,
      Columns: columns,
      PixelSpacing: pixelSpacing,
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: options.signed ? 1 : 0,
      PixelData: { vr: 'OW', value: new Uint8Array(pixels.buffer) },
    });
  }
  const affine = nativeAffineRas({ rowCosine, columnCosine, pixelSpacing, sliceStep, origin, columns, rows, slices });
  return { dir, seriesInstanceUID, studyInstanceUID, affine, dims: [columns, rows, slices] };
}

/** A normalised oblique orientation: rows tilted about x then z. */
export function obliqueCosines(tiltDegrees: number, twistDegrees: number): { rowCosine: Vec3; columnCosine: Vec3 } {
  const t = (tiltDegrees * Math.PI) / 180;
  const w = (twistDegrees * Math.PI) / 180;
  const rx = (v: Vec3): Vec3 => [v[0], v[1] * Math.cos(t) - v[2] * Math.sin(t), v[1] * Math.sin(t) + v[2] * Math.cos(t)];
  const rz = (v: Vec3): Vec3 => [v[0] * Math.cos(w) - v[1] * Math.sin(w), v[0] * Math.sin(w) + v[1] * Math.cos(w), v[2]];
  return { rowCosine: rz(rx([1, 0, 0])), columnCosine: rz(rx([0, 1, 0])) };
}

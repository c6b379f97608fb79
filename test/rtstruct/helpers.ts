import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type DicomDataset } from '../../lib/dicom/dataset';
import { readDicomHeader } from '../../lib/dicom/reader';
import { SopClass } from '../../lib/dicom/uids';
import { writeDicomFile } from '../../lib/dicom/writer';
import { resolveTag } from '../../lib/dicom/dictionary';
import { derivedUid } from '../../lib/phantom/random';
import { resample } from '../../lib/infer/resample';
import { type Vec3, cross, dot, nativeAffineRas } from '../../lib/volume/geometry';
import type { SourceSeries } from '../../lib/volume/source';
import type { Matrix4, Volume } from '../../lib/volume/types';
import { runTool } from '../support/tools';

export const PYTHON = '/usr/bin/python3';

/**
 * The reference rasterizer of the unit tests: a pixel is inside when its centre lies inside an odd number of
 * contours (each contour by the crossing-number rule), the exclusive-or of DICOM's XOR technique and of
 * plastimatch --xor-contours. Written independently of the tracer, on purpose.
 */
export function rasterizeEvenOdd(contours: Float64Array[], columns: number, rows: number): Uint8Array {
  const out = new Uint8Array(columns * rows);
  for (const points of contours) {
    const n = points.length / 2;
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < columns; x++) {
        let inside = false;
        for (let a = 0, b = n - 1; a < n; b = a++) {
          const xa = points[2 * a], ya = points[2 * a + 1], xb = points[2 * b], yb = points[2 * b + 1];
          if (ya > y !== yb > y && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
        }
        if (inside) out[y * columns + x] ^= 1;
      }
    }
  }
  return out;
}

/** Whether segments p1p2 and p3p4 cross or touch (collinear overlaps included). */
function segmentsMeet(p: number[], q: number[], r: number[], s: number[]): boolean {
  const orient = (a: number[], b: number[], c: number[]) => Math.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]));
  const onSegment = (a: number[], b: number[], c: number[]) => Math.min(a[0], b[0]) <= c[0] && c[0] <= Math.max(a[0], b[0]) && Math.min(a[1], b[1]) <= c[1] && c[1] <= Math.max(a[1], b[1]);
  const o1 = orient(p, q, r), o2 = orient(p, q, s), o3 = orient(r, s, p), o4 = orient(r, s, q);
  if (o1 !== o2 && o3 !== o4) return true;
  return (o1 === 0 && onSegment(p, q, r)) || (o2 === 0 && onSegment(p, q, s)) || (o3 === 0 && onSegment(r, s, p)) || (o4 === 0 && onSegment(r, s, q));
}

/** The first pair of non-adjacent edges that meet, among all contours of a slice; undefined when none does. */
export function firstCrossing(contours: Float64Array[]): string | undefined {
  const edges: Array<{ c: number; k: number; n: number; a: number[]; b: number[] }> = [];
  contours.forEach((points, c) => {
    const n = points.length / 2;
    for (let k = 0; k < n; k++) {
      const m = (k + 1) % n;
      edges.push({ c, k, n, a: [points[2 * k], points[2 * k + 1]], b: [points[2 * m], points[2 * m + 1]] });
    }
  });
  for (let i = 0; i < edges.length; i++) {
    for (let j = i + 1; j < edges.length; j++) {
      const e = edges[i], f = edges[j];
      if (e.c === f.c && (Math.abs(e.k - f.k) === 1 || Math.abs(e.k - f.k) === e.n - 1)) continue;
      if (segmentsMeet(e.a, e.b, f.a, f.b)) return `contour ${e.c} edge ${e.k} meets contour ${f.c} edge ${f.k}`;
    }
  }
  return undefined;
}

/** Distance from a point to a closed polygon's boundary. */
export function distanceToPolygon(x: number, y: number, points: Float64Array): number {
  const n = points.length / 2;
  let best = Infinity;
  for (let a = 0; a < n; a++) {
    const b = (a + 1) % n;
    const ax = points[2 * a], ay = points[2 * a + 1], dx = points[2 * b] - ax, dy = points[2 * b + 1] - ay;
    const l2 = dx * dx + dy * dy;
    const t = l2 ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / l2)) : 0;
    best = Math.min(best, Math.hypot(x - ax - t * dx, y - ay - t * dy));
  }
  return best;
}

/** A deterministic pseudo-random generator for the unit tests' blobs. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

export interface SyntheticSeriesSpec {
  columns: number;
  rows: number;
  slices: number;
  /** [between rows, between columns] mm. */
  pixelSpacing: [number, number];
  rowCosine: Vec3;
  columnCosine: Vec3;
  sliceStep: number;
  origin: Vec3;
  seed: number;
  /** Signed 16-bit pixels. */
  signed?: boolean;
}

/** A single-series MR study written with the package's writer, and the grid a mask on it has (native layout). */
export function writeSyntheticSeries(dir: string, spec: SyntheticSeriesSpec): { dir: string; seriesInstanceUID: string; studyInstanceUID: string; dims: [number, number, number]; affine: Matrix4 } {
  mkdirSync(dir, { recursive: true });
  const studyInstanceUID = derivedUid(spec.seed, 'synthetic-study');
  const seriesInstanceUID = derivedUid(spec.seed, 'synthetic-series');
  const frameOfReferenceUID = derivedUid(spec.seed, 'synthetic-frame');
  const normal = cross(spec.rowCosine, spec.columnCosine);
  const pixels = spec.signed ? new Int16Array(spec.rows * spec.columns) : new Uint16Array(spec.rows * spec.columns);
  for (let n = 0; n < pixels.length; n++) pixels[n] = (n % spec.columns) * 3 - (spec.signed ? 200 : 0);
  for (let s = 0; s < spec.slices; s++) {
    const position = spec.origin.map((v, a) => v + normal[a] * spec.sliceStep * s) as Vec3;
    const sop = derivedUid(spec.seed, 'synthetic-instance', s);
    writeDicomFile(join(dir, `${String(spec.slices - s).padStart(4, '0')}.dcm`), {
      SpecificCharacterSet: 'ISO_IR 100',
      ImageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'],
      SOPClassUID: SopClass.MrImageStorage,
      SOPInstanceUID: sop,
      StudyDate: '20240301',
      StudyTime: '101500',
      AccessionNumber: 'SYN0001',
      Modality: 'MR',
      Manufacturer: 'Synthetic',
      ReferringPhysicianName: null,
      PatientName: 'SYNTHETIC^ODD',
      PatientID: `SYN-${spec.seed}`,
      PatientBirthDate: '19800101',
      PatientSex: 'O',
      SliceThickness: spec.sliceStep,
      StudyInstanceUID: studyInstanceUID,
      SeriesInstanceUID: seriesInstanceUID,
      StudyID: '7',
      SeriesNumber: 3,
      // Numbered against the normal, as scanners often do: the writer must sort by position, not number.
      InstanceNumber: spec.slices - s,
      ImagePositionPatient: position,
      ImageOrientationPatient: [...spec.rowCosine, ...spec.columnCosine],
      FrameOfReferenceUID: frameOfReferenceUID,
      PositionReferenceIndicator: null,
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Rows: spec.rows,
      Columns: spec.columns,
      PixelSpacing: spec.pixelSpacing,
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: spec.signed ? 1 : 0,
      PixelData: { vr: 'OW', value: new Uint8Array(pixels.buffer) },
    });
  }
  const affine = nativeAffineRas({
    rowCosine: spec.rowCosine, columnCosine: spec.columnCosine, pixelSpacing: spec.pixelSpacing, sliceStep: spec.sliceStep, origin: spec.origin,
    columns: spec.columns, rows: spec.rows, slices: spec.slices,
  });
  return { dir, seriesInstanceUID, studyInstanceUID, dims: [spec.columns, spec.rows, spec.slices], affine };
}

/** Reads an NRRD that plastimatch wrote (3D, raw or gzip, little-endian), as a volume with a RAS affine. */
export function readNrrd(path: string): Volume {
  const buffer = readFileSync(path);
  const end = buffer.indexOf('\n\n');
  const fields = new Map<string, string>();
  for (const line of buffer.subarray(0, end).toString('latin1').split('\n')) {
    const m = /^([^:#]+):\s*(.*)$/.exec(line);
    if (m) fields.set(m[1].trim(), m[2].trim());
  }
  if (fields.get('type') !== 'unsigned char' && fields.get('type') !== 'uchar') throw new Error(`${path}: NRRD type ${fields.get('type')}, expected unsigned char`);
  if (fields.get('space') !== 'left-posterior-superior') throw new Error(`${path}: NRRD space ${fields.get('space')}`);
  const dims = fields.get('sizes')!.split(/\s+/).map(Number) as [number, number, number];
  const directions = [...fields.get('space directions')!.matchAll(/\(([^)]+)\)/g)].map((m) => m[1].split(',').map(Number));
  const origin = /\(([^)]+)\)/.exec(fields.get('space origin')!)![1].split(',').map(Number);
  let raw = buffer.subarray(end + 2);
  if (fields.get('encoding') === 'gzip' || fields.get('encoding') === 'gz') raw = gunzipSync(raw);
  const sign = [-1, -1, 1];
  const affine: Matrix4 = [0, 1, 2].map((r) => [directions[0][r] * sign[r], directions[1][r] * sign[r], directions[2][r] * sign[r], origin[r] * sign[r]]);
  affine.push([0, 0, 0, 1]);
  return { dims, type: 'uint8', data: new Uint8Array(raw.buffer, raw.byteOffset, dims[0] * dims[1] * dims[2]), affine };
}

/**
 * plastimatch's reading of a structure set back onto its source series: the series to NRRD first (Debian's
 * plastimatch 1.9.4 takes the rasterization grid from --fixed, which must be an image file, not a DICOM
 * folder), then one image per ROI (--output-prefix) with --xor-contours: without it plastimatch 1.9.4 ORs the
 * contours of a slice, filling every hole.
 * Returns each ROI's image on the mask's grid, by ROI name.
 */
export function plastimatchRoundTrip(rtstruct: string, sourceDir: string, workDir: string, mask: Volume): Map<string, Uint8Array> {
  mkdirSync(workDir, { recursive: true });
  const reference = join(workDir, 'reference.nrrd');
  if (!existsSync(reference)) runTool('plastimatch', ['convert', '--input', sourceDir, '--output-img', reference]);
  const prefix = join(workDir, 'rois');
  runTool('plastimatch', ['convert', '--input', rtstruct, '--fixed', reference, '--output-prefix', prefix, '--prefix-format', 'nrrd', '--xor-contours']);
  const out = new Map<string, Uint8Array>();
  for (const name of readdirSync(prefix)) {
    if (!name.endsWith('.nrrd')) continue;
    const image = readNrrd(join(prefix, name));
    out.set(name.slice(0, -5), resample(image.data, image, mask, 'nearest', 0, new Uint8Array(mask.data.length)));
  }
  return out;
}

/** dciodvfy's verdict: every line that starts with Error or Warning. */
export function dciodvfy(file: string): { errors: string[]; warnings: string[] } {
  // dciodvfy reports on stderr and exits non-zero when it finds errors.
  const result = spawnSync('dciodvfy', [file], { encoding: 'utf8' });
  const lines = `${result.stdout}\n${result.stderr}`.split('\n').map((l) => l.trim()).filter(Boolean);
  return { errors: lines.filter((l) => l.startsWith('Error')), warnings: lines.filter((l) => l.startsWith('Warning')) };
}

/** One contour of our structure set, read back with the package's reader. */
export interface ReadContour {
  roi: number;
  sopInstanceUID: string;
  points: number[][];
}

function contourDataOf(item: DicomDataset): number[] {
  const element = item.get(resolveTag('ContourData')!);
  if (!element?.bytes) return [];
  // Written as DS, or as UN past 64 KiB (CP-1066): text either way.
  return Buffer.from(element.bytes).toString('latin1').trim().split('\\').map(Number);
}

export function readContours(file: string): { dataset: DicomDataset; contours: ReadContour[] } {
  const { dataset } = readDicomHeader(file);
  const contours: ReadContour[] = [];
  for (const roi of dataset.get(resolveTag('ROIContourSequence')!)?.items ?? []) {
    const number = roi.number(resolveTag('ReferencedROINumber')!)!;
    for (const item of roi.get(resolveTag('ContourSequence')!)?.items ?? []) {
      const values = contourDataOf(item);
      const count = item.number(resolveTag('NumberOfContourPoints')!)!;
      if (values.length !== 3 * count) throw new Error(`ROI ${number}: NumberOfContourPoints ${count} but ${values.length} values`);
      const image = item.get(resolveTag('ContourImageSequence')!)?.items?.[0];
      const points: number[][] = [];
      for (let k = 0; k < count; k++) points.push(values.slice(3 * k, 3 * k + 3));
      contours.push({ roi: number, sopInstanceUID: image?.string(resolveTag('ReferencedSOPInstanceUID')!) ?? '', points });
    }
  }
  return { dataset, contours };
}

/** The largest distance of a contour point from the plane of the slice its Contour Image Sequence names (mm). */
export function largestOffPlane(contours: ReadContour[], source: SourceSeries): number {
  const normal = cross(source.orientation.slice(0, 3), source.orientation.slice(3, 6));
  const bySop = new Map(source.slices.map((s) => [s.sopInstanceUID, s.position]));
  let worst = 0;
  for (const contour of contours) {
    const position = bySop.get(contour.sopInstanceUID);
    if (!position) throw new Error(`a contour of ROI ${contour.roi} references ${contour.sopInstanceUID}, not an image of the series`);
    for (const p of contour.points) worst = Math.max(worst, Math.abs(dot(normal, [p[0] - position[0], p[1] - position[1], p[2] - position[2]])));
  }
  return worst;
}

/** What pydicom (Debian's python3-pydicom) reads from the file: ROIs, contour counts, points, referenced images. */
export interface PydicomView {
  modality: string;
  studyInstanceUID: string;
  rois: Array<{ number: number; name: string; contours: number; points: number }>;
  referencedImages: string[];
  pointsMatchCounts: boolean;
}

export function readWithPydicom(file: string): PydicomView {
  const script = `
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
names = {r.ROINumber: r.ROIName for r in ds.StructureSetROISequence}
rois, ok = [], True
for item in ds.ROIContourSequence:
    contours = list(getattr(item, 'ContourSequence', []))
    points = 0
    for c in contours:
        ok = ok and len(c.ContourData) == 3 * int(c.NumberOfContourPoints)
        points += int(c.NumberOfContourPoints)
    rois.append({'number': int(item.ReferencedROINumber), 'name': names[item.ReferencedROINumber], 'contours': len(contours), 'points': points})
series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
print(json.dumps({'modality': ds.Modality, 'studyInstanceUID': ds.StudyInstanceUID, 'rois': rois,
  'referencedImages': [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence], 'pointsMatchCounts': ok}))
`;
  return JSON.parse(runTool(PYTHON, ['-c', script, file])) as PydicomView;
}

/** What dcmjs reads from the file (DicomMessage.readFile, naturalized). */
export function readWithDcmjs(file: string): { modality: string; contoursPerRoi: number[]; pointsPerRoi: number[] } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const dcmjs = require('dcmjs') as {
    data: { DicomMessage: { readFile(buffer: ArrayBuffer): { dict: unknown } }; DicomMetaDictionary: { naturalizeDataset(dict: unknown): Record<string, unknown> } };
  };
  const bytes = readFileSync(file);
  const message = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const natural = dcmjs.data.DicomMetaDictionary.naturalizeDataset(message.dict);
  const rois = (natural.ROIContourSequence as Array<{ ContourSequence?: Array<{ ContourData: number[] | number }> | { ContourData: number[] } }>) ?? [];
  const list = (r: (typeof rois)[number]) => (r.ContourSequence === undefined ? [] : Array.isArray(r.ContourSequence) ? r.ContourSequence : [r.ContourSequence]);
  return {
    modality: String(natural.Modality),
    contoursPerRoi: rois.map((r) => list(r).length),
    pointsPerRoi: rois.map((r) => list(r).reduce((n, c) => n + (Array.isArray(c.ContourData) ? c.ContourData.length : 1) / 3, 0)),
  };
}

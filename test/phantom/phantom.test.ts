import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { HeadModel, Tissue } from '../../lib/phantom/anatomy';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import { readNifti } from '../../lib/volume/nifti';
import type { Matrix4 } from '../../lib/volume/types';
import { allFilesUnder, runTool, scratchDir } from '../support/tools';

const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');

/** Every file under dir, as paths relative to it, sorted. */
function filesUnder(dir: string): string[] {
  return allFilesUnder(dir).map((path) => relative(dir, path)).sort();
}

/** The first python3 that can import pydicom and numpy (Debian's, when a pyenv shim shadows it). */
function pydicomPython(): string {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    const probe = spawnSync(candidate, ['-c', 'import pydicom, numpy'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  throw new Error('no python3 with pydicom and numpy (install python3-pydicom and python3-numpy)');
}

/**
 * Reads every instance with pydicom, checks the attributes the MR Image IOD requires (type 1: present
 * and not empty; type 2: present), and writes the target series, sorted by position along its normal
 * and rescaled, as raw float32 for the test to compare with the mask.
 */
const INSPECT_PY = String.raw`
import sys, os, json, glob
import numpy as np, pydicom
root, raw_out, target_uid = sys.argv[1], sys.argv[2], sys.argv[3]
TYPE1 = ['SOPClassUID', 'SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID', 'Modality', 'FrameOfReferenceUID',
         'ImageType', 'SamplesPerPixel', 'PhotometricInterpretation', 'Rows', 'Columns', 'BitsAllocated', 'BitsStored',
         'HighBit', 'PixelRepresentation', 'PixelData', 'PixelSpacing', 'ImageOrientationPatient', 'ImagePositionPatient',
         'ScanningSequence', 'SequenceVariant', 'PatientPosition']
TYPE2 = ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyDate', 'StudyTime', 'ReferringPhysicianName',
         'StudyID', 'AccessionNumber', 'SeriesNumber', 'InstanceNumber', 'Manufacturer', 'PositionReferenceIndicator',
         'SliceThickness', 'ScanOptions', 'MRAcquisitionType', 'EchoTime', 'EchoTrainLength', 'RepetitionTime']
problems, series = [], {}
for folder in sorted(os.listdir(os.path.join(root, 'dicom'))):
    items = []
    for path in sorted(glob.glob(os.path.join(root, 'dicom', folder, '*.dcm'))):
        ds = pydicom.dcmread(path)
        where = folder + '/' + os.path.basename(path)
        for kw in TYPE1:
            if kw not in ds or ds[kw].value in (None, '', b'') or (isinstance(ds[kw].value, (list, pydicom.multival.MultiValue)) and len(ds[kw].value) == 0):
                problems.append(where + ': type 1 ' + kw + ' missing or empty')
        for kw in TYPE2:
            if kw not in ds:
                problems.append(where + ': type 2 ' + kw + ' missing')
        if 'IR' in list(ds.ScanningSequence) and 'InversionTime' not in ds:
            problems.append(where + ': InversionTime missing for an IR sequence')
        if ds.file_meta.TransferSyntaxUID != '1.2.840.10008.1.2.1':
            problems.append(where + ': transfer syntax ' + str(ds.file_meta.TransferSyntaxUID))
        if ds.file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID:
            problems.append(where + ': file meta SOP Instance UID differs')
        arr = ds.pixel_array
        items.append({
            'file': os.path.basename(path), 'instanceNumber': int(ds.InstanceNumber),
            'iop': [float(v) for v in ds.ImageOrientationPatient], 'ipp': [float(v) for v in ds.ImagePositionPatient],
            'pixelSpacing': [float(v) for v in ds.PixelSpacing],
            'shape': list(arr.shape), 'dtype': str(arr.dtype), 'min': int(arr.min()), 'max': int(arr.max()),
            'slope': float(ds.RescaleSlope) if 'RescaleSlope' in ds else None,
            'intercept': float(ds.RescaleIntercept) if 'RescaleIntercept' in ds else None,
            'sopClass': str(ds.SOPClassUID), 'sop': str(ds.SOPInstanceUID), 'seriesUID': str(ds.SeriesInstanceUID),
            'studyUID': str(ds.StudyInstanceUID), 'frameOfReference': str(ds.FrameOfReferenceUID),
            'modality': str(ds.Modality), 'studyDescription': str(ds.StudyDescription),
            'seriesDescription': str(ds.SeriesDescription), 'imageType': [str(v) for v in ds.ImageType],
            'patientName': str(ds.PatientName), 'bodyPart': str(ds.BodyPartExamined), 'patientPosition': str(ds.PatientPosition),
            'fieldStrength': float(ds.MagneticFieldStrength), 'bitsAllocated': int(ds.BitsAllocated),
            'pixelRepresentation': int(ds.PixelRepresentation),
        })
        if str(ds.SeriesInstanceUID) == target_uid:
            items[-1]['_pixels'] = arr.astype(np.float32) * np.float32(ds.RescaleSlope) + np.float32(ds.RescaleIntercept)
    target = [it for it in items if it['seriesUID'] == target_uid]
    if target:
        normal = np.cross(target[0]['iop'][:3], target[0]['iop'][3:])
        target.sort(key=lambda it: float(np.dot(it['ipp'], normal)))
        np.stack([it['_pixels'] for it in target]).astype('<f4').tofile(raw_out)
        for it in target:
            del it['_pixels']
    series[folder] = items
print(json.dumps({'problems': problems, 'series': series}))
`;

interface InspectedInstance {
  file: string;
  instanceNumber: number;
  iop: number[];
  ipp: number[];
  pixelSpacing: number[];
  shape: number[];
  dtype: string;
  min: number;
  max: number;
  slope: number | null;
  intercept: number | null;
  sopClass: string;
  sop: string;
  seriesUID: string;
  studyUID: string;
  frameOfReference: string;
  modality: string;
  studyDescription: string;
  seriesDescription: string;
  imageType: string[];
  patientName: string;
  bodyPart: string;
  patientPosition: string;
  fieldStrength: number;
  bitsAllocated: number;
  pixelRepresentation: number;
}

const cross = (a: number[], b: number[]) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const dot = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const normalOf = (iop: number[]) => cross(iop.slice(0, 3), iop.slice(3));
/** RAS voxel-to-world affine applied to (i, j, k), returned in LPS. */
const worldLps = (m: Matrix4, i: number, j: number, k: number) => [0, 1, 2].map((r) => (r < 2 ? -1 : 1) * (m[r][0] * i + m[r][1] * j + m[r][2] * k + m[r][3]));

function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'phantom', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('lib/phantom', () => {
  let scratch: ReturnType<typeof scratchDir>;
  let dir: string;
  let study: PhantomStudy;
  let inspected: { problems: string[]; series: Record<string, InspectedInstance[]> };
  let targetRaw: string;
  const seriesOf = (folder: string) => inspected.series[folder];
  const folderOf = (s: PhantomStudy['series'][number]) => relative('dicom', s.dir);

  before(() => {
    scratch = scratchDir('phantom');
    dir = join(scratch.dir, 'seed3');
    study = writePhantomStudy(dir, { size: 64, slices: 24, seed: 3 });
    targetRaw = join(scratch.dir, 'target.f32');
    const json = runTool(pydicomPython(), ['-c', INSPECT_PY, dir, targetRaw, study.targetSeriesInstanceUID]);
    inspected = JSON.parse(json);
  });
  after(() => scratch.cleanup());

  it('writes the seven series of a brain MR exam and a manifest that matches the files', () => {
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'phantom.json'), 'utf8')), JSON.parse(JSON.stringify(study)));
    assert.deepEqual(study.series.map((s) => s.description), [
      '3Plane Loc', 'Ax T1 SE', 'Ax T2 FLAIR', 'Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref', 'Cor T1c rfmt', 'Sag T1c MPR',
    ]);
    assert.deepEqual(study.series.filter((s) => s.isTarget).map((s) => s.seriesInstanceUID), [study.targetSeriesInstanceUID]);
    assert.equal(Object.keys(inspected.series).length, 7);
    for (const s of study.series) {
      const files = seriesOf(folderOf(s));
      assert.equal(files.length, s.instanceCount, s.description);
      assert.equal(s.sopInstanceUIDs.length, s.instanceCount);
      assert.deepEqual(files.map((f) => f.sop).sort(), [...s.sopInstanceUIDs].sort(), s.description);
      // The manifest lists SOP UIDs in InstanceNumber order.
      assert.deepEqual([...files].sort((a, b) => a.instanceNumber - b.instanceNumber).map((f) => f.sop), s.sopInstanceUIDs);
      assert.equal(s.stacks.reduce((n, st) => n + st.sliceCount, 0), s.instanceCount);
    }
    const target = study.series.find((s) => s.isTarget)!;
    assert.deepEqual([target.rows, target.columns, target.instanceCount], [64, 64, 24]);
    assert.equal(study.series.find((s) => s.description === 'Ax T1 SE')!.instanceCount, 5);
  });

  it('writes files that dcmtk reads without a warning', () => {
    const paths = filesUnder(join(dir, 'dicom')).map((f) => join(dir, 'dicom', f));
    assert.equal(paths.length, study.series.reduce((n, s) => n + s.instanceCount, 0));
    const r = spawnSync('dcmdump', ['+P', '0008,0018', ...paths], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '');
    const uids = [...r.stdout.matchAll(/^\(0008,0018\) UI \[([0-9.]+)\]/gm)].map((m) => m[1]);
    assert.deepEqual(uids.sort(), study.series.flatMap((s) => s.sopInstanceUIDs).sort());
  });

  it('carries every attribute the MR Image IOD requires (pydicom and dciodvfy)', () => {
    assert.deepEqual(inspected.problems, []);
    for (const [folder, files] of Object.entries(inspected.series)) {
      for (const f of files) {
        assert.equal(f.sopClass, '1.2.840.10008.5.1.4.1.1.4', folder);
        assert.equal(f.modality, 'MR');
        assert.equal(f.patientName, 'PHANTOM^BRAIN');
        assert.match(f.studyDescription, /Brain/);
        assert.equal(f.bodyPart, 'BRAIN');
        assert.equal(f.patientPosition, 'HFS');
        assert.equal(f.bitsAllocated, 16);
        assert.ok(f.fieldStrength > 0);
        assert.equal(f.studyUID, study.studyInstanceUID);
        assert.equal(f.frameOfReference, study.frameOfReferenceUID, 'one frame of reference for the whole exam');
      }
    }
    for (const s of study.series) {
      const first = readdirSync(join(dir, s.dir))[0];
      const r = spawnSync('dciodvfy', [join(dir, s.dir, first)], { encoding: 'utf8' });
      assert.equal(r.error, undefined, 'dciodvfy (Debian dicom3tools) must be installed');
      const errors = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /^Error/.test(l));
      assert.deepEqual(errors, [], s.description);
    }
  });

  it('pydicom reads each series with the right shapes, encodings and rescale values', () => {
    for (const s of study.series) {
      const files = seriesOf(folderOf(s));
      for (const f of files) {
        assert.deepEqual(f.shape, [s.rows, s.columns], s.description);
        assert.equal(f.dtype, s.pixelRepresentation ? 'int16' : 'uint16', s.description);
        assert.equal(f.slope, s.rescaleSlope, s.description);
        assert.equal(f.intercept, s.rescaleIntercept, s.description);
        assert.deepEqual(f.pixelSpacing, s.pixelSpacingMm);
        const [r, c] = [f.iop.slice(0, 3), f.iop.slice(3)];
        assert.ok(Math.abs(dot(r, r) - 1) < 1e-9 && Math.abs(dot(c, c) - 1) < 1e-9 && Math.abs(dot(r, c)) < 1e-9, 'orthonormal IOP');
        assert.ok(f.max > f.min, `${s.description} has an image, not a blank`);
      }
    }
    const byDescription = (d: string) => seriesOf(folderOf(study.series.find((s) => s.description === d)!));
    const target = byDescription('Ax 3D T1c MPRAGE');
    // Oblique: neither cosine lies along an axis.
    for (const f of target) for (const v of [f.iop.slice(0, 3), f.iop.slice(3)]) assert.ok(Math.max(...v.map(Math.abs)) < 0.999, `IOP ${f.iop}`);
    // Signed pixels really hold negative stored values, and the rescale is not the identity.
    assert.ok(Math.min(...target.map((f) => f.min)) < 0);
    assert.ok(target[0].slope !== 1 && target[0].intercept !== 0);
    // Unsigned series and a series without rescale attributes.
    assert.ok(byDescription('Ax T2 FLAIR').every((f) => f.dtype === 'uint16' && f.slope === 0.5));
    assert.ok(byDescription('3Plane Loc').every((f) => f.slope === null && f.intercept === null));
    // The FLAIR has a rectangular field of view: fewer columns than rows.
    assert.ok(byDescription('Ax T2 FLAIR')[0].shape[1] < byDescription('Ax T2 FLAIR')[0].shape[0]);
  });

  it('describes the series so that the Clara selection rule picks the target alone', () => {
    const rule = {
      Modality: /^MR/i,
      StudyDescription: /Brain/i,
      ImageType: ['ORIGINAL', 'PRIMARY'],
      SeriesDescription: /^(?=.*T1c)(?!.*(ref|rfmt|[0-9]x[0-9])).*/,
    };
    const matched = Object.values(inspected.series)
      .map((files) => files[0])
      .filter((f) => rule.Modality.test(f.modality) && rule.StudyDescription.test(f.studyDescription)
        && rule.ImageType.every((v) => f.imageType.includes(v)) && rule.SeriesDescription.test(f.seriesDescription))
      .map((f) => f.seriesUID);
    assert.deepEqual(matched, [study.targetSeriesInstanceUID]);
    const imageTypes = Object.fromEntries(study.series.map((s) => [s.description, s.imageType.join('\\')]));
    assert.equal(imageTypes['3Plane Loc'], 'ORIGINAL\\PRIMARY\\LOCALIZER');
    assert.equal(imageTypes['Ax 3D T1c MPRAGE'], 'ORIGINAL\\PRIMARY\\M\\ND');
    assert.equal(imageTypes['Cor T1c rfmt'], 'DERIVED\\SECONDARY\\REFORMATTED');
    assert.equal(imageTypes['Sag T1c MPR'], 'DERIVED\\SECONDARY\\MPR');
  });

  it('holds three orientations in the localizer and orders neither files nor InstanceNumbers by position', () => {
    const loc = seriesOf('s001-3plane-loc');
    const orientations = [...new Set(loc.map((f) => f.iop.map((v) => v.toFixed(6)).join('\\')))];
    assert.equal(orientations.length, 3);
    const normals = orientations.map((o) => normalOf(o.split('\\').map(Number)));
    for (let a = 0; a < 3; a++) for (let b = a + 1; b < 3; b++) assert.ok(Math.abs(dot(normals[a], normals[b])) < 1e-9, 'mutually orthogonal planes');
    for (const o of orientations) assert.equal(loc.filter((f) => f.iop.map((v) => v.toFixed(6)).join('\\') === o).length, 3);

    const notMonotonic: string[] = [];
    let namesOutOfOrder = 0;
    for (const s of study.series.filter((x) => x.orientationKind !== 'three-plane')) {
      const files = seriesOf(folderOf(s));
      const n = normalOf(files[0].iop);
      const byPosition = [...files].sort((a, b) => dot(a.ipp, n) - dot(b.ipp, n));
      const numbers = byPosition.map((f) => f.instanceNumber);
      const rising = numbers.every((v, i) => i === 0 || v > numbers[i - 1]);
      const falling = numbers.every((v, i) => i === 0 || v < numbers[i - 1]);
      if (!rising && !falling) notMonotonic.push(s.description);
      if (byPosition.map((f) => f.file).join() !== files.map((f) => f.file).sort().join()) namesOutOfOrder++;
      // The manifest's stacks list SOP UIDs in position order.
      assert.deepEqual(byPosition.map((f) => f.sop), s.stacks[0].sopInstanceUIDs, s.description);
    }
    assert.ok(notMonotonic.includes('Ax T1 SE'), `InstanceNumber not monotonic in: ${notMonotonic}`);
    assert.equal(namesOutOfOrder, study.series.length - 1, 'file names never follow position');
  });

  it('places every series in one patient space: the manifest affines agree with the headers', () => {
    for (const s of study.series) {
      const files = seriesOf(folderOf(s));
      for (const st of s.stacks) {
        const inStack = files.filter((f) => f.iop.every((v, i) => Math.abs(v - st.imageOrientationPatient[i]) < 1e-9));
        const n = normalOf(st.imageOrientationPatient);
        inStack.sort((a, b) => dot(a.ipp, n) - dot(b.ipp, n));
        assert.equal(inStack.length, st.sliceCount);
        inStack.forEach((f, k) => {
          const expected = worldLps(st.affineRas, 0, 0, k);
          assert.ok(expected.every((v, a) => Math.abs(v - f.ipp[a]) < 1e-6), `${s.description} slice ${k}: ${f.ipp} vs ${expected}`);
        });
        if (inStack.length > 1) {
          const steps = inStack.slice(1).map((f, k) => dot(f.ipp, n) - dot(inStack[k].ipp, n));
          assert.ok(steps.every((d) => Math.abs(d - st.sliceStepMm) < 1e-6), `${s.description} steps ${steps}`);
        }
      }
    }
  });

  it('writes a ground-truth mask that lies inside the tumour and on the target grid', () => {
    const mask = readNifti(join(dir, study.maskPath));
    const target = study.series.find((s) => s.isTarget)!;
    const [nx, ny, nz] = mask.dims;
    assert.deepEqual(mask.dims, [target.columns, target.rows, target.instanceCount]);
    assert.equal(mask.type, 'uint8');
    const { centerLps, radiusMm, necrosisRadiusMm, edemaRadiusMm } = study.tumor;
    // The affine (float32 in the file) matches the target's first slice along the normal.
    const files = seriesOf(folderOf(target));
    const n = normalOf(files[0].iop);
    const sorted = [...files].sort((a, b) => dot(a.ipp, n) - dot(b.ipp, n));
    for (const k of [0, nz - 1]) {
      const world = worldLps(mask.affine, 0, 0, k);
      assert.ok(world.every((v, a) => Math.abs(v - sorted[k].ipp[a]) < 1e-3), `mask slice ${k} at ${world}, DICOM at ${sorted[k].ipp}`);
    }
    let inside = 0;
    let bad = 0;
    const values = new Float32Array(readFileSync(targetRaw).buffer.slice(0));
    assert.equal(values.length, nx * ny * nz);
    const model = new HeadModel(study.tumor);
    let rimSum = 0, rimCount = 0, necrosisSum = 0, necrosisCount = 0, whiteSum = 0, whiteCount = 0;
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const index = i + nx * (j + ny * k);
          const p = worldLps(mask.affine, i, j, k);
          const d = Math.hypot(p[0] - centerLps[0], p[1] - centerLps[1], p[2] - centerLps[2]);
          const inMask = mask.data[index] === 1;
          if (inMask) inside++;
          // float32 affine: allow a hair at the boundary.
          if (inMask !== d < radiusMm && Math.abs(d - radiusMm) > 1e-3) bad++;
          if (inMask && d > necrosisRadiusMm + 0.5) { rimSum += values[index]; rimCount++; }
          if (inMask && d < necrosisRadiusMm - 0.5) { necrosisSum += values[index]; necrosisCount++; }
          if (d > edemaRadiusMm + 2 && model.tissueAt(p[0], p[1], p[2]) === Tissue.White) { whiteSum += values[index]; whiteCount++; }
        }
      }
    }
    assert.ok(inside > 0, 'the mask is not empty');
    assert.equal(bad, 0, 'mask voxels are exactly the voxels whose centres lie in the tumour core');
    const sphereVoxels = (4 / 3) * Math.PI * radiusMm ** 3 / (target.pixelSpacingMm[0] * target.pixelSpacingMm[1] * target.stacks[0].sliceStepMm);
    assert.ok(inside > sphereVoxels * 0.6 && inside < sphereVoxels * 1.4, `${inside} voxels for a sphere of ${sphereVoxels.toFixed(0)}`);
    // The whole core fits inside the volume: no mask voxel on the border.
    for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
      if ((i === 0 || j === 0 || k === 0 || i === nx - 1 || j === ny - 1 || k === nz - 1) && mask.data[i + nx * (j + ny * k)]) assert.fail(`mask on the border at ${i},${j},${k}`);
    }
    assert.ok(rimCount > 0 && whiteCount > 100);
    const rim = rimSum / rimCount, white = whiteSum / whiteCount;
    assert.ok(rim > 1.5 * white, `enhancing rim ${rim.toFixed(0)} vs white matter ${white.toFixed(0)}`);
    if (necrosisCount > 0) assert.ok(necrosisSum / necrosisCount < white, 'the necrotic centre does not enhance');
  });

  it('is deterministic: the same seed gives byte-identical files', () => {
    const again = join(scratch.dir, 'seed3-again');
    writePhantomStudy(again, { size: 64, slices: 24, seed: 3 });
    const names = filesUnder(dir);
    assert.deepEqual(filesUnder(again), names);
    assert.ok(names.length > 60);
    for (const name of names) assert.ok(readFileSync(join(dir, name)).equals(readFileSync(join(again, name))), name);
  });

  it('moves the tumour and changes every UID with the seed, and replaces a previous run', () => {
    const other = join(scratch.dir, 'seed4');
    const first = writePhantomStudy(other, { size: 64, slices: 24, seed: 3 });
    const second = writePhantomStudy(other, { size: 64, slices: 24, seed: 4 });
    assert.notDeepEqual(second.tumor.centerLps, first.tumor.centerLps);
    assert.notEqual(second.studyInstanceUID, first.studyInstanceUID);
    assert.notEqual(second.frameOfReferenceUID, first.frameOfReferenceUID);
    const oldUids = new Set(first.series.flatMap((s) => [s.seriesInstanceUID, ...s.sopInstanceUIDs]));
    assert.ok(second.series.flatMap((s) => [s.seriesInstanceUID, ...s.sopInstanceUIDs]).every((u) => !oldUids.has(u)));
    // Nothing of the seed-3 run is left in the folder.
    assert.equal(filesUnder(join(other, 'dicom')).length, second.series.reduce((n, s) => n + s.instanceCount, 0));
  });

  it('fits a non-empty tumour inside the volume for many seeds, at the smallest grid too', () => {
    const centres = new Set<string>();
    for (const [size, slices] of [[16, 8], [40, 12]]) {
      for (let seed = 0; seed < 12; seed++) {
        const out = join(scratch.dir, `tiny-${size}-${seed}`);
        const s = writePhantomStudy(out, { size, slices, seed });
        centres.add(s.tumor.centerLps.join());
        const mask = readNifti(join(out, s.maskPath));
        const [nx, ny, nz] = mask.dims;
        let count = 0;
        for (let i = 0; i < mask.data.length; i++) count += mask.data[i];
        assert.ok(count > 0, `seed ${seed} ${size}×${slices}: empty mask`);
        // The sphere, not just its voxels, lies inside the grid: project it onto each grid axis.
        const m = mask.affine;
        const c = [-s.tumor.centerLps[0], -s.tumor.centerLps[1], s.tumor.centerLps[2]]; // RAS
        const o = [m[0][3], m[1][3], m[2][3]];
        [nx, ny, nz].forEach((dim, axis) => {
          const col = [m[0][axis], m[1][axis], m[2][axis]];
          const len = Math.hypot(...col);
          const index = dot(col, [c[0] - o[0], c[1] - o[1], c[2] - o[2]]) / (len * len);
          const reach = s.tumor.radiusMm / len;
          assert.ok(index - reach >= -1e-3 && index + reach <= dim - 1 + 1e-3, `seed ${seed} ${size}×${slices}: axis ${axis} ${index}±${reach} of ${dim}`);
        });
      }
    }
    assert.ok(centres.size >= 20, 'tumour positions vary with the seed');
  });

  it('generates the default 256×256×160 study', () => {
    const out = join(scratch.dir, 'default');
    const r = runCli([out]);
    assert.equal(r.status, 0, r.stderr);
    const manifest = JSON.parse(readFileSync(join(out, 'phantom.json'), 'utf8')) as PhantomStudy;
    assert.deepEqual([manifest.size, manifest.slices, manifest.seed], [256, 160, 1]);
    const target = manifest.series.find((s) => s.isTarget)!;
    assert.deepEqual([target.rows, target.columns, target.instanceCount], [256, 256, 160]);
    assert.equal(readdirSync(join(out, target.dir)).length, 160);
    const total = manifest.series.reduce((n, s) => n + s.instanceCount, 0);
    assert.equal(filesUnder(join(out, 'dicom')).length, total);
    const one = join(out, target.dir, readdirSync(join(out, target.dir))[0]);
    assert.equal(statSync(one).size > 256 * 256 * 2, true);
    assert.match(runTool('dcmdump', ['+P', '0028,0010', '+P', '0028,0011', one]), /\(0028,0010\) US 256[\s\S]*\(0028,0011\) US 256/);
    const mask = readNifti(join(out, manifest.maskPath));
    assert.deepEqual(mask.dims, [256, 256, 160]);
    assert.ok(mask.data.some((v) => v === 1));
  });
});

describe('clara-dicom phantom', () => {
  let scratch: ReturnType<typeof scratchDir>;
  before(() => {
    scratch = scratchDir('phantom-cli');
  });
  after(() => scratch.cleanup());

  it('writes the study and prints a summary', () => {
    const out = join(scratch.dir, 'nested', 'study');
    const r = runCli([out, '--size', '32', '--slices', '12', '--seed', '9']);
    assert.equal(r.status, 0, r.stderr);
    const manifest = JSON.parse(readFileSync(join(out, 'phantom.json'), 'utf8')) as PhantomStudy;
    assert.equal(manifest.seed, 9);
    assert.ok(existsSync(join(out, 'ground-truth', 'tumor-core.nii.gz')));
    assert.match(r.stdout, /Ax 3D T1c MPRAGE .*target/);
    assert.ok(r.stdout.includes(manifest.targetSeriesInstanceUID));
    assert.ok(r.stdout.includes(join(out, 'ground-truth', 'tumor-core.nii.gz')));
    for (const s of manifest.series) assert.equal(readdirSync(join(out, s.dir)).length, s.instanceCount);
  });

  it('exits 2 on wrong usage', () => {
    const out = join(scratch.dir, 'never');
    for (const args of [[out, '--size', '3'], [out, '--size', '2000'], [out, '--slices', '7'], [out, '--seed', 'x'], [], [out, 'extra'], [out, '--colour', 'red'], [out, '--size'], ['']]) {
      const r = runCli(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /usage: clara-dicom phantom/);
    }
    assert.equal(existsSync(out), false, 'nothing written on wrong usage');
  });

  it('exits 1 with one line when the output folder cannot be created', () => {
    const file = join(scratch.dir, 'a-file');
    writeFileSync(file, 'not a folder');
    const r = runCli([join(file, 'study'), '--size', '16', '--slices', '8']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /cannot create the output folder/);
  });
});

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dice } from '../../lib/infer/metrics';
import { resample } from '../../lib/infer/resample';
import { JobStore, readJob } from '../../lib/job';
import { parseLabels } from '../../lib/rtstruct/labels';
import { RtStructInputError, buildStructureSet, writeStructureSet } from '../../lib/rtstruct/structure-set';
import { writeJobStructureSets } from '../../lib/rtstruct/job';
import { TransferSyntax } from '../../lib/dicom/uids';
import { readDicomHeader } from '../../lib/dicom/reader';
import { Tag } from '../../lib/dicom/tags';
import { applyAffine } from '../../lib/volume/geometry';
import { readNifti, writeNifti } from '../../lib/volume/nifti';
import { readSourceSeries } from '../../lib/volume/source';
import type { Volume, VoxelType } from '../../lib/volume/types';
import { allocateVoxels } from '../../lib/volume/types';
import { type SelectedPhantomJob, copyJob, selectedPhantomJob } from '../support/clara';
import { hasTool, scratchDir } from '../support/tools';
import { dciodvfy, largestOffPlane, plastimatchRoundTrip, readContours, readWithDcmjs, readWithPydicom, writeSyntheticSeries } from './helpers';

/** A structure set case: a mask on a source series, the labels it uses. */
interface Case {
  name: string;
  mask: Volume;
  sourceDir: string;
  labels: string;
}

/** Voxels of `mask` in world (RAS) mm within `radius` of `centre`, or between two radii. */
function sphere(mask: Volume, centre: number[], outer: number, inner = -1): (n: number) => boolean {
  const [nx, ny] = mask.dims;
  return (n) => {
    const p = applyAffine(mask.affine, [n % nx, Math.floor(n / nx) % ny, Math.floor(n / (nx * ny))]);
    const r = Math.hypot(p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]);
    return r <= outer && r > inner;
  };
}

function withType(mask: Volume, type: VoxelType): Volume {
  const data = allocateVoxels(type, mask.data.length);
  for (let n = 0; n < data.length; n++) data[n] = mask.data[n];
  return { ...mask, type, data };
}

describe('lib/rtstruct structure sets: valid, read back exactly by plastimatch, pydicom and dcmjs', function () {
  this.timeout(300000);
  const scratch = scratchDir('rtstruct');
  const store = new JobStore(join(scratch.dir, 'jobs'));
  const cases: Case[] = [];
  let phantom: SelectedPhantomJob;
  let phantomDir: string;
  let axialDir: string;
  let targetDir: string;
  let axialMask: Volume;
  let threeLabels: Volume;
  const findings: string[] = [];

  before(async () => {
    phantomDir = join(scratch.dir, 'phantom');
    phantom = await selectedPhantomJob(store, phantomDir, { size: 128, slices: 64, seed: 3 });
    const { study } = phantom;
    const truth = readNifti(join(phantomDir, study.maskPath));
    const target = study.series.find((s) => s.isTarget)!;
    const axial = study.series.find((s) => s.description === 'Ax T1 SE')!;
    targetDir = join(phantomDir, target.dir);
    axialDir = join(phantomDir, axial.dir);
    // The ground truth moved onto the axial series' grid: the parser's volume of that series gives the grid.
    const axialVolume = readNifti(join(phantom.job.dir, 'parser', `${axial.seriesInstanceUID}.nii.gz`));
    axialMask = { ...axialVolume, type: 'uint8', slope: undefined, intercept: undefined, data: resample(truth.data, truth, axialVolume, 'nearest', 0, new Uint8Array(axialVolume.data.length)) };
    cases.push({ name: 'axial phantom (Ax T1 SE, ground truth resampled)', mask: axialMask, sourceDir: axialDir, labels: '["Tumor-seg"]' });
    cases.push({ name: 'oblique 3D T1c (signed source pixels)', mask: truth, sourceDir: targetDir, labels: '["Tumor-seg"]' });

    // Three labels on the oblique target: the tumour core, a shell around the head's centre (a ring with a
    // hole on most slices), and a ball that splits into islands against the shell.
    const centre = [0, 0, 5];
    const shell = sphere(truth, centre, 55, 40);
    const ball = sphere(truth, [-30, 25, 10], 16);
    threeLabels = { ...truth, data: new Uint8Array(truth.data.length) };
    for (let n = 0; n < truth.data.length; n++) threeLabels.data[n] = truth.data[n] ? 1 : ball(n) ? 3 : shell(n) ? 2 : 0;
    cases.push({ name: '3 labels on the oblique T1c', mask: threeLabels, sourceDir: targetDir, labels: '["Tumor", "Shell", "Ball"]' });
    // Signed label volumes (int16, int8) on the axial series.
    const signed = withType(axialMask, 'int16');
    const ring = sphere(signed, [0, 0, 5], 60, 45);
    for (let n = 0; n < signed.data.length; n++) if (!signed.data[n] && ring(n)) signed.data[n] = 2;
    cases.push({ name: 'signed input (int16 mask, 2 labels, axial)', mask: signed, sourceDir: axialDir, labels: '["Tumor-seg", "Ring"]' });
    cases.push({ name: 'signed input (int8 mask, oblique)', mask: withType(truth, 'int8'), sourceDir: targetDir, labels: '["Tumor-seg"]' });

    // An odd 255 × 199 matrix with unequal pixel spacing on an oblique plane, slices numbered against the normal.
    const [c, s, cb, sb] = [Math.cos(0.3), Math.sin(0.3), Math.cos(0.2), Math.sin(0.2)];
    const odd = writeSyntheticSeries(join(scratch.dir, 'odd'), {
      columns: 255, rows: 199, slices: 14, pixelSpacing: [1.1, 0.9], rowCosine: [c, s, 0], columnCosine: [-s * cb, c * cb, -sb], sliceStep: 2.5,
      origin: [-101.3, -87.9, -20.2], seed: 11,
    });
    const oddMask: Volume = { dims: odd.dims, type: 'uint8', data: new Uint8Array(255 * 199 * 14), affine: odd.affine };
    const border: Volume = { ...oddMask, data: new Uint8Array(oddMask.data.length) };
    for (let k = 0; k < 14; k++) {
      for (let y = 0; y < 199; y++) {
        for (let x = 0; x < 255; x++) {
          const n = (k * 199 + y) * 255 + x;
          // An ellipse with a hole on middle slices, in pixel units (mm sizes ≥ 10).
          const r = Math.hypot((x - 120) / 40, (y - 95) / 30);
          if (k >= 2 && k <= 11 && r <= 1 && !(k >= 5 && k <= 8 && r <= 0.4)) oddMask.data[n] = 1;
          // The border case: the first slice whole, a frame round every other slice, a block in a corner.
          const frame = x < 12 || y < 12 || x >= 255 - 12 || y >= 199 - 12;
          if (k === 0 || (frame && k % 2 === 1) || (x >= 230 && y >= 170)) border.data[n] = 1;
        }
      }
    }
    cases.push({ name: 'odd 255×199 matrix (oblique, 0.9 × 1.1 mm)', mask: oddMask, sourceDir: odd.dir, labels: '["Lesion"]' });
    cases.push({ name: 'mask touching the volume border (255×199)', mask: border, sourceDir: odd.dir, labels: '["Border"]' });
  });
  after(() => {
    scratch.cleanup();
    if (findings.length) console.log(findings.map((f) => `      ${f}`).join('\n'));
  });

  it('writes a structure set dciodvfy finds no error in, whose every contour plastimatch fills back into the mask (Dice ≥ 0.97), on its slice plane, read by pydicom and dcmjs', function () {
    assert.ok(hasTool('dciodvfy') && hasTool('plastimatch'), 'dicom3tools and plastimatch (Debian) are needed: .ci/run installs them');
    for (const [index, c] of cases.entries()) {
      const out = join(scratch.dir, 'out', String(index));
      mkdirSync(out, { recursive: true });
      const source = readSourceSeries(c.sourceDir);
      const result = writeStructureSet(c.mask, source, out, { labels: parseLabels(c.labels), tolerance: index % 2 ? 0.25 : 0, uidRoot: '1.2.826.0.1.3680043.10.1234' });
      assert.ok(result.written, c.name);
      assert.deepEqual(readdirSync(out), [`${result.sopInstanceUID}.dcm`]);
      assert.match(result.sopInstanceUID, /^1\.2\.826\.0\.1\.3680043\.10\.1234\.\d+$/);
      assert.equal(result.transferSyntaxUID, TransferSyntax.ExplicitVRLittleEndian);

      const verdict = dciodvfy(result.file);
      assert.deepEqual(verdict.errors, [], `${c.name}: dciodvfy errors`);
      if (verdict.warnings.length) findings.push(`${c.name}: dciodvfy warnings: ${verdict.warnings.join(' | ')}`);

      const { dataset, contours } = readContours(result.file);
      assert.equal(dataset.string(Tag.StudyInstanceUID), source.studyInstanceUID);
      assert.equal(dataset.string(Tag.Modality), 'RTSTRUCT');
      assert.notEqual(dataset.string(Tag.SeriesInstanceUID), source.seriesInstanceUID);
      const offPlane = largestOffPlane(contours, source);
      assert.ok(offPlane <= 0.01, `${c.name}: a contour point lies ${offPlane} mm off its slice's plane`);

      const back = plastimatchRoundTrip(result.file, c.sourceDir, join(scratch.dir, 'plastimatch', String(index)), c.mask);
      const scores: string[] = [];
      for (const roi of result.rois) {
        const image = back.get(roi.name);
        assert.ok(image, `${c.name}: plastimatch wrote no image for ${roi.name} (it wrote ${[...back.keys()].join(', ')})`);
        const truth = Uint8Array.from(c.mask.data, (v) => (v === roi.number ? 1 : 0));
        let differ = 0;
        for (let n = 0; n < truth.length; n++) if (truth[n] !== image[n]) differ++;
        const score = dice(truth, image);
        assert.ok(score >= 0.97, `${c.name}: ROI ${roi.name} Dice ${score.toFixed(4)} (${differ} voxels differ)`);
        scores.push(`${roi.name} Dice ${score.toFixed(4)} (${differ} of ${roi.voxels} voxels differ; ${roi.contours} contours, ${roi.holes} holes, ${roi.points} points)`);
      }
      findings.push(`${c.name}: ${scores.join('; ')}; largest distance off the slice plane ${offPlane.toExponential(1)} mm`);

      const py = readWithPydicom(result.file);
      assert.equal(py.modality, 'RTSTRUCT');
      assert.equal(py.studyInstanceUID, source.studyInstanceUID);
      assert.ok(py.pointsMatchCounts, 'NumberOfContourPoints × 3 values in every ContourData');
      assert.deepEqual(py.rois, result.rois.map(({ number, name, contours: n, points }) => ({ number, name, contours: n, points })));
      assert.deepEqual(py.referencedImages, source.slices.map((s) => s.sopInstanceUID), 'every image of the series, in order');
      const js = readWithDcmjs(result.file);
      assert.equal(js.modality, 'RTSTRUCT');
      assert.deepEqual(js.contoursPerRoi, result.rois.map((r) => r.contours));
      assert.deepEqual(js.pointsPerRoi, result.rois.map((r) => r.points));
    }
  });

  it('fills in every module attribute the issue names, from the source where they come from', () => {
    const source = readSourceSeries(targetDir);
    const labels = parseLabels('["Tumor", "Shell", "Ball"]', '{"Shell": {"color": "#00ff80", "type": "avoidance"}, "Ball": {"type": "CONTROL"}}');
    const now = new Date(2025, 2, 4, 5, 6, 7);
    const built = buildStructureSet(threeLabels, source, { labels, structureSetLabel: 'AI TEST', seriesDescription: 'contours', algorithm: 'brain-tumor-tc', now });
    const ds = built.dataset as Record<string, unknown>;
    assert.equal(ds.SOPClassUID, '1.2.840.10008.5.1.4.1.1.481.3');
    assert.equal(ds.Modality, 'RTSTRUCT');
    assert.equal(ds.StudyInstanceUID, phantom.study.studyInstanceUID);
    assert.equal(ds.PatientID, phantom.study.patient.id);
    assert.equal(ds.PatientName, phantom.study.patient.name);
    assert.equal(ds.AccessionNumber, phantom.study.accessionNumber);
    assert.equal(ds.StudyDate, phantom.study.studyDate);
    assert.equal(ds.FrameOfReferenceUID, phantom.study.frameOfReferenceUID);
    assert.equal(ds.Manufacturer, 'node-red-contrib-clara-dicom');
    assert.equal(ds.StructureSetLabel, 'AI TEST');
    assert.equal(ds.StructureSetDate, '20250304');
    assert.equal(ds.StructureSetTime, '050607');
    assert.equal(ds.SeriesDescription, 'contours');
    assert.equal(ds.SeriesNumber, 1004);
    assert.equal(ds.ApprovalStatus, 'UNAPPROVED');
    const [frame] = ds.ReferencedFrameOfReferenceSequence as Array<Record<string, unknown>>;
    assert.equal(frame.FrameOfReferenceUID, phantom.study.frameOfReferenceUID);
    const [study] = frame.RTReferencedStudySequence as Array<Record<string, unknown>>;
    assert.equal(study.ReferencedSOPClassUID, '1.2.840.10008.3.1.2.3.1');
    assert.equal(study.ReferencedSOPInstanceUID, phantom.study.studyInstanceUID);
    const [series] = study.RTReferencedSeriesSequence as Array<Record<string, unknown>>;
    assert.equal(series.SeriesInstanceUID, source.seriesInstanceUID);
    assert.equal((series.ContourImageSequence as unknown[]).length, 64);
    const rois = ds.StructureSetROISequence as Array<Record<string, unknown>>;
    assert.deepEqual(rois.map((r) => [r.ROINumber, r.ROIName, r.ROIGenerationAlgorithm, r.ReferencedFrameOfReferenceUID, r.ROIGenerationDescription]), [
      [1, 'Tumor', 'AUTOMATIC', phantom.study.frameOfReferenceUID, 'brain-tumor-tc'],
      [2, 'Shell', 'AUTOMATIC', phantom.study.frameOfReferenceUID, 'brain-tumor-tc'],
      [3, 'Ball', 'AUTOMATIC', phantom.study.frameOfReferenceUID, 'brain-tumor-tc'],
    ]);
    const contours = ds.ROIContourSequence as Array<Record<string, unknown>>;
    assert.deepEqual(contours.map((r) => [r.ReferencedROINumber, r.ROIDisplayColor]), [[1, [255, 0, 0]], [2, [0, 255, 128]], [3, [0, 120, 255]]]);
    const observations = ds.RTROIObservationsSequence as Array<Record<string, unknown>>;
    assert.deepEqual(observations.map((o) => [o.ObservationNumber, o.ReferencedROINumber, o.RTROIInterpretedType, o.ROIInterpreter]), [[1, 1, 'GTV', null], [2, 2, 'AVOIDANCE', null], [3, 3, 'CONTROL', null]]);
    // Each contour names the one image it lies on, and the contours of a label run up the slices.
    const bySop = new Map(source.slices.map((s, k) => [s.sopInstanceUID, k]));
    for (const roi of contours) {
      let last = -1;
      for (const item of roi.ContourSequence as Array<Record<string, unknown>>) {
        assert.equal(item.ContourGeometricType, 'CLOSED_PLANAR');
        const refs = item.ContourImageSequence as Array<Record<string, unknown>>;
        assert.equal(refs.length, 1);
        const k = bySop.get(refs[0].ReferencedSOPInstanceUID as string)!;
        assert.equal(refs[0].ReferencedSOPClassUID, source.slices[k].sopClassUID);
        assert.ok(k >= last);
        last = k;
      }
    }
    assert.ok(built.rois[1].holes > 0, 'the shell has holes');
  });

  it('writes Implicit VR Little Endian when a contour is longer than an Explicit VR DS can hold, and plastimatch, pydicom and dcmjs read it', function () {
    assert.ok(hasTool('plastimatch'), 'plastimatch (Debian) is needed: .ci/run installs it');
    const fringe = writeSyntheticSeries(join(scratch.dir, 'fringe'), {
      columns: 512, rows: 512, slices: 2, pixelSpacing: [0.7, 0.7], rowCosine: [1, 0, 0], columnCosine: [0, 1, 0], sliceStep: 3, origin: [-178.65, -190.15, -1000.3], seed: 9,
    });
    const mask: Volume = { dims: fringe.dims, type: 'uint8', data: new Uint8Array(512 * 512 * 2), affine: fringe.affine };
    // A square whose sides zigzag every pixel: one contour of about 6000 points, 180 KB of ContourData.
    for (let y = 0; y < 512; y++) {
      for (let x = 0; x < 512; x++) {
        if (y >= 10 + (x % 2) * 2 && y <= 500 - (x % 2) * 2 && x >= 10 + (y % 2) * 2 && x <= 500 - (y % 2) * 2) mask.data[y * 512 + x] = 1;
      }
    }
    const out = join(scratch.dir, 'out-fringe');
    mkdirSync(out, { recursive: true });
    const source = readSourceSeries(fringe.dir);
    const result = writeStructureSet(mask, source, out, { labels: parseLabels('["Fringe"]') });
    assert.ok(result.written);
    assert.equal(result.transferSyntaxUID, TransferSyntax.ImplicitVRLittleEndian);
    assert.equal(readDicomHeader(result.file).dataset.string(Tag.Modality), 'RTSTRUCT');
    assert.ok(result.rois[0].points > 4000, `${result.rois[0].points} points`);
    assert.deepEqual(dciodvfy(result.file).errors, []);
    const back = plastimatchRoundTrip(result.file, fringe.dir, join(scratch.dir, 'plastimatch-fringe'), mask);
    assert.equal(dice(mask.data, back.get('Fringe')!), 1);
    assert.ok(readWithPydicom(result.file).pointsMatchCounts);
    assert.deepEqual(readWithDcmjs(result.file).pointsPerRoi, [result.rois[0].points]);
  });

  it('refuses a mask on another grid, values beyond the label list and a missing source instance, writing nothing', () => {
    const out = join(scratch.dir, 'refused');
    mkdirSync(out, { recursive: true });
    const target = readSourceSeries(targetDir);
    const one = parseLabels('["Tumor-seg"]');
    assert.throws(() => writeStructureSet(axialMask, target, out, { labels: one }), (err: Error) => err instanceof RtStructInputError && /the mask grid does not match the source series/.test(err.message));
    assert.throws(() => writeStructureSet(threeLabels, target, out, { labels: one }), /mask value [23] at voxel \(\d+, \d+, \d+\) is beyond the label list: 1 label\(s\) \(1 Tumor-seg\), so only 0–1 may occur/);
    const negative = withType(readNifti(join(phantomDir, phantom.study.maskPath)), 'int16');
    negative.data[5] = -1;
    assert.throws(() => writeStructureSet(negative, target, out, { labels: one }), /mask value -1 at voxel \(5, 0, 0\) is beyond the label list/);
    const fractional = withType(readNifti(join(phantomDir, phantom.study.maskPath)), 'float32');
    fractional.data[7] = 0.5;
    assert.throws(() => writeStructureSet(fractional, target, out, { labels: one }), /mask value 0\.5 at voxel/);
    assert.throws(() => writeStructureSet(threeLabels, target, out, { labels: one, tolerance: 0.5 }), /tolerance must be from 0 to 0\.25 pixel/);
    // A source folder missing one of its instances no longer has the mask's slices.
    const partial = join(scratch.dir, 'partial');
    cpSync(targetDir, partial, { recursive: true });
    rmSync(join(partial, readdirSync(partial).sort()[10]));
    assert.throws(() => writeStructureSet(readNifti(join(phantomDir, phantom.study.maskPath)), readSourceSeries(partial), out, { labels: one }), /64 voxels along k for 63 slices/);
    assert.deepEqual(readdirSync(out), [], 'nothing written');
  });

  it('writes nothing for an empty mask, and says so', () => {
    const out = join(scratch.dir, 'empty');
    mkdirSync(out, { recursive: true });
    const result = writeStructureSet({ ...axialMask, data: new Uint8Array(axialMask.data.length) }, readSourceSeries(axialDir), out, { labels: parseLabels('') });
    assert.equal(result.written, false);
    assert.match(!result.written ? result.reason : '', /no labelled voxel/);
    assert.deepEqual(readdirSync(out), []);
  });

  it('contours every segmentation of a job into rtstruct/, and a job missing a source instance gets the reason and no file', async () => {
    const job = copyJob(store, phantom.job);
    const target = phantom.study.targetSeriesInstanceUID;
    mkdirSync(join(job.dir, 'segmentation'), { recursive: true });
    writeNifti(join(job.dir, 'segmentation', `${target}.nii.gz`), threeLabels);
    const result = await writeJobStructureSets(job.dir, { labels: parseLabels('["Tumor", "Shell", "Ball"]') });
    assert.equal(result.files.length, 1);
    assert.equal(result.files[0].sourceSeriesInstanceUID, target);
    assert.deepEqual(readdirSync(join(job.dir, 'rtstruct')), [`${result.files[0].sopInstanceUID}.dcm`]);
    assert.deepEqual(result.files[0].rois.map((r) => r.name), ['Tumor', 'Shell', 'Ball']);
    // A re-run replaces the earlier file.
    const again = await writeJobStructureSets(job.dir, { labels: parseLabels('["Tumor", "Shell", "Ball"]') });
    assert.deepEqual(readdirSync(join(job.dir, 'rtstruct')), [`${again.files[0].sopInstanceUID}.dcm`]);

    const broken = copyJob(store, phantom.job);
    mkdirSync(join(broken.dir, 'segmentation'), { recursive: true });
    writeNifti(join(broken.dir, 'segmentation', `${target}.nii.gz`), threeLabels);
    const targetFolder = join(broken.dir, 'dicom', phantom.study.series.find((s) => s.isTarget)!.dir.replace(/^dicom\//, ''));
    rmSync(join(targetFolder, readdirSync(targetFolder).sort()[3]));
    await assert.rejects(() => writeJobStructureSets(broken.dir, { labels: parseLabels('["Tumor", "Shell", "Ball"]') }), /source instance .* is missing/);
    assert.ok(!existsSync(join(broken.dir, 'rtstruct')) || readdirSync(join(broken.dir, 'rtstruct')).length === 0);
    assert.equal(readJob(broken.dir).state, 'selected', 'the lib leaves job.json to the node');
  });
});

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SopClass, generateUid } from '../../lib/dicom/uids';
import { writeDicomFile } from '../../lib/dicom/writer';
import { readNifti } from '../../lib/volume/nifti';
import { ParseInputError, parseStudy } from '../../lib/volume/parse';
import { scratchDir } from '../support/tools';
import { compareWithDcm2niix, runDcm2niix, writeSeries } from './helpers';

const STUDY = '1.2.826.0.1.3680043.10.2.1';
const AXIAL = { rowCosine: [1, 0, 0] as [number, number, number], columnCosine: [0, 1, 0] as [number, number, number] };
const steps = (n: number, step: number) => Array.from({ length: n }, (_, k) => k * step);
/** Every voxel of slice s holds s*100 + the given tag: the slice a voxel came from can be read back. */
const sliceMarker = (tag: number) => (_i: number, _j: number, s: number) => s * 100 + tag;

describe('series to stacks: splitting, sorting, duplicates, spacing', function () {
  this.timeout(60000);
  const scratch = scratchDir('volume-stacks');
  let n = 0;
  const fresh = (name: string) => {
    const dir = join(scratch.dir, `${++n}-${name}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  after(() => scratch.cleanup());

  it('sorts slices by position along the normal, whatever the InstanceNumber says', async () => {
    const dir = fresh('sort');
    // Instance numbers interleaved, files written in another order again: only positions count.
    writeSeries(join(dir, 'in'), STUDY, {
      seriesNumber: 1, description: 'interleaved', rows: 4, columns: 4, pixelSpacing: [1, 1], ...AXIAL, origin: [0, 0, 0],
      offsets: steps(6, 5), order: 'interleaved', pixel: sliceMarker(0),
    });
    const result = await parseStudy(join(dir, 'in'), join(dir, 'out'), { format: 'nifti' });
    const [v] = result.volumes;
    const volume = readNifti(join(dir, 'out', v.file));
    const perSlice = Array.from({ length: 6 }, (_, k) => volume.data[k * 16]);
    assert.deepEqual(perSlice, [0, 100, 200, 300, 400, 500]);
    assert.equal(v.spacing[2], 5);
  });

  it('splits a 3-plane localizer into three volumes, and a series with two matrix sizes into two', async () => {
    const dir = fresh('split');
    const uid = generateUid();
    const common = { seriesInstanceUID: uid, seriesNumber: 2, description: 'loc', rows: 8, columns: 8, pixelSpacing: [2, 2] as [number, number], offsets: steps(3, 10) };
    writeSeries(join(dir, 'in', 'ax'), STUDY, { ...common, ...AXIAL, origin: [-8, -8, -10] });
    writeSeries(join(dir, 'in', 'cor'), STUDY, { ...common, rowCosine: [1, 0, 0], columnCosine: [0, 0, -1], origin: [-8, -10, 8] });
    writeSeries(join(dir, 'in', 'sag'), STUDY, { ...common, rowCosine: [0, 1, 0], columnCosine: [0, 0, -1], origin: [-10, -8, 8] });
    const mixed = generateUid();
    writeSeries(join(dir, 'in', 'm1'), STUDY, { seriesInstanceUID: mixed, seriesNumber: 3, description: 'mixed', rows: 8, columns: 8, pixelSpacing: [1, 1], ...AXIAL, origin: [0, 0, 0], offsets: steps(4, 2) });
    writeSeries(join(dir, 'in', 'm2'), STUDY, { seriesInstanceUID: mixed, seriesNumber: 3, description: 'mixed', rows: 6, columns: 6, pixelSpacing: [1, 1], ...AXIAL, origin: [0, 0, 20], offsets: steps(2, 2) });
    const result = await parseStudy(join(dir, 'in'), join(dir, 'out'), { format: 'nifti-gz' });
    const loc = result.volumes.filter((v) => v.seriesInstanceUID === uid);
    assert.deepEqual(loc.map((v) => v.plane).sort(), ['axial', 'coronal', 'sagittal']);
    assert.deepEqual(loc.map((v) => v.file).sort(), [`${uid}.nii.gz`, `${uid}_stack2.nii.gz`, `${uid}_stack3.nii.gz`]);
    for (const v of loc) assert.deepEqual(v.dims.slice().sort(), [3, 8, 8]);
    assert.ok(result.warnings.some((w) => w.seriesInstanceUID === uid && /3 stacks/.test(w.message)));
    const m = result.volumes.filter((v) => v.seriesInstanceUID === mixed);
    // The stack with the most slices is the series' main volume.
    assert.deepEqual(m.map((v) => [v.file, v.dims.join('x')]), [[`${mixed}.nii.gz`, '8x8x4'], [`${mixed}_stack2.nii.gz`, '6x6x2']]);
    for (const v of result.volumes) assert.ok(existsSync(join(dir, 'out', v.file)));
  });

  it('keeps the slice with the highest AcquisitionNumber where positions repeat, and warns', async () => {
    const dir = fresh('dup');
    const uid = generateUid();
    const base = { seriesInstanceUID: uid, seriesNumber: 4, description: 'repeat', rows: 4, columns: 4, pixelSpacing: [1, 1] as [number, number], ...AXIAL, origin: [0, 0, 0] as [number, number, number], offsets: steps(5, 3) };
    writeSeries(join(dir, 'in', 'a1'), STUDY, { ...base, extra: { AcquisitionNumber: 1 }, pixel: sliceMarker(1) });
    writeSeries(join(dir, 'in', 'a2'), STUDY, { ...base, extra: { AcquisitionNumber: 2 }, pixel: sliceMarker(2) });
    const result = await parseStudy(join(dir, 'in'), join(dir, 'out'), { format: 'nifti' });
    assert.equal(result.volumes.length, 1);
    const volume = readNifti(join(dir, 'out', result.volumes[0].file));
    assert.deepEqual(volume.dims, [4, 4, 5]);
    assert.deepEqual(Array.from({ length: 5 }, (_, k) => volume.data[k * 16]), [2, 102, 202, 302, 402]);
    assert.match(result.volumes[0].warnings.join(' '), /5 slice\(s\) repeat a position.*highest AcquisitionNumber/);
  });

  it('splits echoes that share positions into one volume each', async () => {
    const dir = fresh('echo');
    const uid = generateUid();
    const base = { seriesInstanceUID: uid, seriesNumber: 5, description: 'dual echo', rows: 4, columns: 4, pixelSpacing: [1, 1] as [number, number], ...AXIAL, origin: [0, 0, 0] as [number, number, number], offsets: steps(4, 3) };
    writeSeries(join(dir, 'in', 'e1'), STUDY, { ...base, extra: { EchoNumbers: 1, EchoTime: 10 }, pixel: sliceMarker(1) });
    writeSeries(join(dir, 'in', 'e2'), STUDY, { ...base, extra: { EchoNumbers: 2, EchoTime: 80 }, pixel: sliceMarker(2) });
    const result = await parseStudy(join(dir, 'in'), join(dir, 'out'), { format: 'nifti' });
    assert.deepEqual(result.volumes.map((v) => [v.label, v.dims.join('x')]), [['echo 1', '4x4x4'], ['echo 2', '4x4x4']]);
    const second = readNifti(join(dir, 'out', result.volumes[1].file));
    assert.equal(second.data[0], 2);
  });

  it('reports missing slices: a warning by default, the stack skipped with spacingPolicy reject', async () => {
    const dir = fresh('gap');
    writeSeries(join(dir, 'in'), STUDY, {
      seriesNumber: 6, description: 'gap', rows: 4, columns: 4, pixelSpacing: [1, 1], ...AXIAL, origin: [0, 0, 0], offsets: [0, 2, 4, 6, 10, 12, 14],
    });
    const warned = await parseStudy(join(dir, 'in'), join(dir, 'warn'), { format: 'nifti' });
    assert.equal(warned.volumes.length, 1);
    assert.match(warned.volumes[0].warnings.join(' '), /about 1 missing slice\(s\): steps of 4 mm after slice 4 where the usual step is 2 mm/);
    const rejected = await parseStudy(join(dir, 'in'), join(dir, 'reject'), { format: 'nifti', spacingPolicy: 'reject' });
    assert.equal(rejected.volumes.length, 0);
    assert.equal(rejected.skipped.length, 1);
    assert.equal(rejected.skipped[0].kind, 'stack');
    assert.match(rejected.skipped[0].reason, /missing slice.*spacing policy: reject/);
  });

  it('reads enhanced multi-frame MR through its functional groups, as dcm2niix does', async () => {
    const dir = fresh('enhanced');
    const frames = 6;
    const rows = 6;
    const columns = 5;
    const pixels = new Int16Array(frames * rows * columns);
    // Frames stored in descending position order, to show that position, not frame order, sorts them.
    const zOf = (f: number) => 20 - f * 2.5;
    for (let f = 0; f < frames; f++) for (let p = 0; p < rows * columns; p++) pixels[f * rows * columns + p] = f * 100 + p - 50;
    writeDicomFile(join(dir, 'enhanced.dcm'), {
      SOPClassUID: SopClass.EnhancedMrImageStorage,
      SOPInstanceUID: generateUid(),
      Modality: 'MR',
      Manufacturer: 'Clara Test',
      StudyInstanceUID: STUDY,
      SeriesInstanceUID: generateUid(),
      SeriesNumber: 7,
      SeriesDescription: 'enhanced',
      InstanceNumber: 1,
      ImageType: ['ORIGINAL', 'PRIMARY', 'M', 'NONE'],
      MRAcquisitionType: '2D',
      FrameOfReferenceUID: STUDY + '.1',
      NumberOfFrames: frames,
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Rows: rows,
      Columns: columns,
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: 1,
      SharedFunctionalGroupsSequence: [{
        PixelMeasuresSequence: [{ PixelSpacing: [0.8, 0.6], SliceThickness: 2.5 }],
        PlaneOrientationSequence: [{ ImageOrientationPatient: [1, 0, 0, 0, 1, 0] }],
        PixelValueTransformationSequence: [{ RescaleIntercept: 5, RescaleSlope: 2, RescaleType: 'US' }],
      }],
      PerFrameFunctionalGroupsSequence: Array.from({ length: frames }, (_, f) => ({
        FrameContentSequence: [{ InStackPositionNumber: frames - f, StackID: '1', DimensionIndexValues: [1, frames - f] }],
        PlanePositionSequence: [{ ImagePositionPatient: [-2, -3, zOf(f)] }],
      })),
      PixelData: { vr: 'OW', value: new Uint8Array(pixels.buffer) },
    });
    const result = await parseStudy(dir, join(scratch.dir, 'enhanced-out'), { format: 'nifti' });
    assert.equal(result.volumes.length, 1, JSON.stringify(result.skipped));
    const v = result.volumes[0];
    assert.deepEqual(v.dims, [5, 6, 6]);
    assert.deepEqual(v.slices.map((s) => s.frame), [6, 5, 4, 3, 2, 1]);
    assert.deepEqual(v.rescale, { slope: 2, intercept: 5 });
    const theirs = runDcm2niix(dir, join(scratch.dir, 'enhanced-d2n'));
    assert.equal(theirs.length, 1);
    compareWithDcm2niix(result, theirs);
  });

  it('fixes stored values above BitsStored (12-bit data with high bits set), and warns about MONOCHROME1', async () => {
    const dir = fresh('bits');
    writeSeries(join(dir, 'in'), STUDY, {
      seriesNumber: 8, description: '12 bit', rows: 4, columns: 4, pixelSpacing: [1, 1], ...AXIAL, origin: [0, 0, 0], offsets: steps(2, 1),
      bitsStored: 12, photometric: 'MONOCHROME1', pixel: (i) => (i === 0 ? 0xf000 | 123 : 4095),
    });
    const result = await parseStudy(join(dir, 'in'), join(dir, 'out'), { format: 'nifti' });
    const volume = readNifti(join(dir, 'out', result.volumes[0].file));
    assert.equal(volume.type, 'int16', 'unsigned 12-bit data fits int16 unchanged');
    assert.equal(volume.data[0], 123);
    assert.equal(volume.data[1], 4095);
    assert.match(result.volumes[0].warnings.join(' '), /MONOCHROME1.*not inverted/);
  });
});

describe('bad input: reported, never thrown', function () {
  this.timeout(60000);
  const scratch = scratchDir('volume-bad');
  after(() => scratch.cleanup());

  it('lists junk files, truncated files and non-image instances with their reasons and still converts the rest', async () => {
    const input = join(scratch.dir, 'mixed');
    const good = writeSeries(join(input, 'good'), STUDY, { seriesNumber: 1, description: 'good', rows: 4, columns: 4, pixelSpacing: [1, 1], ...AXIAL, origin: [0, 0, 0], offsets: steps(3, 1) });
    const spoiled = writeSeries(join(input, 'spoiled'), STUDY, { seriesNumber: 2, description: 'spoiled', rows: 8, columns: 8, pixelSpacing: [1, 1], ...AXIAL, origin: [0, 0, 0], offsets: steps(2, 1) });
    truncateSync(spoiled.files[1], 400);
    writeFileSync(join(input, 'notes.txt'), 'not DICOM at all\n');
    writeFileSync(join(input, 'empty.dcm'), '');
    const srUid = generateUid();
    writeDicomFile(join(input, 'report.dcm'), {
      SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.22', SOPInstanceUID: generateUid(), Modality: 'SR', StudyInstanceUID: STUDY,
      SeriesInstanceUID: srUid, SeriesNumber: 99, SeriesDescription: 'report', ValueType: 'CONTAINER',
    });
    const colourUid = generateUid();
    writeDicomFile(join(input, 'colour.dcm'), {
      SOPClassUID: SopClass.SecondaryCaptureImageStorage, SOPInstanceUID: generateUid(), Modality: 'OT', StudyInstanceUID: STUDY,
      SeriesInstanceUID: colourUid, SeriesNumber: 98, SamplesPerPixel: 3, PhotometricInterpretation: 'RGB', PlanarConfiguration: 0,
      Rows: 2, Columns: 2, BitsAllocated: 8, BitsStored: 8, HighBit: 7, PixelRepresentation: 0, PixelData: { vr: 'OB', value: new Uint8Array(12) },
    });
    const result = await parseStudy(input, join(scratch.dir, 'mixed-out'), { format: 'nifti' });
    const reasonFor = (pred: (s: (typeof result.skipped)[number]) => boolean) => result.skipped.find(pred)?.reason ?? 'not reported';
    assert.deepEqual(result.volumes.map((v) => v.seriesInstanceUID).sort(), [good.seriesInstanceUID, spoiled.seriesInstanceUID].sort());
    assert.match(reasonFor((s) => s.file === 'notes.txt'), /not a readable DICOM file: not DICOM/);
    assert.match(reasonFor((s) => s.file === 'empty.dcm'), /not a readable DICOM file/);
    assert.match(reasonFor((s) => s.file === 'spoiled/s2-0001.dcm'), /truncated/);
    assert.match(reasonFor((s) => s.seriesInstanceUID === srUid), /non-image instance: structured report \(SR\)/);
    assert.match(reasonFor((s) => s.seriesInstanceUID === colourUid), /colour image \(RGB/);
    // dicom-metadata.json lists the non-image series too, with why it has no image.
    const metadata = JSON.parse(readFileSync(result.dicomMetadata, 'utf8')) as { studies: Array<{ series: Array<{ SeriesInstanceUID: string; image: string | null; skippedReason?: string }> }> };
    const sr = metadata.studies[0].series.find((s) => s.SeriesInstanceUID === srUid)!;
    assert.equal(sr.image, null);
    assert.match(sr.skippedReason ?? '', /structured report/);
  });

  it('never lets a crafted Series Instance UID name a path outside the output folder', async () => {
    const input = join(scratch.dir, 'evil');
    writeSeries(input, STUDY, { seriesInstanceUID: '../../../../tmp/evil', seriesNumber: 1, description: 'evil', rows: 4, columns: 4, pixelSpacing: [1, 1], ...AXIAL, origin: [0, 0, 0], offsets: steps(2, 1) });
    const out = join(scratch.dir, 'evil-out');
    const result = await parseStudy(input, out, { format: 'nifti' });
    assert.equal(result.volumes.length, 1);
    assert.match(result.volumes[0].file, /^series-[0-9a-f]{16}\.nii$/);
    assert.ok(readdirSync(out).includes(result.volumes[0].file));
    assert.ok(result.warnings.some((w) => /not a valid UID/.test(w.message)));
  });

  it('throws ParseInputError only for an unusable folder or option', async () => {
    await assert.rejects(parseStudy(join(scratch.dir, 'missing'), join(scratch.dir, 'x')), ParseInputError);
    writeFileSync(join(scratch.dir, 'a-file'), 'x');
    await assert.rejects(parseStudy(join(scratch.dir, 'a-file'), join(scratch.dir, 'x')), /is not a folder/);
    await assert.rejects(parseStudy(scratch.dir, join(scratch.dir, 'x'), { format: 'png' as never }), /unknown output format/);
    // Emptying an output folder that holds the input would delete the DICOM files.
    const job = join(scratch.dir, 'job');
    mkdirSync(join(job, 'dicom'), { recursive: true });
    await assert.rejects(parseStudy(join(job, 'dicom'), job, { clean: true }), /cannot be emptied/);
    assert.ok(existsSync(join(job, 'dicom')));
  });
});

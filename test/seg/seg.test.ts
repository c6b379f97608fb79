import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run as segCli } from '../../lib/cli/seg';
import { InputError, UsageError } from '../../lib/cli/args';
import { readDicomHeader } from '../../lib/dicom/reader';
import { Tag } from '../../lib/dicom/tags';
import { resample } from '../../lib/infer/resample';
import { JobStore } from '../../lib/job';
import {
  BitPacker, Codes, SegmentationInputError, binaryPixelDataLength, parseSegmentDefinitions, srgbToDicomLab, unpackBinaryFrame, writeJobSegmentations, writeSegmentation,
  type SegmentDefinition, type WrittenSegmentation,
} from '../../lib/seg';
import { readDicomMetadata } from '../../lib/select/run';
import { writeNifti, readNifti } from '../../lib/volume/nifti';
import { type SourceSeries, SourceSeriesError, readJobSourceSeries, readSourceSeries } from '../../lib/volume/source';
import type { Volume } from '../../lib/volume/types';
import { type SelectedPhantomJob, selectedPhantomJob } from '../support/clara';
import { scratchDir } from '../support/tools';
import { type SyntheticSeries, assertSameLabels, dciodvfy, dcmjsRead, obliqueCosines, pydicomReadBack, writeSyntheticSeries } from './helpers';

const ALGORITHM = { name: 'brain-tumor-tc', version: '1' };

describe('lib/seg: DICOM Segmentation from a label volume on its source series', function () {
  this.timeout(300000);
  const scratch = scratchDir('seg');
  const store = new JobStore(join(scratch.dir, 'jobs'));
  let phantom: SelectedPhantomJob;
  let t1c: SourceSeries;
  let t1cParserMask: Volume;
  const warnings = new Map<string, string[]>();

  const sourceOfSeries = (description: string): { source: SourceSeries; volume: Volume } => {
    const metadata = readDicomMetadata(join(phantom.job.dir, 'parser'));
    const series = metadata.studies[0].series.find((s) => s.SeriesDescription === description)!;
    return { source: readJobSourceSeries(join(phantom.job.dir, 'parser'), metadata, series.SeriesInstanceUID), volume: readNifti(join(phantom.job.dir, 'parser', series.image!)) };
  };

  /** dciodvfy 0 errors, pydicom rebuilds the mask voxel for voxel, dcmjs reads the frames and segments. */
  function checkWritten(what: string, result: WrittenSegmentation, mask: Volume, source: SourceSeries, sourceDir: string, segments: SegmentDefinition[], countVoxels = true): void {
    const report = dciodvfy(result.file);
    assert.deepEqual(report.errors, [], `${what}: dciodvfy errors:\n${report.output}`);
    for (const w of report.warnings) warnings.set(w, [...(warnings.get(w) ?? []), what]);
    const back = pydicomReadBack(result.file, sourceDir, scratch.dir);
    assert.equal(back.frames, result.frames);
    assert.equal(back.studyInstanceUID, source.studyInstanceUID);
    assert.equal(back.frameOfReferenceUID, source.frameOfReferenceUID);
    assert.deepEqual(back.segments.map((s) => s.label), segments.map((s) => s.label));
    const labelled = assertSameLabels(back, mask, source, what);
    if (countVoxels) assert.equal(labelled, result.segments.reduce((n, s) => n + s.voxels, 0), `${what}: labelled voxels`);
    const ds = dcmjsRead(result.file);
    assert.equal(Number(ds.NumberOfFrames), result.frames);
    assert.equal(ds.Modality, 'SEG');
    const segmentSequence = ([] as unknown[]).concat(ds.SegmentSequence ?? []) as Array<{ SegmentLabel: string; SegmentNumber: number }>;
    assert.deepEqual(segmentSequence.map((s) => s.SegmentLabel), segments.map((s) => s.label));
    const perFrame = ([] as unknown[]).concat(ds.PerFrameFunctionalGroupsSequence ?? []);
    assert.equal(perFrame.length, result.frames);
  }

  before(async () => {
    phantom = await selectedPhantomJob(store, join(scratch.dir, 'phantom'), { size: 64, slices: 40, seed: 3 });
    t1c = sourceOfSeries('Ax 3D T1c MPRAGE').source;
    const groundTruth = readNifti(join(scratch.dir, 'phantom', phantom.study.maskPath));
    const parserVolume = readNifti(phantom.targetVolume);
    // The ground truth is on the target's native grid; inference writes labels on the parser's grid.
    const data = resample(groundTruth.data, groundTruth, parserVolume, 'nearest', 0, new Uint8Array(parserVolume.data.length));
    t1cParserMask = { dims: parserVolume.dims, affine: parserVolume.affine, type: 'uint8', data };
    const sum = (values: ArrayLike<number>) => { let n = 0; for (let i = 0; i < values.length; i++) n += values[i]; return n; };
    assert.equal(sum(data), sum(groundTruth.data), 'the parser grid holds every ground-truth voxel');
  });
  after(() => {
    const list = [...warnings.entries()].map(([w, cases]) => `      ${w}  [${[...new Set(cases)].join(', ')}]`);
    console.log(`      dciodvfy warnings over all SEGs written: ${list.length ? `\n${list.join('\n')}` : 'none'}`);
    scratch.cleanup();
  });

  it('packs BINARY frames into one bit stream, least significant bit first, across frame boundaries', () => {
    // 3×5 = 15 pixels per frame: frame 2 starts at bit 15, in the middle of byte 1.
    const frames = [Uint8Array.from({ length: 15 }, (_, i) => (i % 3 === 0 ? 1 : 0)), Uint8Array.from({ length: 15 }, (_, i) => (i === 0 || i === 14 ? 1 : 0)), new Uint8Array(15).fill(1)];
    const packer = new BitPacker(3, 15);
    frames.forEach((f) => packer.addFrame(f, 1));
    assert.equal(packer.bytes.length, binaryPixelDataLength(3, 15));
    assert.equal(packer.bytes.length, 6, '45 bits: 6 bytes, already even');
    const bits = frames.flatMap((f) => [...f]);
    for (let b = 0; b < bits.length; b++) assert.equal((packer.bytes[b >> 3] >> (b & 7)) & 1, bits[b], `bit ${b}`);
    frames.forEach((f, i) => assert.deepEqual(unpackBinaryFrame(packer.bytes, i, 15), f));
    assert.equal(binaryPixelDataLength(1, 255 * 199), 6344, '50745 bits: 6344 bytes (6343.1 rounded up, then even)');
    assert.equal(binaryPixelDataLength(2, 255 * 199), 12688, '101490 bits: 12687 bytes, padded to 12688');
  });

  it('encodes colours as DICOM CIELab (D50): white, black, and the sRGB primaries', () => {
    assert.deepEqual(srgbToDicomLab([255, 255, 255]), [65535, 32896, 32896]);
    assert.deepEqual(srgbToDicomLab([0, 0, 0]), [0, 32896, 32896]);
    const red = srgbToDicomLab([255, 0, 0]);
    // sRGB red in D50 Lab is about L 54.3, a 80.8, b 69.9 (ICC v4 sRGB profile).
    assert.ok(Math.abs((red[0] * 100) / 65535 - 54.3) < 0.5 && Math.abs((red[1] * 255) / 65535 - 128 - 80.8) < 1 && Math.abs((red[2] * 255) / 65535 - 128 - 69.9) < 1, String(red));
  });

  it('writes the oblique, signed 3D T1c with the phantom ground truth: every attribute, every frame on its source instance', () => {
    assert.equal(t1c.header.number(Tag.PixelRepresentation), 1, 'the T1c source is signed');
    const segments = parseSegmentDefinitions('["Tumor-seg"]');
    const result = writeSegmentation({
      mask: t1cParserMask,
      source: t1c,
      segments,
      options: {
        outDir: join(scratch.dir, 'out-t1c'), algorithm: ALGORITHM, uidRoot: '1.2.826.0.1.3680043.10.1234', seriesDescription: 'AI tumour core', contentLabel: 'TUMOR_SEG',
        contentDescription: 'Tumour core from the demo model', contentCreatorName: 'CLARA^AI',
      },
    });
    assert.ok(!result.empty);
    assert.equal(result.file, join(scratch.dir, 'out-t1c', `${result.sopInstanceUID}.dcm`));
    checkWritten('oblique T1c', result, t1cParserMask, t1c, join(phantom.job.dir, 'dicom', 's004-ax-3d-t1c-mprage'), segments);
    const ds = readDicomHeader(result.file).dataset;
    const text = (keyword: number) => ds.string(keyword);
    assert.equal(text(Tag.SOPClassUID), '1.2.840.10008.5.1.4.1.1.66.4');
    assert.equal(text(Tag.StudyInstanceUID), t1c.studyInstanceUID);
    assert.equal(text(Tag.FrameOfReferenceUID), t1c.frameOfReferenceUID);
    assert.notEqual(text(Tag.SeriesInstanceUID), t1c.seriesInstanceUID);
    assert.ok(result.seriesInstanceUID.startsWith('1.2.826.0.1.3680043.10.1234.') && result.sopInstanceUID.startsWith('1.2.826.0.1.3680043.10.1234.'));
    assert.equal(text(Tag.PatientName), t1c.header.string(Tag.PatientName));
    assert.equal(text(Tag.SeriesDescription), 'AI tumour core');
    assert.equal(ds.number(Tag.BitsAllocated), 1);
    assert.equal(ds.number(Tag.PixelRepresentation), 0);
    const segment = ds.sequence(0x00620002)[0];
    assert.equal(segment.string(0x00620008), 'AUTOMATIC');
    assert.equal(segment.string(0x00620009), 'brain-tumor-tc');
    assert.equal(segment.sequence(0x00620003)[0].string(0x00080100), Codes.MorphologicallyAbnormalStructure.CodeValue);
    assert.equal(segment.sequence(0x0062000f)[0].string(0x00080100), Codes.Neoplasm.CodeValue);
    assert.equal(segment.sequence(0x00620003)[0].string(0x00080102), 'SCT');
    const algorithm = segment.sequence(0x00620007)[0];
    assert.equal(algorithm.string(0x00660036), 'brain-tumor-tc');
    assert.equal(algorithm.string(0x00660031), '1');
    assert.equal(segment.numbers(0x0062000d).length, 3);
    // Frames run ascending along the normal, each pointing at the SOP instance of its own slice.
    const frames = ds.sequence(Tag.PerFrameFunctionalGroupsSequence);
    const slices = frames.map((f) => f.sequence(0x00089124)[0].sequence(0x00082112)[0].string(0x00081155));
    const order = slices.map((sop) => t1c.slices.findIndex((s) => s.sopInstanceUID === sop));
    assert.ok(order.every((s, i) => s >= 0 && (i === 0 || s > order[i - 1])), `frames in slice order: ${order.join(',')}`);
    frames.forEach((f, i) => assert.deepEqual(f.sequence(Tag.FrameContentSequence)[0].numbers(0x00209157), [1, order[i] + 1]));
    const referenced = ds.sequence(0x00081115)[0];
    assert.equal(referenced.string(Tag.SeriesInstanceUID), t1c.seriesInstanceUID);
    assert.equal(referenced.sequence(0x0008114a).length, t1c.slices.length, 'every source instance is referenced');
  });

  it("writes the axial 'Ax T1 SE' series with the ground truth resampled onto its grid (rows stored bottom-up by the parser)", () => {
    const { source, volume } = sourceOfSeries('Ax T1 SE');
    const groundTruth = readNifti(join(scratch.dir, 'phantom', phantom.study.maskPath));
    const data = resample(groundTruth.data, groundTruth, volume, 'nearest', 0, new Uint8Array(volume.data.length));
    assert.ok(data.some((v) => v === 1), 'the tumour shows on the axial grid');
    const mask: Volume = { dims: volume.dims, affine: volume.affine, type: 'uint8', data };
    const segments = parseSegmentDefinitions(undefined);
    const result = writeSegmentation({ mask, source, segments, options: { outDir: join(scratch.dir, 'out-axial'), algorithm: ALGORITHM } });
    assert.ok(!result.empty);
    checkWritten('axial Ax T1 SE', result, mask, source, join(phantom.job.dir, 'dicom', 's002-ax-t1-se'), segments);
  });

  function syntheticCase(name: string, options: Parameters<typeof writeSyntheticSeries>[1]): { series: SyntheticSeries; source: SourceSeries } {
    const series = writeSyntheticSeries(join(scratch.dir, name), options);
    return { series, source: readSourceSeries(series.dir) };
  }

  it('writes an odd 255×199 oblique matrix, BINARY and FRACTIONAL, with and without empty frames', () => {
    const { series, source } = syntheticCase('odd', { rows: 255, columns: 199, slices: 9, ...obliqueCosines(12, -7), reverse: true });
    const [nx, ny, nz] = series.dims;
    const data = new Uint8Array(nx * ny * nz);
    const probability = new Float32Array(nx * ny * nz);
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const n = (k * ny + j) * nx + i;
          const d1 = ((i - 60) / 30) ** 2 + ((j - 90) / 50) ** 2 + ((k - 3) / 2.5) ** 2;
          const d2 = ((i - 150) / 20) ** 2 + ((j - 200) / 25) ** 2 + ((k - 6) / 1.5) ** 2;
          data[n] = d1 < 1 ? 1 : d2 < 1 ? 2 : 0;
          probability[n] = Math.max(0, 1 - d1 / 2);
        }
      }
    }
    const mask: Volume = { dims: series.dims, affine: series.affine, type: 'uint8', data };
    const segments = parseSegmentDefinitions('["Tumor-seg", "Necrosis"]');
    for (const omitEmptyFrames of [true, false]) {
      const result = writeSegmentation({ mask, source, segments, options: { outDir: join(scratch.dir, `out-odd-${omitEmptyFrames}`), algorithm: ALGORITHM, omitEmptyFrames } });
      assert.ok(!result.empty);
      if (!omitEmptyFrames) assert.equal(result.frames, 2 * nz);
      else assert.ok(result.frames < 2 * nz);
      const length = readDicomHeader(result.file).pixelData!.length;
      assert.equal(length, Math.ceil((result.frames * 255 * 199) / 8) + (Math.ceil((result.frames * 255 * 199) / 8) % 2), 'pixel data: the bit stream, padded only at its end');
      checkWritten(`255×199 omitEmptyFrames=${omitEmptyFrames}`, result, mask, source, series.dir, segments);
    }
    // FRACTIONAL from the label map (255 inside, 0 outside) and from a probability map.
    const fromLabels = writeSegmentation({ mask, source, segments, options: { outDir: join(scratch.dir, 'out-odd-fractional'), algorithm: ALGORITHM, fractional: true } });
    assert.ok(!fromLabels.empty);
    checkWritten('255×199 FRACTIONAL from labels', fromLabels, mask, source, series.dir, segments);
    assert.deepEqual(pydicomReadBack(fromLabels.file, series.dir, scratch.dir).fractionalValues, [0, 255]);
    const probabilities: Volume = { dims: series.dims, affine: series.affine, type: 'float32', data: probability };
    const single = parseSegmentDefinitions('["Tumor-seg"]');
    const fromProbability = writeSegmentation({ mask, source, segments: single, probabilities: [probabilities], options: { outDir: join(scratch.dir, 'out-odd-probability'), algorithm: ALGORITHM, fractional: true } });
    assert.ok(!fromProbability.empty);
    const expected: Volume = { ...mask, data: Uint8Array.from(probability, (p) => (Math.round(p * 255) >= 128 ? 1 : 0)) };
    checkWritten('255×199 FRACTIONAL probabilities', fromProbability, expected, source, series.dir, single, false);
    const back = pydicomReadBack(fromProbability.file, series.dir, scratch.dir);
    assert.ok(back.fractionalValues!.length > 100, 'probabilities keep their levels');
    const ds = readDicomHeader(fromProbability.file).dataset;
    assert.equal(ds.string(0x00620010), 'PROBABILITY');
    assert.equal(ds.number(0x0062000e), 255);
  });

  it('writes 3 labels, each its own segment with its own codes, on the T1c', () => {
    const [nx, ny, nz] = t1cParserMask.dims;
    const data = Uint8Array.from(t1cParserMask.data);
    // A shell around the core as label 2, a separate ball as label 3.
    const core = t1cParserMask.data;
    for (let k = 1; k < nz - 1; k++) {
      for (let j = 1; j < ny - 1; j++) {
        for (let i = 1; i < nx - 1; i++) {
          const n = (k * ny + j) * nx + i;
          if (core[n]) continue;
          if (core[n - 1] || core[n + 1] || core[n - nx] || core[n + nx] || core[n - nx * ny] || core[n + nx * ny]) data[n] = 2;
          else if ((i - 10) ** 2 + (j - 50) ** 2 + (k - 20) ** 2 < 9) data[n] = 3;
        }
      }
    }
    const mask: Volume = { ...t1cParserMask, data };
    const segments = parseSegmentDefinitions('["Tumor core", "Edema", {"label": "Necrosis", "color": [10, 20, 200]}]', '{"1": {"type": ["4147007", "SCT", "Mass"]}}');
    const result = writeSegmentation({ mask, source: t1c, segments, options: { outDir: join(scratch.dir, 'out-3'), algorithm: ALGORITHM } });
    assert.ok(!result.empty);
    assert.deepEqual(result.segments.map((s) => s.number), [1, 2, 3]);
    assert.ok(result.segments.every((s) => s.voxels > 0 && s.frames > 0));
    checkWritten('3 labels', result, mask, t1c, join(phantom.job.dir, 'dicom', 's004-ax-3d-t1c-mprage'), segments);
    const items = readDicomHeader(result.file).dataset.sequence(0x00620002);
    assert.deepEqual(items.map((s) => s.sequence(0x0062000f)[0].string(0x00080100)), ['4147007', Codes.Edema.CodeValue, Codes.Necrosis.CodeValue]);
    assert.deepEqual(items[2].numbers(0x0062000d), srgbToDicomLab([10, 20, 200]));
  });

  it('takes a signed (int16) label volume, and a mask that touches every border of the volume', () => {
    const { series, source } = syntheticCase('border', { rows: 31, columns: 45, slices: 5, signed: true, ...obliqueCosines(0, 90) });
    const [nx, ny, nz] = series.dims;
    const data = new Int16Array(nx * ny * nz);
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          if (k === 0 || k === nz - 1 || i === 0 || j === 0 || i === nx - 1 || j === ny - 1) data[(k * ny + j) * nx + i] = 1;
        }
      }
    }
    const mask: Volume = { dims: series.dims, affine: series.affine, type: 'int16', data };
    const segments = parseSegmentDefinitions('["Tumor-seg"]');
    const result = writeSegmentation({ mask, source, segments, options: { outDir: join(scratch.dir, 'out-border'), algorithm: ALGORITHM } });
    assert.ok(!result.empty);
    assert.equal(result.frames, nz);
    checkWritten('border, int16 mask, signed source', result, mask, source, series.dir, segments);
  });

  it('writes nothing for an empty mask', () => {
    const mask: Volume = { ...t1cParserMask, data: new Uint8Array(t1cParserMask.data.length) };
    const outDir = join(scratch.dir, 'out-empty');
    const result = writeSegmentation({ mask, source: t1c, segments: parseSegmentDefinitions('["Tumor-seg"]'), options: { outDir, algorithm: ALGORITHM } });
    assert.deepEqual(result, { empty: true, segments: [{ number: 1, label: 'Tumor-seg', frames: 0, voxels: 0 }] });
    assert.ok(!existsSync(outDir) || readdirSync(outDir).length === 0);
  });

  it('refuses bad input with a clear reason and writes no file: another grid, values beyond the labels, a missing source instance, bad settings', async () => {
    const outDir = join(scratch.dir, 'out-bad');
    const segments = parseSegmentDefinitions('["Tumor-seg"]');
    const { source: axial } = sourceOfSeries('Ax T1 SE');
    assert.throws(() => writeSegmentation({ mask: t1cParserMask, source: axial, segments, options: { outDir, algorithm: ALGORITHM } }), (err: Error) => err instanceof SourceSeriesError && /the mask grid does not match the source series/.test(err.message));
    const beyond: Volume = { ...t1cParserMask, data: Uint8Array.from(t1cParserMask.data, (v) => (v ? 3 : 0)) };
    assert.throws(
      () => writeSegmentation({ mask: beyond, source: t1c, segments, options: { outDir, algorithm: ALGORITHM } }),
      (err: Error) => err instanceof SegmentationInputError && /the mask holds value 3 \(\d+ voxels\) beyond the 1 label \["Tumor-seg"\]: list item i is mask value i\+1/.test(err.message),
    );
    const fractionalValue: Volume = { ...t1cParserMask, type: 'float32', data: Float32Array.from(t1cParserMask.data, (v) => v * 0.5) };
    assert.throws(() => writeSegmentation({ mask: fractionalValue, source: t1c, segments, options: { outDir, algorithm: ALGORITHM } }), /value 0\.5 .* beyond the 1 label/);
    assert.throws(() => writeSegmentation({ mask: t1cParserMask, source: t1c, segments, options: { outDir, algorithm: ALGORITHM, contentLabel: 'Tumour seg' } }), /ContentLabel "Tumour seg" must be 1–16 upper case/);
    assert.throws(() => writeSegmentation({ mask: t1cParserMask, source: t1c, segments, options: { outDir, algorithm: { name: '' } } }), /algorithm name is required/);
    assert.throws(() => parseSegmentDefinitions('["a", "a"]'), /listed twice/);
    assert.throws(() => parseSegmentDefinitions('{"a": 1}'), /non-empty JSON list/);
    assert.throws(() => parseSegmentDefinitions('["a"]', '{"b": {}}'), /names "b", which is not one of the labels/);
    assert.throws(() => parseSegmentDefinitions('["a"]', '{"a": {"type": ["1", "SCT"]}}'), /type must be \["value", "scheme", "meaning"\]/);
    assert.ok(!existsSync(outDir), 'no output folder, no file');

    // A source instance the parser listed is gone: the job fails before its seg/ folder is touched.
    const metadata = readDicomMetadata(join(phantom.job.dir, 'parser'));
    const target = metadata.studies[0].series.find((s) => s.SeriesInstanceUID === phantom.study.targetSeriesInstanceUID)!;
    const copy = join(scratch.dir, 'missing-job');
    rmSync(copy, { recursive: true, force: true });
    cpSync(phantom.job.dir, copy, { recursive: true });
    mkdirSync(join(copy, 'segmentation'), { recursive: true });
    writeNifti(join(copy, 'segmentation', `${target.SeriesInstanceUID}.nii.gz`), t1cParserMask);
    rmSync(join(copy, 'parser', metadata.dicomFolder, target.instances[5].file));
    await assert.rejects(() => writeJobSegmentations(copy, { segments, algorithm: ALGORITHM }), /source instance .* is missing/);
    assert.ok(!existsSync(join(copy, 'seg')), 'no seg/ folder');
  });

  it('clara-dicom seg: writes the SEG of a mask file, says "no findings" for an empty one, exits 1/2 on bad input/usage', async () => {
    const maskFile = join(scratch.dir, 'cli-mask.nii.gz');
    writeNifti(maskFile, t1cParserMask);
    const sourceDir = join(phantom.job.dir, 'dicom', 's004-ax-3d-t1c-mprage');
    const outDir = join(scratch.dir, 'cli-out');
    const write = process.stdout.write.bind(process.stdout);
    let printed = '';
    process.stdout.write = ((chunk: string) => ((printed += chunk), true)) as typeof process.stdout.write;
    try {
      assert.equal(await segCli([maskFile, sourceDir, outDir, '--labels', '["Tumor-seg"]', '--series-description', 'CLI SEG', '--uid-root', '1.2.3.4', '--algorithm', 'brain-tumor-tc']), 0);
      const empty = join(scratch.dir, 'cli-empty.nii.gz');
      writeNifti(empty, { ...t1cParserMask, data: new Uint8Array(t1cParserMask.data.length) });
      assert.equal(await segCli([empty, sourceDir, join(scratch.dir, 'cli-out-empty')]), 0);
    } finally {
      process.stdout.write = write;
    }
    const files = readdirSync(outDir);
    assert.equal(files.length, 1);
    assert.match(files[0], /^1\.2\.3\.4\.\d+\.dcm$/);
    assert.match(printed, /SEG BINARY, \d+ frame\(s\) of 64×64/);
    assert.match(printed, /no findings: the mask has no voxel of "Tumor-seg"; nothing written/);
    assert.ok(!existsSync(join(scratch.dir, 'cli-out-empty')));
    assert.equal(dciodvfy(join(outDir, files[0])).errors.length, 0);
    await assert.rejects(segCli([maskFile, sourceDir]), UsageError);
    await assert.rejects(segCli([maskFile, sourceDir, outDir, '--labels', 'not json']), UsageError);
    await assert.rejects(segCli([maskFile, sourceDir, outDir, '--bogus', '1']), UsageError);
    await assert.rejects(segCli([maskFile, join(phantom.job.dir, 'dicom', 's002-ax-t1-se'), outDir]), (err: Error) => err instanceof InputError && /mask grid does not match/.test(err.message));
    await assert.rejects(segCli([join(scratch.dir, 'nope.nii.gz'), sourceDir, outDir]), InputError);
    assert.equal(readdirSync(outDir).length, 1, 'failed runs added nothing');
    assert.ok(readFileSync(join(outDir, files[0])).length > 1000);
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import { scratchDir } from '../support/tools';

const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'parse', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface JsonAttribute {
  vr: string;
  Value?: unknown[];
}

describe('clara-dicom parse (CLI) and the metadata files it writes', function () {
  this.timeout(120000);
  const scratch = scratchDir('volume-cli');
  let study: PhantomStudy;
  let dicomDir: string;
  const outDir = () => join(scratch.dir, 'out');

  before(() => {
    study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 32, slices: 12, seed: 9 });
    dicomDir = join(scratch.dir, 'phantom', 'dicom');
  });
  after(() => scratch.cleanup());

  it('exits 0 and prints one line per volume written: file, dims, spacing, description', () => {
    const r = cli(dicomDir, outDir(), '--format', 'nifti-gz');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 10, r.stdout);
    const target = study.series.find((s) => s.isTarget)!;
    assert.ok(
      lines.some((l) => l === `${target.seriesInstanceUID}.nii.gz  32×32×12  8.000×8.000×13.333 mm  ${target.description}`),
      r.stdout,
    );
    assert.match(lines[9], /^9 volume\(s\) from 7 series, \d+ file\(s\)/);
    for (const line of lines.slice(0, 9)) assert.ok(existsSync(join(outDir(), line.split('  ')[0])), line);
  });

  it('writes series-images.json: series UID → image file and key attributes', () => {
    const images = JSON.parse(readFileSync(join(outDir(), 'series-images.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    assert.deepEqual(Object.keys(images).sort(), study.series.map((s) => s.seriesInstanceUID).sort());
    const target = study.series.find((s) => s.isTarget)!;
    const entry = images[target.seriesInstanceUID];
    assert.equal(entry.image, `${target.seriesInstanceUID}.nii.gz`);
    assert.equal(entry.SeriesDescription, target.description);
    assert.equal(entry.Modality, 'MR');
    assert.equal(entry.SeriesNumber, target.seriesNumber);
    assert.deepEqual(entry.ImageType, target.imageType);
    assert.equal(entry.instanceCount, target.instanceCount);
    assert.deepEqual(entry.dims, [32, 32, 12]);
    assert.equal(entry.orientation, 'oblique');
    assert.deepEqual((entry.slices as Array<{ sopInstanceUID: string }>).map((s) => s.sopInstanceUID), target.stacks[0].sopInstanceUIDs);
    const localizer = images[study.series.find((s) => s.orientationKind === 'three-plane')!.seriesInstanceUID];
    assert.equal((localizer.stacks as unknown[]).length, 3);
  });

  it('writes dicom-metadata.json: per study and series, DICOM JSON attributes, instance count and files', () => {
    const metadata = JSON.parse(readFileSync(join(outDir(), 'dicom-metadata.json'), 'utf8')) as {
      dicomFolder: string;
      studies: Array<{ StudyInstanceUID: string; series: Array<{ SeriesInstanceUID: string; image: string; instanceCount: number; attributes: Record<string, JsonAttribute>; instances: Array<{ SOPInstanceUID: string; file: string }> }> }>;
    };
    assert.equal(metadata.studies.length, 1);
    assert.equal(metadata.studies[0].StudyInstanceUID, study.studyInstanceUID);
    assert.ok(existsSync(join(outDir(), metadata.dicomFolder)), 'dicomFolder is relative to the metadata file');
    for (const s of study.series) {
      const entry = metadata.studies[0].series.find((x) => x.SeriesInstanceUID === s.seriesInstanceUID)!;
      assert.equal(entry.instanceCount, s.instanceCount);
      assert.deepEqual(entry.instances.map((i) => i.SOPInstanceUID).sort(), [...s.sopInstanceUIDs].sort());
      for (const i of entry.instances) assert.ok(existsSync(join(outDir(), metadata.dicomFolder, i.file)), i.file);
      const a = entry.attributes;
      assert.deepEqual(a['0008103E'], { vr: 'LO', Value: [s.description] });
      assert.deepEqual(a['00200011'], { vr: 'IS', Value: [s.seriesNumber] });
      assert.deepEqual(a['00080008'].Value, s.imageType);
      assert.deepEqual(a['00100010'], { vr: 'PN', Value: [{ Alphabetic: study.patient.name }] });
      assert.equal(a['7FE00010'], undefined, 'no pixel data');
      // The attributes are those of the series' first instance (lowest InstanceNumber).
      assert.deepEqual(a['00200013'].Value, [1]);
    }
  });

  it('writes MetaImage with --format mhd', () => {
    const out = join(scratch.dir, 'mhd');
    const r = cli(dicomDir, out, '--format', 'mhd');
    assert.equal(r.code, 0, r.stderr);
    const target = study.series.find((s) => s.isTarget)!;
    const header = readFileSync(join(out, `${target.seriesInstanceUID}.mhd`), 'latin1');
    assert.match(header, /^ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\nTransformMatrix = /);
    assert.match(header, /\nDimSize = 32 32 12\nElementType = MET_FLOAT\nElementDataFile = [0-9.]+\.raw\n$/);
    assert.ok(existsSync(join(out, `${target.seriesInstanceUID}.raw`)));
  });

  it('exits 1 with one line for a missing folder, and for a folder with no image series', () => {
    const missing = cli(join(scratch.dir, 'nope'), outDir());
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
    assert.match(missing.stderr, /^clara-dicom parse: cannot read the DICOM folder .*nope: ENOENT/);
    const junk = join(scratch.dir, 'junk');
    mkdirSync(junk);
    writeFileSync(join(junk, 'a.dcm'), 'garbage');
    const none = cli(junk, join(scratch.dir, 'junk-out'));
    assert.equal(none.code, 1);
    assert.equal(none.stdout, '');
    assert.equal(none.stderr.trim().split('\n').length, 1);
    assert.match(none.stderr, /no image series in .*junk \(1 file\(s\)\); first reason: a\.dcm not a readable DICOM file/);
  });

  it('exits 2 on wrong usage', () => {
    for (const args of [[], [dicomDir], [dicomDir, outDir(), '--format', 'png'], [dicomDir, outDir(), '--colour'], [dicomDir, outDir(), 'extra']]) {
      const r = cli(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /usage: clara-dicom parse <dicom-dir> <out-dir>/);
    }
  });
});

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { readNifti } from '../../lib/volume/nifti';
import { type ParseResult, parseStudy } from '../../lib/volume/parse';
import { allFilesUnder, scratchDir } from '../support/tools';
import { compareWithDcm2niix, runDcm2niix } from './helpers';

/** pydicom's test files (Debian python3-pydicom): good images, odd encodings, non-images and junk. */
const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

/** Image files that must become volumes: every transfer syntax of MR_small, CT, and J2K oddities. */
const MUST_CONVERT = [
  'CT_small.dcm', 'MR_small.dcm', 'MR_small_implicit.dcm', 'MR_small_bigendian.dcm', 'MR_small_expb.dcm', 'MR_small_RLE.dcm',
  'MR_small_jp2klossless.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_padded.dcm', '693_J2KI.dcm', 'J2K_pixelrep_mismatch.dcm',
];
/** Files that must be reported, and the reason each must give. */
const MUST_REPORT: Record<string, RegExp> = {
  'README.txt': /not a readable DICOM file: not DICOM/,
  'zipMR.gz': /not a readable DICOM file: not DICOM/,
  'test1.json': /not a readable DICOM file/,
  'MR_truncated.dcm': /truncated: pixel data declares 8192 bytes/,
  'rtplan_truncated.dcm': /truncated/,
  'rtstruct.dcm': /non-image instance: RT structure set \(RTSTRUCT\)/,
  'rtplan.dcm': /non-image instance: RT plan/,
  'rtdose.dcm': /non-image instance: RT dose/,
  'test-SR.dcm': /non-image instance: structured report \(SR\)/,
  'reportsi.dcm': /structured report/,
  'waveform_ecg.dcm': /non-image instance: waveform/,
  'liver_1frame.dcm': /non-image instance: segmentation \(SEG\)/,
  'SC_rgb_rle.dcm': /colour image \(RGB/,
  'SC_rgb_jpeg_dcmtk.dcm': /colour image \(YBR_FULL/,
  'JPEG2000.dcm': /no ImagePositionPatient\/ImageOrientationPatient/,
  'empty_charset_LEI.dcm': /no SOPInstanceUID, SeriesInstanceUID, StudyInstanceUID/,
  'dicomdirtests/DICOMDIR': /DICOMDIR/,
};

describe('bad-input corpus: every pydicom test file is converted or reported', function () {
  this.timeout(300000);
  const scratch = scratchDir('volume-corpus');
  const files = existsSync(CORPUS) ? allFilesUnder(CORPUS) : [];
  const results = new Map<string, ParseResult>();

  before(async function () {
    assert.ok(files.length > 100, `pydicom's test files are missing at ${CORPUS} (install python3-pydicom)`);
    // Each file alone, so that every outcome is that file's own.
    for (const [i, file] of files.entries()) {
      const input = join(scratch.dir, `in-${i}`);
      mkdirSync(input);
      symlinkSync(file, join(input, basename(file)));
      results.set(relative(CORPUS, file), await parseStudy(input, join(scratch.dir, `out-${i}`), { format: 'nifti' }));
    }
  });
  after(() => scratch.cleanup());

  it('gives every file an outcome: at least one volume, or a reason', () => {
    const silent: string[] = [];
    for (const [file, result] of results) {
      if (result.volumes.length === 0 && result.skipped.length === 0) silent.push(file);
      for (const s of result.skipped) assert.ok(s.reason.length > 10, `${file}: reason "${s.reason}"`);
    }
    assert.deepEqual(silent, []);
  });

  it('converts the known-good images', () => {
    for (const file of MUST_CONVERT) {
      const result = results.get(file)!;
      assert.equal(result.volumes.length, 1, `${file}: ${JSON.stringify(result.skipped)}`);
      assert.equal(result.skipped.length, 0, `${file}: ${JSON.stringify(result.skipped)}`);
    }
  });

  it('reports junk, truncated files and non-images with a clear reason', () => {
    for (const [file, pattern] of Object.entries(MUST_REPORT)) {
      const result = results.get(file);
      assert.ok(result, `${file} is not in the corpus`);
      assert.equal(result.volumes.length, 0, `${file} became a volume`);
      assert.ok(result.skipped.some((s) => pattern.test(s.reason)), `${file}: ${JSON.stringify(result.skipped)} does not match ${pattern}`);
    }
  });

  it('decodes MR_small identically from every lossless transfer syntax', () => {
    const reference = (() => {
      const r = results.get('MR_small.dcm')!;
      return readNifti(join(r.outDir, r.volumes[0].file));
    })();
    for (const file of MUST_CONVERT.filter((f) => f.startsWith('MR_small_'))) {
      const r = results.get(file)!;
      const v = readNifti(join(r.outDir, r.volumes[0].file));
      assert.deepEqual(v.dims, reference.dims, file);
      assert.deepEqual(v.affine, reference.affine, file);
      assert.deepEqual(Array.from(v.data), Array.from(reference.data), `${file}: voxels differ from MR_small.dcm`);
    }
  });

  it('matches dcm2niix on CT_small and MR_small', () => {
    for (const file of ['CT_small.dcm', 'MR_small.dcm']) {
      const r = results.get(file)!;
      const theirs = runDcm2niix(join(r.inputDir), join(scratch.dir, `d2n-${file}`));
      assert.equal(theirs.length, 1);
      compareWithDcm2niix(r, theirs);
    }
  });

  it('survives the whole corpus in one folder: every file is an instance of the metadata or a reported file', async () => {
    const result = await parseStudy(CORPUS, join(scratch.dir, 'whole'), { format: 'nifti-gz' });
    assert.ok(result.volumes.length >= 10);
    const metadata = JSON.parse(readFileSync(result.dicomMetadata, 'utf8')) as { studies: Array<{ series: Array<{ instances: Array<{ file: string }> }> }> };
    const listed = new Set(metadata.studies.flatMap((st) => st.series.flatMap((s) => s.instances.map((i) => i.file))));
    const reported = new Set(result.skipped.filter((s) => s.kind === 'file').map((s) => s.file));
    const unaccounted = files.map((f) => relative(CORPUS, f)).filter((f) => !listed.has(f) && !reported.has(f));
    assert.deepEqual(unaccounted, []);
    // MR_small exists in nine encodings of one instance: one volume, and a warning about the repeats.
    assert.ok(result.warnings.some((w) => /repeat a position/.test(w.message)));
  });
});

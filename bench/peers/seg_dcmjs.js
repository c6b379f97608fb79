// The dcmjs peer of the SEG benchmark: dcmjs.derivations.Segmentation, the path the Cornerstone adapters
// take (source instances read and naturalized by dcmjs, normalized into one multi-frame data set, a
// Segmentation derived from it, segments added from 2D label maps, bit-packed, written by dcmjs).
//
// usage: node seg_dcmjs.js <build-dir> <mask.nii.gz> <source-dir> <out.dcm> <labels JSON>
// The label volume is read with the package's NIfTI reader and each frame's label map is cut out with the
// package's geometry helpers (layoutOnSource, nativeSlice) on positions dcmjs itself read: the same decode
// and slicing our contender pays, so the difference is the SEG construction and encoding.
'use strict';
const { readFileSync, readdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const dcmjs = require('dcmjs');

const [buildDir, maskPath, sourceDir, outFile, labelsJson] = process.argv.slice(2);
const { readNifti } = require(join(buildDir, 'lib', 'volume', 'nifti.js'));
const { layoutOnSource } = require(join(buildDir, 'lib', 'volume', 'source.js'));
const { nativeSlice } = require(join(buildDir, 'lib', 'volume', 'native.js'));

const labels = JSON.parse(labelsJson);
// dcmjs logs a warning per unknown private tag and so on; the benchmark times the work, not the console.
dcmjs.log.setLevel?.('error');
const datasets = readdirSync(sourceDir).map((name) => {
  const bytes = readFileSync(join(sourceDir, name));
  const dict = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict);
  dataset._meta = dcmjs.data.DicomMetaDictionary.namifyDataset(dict.meta);
  return dataset;
});
const multiframe = dcmjs.normalizers.Normalizer.normalizeToDataset(datasets);
const segmentation = new dcmjs.derivations.Segmentation([multiframe]);

// The multi-frame's frames, as the geometry helpers describe a source series.
const perFrame = [].concat(multiframe.PerFrameFunctionalGroupsSequence);
const shared = multiframe.SharedFunctionalGroupsSequence;
const orientation = (shared.PlaneOrientationSequence || perFrame[0].PlaneOrientationSequence).ImageOrientationPatient.map(Number);
const spacing = (shared.PixelMeasuresSequence || perFrame[0].PixelMeasuresSequence).PixelSpacing.map(Number);
const normal = [orientation[1] * orientation[5] - orientation[2] * orientation[4], orientation[2] * orientation[3] - orientation[0] * orientation[5], orientation[0] * orientation[4] - orientation[1] * orientation[3]];
const frames = perFrame.map((f, index) => ({ index, position: f.PlanePositionSequence.ImagePositionPatient.map(Number) }));
const along = (p) => normal[0] * p[0] + normal[1] * p[1] + normal[2] * p[2];
const sorted = [...frames].sort((a, b) => along(a.position) - along(b.position));
const source = {
  rows: Number(multiframe.Rows), columns: Number(multiframe.Columns), pixelSpacing: spacing, orientation, normal,
  sliceThickness: Number(multiframe.SliceThickness) || undefined,
  slices: sorted.map((f) => ({ position: f.position, sopInstanceUID: '', sopClassUID: '', file: '' })),
};
const mask = readNifti(maskPath);
const layout = layoutOnSource(mask, source);
const slicesBySegment = labels.map(() => ({ maps: [], frames: [] }));
sorted.forEach((frame, s) => {
  const values = nativeSlice(layout, mask.data, s);
  labels.forEach((_, i) => {
    if (!values.some((v) => v === i + 1)) return;
    slicesBySegment[i].maps.push(values);
    slicesBySegment[i].frames.push(frame.index + 1);
  });
});
segmentation.setNumberOfFrames(slicesBySegment.reduce((n, s) => n + s.frames.length, 0));
labels.forEach((label, i) => {
  const { maps, frames: referenced } = slicesBySegment[i];
  if (referenced.length === 0) return;
  segmentation.addSegmentFromLabelmap({
    SegmentLabel: label,
    SegmentAlgorithmType: 'AUTOMATIC',
    SegmentAlgorithmName: 'bench',
    SegmentedPropertyCategoryCodeSequence: { CodeValue: '49755003', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Morphologically Abnormal Structure' },
    SegmentedPropertyTypeCodeSequence: { CodeValue: '108369006', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Neoplasm' },
    RecommendedDisplayCIELabValue: [32768, 32768, 32768],
  }, maps, i + 1, referenced);
});
segmentation.bitPackPixelData();
const dict = dcmjs.data.datasetToDict(segmentation.dataset);
writeFileSync(outFile, Buffer.from(dict.write()));
process.stdout.write(JSON.stringify({ frames: Number(segmentation.dataset.NumberOfFrames) }));

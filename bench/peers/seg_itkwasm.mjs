// The dcmqi peer of the SEG benchmark: @itk-wasm/dicom's writeSegmentation (dcmqi's itkimage2segimage
// compiled to WebAssembly), run in Node. An ES module, so its top-level-await loader imports natively.
//
// usage: node seg_itkwasm.mjs <build-dir> <mask.nii.gz> <source-dir> <out.dcm> <meta.json>
// The label volume is read with the package's own NIfTI reader (the same decode our contender pays) and
// handed over as an itk-wasm Image in ITK's LPS physical space.
import { createRequire } from 'node:module';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeSegmentationNode } from '@itk-wasm/dicom';

const [buildDir, maskPath, sourceDir, outFile, metaPath] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const { readNifti } = require(join(buildDir, 'lib', 'volume', 'nifti.js'));

const mask = readNifti(maskPath);
const a = mask.affine;
const spacing = [0, 1, 2].map((c) => Math.hypot(a[0][c], a[1][c], a[2][c]));
const flip = [-1, -1, 1];
const direction = new Float64Array(9);
for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) direction[r * 3 + c] = (flip[r] * a[r][c]) / spacing[c];
const image = {
  imageType: { dimension: 3, componentType: 'int16', pixelType: 'Scalar', components: 1 },
  name: 'labels',
  origin: [0, 1, 2].map((r) => flip[r] * a[r][3]),
  spacing,
  direction,
  size: [...mask.dims],
  metadata: new Map(),
  data: Int16Array.from(mask.data),
};
const refDicomSeries = readdirSync(sourceDir).map((f) => join(sourceDir, f));
await writeSegmentationNode(image, JSON.parse(readFileSync(metaPath, 'utf8')), outFile, { refDicomSeries, skipEmptySlices: true, useLabelidAsSegmentnumber: true });

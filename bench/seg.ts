/**
 * The SEG writer: `clara-dicom seg` (lib/seg) against dcmqi's itkimage2segimage as @itk-wasm/dicom's
 * `writeSegmentation` (bench/peers/seg_itkwasm.mjs) and against dcmjs's `derivations.Segmentation`, the
 * path of the Cornerstone adapters (bench/peers/seg_dcmjs.js). Same input for all three, in the same run:
 * the phantom's oblique T1c series as the source instances and a 3-label mask on its grid (the ground-truth
 * tumour core, a shell around it, a separate ball), as a .nii.gz; each contender reads both and writes one
 * BINARY SEG with empty frames left out. Whole processes, timed by /usr/bin/time, rounds interleaved after
 * an untimed warm-up; medians. Every output's frame count is checked against ours.
 *
 * Run as a script (`node seg.js --ours <mask> <source-dir> <out-dir> <labels>`) this module is our
 * contender: the CLI's code path in a fresh process.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readDicomHeader } from '../lib/dicom/reader';
import { Tag } from '../lib/dicom/tags';
import { writePhantomStudy } from '../lib/phantom';
import { readNifti, writeNifti } from '../lib/volume/nifti';
import { type ProcessTiming, interleave, median, timeProcess } from './process';
import type { BenchOptions, BenchRow } from './types';

const BUILD_DIR = join(__dirname, '..');
const PEERS = join(__dirname, '..', '..', 'bench', 'peers');
const LABELS = ['Tumor core', 'Edema', 'Necrosis'];
const CATEGORY = { CodeValue: '49755003', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Morphologically Abnormal Structure' };
const TYPE = { CodeValue: '108369006', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Neoplasm' };

/** The phantom's target series and a 3-label mask on its grid. */
function prepare(dir: string, size: number, slices: number): { mask: string; sourceDir: string; voxels: number[] } {
  const study = writePhantomStudy(join(dir, 'study'), { size, slices, seed: 7 });
  const target = study.series.find((s) => s.isTarget)!;
  const truth = readNifti(join(dir, 'study', study.maskPath));
  const [nx, ny, nz] = truth.dims;
  const core = truth.data;
  const data = new Uint8Array(core.length);
  const radius = Math.max(2, Math.round(size / 32));
  const voxels = [0, 0, 0];
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const n = (k * ny + j) * nx + i;
        let label = 0;
        if (core[n]) label = 1;
        else if (i > 0 && j > 0 && k > 0 && i < nx - 1 && j < ny - 1 && k < nz - 1 && (core[n - 1] || core[n + 1] || core[n - nx] || core[n + nx] || core[n - nx * ny] || core[n + nx * ny])) label = 2;
        else if ((i - nx / 4) ** 2 + (j - ny / 2) ** 2 + ((k - nz / 2) * (size / slices)) ** 2 < (2 * radius) ** 2) label = 3;
        data[n] = label;
        if (label) voxels[label - 1]++;
      }
    }
  }
  const mask = join(dir, 'mask.nii.gz');
  writeNifti(mask, { ...truth, data });
  return { mask, sourceDir: join(dir, 'study', target.dir), voxels };
}

function dcmqiMetaInfo(): unknown {
  return {
    ContentCreatorName: 'BENCH^DCMQI',
    ClinicalTrialSeriesID: '1',
    ClinicalTrialTimePointID: '1',
    ClinicalTrialCoordinatingCenterName: 'bench',
    SeriesDescription: 'dcmqi SEG',
    SeriesNumber: '300',
    InstanceNumber: '1',
    ContentLabel: 'SEGMENTATION',
    ContentDescription: 'bench',
    BodyPartExamined: 'BRAIN',
    segmentAttributes: [
      LABELS.map((label, i) => ({
        labelID: i + 1,
        SegmentLabel: label,
        SegmentDescription: label,
        SegmentAlgorithmType: 'AUTOMATIC',
        SegmentAlgorithmName: 'bench',
        SegmentedPropertyCategoryCodeSequence: CATEGORY,
        SegmentedPropertyTypeCodeSequence: TYPE,
        recommendedDisplayRGBValue: [[230, 40, 40], [40, 200, 80], [50, 110, 240]][i],
      })),
    ],
  };
}

function framesOf(file: string): number {
  return readDicomHeader(file).dataset.number(Tag.NumberOfFrames) ?? 0;
}

async function ours(mask: string, sourceDir: string, outDir: string, labels: string): Promise<void> {
  const { run } = await import('../lib/cli/seg');
  const code = await run([mask, sourceDir, outDir, '--labels', labels, '--algorithm', 'bench', '--series-description', 'clara-dicom SEG']);
  if (code !== 0) throw new Error(`clara-dicom seg exited ${code}`);
}

export async function run(options: BenchOptions): Promise<BenchRow[]> {
  const root = join(tmpdir(), `clara-bench-seg-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const [size, slices] = options.quick ? [128, 80] : [256, 160];
  const rounds = options.quick ? 3 : 5;
  try {
    const input = prepare(join(root, 'input'), size, slices);
    const meta = join(root, 'dcmqi-meta.json');
    writeFileSync(meta, JSON.stringify(dcmqiMetaInfo()));
    const labels = JSON.stringify(LABELS);
    const outputs = { ours: join(root, 'out-ours'), dcmqi: join(root, 'out-dcmqi.dcm'), dcmjs: join(root, 'out-dcmjs.dcm') };
    const contenders: Record<'ours' | 'dcmqi' | 'dcmjs', () => Promise<ProcessTiming>> = {
      ours: () => {
        rmSync(outputs.ours, { recursive: true, force: true });
        return timeProcess(process.execPath, [__filename, '--ours', input.mask, input.sourceDir, outputs.ours, labels]);
      },
      dcmqi: () => timeProcess(process.execPath, [join(PEERS, 'seg_itkwasm.mjs'), BUILD_DIR, input.mask, input.sourceDir, outputs.dcmqi, meta]),
      dcmjs: () => timeProcess(process.execPath, [join(PEERS, 'seg_dcmjs.js'), BUILD_DIR, input.mask, input.sourceDir, outputs.dcmjs, labels]),
    };
    await interleave(1, contenders);
    const oursFile = join(outputs.ours, readdirSync(outputs.ours)[0]);
    const frames = { ours: framesOf(oursFile), dcmqi: framesOf(outputs.dcmqi), dcmjs: framesOf(outputs.dcmjs) };
    const timings = await interleave(rounds, contenders);
    const seconds = (name: keyof typeof timings) => median(timings[name].map((t) => t.wallSeconds));
    const rss = (name: keyof typeof timings) => Math.max(...timings[name].map((t) => t.peakRssMb));
    const description = `phantom T1c ${size}×${size}×${slices} (oblique, ${slices} instances), 3 labels (${input.voxels.join(' / ')} voxels), ${frames.ours} non-empty frames`;
    const row = (peer: 'dcmqi' | 'dcmjs', peerName: string, what: string): BenchRow => {
      const ratio = seconds(peer) / seconds('ours');
      return {
        name: `SEG writer vs ${what}`,
        input: description,
        ours: seconds('ours'),
        peer: seconds(peer),
        peerName,
        unit: 's',
        ratio,
        target: '> 1 (faster than the peer)',
        met: ratio > 1,
        higherIsBetter: true,
        oursPeakRssMb: rss('ours'),
        peerPeakRssMb: rss(peer),
        notes:
          `whole process: read the .nii.gz mask and the ${slices} source instances, write one BINARY SEG without empty frames; ` +
          `frames written: ours ${frames.ours}, ${peer} ${frames[peer]}${frames[peer] === frames.ours ? '' : ' (DIFFERENT)'}; medians of ${rounds} interleaved rounds after a warm-up`,
      };
    };
    return [
      row('dcmqi', '@itk-wasm/dicom writeSegmentation (dcmqi)', 'dcmqi (@itk-wasm/dicom)'),
      row('dcmjs', 'dcmjs derivations.Segmentation', 'dcmjs Segmentation derivation'),
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (require.main === module && process.argv[2] === '--ours') {
  const [mask, sourceDir, outDir, labels] = process.argv.slice(3);
  ours(mask, sourceDir, outDir, labels).catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
}

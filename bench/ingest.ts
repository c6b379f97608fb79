import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writePhantomStudy } from '../lib/phantom';
import { BenchOptions, BenchRow } from './types';
import { interleave, median, timeProcess } from './process';

const CLI = join(__dirname, '..', 'lib', 'cli', 'main.js');
// Debian's python3 carries python3-pydicom; a pyenv python3 earlier on PATH may not.
const PYTHON = '/usr/bin/python3';
const PYDICOM_LOADER = join(__dirname, '..', '..', 'bench', 'peers', 'pydicom_loader.py');

function folderBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    total += st.isDirectory() ? folderBytes(path) : st.size;
  }
  return total;
}

/**
 * clara-dicom parse against dcm2niix and against a pydicom+numpy loader, each a whole process on the
 * same files in a warm page cache, interleaved, medians of several rounds.
 */
export async function run(options: BenchOptions): Promise<BenchRow[]> {
  const sizes = options.quick ? [{ size: 256, slices: 160 }] : [{ size: 256, slices: 160 }, { size: 512, slices: 300 }];
  const rounds = options.quick ? 3 : 5;
  const rows: BenchRow[] = [];
  const baseline = await timeProcess(process.execPath, ['-e', '']);
  for (const { size, slices } of sizes) {
    const root = join(tmpdir(), `clara-bench-ingest-${size}-${process.pid}`);
    rmSync(root, { recursive: true, force: true });
    const study = writePhantomStudy(join(root, 'study'), { size, slices, seed: 7 });
    const dicomDir = join(root, 'study', 'dicom');
    const instances = study.series.reduce((n, s) => n + s.instanceCount, 0);
    const largestVolumeMb = Math.max(...study.series.map((s) => s.rows * s.columns * s.instanceCount * 2)) / 2 ** 20;
    const input = `phantom ${size}×${size}×${slices}: ${study.series.length} series, ${instances} instances, ${(folderBytes(dicomDir) / 2 ** 20).toFixed(0)} MB`;
    const outDir = (name: string) => {
      const dir = join(root, 'out', name);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      return dir;
    };
    const contenders = {
      ours: () => timeProcess(process.execPath, [CLI, 'parse', dicomDir, outDir('ours'), '--format', 'nifti']),
      dcm2niix: () => timeProcess('dcm2niix', ['-z', 'n', '-f', '%s_%j', '-o', outDir('dcm2niix'), dicomDir]),
      pydicom: () => timeProcess(PYTHON, [PYDICOM_LOADER, dicomDir, outDir('pydicom')]),
    };
    // One untimed round warms the page cache and the interpreters' own files.
    await interleave(1, contenders);
    const timings = await interleave(rounds, contenders);
    const wall = (name: keyof typeof timings) => median(timings[name].map((t) => t.wallSeconds));
    const rss = (name: keyof typeof timings) => median(timings[name].map((t) => t.peakRssMb));
    const ours = wall('ours');
    rows.push({
      name: 'Parse: clara-dicom parse vs dcm2niix',
      input,
      ours,
      peer: wall('dcm2niix'),
      peerName: 'dcm2niix -z n',
      unit: 's',
      ratio: wall('dcm2niix') / ours,
      target: '≥ 0.67 (at most 1.5× dcm2niix’s wall time)',
      met: ours <= 1.5 * wall('dcm2niix'),
      higherIsBetter: false,
      oursPeakRssMb: rss('ours'),
      peerPeakRssMb: rss('dcm2niix'),
    });
    rows.push({
      name: 'Parse: clara-dicom parse vs pydicom+numpy loader (MONAI Deploy kind)',
      input,
      ours,
      peer: wall('pydicom'),
      peerName: 'pydicom+numpy',
      unit: 's',
      ratio: wall('pydicom') / ours,
      target: '≥ 3 (at least 3× faster)',
      met: wall('pydicom') >= 3 * ours,
      higherIsBetter: false,
      oursPeakRssMb: rss('ours'),
      peerPeakRssMb: rss('pydicom'),
    });
    const growth = rss('ours') - baseline.peakRssMb;
    rows.push({
      name: 'Parse: peak RSS against the largest volume',
      input,
      ours: rss('ours'),
      peer: largestVolumeMb,
      peerName: 'largest volume (int16)',
      unit: 'MB',
      ratio: growth / largestVolumeMb,
      target: '≤ 2 (RSS above an idle node process, per MB of the largest volume)',
      met: growth <= 2 * largestVolumeMb,
      higherIsBetter: false,
      notes: `idle node process: ${baseline.peakRssMb.toFixed(0)} MB; growth ${growth.toFixed(0)} MB`,
    });
    rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

/**
 * RT Structure Set writing: `clara-dicom rtstruct` against `plastimatch convert --input-ss-img … --output-dicom`,
 * whole processes, on the same 3-label mask of the phantom's oblique T1c series (256×256×160; quick 256×256×96,
 * where both processes' start-up weighs more), five rounds interleaved, medians, peak RSS from /usr/bin/time.
 *
 * plastimatch reads a structure-set image as bits (value 4 is the third structure, 3 would be the first two
 * overlapping), so its copy of the mask holds 1, 2 and 4 where ours holds 1, 2 and 3: the same regions.
 * Both outputs are then read back by plastimatch itself (--xor-contours) onto the series, for the Dice in the notes.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dice } from '../lib/infer/metrics';
import { writePhantomStudy } from '../lib/phantom';
import { applyAffine } from '../lib/volume/geometry';
import { readNifti, writeNifti } from '../lib/volume/nifti';
import type { Volume } from '../lib/volume/types';
import { plastimatchRoundTrip } from '../test/rtstruct/helpers';
import { interleave, median, timeProcess } from './process';
import type { BenchOptions, BenchRow } from './types';

const MAIN = join(__dirname, '..', 'lib', 'cli', 'main.js');
const MODULE = join(__dirname, '..', 'lib', 'cli', 'rtstruct.js');
const LABELS = ['Tumor core', 'Shell', 'Ball'];

/** The CLI as a user runs it; until lib/cli/main.ts registers `rtstruct`, main.js with the command registered by a shim. */
function cliArgs(): string[] {
  const help = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' });
  if (/^\s+rtstruct /m.test(help.stdout)) return [MAIN];
  return ['-e', `const m = require(${JSON.stringify(MAIN)}); m.registerCommand('rtstruct', { usage: '', summary: '', load: async () => require(${JSON.stringify(MODULE)}) }); m.main(process.argv.slice(1)).then((c) => process.exit(c));`];
}

/** Tumour core (label 1), a shell round the head's centre that is a ring with a hole on most slices (2), a ball (3). */
function threeLabels(truth: Volume): { ours: Volume; bits: Volume } {
  const [nx, ny] = truth.dims;
  const ours = new Uint8Array(truth.data.length);
  const bits = new Uint8Array(truth.data.length);
  for (let n = 0; n < ours.length; n++) {
    const p = applyAffine(truth.affine, [n % nx, Math.floor(n / nx) % ny, Math.floor(n / (nx * ny))]);
    const shell = Math.hypot(p[0], p[1], p[2] - 5);
    const ball = Math.hypot(p[0] + 30, p[1] - 25, p[2] - 10);
    const v = truth.data[n] ? 1 : ball <= 16 ? 3 : shell <= 55 && shell > 40 ? 2 : 0;
    ours[n] = v;
    bits[n] = v === 3 ? 4 : v;
  }
  return { ours: { ...truth, data: ours }, bits: { ...truth, data: bits } };
}

export async function run(options: BenchOptions): Promise<BenchRow[]> {
  const root = join(tmpdir(), `clara-bench-rtstruct-${process.pid}`);
  const [size, slices] = options.quick ? [256, 96] : [256, 160];
  const rounds = 5;
  mkdirSync(root, { recursive: true });
  try {
    const study = writePhantomStudy(join(root, 'study'), { size, slices, seed: 3 });
    const sourceDir = join(root, 'study', study.series.find((s) => s.isTarget)!.dir);
    const { ours, bits } = threeLabels(readNifti(join(root, 'study', study.maskPath)));
    const oursMask = join(root, 'labels.nii.gz');
    const peerMask = join(root, 'labels-bits.nii.gz');
    writeNifti(oursMask, ours);
    writeNifti(peerMask, bits);
    // plastimatch's structure list (bit|r g b|name), so that its ROIs carry the same names and colours as ours.
    const peerList = join(root, 'labels-bits.txt');
    writeFileSync(peerList, LABELS.map((name, i) => `${i}|${['255 0 0', '0 200 0', '0 120 255'][i]}|${name}`).join('\n') + '\n');
    const cli = cliArgs();
    let round = 0;
    const outOf = (who: string) => {
      const dir = join(root, `${who}-${round}`);
      rmSync(dir, { recursive: true, force: true });
      return dir;
    };
    const results = await interleave(rounds, {
      ours: () => timeProcess(process.execPath, [...cli, 'rtstruct', oursMask, sourceDir, outOf('ours'), '--labels', JSON.stringify(LABELS)]),
      plastimatch: () => {
        const out = outOf('plastimatch');
        round++;
        return timeProcess('plastimatch', ['convert', '--input-ss-img', peerMask, '--input-ss-list', peerList, '--referenced-ct', sourceDir, '--output-dicom', out]);
      },
    });
    // What each wrote, read back by plastimatch onto the series, ROI by ROI name.
    const oursFile = join(root, 'ours-0', readdirSync(join(root, 'ours-0'))[0]);
    const peerFile = join(root, 'plastimatch-0', readdirSync(join(root, 'plastimatch-0')).find((f) => f.startsWith('rtss'))!);
    const oursBack = plastimatchRoundTrip(oursFile, sourceDir, join(root, 'back-ours'), ours);
    const peerBack = plastimatchRoundTrip(peerFile, sourceDir, join(root, 'back-peer'), ours);
    const diceOf = (image: Uint8Array | undefined, value: number) => (image ? dice(Uint8Array.from(ours.data, (v) => (v === value ? 1 : 0)), image) : NaN);
    const oursDice = LABELS.map((name, i) => diceOf(oursBack.get(name), i + 1));
    const peerDice = LABELS.map((name, i) => diceOf(peerBack.get(name), i + 1));
    const oursSeconds = median(results.ours.map((t) => t.wallSeconds));
    const peerSeconds = median(results.plastimatch.map((t) => t.wallSeconds));
    const ratio = peerSeconds / oursSeconds;
    const fmt = (values: number[]) => values.map((d) => d.toFixed(4)).join(' / ');
    return [
      {
        name: 'RTSTRUCT writer (3 labels)',
        input: `label mask ${size}×${size}×${slices}, 3 labels (tumour core, shell with holes, ball) on the oblique T1c, ${slices} instances`,
        ours: oursSeconds,
        peer: peerSeconds,
        peerName: 'plastimatch convert --input-ss-img (+ --input-ss-list) --output-dicom',
        unit: 's',
        ratio,
        target: '≥ 1 (no slower than plastimatch)',
        met: ratio >= 1,
        higherIsBetter: true,
        oursPeakRssMb: median(results.ours.map((t) => t.peakRssMb)),
        peerPeakRssMb: median(results.plastimatch.map((t) => t.peakRssMb)),
        notes: `whole processes (ours: node ${cli[0] === MAIN ? 'dist/lib/cli/main.js' : 'main.js + registration shim'} rtstruct), medians of ${rounds} interleaved rounds; read back by plastimatch --xor-contours, Dice per ROI ours ${fmt(oursDice)}, plastimatch's own ${fmt(peerDice)}`,
      },
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (require.main === module) {
  run({ quick: process.argv.includes('--quick') }).then(
    (rows) => process.stdout.write(JSON.stringify(rows, null, 2) + '\n'),
    (err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    },
  );
}

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { run as writeRtstructCli } from '../../lib/cli/rtstruct';
import { run as writeSegCli } from '../../lib/cli/seg';
import { parseDicom } from '../../lib/dicom/reader';
import { Tag } from '../../lib/dicom/tags';
import { TransferSyntax } from '../../lib/dicom/uids';
import { writePhantomStudy } from '../../lib/phantom';
import { type Mutant, Rng, mutate, replaceUid, uniqueUid } from '../support/mutate';
import { allFilesUnder } from '../support/tools';

/** pydicom's test files (Debian python3-pydicom): images in many encodings, non-images and junk. */
export const PYDICOM_CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

/** CLARA_SOAK=1: the full counts (npm run test:soak); otherwise the bounded CI counts. */
export const SOAK = process.env.CLARA_SOAK === '1';

/** A real file the mutants are made from. */
export interface SeedFile {
  /** Where it came from: "pydicom/CT_small.dcm", "phantom/…", "seg/…", "rtstruct/…". */
  name: string;
  bytes: Buffer;
  /** Where the data set starts (after the Part 10 meta header); the mutator leaves the meta header alone. */
  datasetOffset: number;
  sopClassUID: string;
  sopInstanceUID: string;
  transferSyntaxUID: string;
}

const TRANSFER_SYNTAXES = new Set<string>(Object.values(TransferSyntax));

function seedOf(name: string, bytes: Buffer): SeedFile | undefined {
  try {
    const file = parseDicom(bytes, { complete: true, stopAtPixelData: true, fileSize: bytes.length });
    const sopClassUID = file.dataset.string(Tag.SOPClassUID) ?? file.meta.string(Tag.MediaStorageSOPClassUID);
    const sopInstanceUID = file.dataset.string(Tag.SOPInstanceUID);
    // Mutants get UIDs of the same length as the original; a UID too short for that is left out.
    if (!file.hasPart10Header || !sopClassUID || !sopInstanceUID || sopInstanceUID.length < 16) return undefined;
    // A deflated data set hides its UIDs in compressed bytes, where no unique one can be written.
    if (!TRANSFER_SYNTAXES.has(file.transferSyntaxUID) || file.inflated) return undefined;
    return { name, bytes, datasetOffset: file.datasetOffset, sopClassUID, sopInstanceUID, transferSyntaxUID: file.transferSyntaxUID };
  } catch {
    return undefined;
  }
}

/** Files of the pydicom corpus that are readable Part 10 instances (the junk ones go into folder ingest as they are). */
export function pydicomSeeds(): { seeds: SeedFile[]; all: string[] } {
  const all = allFilesUnder(PYDICOM_CORPUS);
  const seeds: SeedFile[] = [];
  for (const path of all) {
    const seed = seedOf(`pydicom/${relative(PYDICOM_CORPUS, path)}`, readFileSync(path));
    // Multi-megabyte files would dominate the run without exercising anything new.
    if (seed && seed.bytes.length <= 600 * 1024) seeds.push(seed);
  }
  return { seeds, all };
}

/**
 * A small phantom study (every series), and this project's own SEG and RT Structure Set of its
 * ground-truth mask, written by the same writers the nodes use.
 */
export async function ownSeeds(dir: string): Promise<SeedFile[]> {
  const phantomDir = join(dir, 'phantom');
  const study = writePhantomStudy(phantomDir, { size: 16, slices: 8, seed: 9 });
  const target = study.series.find((s) => s.isTarget)!;
  const seeds: SeedFile[] = [];
  for (const path of allFilesUnder(join(phantomDir, 'dicom'))) {
    const seed = seedOf(`phantom/${relative(phantomDir, path)}`, readFileSync(path));
    if (seed) seeds.push(seed);
  }
  const segDir = join(dir, 'seg');
  const rtDir = join(dir, 'rtstruct');
  mkdirSync(segDir, { recursive: true });
  mkdirSync(rtDir, { recursive: true });
  const mask = join(phantomDir, study.maskPath);
  const quiet = process.stdout.write;
  // The CLI writers print a line each; the test output stays readable without them.
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    await writeSegCli([mask, join(phantomDir, target.dir), segDir]);
    await writeRtstructCli([mask, join(phantomDir, target.dir), rtDir]);
  } finally {
    process.stdout.write = quiet;
  }
  for (const [kind, folder] of [['seg', segDir], ['rtstruct', rtDir]] as const) {
    const files = allFilesUnder(folder);
    if (files.length !== 1) throw new Error(`expected one ${kind} file in ${folder}, found ${files.length}`);
    const seed = seedOf(`${kind}/${relative(folder, files[0])}`, readFileSync(files[0]));
    if (!seed) throw new Error(`our own ${kind} output ${files[0]} is not a readable instance`);
    seeds.push(seed);
  }
  return seeds;
}

/** One case of a fuzz run: the mutant, which seed file it came from, and the UID it was given. */
export interface FuzzCase {
  index: number;
  seedFile: SeedFile;
  mutant: Mutant;
  /** The unique SOP Instance UID written into this case before mutation. */
  sopInstanceUID: string;
  /** The bytes of a Part 10 file (meta header intact) and, for C-STORE, the data set alone. */
  file: Buffer;
  dataset: Buffer;
}

/**
 * The `index`-th case of a run with `runSeed`: a seed file chosen by the index, its own unique SOP Instance
 * UID, then one mutation, or none for every `controlEvery`-th case (the controls, which must be kept).
 * Everything derives from (runSeed, index), so one failing case is replayed alone.
 */
export function fuzzCase(seeds: readonly SeedFile[], runSeed: number, index: number, controlEvery = 10): FuzzCase {
  const caseSeed = (Math.imul(runSeed, 0x9e3779b1) ^ index) >>> 0;
  const rng = new Rng(caseSeed);
  const seedFile = seeds[rng.int(0, seeds.length - 1)];
  const sopInstanceUID = uniqueUid(seedFile.sopInstanceUID.length, (runSeed % 1000) * 1_000_000 + index);
  const unique = replaceUid(seedFile.bytes, seedFile.sopInstanceUID, sopInstanceUID);
  const mutant: Mutant = index % controlEvery === 0
    ? { bytes: unique, kind: 'none', seed: caseSeed, detail: 'control: not mutated' }
    : mutate(unique, seedFile.datasetOffset, caseSeed);
  const file = mutant.bytes;
  const dataset = file.subarray(Math.min(seedFile.datasetOffset, file.length));
  return { index, seedFile, mutant, sopInstanceUID, file, dataset };
}

/** How a case is named in a failure message: enough to replay it. */
export function describeCase(c: FuzzCase, runSeed: number): string {
  return `case ${c.index} of run seed ${runSeed} (mutation seed ${c.mutant.seed}, ${c.mutant.kind}: ${c.mutant.detail}) from ${c.seedFile.name}`;
}

export function writeCase(dir: string, c: FuzzCase): string {
  const path = join(dir, `case-${String(c.index).padStart(6, '0')}.dcm`);
  writeFileSync(path, c.file);
  return path;
}

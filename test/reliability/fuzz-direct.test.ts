import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeFrames } from '../../lib/dicom/pixels';
import { DicomParseError, parseDicom, readDicomHeader } from '../../lib/dicom/reader';
import { writePhantomStudy } from '../../lib/phantom';
import { selectSeries } from '../../lib/select/match';
import { PatternTranslationError } from '../../lib/select/python-regex';
import { RulesError, compileRules, decodeRulesText } from '../../lib/select/rules';
import { readDicomMetadata } from '../../lib/select/run';
import { parseStudy } from '../../lib/volume/parse';
import { CLARA_PIPELINE_YAML, seedSelectionRulesBase64 } from '../support/clara';
import { Rng, mutate } from '../support/mutate';
import { runProcess } from '../dimse/helpers';
import { allFilesUnder, scratchDir } from '../support/tools';
import { SOAK, type SeedFile, describeCase, fuzzCase, ownSeeds, pydicomSeeds, writeCase } from './seeds';

/** Messages of JavaScript's own errors: what escapes when input reaches code that did not expect it. */
const INTERNAL_ERROR = /Cannot read propert|is not a function|is not iterable|Offset is outside|Invalid (typed )?array length|Maximum call stack|allocation failed|Invalid string length|Cannot create a string|is not defined|Array buffer|out of memory|Cannot set propert/;
const RUN_SEED = Number(process.env.CLARA_FUZZ_SEED ?? 20261201);

interface Tally {
  cases: number;
  typedErrors: number;
  accepted: number;
}

function report(name: string, tally: Tally, extra = ''): void {
  // One line per fuzz target, in the form docs/reliability.md quotes.
  console.log(`      [reliability] ${name}: ${tally.cases} cases, ${tally.accepted} accepted, ${tally.typedErrors} refused with a typed error, 0 crashes${extra} (run seed ${RUN_SEED}, ${SOAK ? 'soak' : 'CI'} mode)`);
}

/** Whatever `work` throws must be one of `typed`, and not carry a JavaScript internal message. */
function expectTyped(what: string, typed: Array<new (...args: never[]) => Error>, work: () => void, tally: Tally): void {
  tally.cases++;
  try {
    work();
    tally.accepted++;
  } catch (err) {
    if (!typed.some((t) => err instanceof t)) assert.fail(`${what}: threw ${(err as Error)?.name}: ${String((err as Error)?.message).slice(0, 300)}\n${String((err as Error)?.stack).split('\n').slice(1, 8).join('\n')}`);
    tally.typedErrors++;
  }
}

describe('reliability: fuzzing the reader, the parser, the selection rules and the pipeline importer directly', function () {
  this.timeout(SOAK ? 1800000 : 300000);
  const scratch = scratchDir('fuzz-direct');
  let seeds: SeedFile[];

  before(async () => {
    const corpus = pydicomSeeds();
    assert.ok(corpus.all.length > 100, 'the pydicom corpus is missing (install python3-pydicom)');
    seeds = [...corpus.seeds, ...(await ownSeeds(join(scratch.dir, 'own')))];
    assert.ok(seeds.some((s) => s.name.startsWith('seg/')) && seeds.some((s) => s.name.startsWith('rtstruct/')));
  });
  after(() => scratch.cleanup());

  it('lib/dicom: every mutant parses or is refused with DicomParseError (header, whole file, pixel frames)', async () => {
    const count = SOAK ? 50000 : 10000;
    const tally: Tally = { cases: 0, typedErrors: 0, accepted: 0 };
    const decodeDir = join(scratch.dir, 'decode');
    mkdirSync(decodeDir, { recursive: true });
    let decoded = 0;
    for (let i = 0; i < count; i++) {
      const c = fuzzCase(seeds, RUN_SEED, i);
      const what = describeCase(c, RUN_SEED);
      expectTyped(what, [DicomParseError], () => parseDicom(c.file, { complete: true }), tally);
      expectTyped(what, [DicomParseError], () => parseDicom(c.file, { complete: true, stopAtPixelData: true, fileSize: c.file.length }), tally);
      // A leading part, as the SCP parses what it holds in memory: more data wanted is not an error here.
      try {
        parseDicom(c.file.subarray(0, 4096), { complete: false, stopAtPixelData: true, fileSize: c.file.length });
      } catch (err) {
        if (err instanceof TypeError || err instanceof RangeError) assert.fail(`${what}: partial parse threw ${(err as Error).stack}`);
      }
      // Every 20th case: read back from disk and decode the pixel data, as the parser does.
      if (i % 20 === 0) {
        const path = writeCase(decodeDir, c);
        try {
          const file = readDicomHeader(path);
          if (file.pixelData) {
            await decodeFrames(path, file);
            decoded++;
          }
        } catch (err) {
          if (!(err instanceof DicomParseError)) assert.fail(`${what}: reading or decoding threw ${(err as Error)?.name}: ${(err as Error)?.stack}`);
        } finally {
          rmSync(path, { force: true });
        }
      }
    }
    report(`lib/dicom reader (${count} mutants, whole and header-only parses)`, tally, `, ${decoded} mutants decoded to frames`);
  });

  it('lib/volume parseStudy: folders of mutated series always give a result, every skip with a reason (no internal error)', async () => {
    const folders = SOAK ? 1500 : 150;
    const phantomDir = join(scratch.dir, 'parse-phantom');
    const study = writePhantomStudy(phantomDir, { size: 16, slices: 8, seed: 3 });
    const target = study.series.find((s) => s.isTarget)!;
    const sliceFiles = allFilesUnder(join(phantomDir, target.dir));
    let volumes = 0;
    let skips = 0;
    for (let f = 0; f < folders; f++) {
      const rng = new Rng(RUN_SEED + f);
      const input = join(scratch.dir, 'parse-in');
      const output = join(scratch.dir, 'parse-out');
      rmSync(input, { recursive: true, force: true });
      mkdirSync(input, { recursive: true });
      // Half the folders: the phantom series with 1 to 3 slices mutated; half: one corpus or own mutant alone.
      const cases: string[] = [];
      if (f % 2 === 0) {
        const mutated = new Set<number>();
        for (let k = rng.int(1, 3); k > 0; k--) mutated.add(rng.int(0, sliceFiles.length - 1));
        sliceFiles.forEach((path, k) => {
          const bytes = readFileSync(path);
          if (!mutated.has(k)) return writeFileSync(join(input, `${k}.dcm`), bytes);
          const header = readDicomHeader(path);
          const m = mutate(bytes, header.datasetOffset, RUN_SEED * 7 + f * 31 + k);
          cases.push(`slice ${k}: seed ${m.seed}, ${m.kind}: ${m.detail}`);
          writeFileSync(join(input, `${k}.dcm`), m.bytes);
        });
      } else {
        const c = fuzzCase(seeds, RUN_SEED + 1, f, 1000000);
        cases.push(describeCase(c, RUN_SEED + 1));
        writeCase(input, c);
      }
      let result;
      try {
        result = await parseStudy(input, output, { format: 'nifti', clean: true });
      } catch (err) {
        assert.fail(`folder ${f} (${cases.join('; ')}): parseStudy threw ${(err as Error).name}: ${(err as Error).stack}`);
      }
      for (const s of result.skipped) {
        assert.ok(s.reason.length > 5, `folder ${f}: an empty reason`);
        assert.doesNotMatch(s.reason, INTERNAL_ERROR, `folder ${f} (${cases.join('; ')}): skipped with an internal error as its reason`);
      }
      volumes += result.volumes.length;
      skips += result.skipped.length;
    }
    console.log(`      [reliability] lib/volume parseStudy: ${folders} folders, ${volumes} volumes written, ${skips} skips each with a reason, 0 crashes (run seed ${RUN_SEED})`);
  });

  it('lib/select: mutated rule documents compile or throw RulesError; compiled ones select without failing', async () => {
    const count = SOAK ? 20000 : 4000;
    // Metadata of a real parsed phantom study to apply the rules to.
    const phantomDir = join(scratch.dir, 'select-phantom');
    writePhantomStudy(phantomDir, { size: 16, slices: 8, seed: 4 });
    const parserDir = join(scratch.dir, 'select-parser');
    await parseStudy(join(phantomDir, 'dicom'), parserDir, { format: 'nifti' });
    const metadata = readDicomMetadata(parserDir);
    const base64 = seedSelectionRulesBase64();
    const seedDocument = decodeRulesText(base64) as Record<string, unknown>;
    const tally: Tally = { cases: 0, typedErrors: 0, accepted: 0 };
    const strange: unknown[] = [
      null, 0, -1, 1e308, NaN, '', '(', '[a-', '(?P<x>a)(?P=x)', '(?<=a)b', '\\', '*', 'a{1,99999}', '(?i)', '(?x) a # c', '(a+)+', '^$', '[[:alpha:]]',
      '(?P<n>', '\\Z', '\\u12', '(?#', '(?s:.)', [], [[[]]], {}, { '': '' }, ['>', 'x'], ['>=', 3], ['!=', []], ['<', null], ['axial'], 'x'.repeat(2000),
      true, Array.from({ length: 1000 }, (_, i) => i), { selections: [] },
    ];
    const mutateJson = (rng: Rng, value: unknown, depth: number): unknown => {
      if (rng.chance(0.15) || depth > 6) return rng.pick(strange);
      if (Array.isArray(value)) {
        const out = value.map((v) => mutateJson(rng, v, depth + 1));
        if (rng.chance(0.2)) out.push(rng.pick(strange));
        if (rng.chance(0.1)) out.splice(0, 1);
        return out;
      }
      if (value && typeof value === 'object') {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value)) {
          if (rng.chance(0.1)) continue;
          out[rng.chance(0.1) ? rng.pick(['Modality', 'SeriesDescription', 'ImageType', 'ImageOrientationPatient', 'SliceThickness', 'x', '0020000D', '(0008,0060)', '__proto__', 'constructor']) : k] = mutateJson(rng, v, depth + 1);
        }
        return out;
      }
      return rng.chance(0.5) ? rng.pick(strange) : value;
    };
    for (let i = 0; i < count; i++) {
      const rng = new Rng(RUN_SEED ^ (i * 2654435761));
      const what = `rules case ${i} (run seed ${RUN_SEED})`;
      let document: unknown;
      if (i % 4 === 0) {
        // Text-level: bit flips, cuts and splices of the JSON or the Base64 itself.
        const text = i % 8 === 0 ? JSON.stringify(seedDocument) : base64;
        const m = mutate(Buffer.from(text), 0, RUN_SEED + i);
        try {
          document = decodeRulesText(m.bytes.toString('utf8'));
        } catch (err) {
          tally.cases++;
          if (!(err instanceof RulesError)) assert.fail(`${what}: decodeRulesText threw ${(err as Error).stack}`);
          tally.typedErrors++;
          continue;
        }
      } else {
        document = mutateJson(rng, seedDocument, 0);
      }
      expectTyped(what, [RulesError, PatternTranslationError], () => {
        const rules = compileRules(document);
        selectSeries(metadata, rules);
      }, tally);
    }
    report('lib/select rules', tally);
  });

  it('lib/select: a pattern too large for the JavaScript regex engine is refused with RulesError, not a SyntaxError when a study is matched', async () => {
    const parserDir = join(scratch.dir, 'select-parser-large');
    writePhantomStudy(join(scratch.dir, 'select-phantom-large'), { size: 16, slices: 8, seed: 4 });
    await parseStudy(join(scratch.dir, 'select-phantom-large', 'dicom'), parserDir, { format: 'nifti' });
    const metadata = readDicomMetadata(parserDir);
    const document = { selections: [{ name: 'T1C', conditions: { SeriesDescription: 'x'.repeat(100000) } }] };
    let thrown: unknown;
    try {
      selectSeries(metadata, compileRules(document));
    } catch (err) {
      thrown = err;
    }
    assert.ok(thrown instanceof RulesError || thrown instanceof PatternTranslationError, `compileRules accepted the pattern, then matching threw ${(thrown as Error)?.name}: ${String((thrown as Error)?.message).slice(-60)}`);
  });

  it('flows/pipeline: mutated Clara pipeline YAML parses or throws PipelineError (in a child process, so a crash shows as one)', async () => {
    const count = SOAK ? 20000 : 2000;
    // A fatal V8 error (out of memory, stack) would end mocha itself: the importer runs in its own process.
    const worker = join(__dirname, 'fuzz-yaml-worker.js');
    const result = await runProcess(process.execPath, [worker, String(count), String(RUN_SEED), CLARA_PIPELINE_YAML], {}, SOAK ? 1200000 : 180000);
    const last = result.stdout.trim().split('\n').pop() ?? '';
    assert.equal(result.code, 0, `the importer fuzz ended with ${result.code} (a crash or a hang); last case started: ${last}\n${result.stderr.slice(-3000)}`);
    const tally = JSON.parse(last) as Tally;
    assert.equal(tally.cases, count);
    report('flows/pipeline importer', tally);
  });
});

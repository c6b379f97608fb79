/**
 * The pipeline importer's fuzz loop, run by fuzz-direct.test.ts in a child process:
 *   node fuzz-yaml-worker.js <count> <run-seed> <pipeline.yaml>
 * Prints "case N" before each case (so a crash names its case), then one JSON line with the tally.
 * Exits 1 when parsePipeline throws anything but PipelineError.
 */
import { readFileSync, writeSync } from 'node:fs';
import { PipelineError, parsePipeline } from '../../flows/pipeline';
import { Rng, mutate } from '../support/mutate';

const [countText, seedText, yamlPath] = process.argv.slice(2);
const count = Number(countText);
const runSeed = Number(seedText);
const yaml = readFileSync(yamlPath, 'utf8');
const lines = yaml.split('\n');
const tokens = ['&a', '*a', '*b', '!!binary', '!!js/function', '{', '}', '[', ']', '- ', ': ', '\t', '? ', '|', '>', '%YAML 1.1', '---', '...', '<<: *a', '"\\u', "'", '#', '@', '`', 'null', '~', '0x1F', '.inf', '9'.repeat(400)];
// The yaml package warns about odd keys through process.emitWarning; they are expected here.
process.removeAllListeners('warning');
process.on('warning', () => undefined);

function caseText(i: number): string {
  const rng = new Rng(runSeed * 3 + i);
  switch (i % 5) {
    case 0: // byte-level mutation of the document
      return mutate(Buffer.from(yaml), 0, runSeed + i).bytes.toString('utf8');
    case 1: { // lines deleted, repeated or swapped
      const out = [...lines];
      for (let k = rng.int(1, 5); k > 0; k--) {
        const a = rng.int(0, out.length - 1);
        const op = rng.int(0, 2);
        if (op === 0) out.splice(a, 1);
        else if (op === 1) out.splice(a, 0, out[a]);
        else [out[a], out[(a + 1) % out.length]] = [out[(a + 1) % out.length], out[a]];
      }
      return out.join('\n');
    }
    case 2: { // YAML syntax injected into random lines
      const out = [...lines];
      for (let k = rng.int(1, 4); k > 0; k--) {
        const a = rng.int(0, out.length - 1);
        const at = rng.int(0, out[a].length);
        out[a] = out[a].slice(0, at) + rng.pick(tokens) + out[a].slice(at);
      }
      return out.join('\n');
    }
    case 3: { // alias bombs and deep nesting
      const depth = rng.int(1, 3000);
      const n = rng.int(2, 12);
      return rng.chance(0.5)
        ? `${yaml}\nx: &a0 [${'"lol",'.repeat(9)}"lol"]\n${Array.from({ length: n }, (_, k) => `y${k + 1}: &a${k + 1} [${Array(9).fill(`*a${k}`).join(',')}]`).join('\n')}\n`
        : `${'['.repeat(depth)}1${']'.repeat(rng.chance(0.7) ? depth : 0)}\n`;
    }
    default: // a truncation
      return yaml.slice(0, rng.int(0, yaml.length - 1));
  }
}

/**
 * Calls `work` under `frames` extra stack frames: the importer runs under an HTTP handler in Node-RED
 * (the editor's import), and how the yaml package behaves near the stack limit depends on that depth.
 */
function underStack(frames: number, work: () => void): void {
  if (frames <= 0) return work();
  underStack(frames - 1, work);
}

const tally = { cases: 0, typedErrors: 0, accepted: 0 };
// Found by this fuzzer (run seed 20261201, case 263): an unclosed flow sequence 2284 deep, parsed twice in
// one process, ended Node itself (V8 "RegExpCompiler Allocation failed - process out of memory").
for (let k = 0; k < 2; k++) {
  writeSync(1, `regression: 2284 unclosed "[" (parse ${k + 1})\n`);
  try {
    parsePipeline(`${'['.repeat(2284)}1\n`);
  } catch (err) {
    if (!(err instanceof PipelineError)) process.exit(1);
  }
}
for (let i = 0; i < count; i++) {
  writeSync(1, `case ${i} (run seed ${runSeed})\n`);
  tally.cases++;
  try {
    const text = caseText(i);
    underStack(i % 3 === 0 ? 0 : i % 3 === 1 ? 60 : 400, () => parsePipeline(text));
    // The editor's importer may be asked twice for the same document: a second parse of a deeply nested
    // one must fail the same way as the first.
    if (i % 5 === 3) parsePipeline(text);
    tally.accepted++;
  } catch (err) {
    if (!(err instanceof PipelineError)) {
      writeSync(2, `pipeline case ${i} (run seed ${runSeed}) threw ${(err as Error)?.name}: ${String((err as Error)?.message).slice(0, 300)}\n`);
      process.exit(1);
    }
    tally.typedErrors++;
  }
}
writeSync(1, `${JSON.stringify(tally)}\n`);

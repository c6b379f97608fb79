import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { BenchOptions, BenchRow } from './types';

/** Every benchmark, in the order of the pipeline. Each compares against a real peer in the same run. */
const BENCHES: Array<{ name: string; load: () => Promise<{ run(o: BenchOptions): Promise<BenchRow[]> }> }> = [
  { name: 'scp', load: () => import('./scp') },
  { name: 'ingest', load: () => import('./ingest') },
  { name: 'select', load: () => import('./select') },
  { name: 'infer', load: () => import('./infer') },
  { name: 'seg', load: () => import('./seg') },
  { name: 'rtstruct', load: () => import('./rtstruct') },
  { name: 'send', load: () => import('./send') },
  { name: 'e2e', load: () => import('./e2e') },
  { name: 'startup', load: () => import('./startup') },
];

function toolVersion(command: string, args: string[]): string {
  try {
    const out = execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.split('\n').find((l) => l.trim())?.trim() ?? '?';
  } catch (err) {
    const out = String((err as { stdout?: string }).stdout ?? '');
    return out.split('\n').find((l) => l.trim())?.trim() ?? 'not installed';
  }
}

function fmt(n: number | undefined, digits = 3): string {
  if (n === undefined || Number.isNaN(n)) return '–';
  return n >= 100 ? n.toFixed(0) : n.toPrecision(digits);
}

const HEADER = '| Benchmark | Input | Ours | Peer | Ratio | Target | Our peak RSS | Peer peak RSS | Notes |\n|---|---|---|---|---|---|---|---|---|';
const DOC = join(__dirname, '..', '..', 'docs', 'BENCHMARKS.md');

function rowLine(r: BenchRow): string {
  return `| ${r.name} | ${r.input} | ${fmt(r.ours)} ${r.unit} | ${r.peerName}: ${fmt(r.peer)} ${r.unit} | **${fmt(r.ratio)}** | ${r.target ?? ''}${r.met === undefined ? '' : r.met ? ' ✅' : ' ❌'} | ${r.oursPeakRssMb ? fmt(r.oursPeakRssMb) + ' MB' : '–'} | ${r.peerPeakRssMb ? fmt(r.peerPeakRssMb) + ' MB' : '–'} | ${r.notes ?? ''} |`;
}

/**
 * The per-benchmark sections of the existing document ("### name" up to the next one), so that a run of
 * some benchmarks (`npm run bench -- infer`) replaces theirs and keeps the others' last figures.
 */
function existingSections(): Map<string, string> {
  const sections = new Map<string, string>();
  if (!existsSync(DOC)) return sections;
  const text = readFileSync(DOC, 'utf8');
  const results = text.indexOf('\n## Results\n');
  if (results < 0) return sections;
  const body = text.slice(results + '\n## Results\n'.length).split(/\n## /)[0];
  for (const part of body.split(/^### /m).slice(1)) {
    const name = part.slice(0, part.search(/[\s—]/));
    sections.set(name, `### ${part.trimEnd()}`);
  }
  return sections;
}

async function main(): Promise<void> {
  const quick = process.env.CLARA_BENCH_QUICK === '1' || process.argv.includes('--quick');
  const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const unknown = only.filter((name) => !BENCHES.some((b) => b.name === name));
  if (unknown.length) throw new Error(`unknown benchmark(s) ${unknown.join(', ')}; there are ${BENCHES.map((b) => b.name).join(', ')}`);
  const sections = existingSections();
  const failures: string[] = [];
  const machine = [
    `CPU ${cpus()[0]?.model ?? '?'} × ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`,
    `Node ${process.version}; ${toolVersion('storescu', ['--version']).replace(/^\$dcmtk: | \$$/g, '')}; ${toolVersion('dcm2niix', ['--version']).replace(/^Chris Rorden's /, '')}; ${toolVersion('/usr/bin/python3', ['-c', 'import pydicom,numpy;print("pydicom",pydicom.__version__,"numpy",numpy.__version__)'])}`,
  ].join('; ');
  for (const bench of BENCHES) {
    if (only.length && !only.includes(bench.name)) continue;
    process.stdout.write(`bench ${bench.name}${quick ? ' (quick)' : ''} ...\n`);
    try {
      const got = await (await bench.load()).run({ quick });
      for (const r of got) {
        process.stdout.write(`  ${r.name}: ours ${fmt(r.ours)} ${r.unit}, ${r.peerName} ${fmt(r.peer)} ${r.unit}, ratio ${fmt(r.ratio)}${r.target ? ` (target ${r.target}: ${r.met ? 'met' : 'NOT met'})` : ''}\n`);
      }
      sections.set(bench.name, [`### ${bench.name} — ${new Date().toISOString()}, ${quick ? 'quick (CI)' : 'full'} mode`, '', `Machine: ${machine}.`, '', HEADER, ...got.map(rowLine)].join('\n'));
    } catch (err) {
      failures.push(`${bench.name}: ${(err as Error).message}`);
      process.stderr.write(`bench ${bench.name} failed: ${(err as Error).stack}\n`);
    }
  }
  const doc = [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (full) or `CLARA_BENCH_QUICK=1 npm run bench` (CI); `npm run bench -- NAME …` reruns some',
    'and keeps the other sections. Every row compares this package against a real peer on the same input in the same',
    'run: whole processes timed with `/usr/bin/time -v`, contenders interleaved (A B A B …) after one untimed warm-up',
    'round, medians quoted. The ratio is always "how many times the peer’s speed we reach" (peer time ÷ our time, or our',
    'rate ÷ peer rate), so higher is better. dcmtk peers run with `TCP_NODELAY=1` (see `../shared/notes/benchmarking.md`).',
    '',
    '## Results',
    '',
    ...BENCHES.filter((b) => sections.has(b.name)).flatMap((b) => [sections.get(b.name)!, '']),
    ...(failures.length ? ['## Failed benchmarks', ...failures.map((f) => `- ${f}`), ''] : []),
  ].join('\n');
  writeFileSync(DOC, doc);
  process.stdout.write(`wrote docs/BENCHMARKS.md\n`);
  if (failures.length) process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});

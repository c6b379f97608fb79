/**
 * Node-RED start-up with and without this package: Node-RED's own red.js, headless, with a settings file
 * (as test/support/headless-red.ts starts it) and an empty flow, from spawning the process to its
 * "Started flows" line; A B A B after an untimed warm-up of each, medians. "With" loads the package as an
 * installed module (nodesDir = a folder laid out like the package, whose dist/ is this build); "without"
 * has no nodesDir. The notes list what each node module costs to require on its own in a fresh process
 * (the profile the lazy loading works from).
 *
 * Run as a script (`node startup.js --require <file>`) this module is the probe for one node module.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { freeLoopbackPort } from '../lib/dimse/ports';
import { writeHeadlessUserDir } from '../test/support/headless-red';
import { BUILD_DIR, packageRootForThisBuild } from './package-root';
import { median, timeProcess } from './process';
import type { BenchOptions, BenchRow } from './types';

interface StartTiming {
  seconds: number;
  peakRssMb: number;
}

async function writeSettings(userDir: string, nodesDir: string[]): Promise<string> {
  return writeHeadlessUserDir(userDir, [], await freeLoopbackPort(), nodesDir);
}

/** Spawn to "Started flows", then SIGINT; peak RSS read from /proc just before the stop. */
function startOnce(settingsFile: string, userDir: string): Promise<StartTiming> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, [require.resolve('node-red/red.js'), '--settings', settingsFile, '--userDir', userDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let seconds = NaN;
    let peakRssMb = NaN;
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    const onData = (d: Buffer) => {
      output += d.toString();
      if (Number.isNaN(seconds) && /Started flows/.test(output)) {
        seconds = Number(process.hrtime.bigint() - started) / 1e9;
        try {
          const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
          const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
          if (hwm) peakRssMb = Number(hwm[1]) / 1024;
        } catch {
          // gone already
        }
        child.kill('SIGINT');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      if (Number.isNaN(seconds)) return reject(new Error(`Node-RED did not start:\n${output.slice(-3000)}`));
      if (/\[error\]/.test(output)) return reject(new Error(`Node-RED logged an error at start-up:\n${output.slice(-3000)}`));
      resolve({ seconds, peakRssMb });
    });
  });
}

/** The package's node modules as Node-RED loads them (package.json "node-red" section), in this build. */
function nodeModules(packageRoot: string): string[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pkg = require(join(packageRoot, 'package.json')) as { 'node-red': { nodes: Record<string, string> } };
  return Object.values(pkg['node-red'].nodes).map((p) => join(packageRoot, p));
}

async function requireCosts(files: string[], rounds: number): Promise<Array<{ name: string; ms: number }>> {
  const costs: Array<{ name: string; ms: number }> = [];
  for (const file of files) {
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) times.push(Number((await timeProcess(process.execPath, [__filename, '--require', file])).stdout));
    costs.push({ name: basename(file, '.js'), ms: median(times) });
  }
  return costs.sort((a, b) => b.ms - a.ms);
}

export async function run(options: BenchOptions): Promise<BenchRow[]> {
  const scratch = join(tmpdir(), `clara-bench-startup-${process.pid}`);
  rmSync(scratch, { recursive: true, force: true });
  const pkg = packageRootForThisBuild();
  const rounds = options.quick ? 3 : 9;
  const loadAtStart = loadavg()[0];
  try {
    const withDir = join(scratch, 'with');
    const withoutDir = join(scratch, 'without');
    const withSettings = await writeSettings(withDir, [pkg.root]);
    const withoutSettings = await writeSettings(withoutDir, []);
    const contenders = { with: () => startOnce(withSettings, withDir), without: () => startOnce(withoutSettings, withoutDir) };
    await contenders.with();
    await contenders.without();
    const times: Record<'with' | 'without', StartTiming[]> = { with: [], without: [] };
    for (let i = 0; i < rounds; i++) {
      times.with.push(await contenders.with());
      times.without.push(await contenders.without());
    }
    const withS = median(times.with.map((t) => t.seconds));
    const withoutS = median(times.without.map((t) => t.seconds));
    const costs = await requireCosts(nodeModules(pkg.root), options.quick ? 1 : 3);
    const list = (t: StartTiming[]) => t.map((x) => x.seconds.toFixed(2)).join('/');
    return [
      {
        name: 'Node-RED start-up, empty flow: with this package against without',
        input: `red.js --settings (headless, 127.0.0.1), empty flows.json, ${nodeModules(pkg.root).length} node types`,
        ours: withS,
        peer: withoutS,
        peerName: 'Node-RED without the package',
        unit: 's',
        ratio: withoutS / withS,
        target: '< 0.5 s slower (issue)',
        met: withS - withoutS < 0.5,
        higherIsBetter: true,
        oursPeakRssMb: Math.max(...times.with.map((t) => t.peakRssMb)),
        peerPeakRssMb: Math.max(...times.without.map((t) => t.peakRssMb)),
        notes:
          `spawn to "Started flows", medians of ${rounds} (A B A B after a warm-up each): +${((withS - withoutS) * 1000).toFixed(0)} ms with the package; with ${list(times.with)} s, without ${list(times.without)} s. ` +
          `Requiring each node module alone in a fresh node (ms, median of ${options.quick ? 1 : 3}): ${costs.map((c) => `${c.name.replace(/^clara-/, '')} ${c.ms.toFixed(0)}`).join(', ')}. Build: ${basename(BUILD_DIR)}. Load average (1 min) ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end on ${cpus().length} cores.`,
      },
    ];
  } finally {
    pkg.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (require.main === module && process.argv[2] === '--require') {
  const started = process.hrtime.bigint();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require(process.argv[3]);
  process.stdout.write(String(Number(process.hrtime.bigint() - started) / 1e6));
}

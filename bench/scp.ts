import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from '../lib/dimse/ports';
import { writePhantomStudy } from '../lib/phantom';
import { median } from './process';
import type { BenchOptions, BenchRow } from './types';

/**
 * SCP throughput: dcmtk's storescu sends the same N instances (1,000; 200 in quick mode) to
 * clara-dicom-in's SCP (the `clara-dicom listen` CLI, a separate process) and to dcmtk's storescp, in
 * turn (A B A B ...), after one untimed warm-up round each. Wall time is measured around storescu;
 * each server's peak RSS comes from /usr/bin/time -v around the whole server process. Both dcmtk
 * processes run with TCP_NODELAY=1 (see shared/notes/benchmarking.md); our SCP sets noDelay itself.
 *
 * Two rows: outputs on the work disk (what a deployment does), and on tmpfs (/dev/shm), which takes
 * the disk out and compares the protocol and file handling alone.
 */

const TARGET_RATIO = 0.8;
const DCMTK_ENV = { ...process.env, TCP_NODELAY: '1' };

interface Server {
  name: string;
  port: number;
  child: ChildProcessWithoutNullStreams;
  rssReport: string;
  stdoutLines: string[];
  stderr: string;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Starts a server under /usr/bin/time -v in its own process group (so one signal reaches it through time). */
function startUnderTime(name: string, port: number, command: string, args: string[], env: NodeJS.ProcessEnv, scratch: string): Server {
  const rssReport = join(scratch, `${name}-time.txt`);
  const child = spawn('/usr/bin/time', ['-v', '-o', rssReport, command, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const server: Server = { name, port, child, rssReport, stdoutLines: [], stderr: '' };
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    server.stdoutLines.push(...lines.filter((l) => l.trim()));
  });
  child.stderr.on('data', (d: Buffer) => {
    server.stderr += d.toString();
    if (server.stderr.length > 1 << 20) server.stderr = server.stderr.slice(-(1 << 19));
  });
  return server;
}

/**
 * Stops a server started by startUnderTime and returns its peak RSS in MB. The signal goes to the
 * server itself, not to GNU time, which must live on to write its report.
 */
async function stopServer(server: Server, signal: NodeJS.Signals): Promise<number> {
  const exited = new Promise<void>((resolve) => server.child.once('close', () => resolve()));
  const timePid = server.child.pid!;
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${timePid}/task/${timePid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // time has exited already
  }
  for (const pid of children.length ? children : [timePid]) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
  await Promise.race([exited, delay(10000)]);
  try {
    const text = readFileSync(server.rssReport, 'utf8');
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(text);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

function run1(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; seconds: number; output: string }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, seconds: Number(process.hrtime.bigint() - started) / 1e9, output: output.slice(-4000) }));
  });
}

async function waitForEcho(port: number, calledAE: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await run1('echoscu', ['-aec', calledAE, '127.0.0.1', String(port)], DCMTK_ENV);
    if (r.code === 0) return;
    await delay(100);
  }
  throw new Error(`no C-ECHO answer from ${calledAE} on port ${port}`);
}

function dicomFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.dcm')) out.push(p);
    }
  };
  walk(dir);
  return out;
}

function clearDir(dir: string): void {
  for (const name of readdirSync(dir)) if (!name.startsWith('.')) rmSync(join(dir, name), { recursive: true, force: true });
}

/** One comparison with outputs under `outputRoot`. */
async function compare(label: string, files: string[], outputRoot: string, rounds: number, inputLabel: string, scratch: string): Promise<BenchRow> {
  const workRoot = join(outputRoot, 'ours');
  const peerOut = join(outputRoot, 'storescp');
  mkdirSync(workRoot, { recursive: true });
  mkdirSync(peerOut, { recursive: true });
  const main = join(__dirname, '..', 'lib', 'cli', 'main.js');
  const oursPort = await freeLoopbackPort();
  const peerPort = await freeLoopbackPort();
  const ours = startUnderTime(`ours-${label}`, oursPort, process.execPath, [main, 'listen', workRoot, '--port', String(oursPort), '--host', '127.0.0.1', '--timeout', '0.5', '--quiet'], process.env, scratch);
  const peer = startUnderTime(`storescp-${label}`, peerPort, 'storescp', ['-aet', 'STORESCP', '-od', peerOut, String(peerPort)], DCMTK_ENV, scratch);
  try {
    await waitForEcho(oursPort, 'CLARA');
    await waitForEcho(peerPort, 'STORESCP');

    const sendToOurs = async (): Promise<number> => {
      clearDir(workRoot);
      execFileSync('sync');
      const jobsBefore = ours.stdoutLines.length;
      const r = await run1('storescu', ['-aec', 'CLARA', '127.0.0.1', String(oursPort), ...files], DCMTK_ENV);
      if (r.code !== 0) throw new Error(`storescu → clara-dicom listen failed (${r.code}): ${r.output}`);
      // The job line proves every instance was stored (and lets the next round start clean).
      for (let i = 0; i < 200 && ours.stdoutLines.length === jobsBefore; i++) await delay(50);
      const line = ours.stdoutLines[jobsBefore];
      const instances = line ? (JSON.parse(line) as { summary: { instances: number } }).summary.instances : 0;
      if (instances !== files.length) throw new Error(`clara-dicom listen stored ${instances} of ${files.length} instances`);
      return r.seconds;
    };
    const sendToPeer = async (): Promise<number> => {
      clearDir(peerOut);
      execFileSync('sync');
      const r = await run1('storescu', ['-aec', 'STORESCP', '127.0.0.1', String(peerPort), ...files], DCMTK_ENV);
      if (r.code !== 0) throw new Error(`storescu → storescp failed (${r.code}): ${r.output}`);
      const stored = readdirSync(peerOut).length;
      if (stored !== files.length) throw new Error(`storescp stored ${stored} of ${files.length} instances`);
      return r.seconds;
    };

    // Warm-up, untimed and the same for both: page cache, and V8's optimising compiler, which reaches its
    // steady state after about 2,000 instances.
    for (let i = 0; i < Math.ceil(2000 / files.length); i++) {
      await sendToOurs();
      await sendToPeer();
    }
    const oursTimes: number[] = [];
    const peerTimes: number[] = [];
    for (let round = 0; round < rounds; round++) {
      oursTimes.push(await sendToOurs());
      peerTimes.push(await sendToPeer());
    }
    const oursRate = files.length / median(oursTimes);
    const peerRate = files.length / median(peerTimes);
    const oursRss = await stopServer(ours, 'SIGINT');
    const peerRss = await stopServer(peer, 'SIGTERM');
    const ratio = oursRate / peerRate;
    return {
      name: `SCP throughput (${label})`,
      input: inputLabel,
      ours: oursRate,
      peer: peerRate,
      peerName: 'dcmtk storescp',
      unit: 'instances/s',
      ratio,
      target: `≥ ${TARGET_RATIO} (issue)`,
      met: ratio >= TARGET_RATIO,
      higherIsBetter: true,
      oursPeakRssMb: oursRss,
      peerPeakRssMb: peerRss,
      notes: `storescu wall time, median of ${rounds} (A B A B after ≥ 2,000 warm-up instances each); ours ${oursTimes.map((t) => t.toFixed(2)).join('/')} s, storescp ${peerTimes.map((t) => t.toFixed(2)).join('/')} s`,
    };
  } finally {
    for (const s of [ours, peer]) if (s.child.exitCode === null && s.child.signalCode === null) await stopServer(s, 'SIGKILL');
  }
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  const count = opts.quick ? 200 : 1000;
  const rounds = opts.quick ? 3 : 5;
  const scratch = mkdtempSync(join(tmpdir(), 'clara-bench-scp-'));
  const rows: BenchRow[] = [];
  try {
    // A 256×256 MR exam, as a scanner sends it; slices chosen so that the study has at least `count` instances.
    const slices = Math.ceil((count - 9) / 2.4) + 2;
    writePhantomStudy(join(scratch, 'input'), { size: 256, slices, seed: 7 });
    const all = dicomFiles(join(scratch, 'input', 'dicom'));
    if (all.length < count) throw new Error(`the phantom has ${all.length} instances, fewer than ${count}`);
    const files = all.slice(0, count);
    let bytes = 0;
    for (const f of files) bytes += readFileSync(f).length; // also warms the page cache
    const inputLabel = `${count} MR instances (phantom, 256×256 and 128×128 slices, ${(bytes / 1e6).toFixed(0)} MB), one association`;
    rows.push(await compare('outputs on disk', files, join(scratch, 'out'), rounds, inputLabel, scratch));
    if (existsSync('/dev/shm')) {
      const shm = mkdtempSync(join('/dev/shm', 'clara-bench-scp-'));
      try {
        rows.push(await compare('outputs on tmpfs', files, shm, rounds, inputLabel, scratch));
      } finally {
        rmSync(shm, { recursive: true, force: true });
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return rows;
}

if (require.main === module) {
  run({ quick: process.argv.includes('--quick') }).then(
    (rows) => {
      for (const r of rows) process.stdout.write(`${r.name}: ours ${r.ours.toFixed(0)} ${r.unit}, storescp ${r.peer.toFixed(0)} ${r.unit}, ratio ${r.ratio.toFixed(2)}; RSS ${r.oursPeakRssMb?.toFixed(0)} MB vs ${r.peerPeakRssMb?.toFixed(0)} MB (${r.notes})\n`);
    },
    (err: Error) => {
      process.stderr.write(`${err.stack}\n`);
      process.exit(1);
    },
  );
}

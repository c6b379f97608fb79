import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateUid, SopClass } from '../lib/dicom/uids';
import { encodePart10 } from '../lib/dicom/writer';
import { Outbox, type OutboxTask } from '../lib/dimse/outbox';
import { freeLoopbackPort } from '../lib/dimse/ports';
import { type ProcessTiming, median, timeProcess } from './process';
import type { BenchOptions, BenchRow } from './types';

/**
 * SCU throughput against dcmtk's storescu: the same N small MR instances (1,000; 200 in quick mode), one
 * association, to one dcmtk storescp, in turn (A B C A B C ...) after an untimed warm-up round each.
 *
 * Two rows, both against the same storescu runs:
 * - clara-scu-out's outbox in a running process (what the node does inside Node-RED): from enqueue (task
 *   file written) to the task settled (every answer journalled, task file written);
 * - `clara-dicom send` as a whole process, Node's start-up (about 0.1 s) included, timed with
 *   /usr/bin/time -v as storescu is.
 * dcmtk runs with TCP_NODELAY=1 (shared/notes/benchmarking.md); our sockets set noDelay. storescp writes
 * to tmpfs where there is one, so the disk does not blur the senders.
 */

const TARGET_RATIO = 0.8;
const DCMTK_ENV = { TCP_NODELAY: '1' };

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function writeInstances(dir: string, count: number): string[] {
  mkdirSync(dir, { recursive: true });
  const study = generateUid();
  const series = generateUid();
  const pixels = new Uint8Array(64 * 64 * 2).map((_, i) => (i * 7) & 0xff);
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const uid = generateUid();
    const path = join(dir, `${String(i).padStart(5, '0')}.dcm`);
    writeFileSync(path, encodePart10({
      SOPClassUID: SopClass.MrImageStorage, SOPInstanceUID: uid, StudyInstanceUID: study, SeriesInstanceUID: series, Modality: 'MR',
      PatientID: 'BENCH', PatientName: 'Bench^Send', SeriesNumber: 1, InstanceNumber: i + 1, Rows: 64, Columns: 64, SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2', BitsAllocated: 16, BitsStored: 12, HighBit: 11, PixelRepresentation: 0,
      PixelData: { vr: 'OW', value: pixels },
    }));
    files.push(path);
  }
  return files;
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  const count = opts.quick ? 200 : 1000;
  const rounds = opts.quick ? 3 : 7;
  const scratch = mkdtempSync(join(tmpdir(), 'clara-bench-send-'));
  const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/clara-bench-send-') : join(scratch, 'received');
  let peer: ChildProcess | undefined;
  try {
    const files = writeInstances(join(scratch, 'in'), count);
    const port = await freeLoopbackPort();
    mkdirSync(shm, { recursive: true });
    peer = spawn('storescp', ['-aet', 'PACS', '-od', shm, String(port)], { env: { ...process.env, ...DCMTK_ENV }, stdio: 'ignore' });
    await delay(300);
    const sendJs = join(__dirname, '..', 'lib', 'cli', 'send.js');
    const script = `require(${JSON.stringify(sendJs)}).run(process.argv.slice(1)).then((c) => process.exit(c), (e) => { console.error(e.message); process.exit(1); })`;
    const clear = () => {
      for (const name of readdirSync(shm)) rmSync(join(shm, name), { force: true, recursive: true });
    };
    const check = (who: string) => {
      const n = readdirSync(shm).length;
      if (n !== count) throw new Error(`${who}: storescp stored ${n} of ${count} instances`);
    };
    const ours = async (): Promise<ProcessTiming> => {
      clear();
      const t = await timeProcess(process.execPath, ['-e', script, '--', join(scratch, 'in'), '--to', `PACS@127.0.0.1:${port}`]);
      check('clara-dicom send');
      return t;
    };
    const theirs = async (): Promise<ProcessTiming> => {
      clear();
      const t = await timeProcess('storescu', ['-aet', 'ClaraSCU', '-aec', 'PACS', '127.0.0.1', String(port), ...files], DCMTK_ENV);
      check('storescu');
      return t;
    };
    const outboxHome = join(scratch, 'outbox-job');
    const inProcess = async (): Promise<number> => {
      clear();
      const outbox = new Outbox({ maxAttempts: 1 });
      const started = process.hrtime.bigint();
      const task = outbox.enqueue({ jobDir: outboxHome, files, destination: { name: 'PACS', calledAE: 'PACS', host: '127.0.0.1', port, callingAE: 'ClaraSCU' } });
      const done = await new Promise<OutboxTask>((resolve) => outbox.on('settled', (t) => t.id === task.id && resolve(t)));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      await outbox.close();
      if (done.state !== 'succeeded') throw new Error(`outbox: ${done.lastError}`);
      check('outbox');
      return seconds;
    };
    // Warm-up: page cache, and V8's optimising compiler for the in-process sender (as in a running Node-RED).
    for (let w = 0; w < Math.max(1, Math.ceil(2000 / count)); w++) await inProcess();
    await ours();
    await theirs();
    const oursTimes: ProcessTiming[] = [];
    const peerTimes: ProcessTiming[] = [];
    const inProcessTimes: number[] = [];
    for (let r = 0; r < rounds; r++) {
      inProcessTimes.push(await inProcess());
      oursTimes.push(await ours());
      peerTimes.push(await theirs());
    }
    const oursRate = count / median(oursTimes.map((t) => t.wallSeconds));
    const peerRate = count / median(peerTimes.map((t) => t.wallSeconds));
    const inProcessRate = count / median(inProcessTimes);
    const ratio = oursRate / peerRate;
    return [{
      name: 'SCU throughput (clara-scu-out outbox, in a running process)',
      input: `${count} MR instances, 64×64 16-bit, one association, storescp on ${shm.startsWith('/dev/shm') ? 'tmpfs' : 'disk'}`,
      ours: inProcessRate,
      peer: peerRate,
      peerName: 'dcmtk storescu',
      unit: 'instances/s',
      ratio: inProcessRate / peerRate,
      target: `≥ ${TARGET_RATIO} (issue)`,
      met: inProcessRate / peerRate >= TARGET_RATIO,
      higherIsBetter: true,
      notes: `enqueue to settled (task file, journal, per-instance statuses), median of ${rounds}; ours ${inProcessTimes.map((t) => t.toFixed(2)).join('/')} s, storescu (whole process) ${peerTimes.map((t) => t.wallSeconds.toFixed(2)).join('/')} s`,
    }, {
      name: 'SCU throughput (clara-dicom send, whole process)',
      input: `${count} MR instances, 64×64 16-bit (${Math.round((64 * 64 * 2 + 600) / 1024)} KB each), one association, storescp on ${shm.startsWith('/dev/shm') ? 'tmpfs' : 'disk'}`,
      ours: oursRate,
      peer: peerRate,
      peerName: 'dcmtk storescu',
      unit: 'instances/s',
      ratio,
      target: `≥ ${TARGET_RATIO} (issue)`,
      met: ratio >= TARGET_RATIO,
      higherIsBetter: true,
      oursPeakRssMb: median(oursTimes.map((t) => t.peakRssMb)),
      peerPeakRssMb: median(peerTimes.map((t) => t.peakRssMb)),
      notes: `whole-process wall time (node start-up included), median of ${rounds}, A B A B after one warm-up each; ours ${oursTimes.map((t) => t.wallSeconds.toFixed(2)).join('/')} s, storescu ${peerTimes.map((t) => t.wallSeconds.toFixed(2)).join('/')} s`,
    }];
  } finally {
    peer?.kill('SIGTERM');
    rmSync(scratch, { recursive: true, force: true });
    rmSync(shm, { recursive: true, force: true });
  }
}

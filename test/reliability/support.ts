import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AssociationError, type DimseStatus, type ProposedContext, ScuAssociation } from '../../lib/dimse/association';
import { type JobRecord, readJob } from '../../lib/job';
import type { HeapProbeReading } from '../support/heap-probe';
import { delay } from '../support/tools';

export const VERIFICATION = '1.2.840.10008.1.1';
const VERIFICATION_CONTEXT: ProposedContext = { abstractSyntax: VERIFICATION, transferSyntaxes: ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2'] };

/** One instance to send: the command's identity, and the data set bytes exactly as they go on the wire. */
export interface Outgoing {
  sopClassUID: string;
  sopInstanceUID: string;
  transferSyntaxUID: string;
  dataset: Buffer;
}

export interface SendOutcome {
  /** Per instance, in order: the DIMSE status, or why it was never answered. */
  results: Array<{ status?: DimseStatus; notSent?: string; milliseconds: number }>;
  /** Associations that broke (the peer aborted or closed): must stay 0. */
  broken: string[];
}

/**
 * Sends instances over as few associations as it can, with our own SCU: up to 127 contexts per
 * association (plus Verification), `perAssociation` instances each. An association that breaks is
 * recorded and a new one opened for the rest. `pauseMs` waits before each instance (a slow sender).
 */
export async function sendAll(port: number, items: readonly Outgoing[], options: { calledAE?: string; callingAE?: string; perAssociation?: number; pauseMs?: number } = {}): Promise<SendOutcome> {
  const perAssociation = options.perAssociation ?? 1000;
  const results: SendOutcome['results'] = [];
  const broken: string[] = [];
  let next = 0;
  while (next < items.length) {
    // This batch: as many instances as fit in 127 distinct (SOP class, transfer syntax) contexts.
    const keys = new Map<string, ProposedContext>();
    let end = next;
    while (end < items.length && end - next < perAssociation) {
      const item = items[end];
      const key = `${item.sopClassUID}|${item.transferSyntaxUID}`;
      if (!keys.has(key)) {
        if (keys.size >= 127) break;
        keys.set(key, { abstractSyntax: item.sopClassUID, transferSyntaxes: [item.transferSyntaxUID] });
      }
      end++;
    }
    const association = await ScuAssociation.open(
      { host: '127.0.0.1', port, calledAE: options.calledAE ?? 'CLARA', callingAE: options.callingAE ?? 'FUZZSCU', pduTimeoutMs: 60000 },
      [VERIFICATION_CONTEXT, ...keys.values()],
    );
    let open = true;
    for (; next < end; next++) {
      const item = items[next];
      const context = association.contextFor(item.sopClassUID, [item.transferSyntaxUID]);
      if (!context) {
        results.push({ notSent: association.refusalFor(item.sopClassUID), milliseconds: 0 });
        continue;
      }
      // A slow sender, for tests that must catch the transfer half-way.
      if (options.pauseMs) await delay(options.pauseMs);
      const started = process.hrtime.bigint();
      try {
        const status = await association.store(context, item.sopClassUID, item.sopInstanceUID, item.dataset);
        results.push({ status, milliseconds: Number(process.hrtime.bigint() - started) / 1e6 });
      } catch (err) {
        broken.push(`${item.sopInstanceUID}: ${(err as Error).message}`);
        results.push({ notSent: `association broke: ${(err as Error).message}`, milliseconds: 0 });
        open = false;
        next++;
        break;
      }
    }
    if (open) await association.release();
  }
  return { results, broken };
}

/** C-ECHO on a fresh association: the SCP is alive and serving. */
export async function echo(port: number, calledAE = 'CLARA'): Promise<number> {
  const association = await ScuAssociation.open({ host: '127.0.0.1', port, calledAE, callingAE: 'ECHOSCU' }, [VERIFICATION_CONTEXT]);
  try {
    return (await association.echo()).status;
  } finally {
    await association.release();
  }
}

/** Waits until something answers C-ECHO on the port. */
export async function waitForEcho(port: number, timeoutMs = 30000, calledAE = 'CLARA'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await echo(port, calledAE)) === 0) return;
    } catch (err) {
      if (!(err instanceof AssociationError) || Date.now() > deadline) throw err;
    }
    await delay(100);
  }
}

/** Job folders under a work root, with their job.json (folders without one are left out). */
export function jobsUnder(workRoot: string): Array<{ dir: string; record: JobRecord }> {
  if (!existsSync(workRoot)) return [];
  const out: Array<{ dir: string; record: JobRecord }> = [];
  for (const name of readdirSync(workRoot)) {
    const dir = join(workRoot, name);
    if (name.startsWith('.') || !existsSync(join(dir, 'job.json'))) continue;
    out.push({ dir, record: readJob(dir) });
  }
  return out;
}

/** SOP Instance UIDs stored in the jobs of a work root, from the file names in each dicom/ folder. */
export function storedInstances(workRoot: string): string[] {
  const out: string[] = [];
  for (const { dir } of jobsUnder(workRoot)) {
    const dicom = join(dir, 'dicom');
    if (!existsSync(dicom)) continue;
    for (const name of readdirSync(dicom)) if (name.endsWith('.dcm')) out.push(name.slice(0, -4));
  }
  return out;
}

/** Files left in the SCP's temporary folder (none may remain once every transfer is answered). */
export function incomingLeftovers(workRoot: string): string[] {
  const dir = join(workRoot, '.incoming');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Waits until no job of the work root is still receiving, and then a little longer for the messages. */
export async function waitForJobsComplete(workRoot: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (jobsUnder(workRoot).some((j) => j.record.state === 'receiving')) {
    if (Date.now() > deadline) throw new Error(`jobs still receiving in ${workRoot} after ${timeoutMs} ms`);
    await delay(100);
  }
  await delay(300);
}

/** p-th percentile (0..100) of the values, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Peak and current resident memory of a process, in MiB, from /proc. */
export function memoryOf(pid: number): { peakMiB: number; currentMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakMiB: kb('VmHWM') / 1024, currentMiB: kb('VmRSS') / 1024 };
}

/** NODE_OPTIONS for a child process that should answer `liveHeapOf`: the heap probe, preloaded. */
export function heapProbeOptions(probeFile: string): NodeJS.ProcessEnv {
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${join(__dirname, '..', 'support', 'heap-probe.js')}`.trim(), CLARA_HEAP_PROBE_FILE: probeFile };
}

/** The child's memory after two forced full collections (see test/support/heap-probe.ts). */
export async function liveHeapOf(pid: number, probeFile: string, timeoutMs = 30000): Promise<HeapProbeReading> {
  rmSync(probeFile, { force: true });
  process.kill(pid, 'SIGWINCH');
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(probeFile)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} wrote no heap reading to ${probeFile} within ${timeoutMs} ms`);
    await delay(50);
  }
  return JSON.parse(readFileSync(probeFile, 'utf8')) as HeapProbeReading;
}

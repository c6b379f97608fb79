/**
 * The pipeline's CPU-heavy writers, run in worker threads: SEG, RT Structure Set and the render snapshots.
 *
 * Each is plain synchronous JavaScript for most of its run (building frames, tracing contours, drawing
 * slices). On the main thread it would hold Node-RED's event loop, so C-STOREs, deliveries and the editor
 * would wait; and the three branches of a flow would take turns on one core. Here each kind has a thread
 * of its own, started on first use and kept: jobs go in as folder paths and options, results come back as
 * the same plain objects the functions return on the main thread.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { writeJobStructureSets } from '../rtstruct/job';
import type { renderPublished } from '../render/publish';
import type { writeJobSegmentations } from '../seg/job';
import { RequestWorker } from './request-worker';

/** What a stage thread runs: a lib module, relative to lib/, and one of its exports. */
export const OFFLOADED = {
  writeJobSegmentations: 'seg/job',
  writeJobStructureSets: 'rtstruct/job',
  renderPublished: 'render/publish',
} as const;

export type OffloadedFunction = keyof typeof OFFLOADED;

/** A call of the function, or (`args` absent) only the loading of its module. */
export interface OffloadRequest {
  name: OffloadedFunction;
  args?: unknown[];
}

const threads = new Map<OffloadedFunction, RequestWorker<OffloadRequest, unknown>>();

function threadFor(name: OffloadedFunction): RequestWorker<OffloadRequest, unknown> {
  let thread = threads.get(name);
  if (!thread) threads.set(name, (thread = new RequestWorker<OffloadRequest, unknown>(join(__dirname, 'worker.js'), name)));
  return thread;
}

/**
 * Stage calls running at once, across the threads: one per core. More would not finish sooner (the work is
 * CPU-bound), and each holds its volumes (a mask, a source series) until it is done, so on a small box the
 * three branches at once cost memory for nothing.
 */
const MAX_RUNNING = Math.max(1, availableParallelism());
/**
 * Which waiting call gets a free core first (lower first): the writers, whose results are delivered, before
 * the snapshots, which nothing downstream waits for.
 */
const PRIORITY: Record<OffloadedFunction, number> = { writeJobSegmentations: 0, writeJobStructureSets: 0, renderPublished: 1 };
let running = 0;
const waiting: Array<{ priority: number; start: () => void }> = [];
let dispatchQueued = false;

/** Starts waiting calls while cores are free, best priority first; deferred a turn, so that the branches of one job arrive before any starts. */
function dispatchSoon(): void {
  if (dispatchQueued) return;
  dispatchQueued = true;
  setImmediate(() => {
    dispatchQueued = false;
    waiting.sort((a, b) => a.priority - b.priority);
    while (running < MAX_RUNNING && waiting.length) {
      running++;
      waiting.shift()!.start();
    }
  });
}

async function call(name: OffloadedFunction, args: unknown[]): Promise<unknown> {
  await new Promise<void>((start) => {
    waiting.push({ priority: PRIORITY[name], start });
    dispatchSoon();
  });
  try {
    return await threadFor(name).request({ name, args });
  } finally {
    running--;
    dispatchSoon();
  }
}

/**
 * Starts the function's thread and loads its module there, if that is not done yet, so the first job does
 * not wait for it (a thread and its modules take a few hundred ms of CPU). A failure here is left for
 * the first call to report.
 */
export function prepareOffThread(name: OffloadedFunction): void {
  const thread = threadFor(name);
  if (!thread.running) thread.request({ name }).catch(() => undefined);
}

type Result<F extends (...args: never[]) => unknown> = Promise<Awaited<ReturnType<F>>>;

/** lib/seg writeJobSegmentations, in its thread. */
export function writeJobSegmentationsOffThread(...args: Parameters<typeof writeJobSegmentations>): Result<typeof writeJobSegmentations> {
  return call('writeJobSegmentations', args) as Result<typeof writeJobSegmentations>;
}

/** lib/rtstruct writeJobStructureSets, in its thread. */
export function writeJobStructureSetsOffThread(...args: Parameters<typeof writeJobStructureSets>): Result<typeof writeJobStructureSets> {
  return call('writeJobStructureSets', args) as Result<typeof writeJobStructureSets>;
}

/** lib/render renderPublished, in its thread. The montage comes back a Buffer, as on the main thread (a clone is a plain Uint8Array). */
export async function renderPublishedOffThread(...args: Parameters<typeof renderPublished>): Result<typeof renderPublished> {
  const result = (await call('renderPublished', args)) as Awaited<ReturnType<typeof renderPublished>>;
  const montage = result.montage as Uint8Array;
  return { ...result, montage: Buffer.from(montage.buffer, montage.byteOffset, montage.byteLength) };
}

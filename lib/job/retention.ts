import { existsSync, lstatSync, readFileSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type JobRecord, type JobState, JobStore, readJob } from './index';

/**
 * Job retention: which finished job folders may go, by age or to keep the work root under a disk quota.
 *
 * A job is never removed while something may still need it:
 * - it is being worked on (receiving, parsing, inferring, writing, sending);
 * - it holds an outbox task that is not settled (pending or in progress: results not yet delivered).
 * A job is *finished* when its state is final (done, failed, no-match, no-findings) or when every outbox
 * task it holds has settled. Jobs between stages (received, parsed, inferred, …, perhaps waiting in a
 * node's queue) are not finished: only the age limit removes them, once nothing has touched them for
 * that long. The quota removes finished jobs only, the longest idle first.
 */

export interface RetentionPolicy {
  /** Remove jobs idle (job.json not updated) for longer than this many hours. */
  maxAgeHours?: number;
  /** Keep the work root's job folders under this many MB, removing finished jobs the longest idle first. */
  maxTotalMb?: number;
  /** A finished job idle for less than this is kept even over quota (default 60 s), so the node that just
   * finished it can still pass it on. */
  graceSeconds?: number;
}

export type RetentionReason = 'age' | 'quota';

export interface RemovedJob {
  id: string;
  state: JobState;
  reason: RetentionReason;
  bytes: number;
}

export interface KeptJob {
  id: string;
  state: JobState;
  /** Why it may not be removed, when that is the reason it stayed. */
  protectedBy?: 'running' | 'undelivered';
}

export interface RetentionReport {
  removed: RemovedJob[];
  kept: KeptJob[];
  /** Bytes of the job folders removed. */
  freedBytes: number;
  /** Bytes of all job folders left, when a quota is set (measuring them costs a walk of every folder). */
  totalBytes?: number;
  /** Folders that should have gone but could not be removed, with the reason. */
  errors: Array<{ id: string; message: string }>;
}

/** States in which a node is working on the job right now. */
export const RUNNING_STATES: ReadonlySet<JobState> = new Set<JobState>(['receiving', 'parsing', 'inferring', 'writing', 'sending']);
/** States after which no node of the pipeline picks the job up again. */
export const FINAL_STATES: ReadonlySet<JobState> = new Set<JobState>(['done', 'failed', 'no-match', 'no-findings']);

const OUTBOX_DIR = 'outbox';
const SETTLED_TASK_STATES = new Set(['succeeded', 'failed']);

/** Checks a policy read from settings; throws RangeError naming the bad value. */
export function checkRetentionPolicy(policy: RetentionPolicy): RetentionPolicy {
  for (const [key, value] of Object.entries(policy) as Array<[keyof RetentionPolicy, number | undefined]>) {
    if (value !== undefined && !(Number.isFinite(value) && value >= 0)) throw new RangeError(`retention ${key} must be a number of at least 0, not ${String(value)}`);
  }
  return policy;
}

export function retentionEnabled(policy: RetentionPolicy): boolean {
  return policy.maxAgeHours !== undefined || policy.maxTotalMb !== undefined;
}

/**
 * The outbox tasks of a job by state, read from their task files (a task being written has a `.part`
 * sibling, not a second name). An unreadable task counts as pending: better kept than lost.
 */
function taskStates(jobDir: string): string[] {
  const dir = join(jobDir, OUTBOX_DIR);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const states: string[] = [];
  for (const name of names) {
    if (!name.endsWith('.json') || name.includes('.part')) continue;
    try {
      // Only the task's own state matters here; the journal only ever records instances.
      const task = JSON.parse(readFileSync(join(dir, name), 'utf8')) as { state?: unknown };
      states.push(typeof task.state === 'string' ? task.state : 'pending');
    } catch {
      states.push('pending');
    }
  }
  return states;
}

/** Bytes of the files below a folder (not following links). */
export function folderBytes(dir: string): number {
  let total = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const path = join(dir, name);
    try {
      const stat = lstatSync(path);
      total += stat.isDirectory() ? folderBytes(path) : stat.size;
    } catch {
      // removed while we looked
    }
  }
  return total;
}

interface Candidate {
  record: JobRecord;
  dir: string;
  idleMs: number;
  bytes: number;
  finished: boolean;
  protectedBy?: 'running' | 'undelivered';
}

function assess(store: JobStore, record: JobRecord, now: number, measure: boolean): Candidate {
  const dir = store.dirOf(record.id);
  const updated = Date.parse(record.updatedAt || record.createdAt);
  const idleMs = Number.isFinite(updated) ? Math.max(0, now - updated) : 0;
  const tasks = taskStates(dir);
  const candidate: Candidate = { record, dir, idleMs, bytes: measure ? folderBytes(dir) : 0, finished: false };
  if (RUNNING_STATES.has(record.state)) candidate.protectedBy = 'running';
  else if (tasks.some((s) => !SETTLED_TASK_STATES.has(s))) candidate.protectedBy = 'undelivered';
  else candidate.finished = FINAL_STATES.has(record.state) || tasks.length > 0;
  return candidate;
}

/** Whether the job may still be removed now: its record and tasks are read again just before. */
function stillRemovable(store: JobStore, candidate: Candidate, now: number): boolean {
  if (!existsSync(join(candidate.dir, 'job.json'))) return false;
  try {
    const again = assess(store, readJob(candidate.dir), now, false);
    return again.protectedBy === undefined && again.record.updatedAt === candidate.record.updatedAt;
  } catch {
    return false;
  }
}

/**
 * Applies a retention policy to a work root once. Safe to call while the pipeline runs: every job is
 * checked again right before its folder is removed, and anything running or undelivered is left alone.
 */
export async function applyRetention(workRoot: string, policy: RetentionPolicy, now = Date.now()): Promise<RetentionReport> {
  checkRetentionPolicy(policy);
  const store = new JobStore(workRoot);
  const measure = policy.maxTotalMb !== undefined;
  const candidates = store.list().map((record) => assess(store, record, now, measure));
  let totalBytes = candidates.reduce((n, c) => n + c.bytes, 0);
  const report: RetentionReport = { removed: [], kept: [], freedBytes: 0, errors: [] };
  const removed = new Set<Candidate>();

  const remove = async (candidate: Candidate, reason: RetentionReason): Promise<void> => {
    if (!stillRemovable(store, candidate, now)) return;
    if (!measure) candidate.bytes = folderBytes(candidate.dir);
    try {
      await rm(candidate.dir, { recursive: true, force: true });
      removed.add(candidate);
      report.freedBytes += candidate.bytes;
      totalBytes -= candidate.bytes;
      report.removed.push({ id: candidate.record.id, state: candidate.record.state, reason, bytes: candidate.bytes });
    } catch (err) {
      report.errors.push({ id: candidate.record.id, message: (err as Error).message });
    }
  };

  if (policy.maxAgeHours !== undefined) {
    const maxAgeMs = policy.maxAgeHours * 3600 * 1000;
    for (const candidate of candidates) {
      if (!candidate.protectedBy && candidate.idleMs > maxAgeMs) await remove(candidate, 'age');
    }
  }
  if (policy.maxTotalMb !== undefined) {
    const quota = policy.maxTotalMb * 1024 * 1024;
    const graceMs = (policy.graceSeconds ?? 60) * 1000;
    const evictable = candidates
      .filter((c) => !removed.has(c) && c.finished && !c.protectedBy && c.idleMs >= graceMs)
      .sort((a, b) => b.idleMs - a.idleMs);
    for (const candidate of evictable) {
      if (totalBytes <= quota) break;
      await remove(candidate, 'quota');
    }
  }
  if (measure) report.totalBytes = totalBytes;
  for (const candidate of candidates) {
    if (!removed.has(candidate)) report.kept.push({ id: candidate.record.id, state: candidate.record.state, ...(candidate.protectedBy ? { protectedBy: candidate.protectedBy } : {}) });
  }
  return report;
}

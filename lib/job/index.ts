import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { writeJsonAtomic } from '../dicom/writer';
import { isValidUid } from '../dicom/uids';

/** The lifecycle of a study job; later stages add their own states after "received". */
export type JobState = 'receiving' | 'received' | 'parsing' | 'parsed' | 'selected' | 'no-match' | 'inferring' | 'inferred' | 'writing' | 'seg-written' | 'rtstruct-written' | 'no-findings' | 'sending' | 'done' | 'failed';

export interface JobError {
  at: string;
  stage: string;
  message: string;
}

export interface JobRecord {
  id: string;
  state: JobState;
  studyInstanceUID: string;
  callingAE?: string;
  calledAE?: string;
  /** The peer's address, as the SCP saw it. */
  remoteAddress?: string;
  counts: {
    instances: number;
    series?: number;
    rejected?: number;
    [name: string]: number | undefined;
  };
  createdAt: string;
  updatedAt: string;
  /** When each stage started or finished, by stage name ("received", "parsed", ...). */
  timestamps: Record<string, string>;
  errors: JobError[];
}

/** What travels in msg.job: enough to find the job on disk, never its pixel data. */
export interface JobRef {
  id: string;
  dir: string;
  studyInstanceUID: string;
}

export const JOB_FILE = 'job.json';
export const DICOM_DIR = 'dicom';

const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class JobPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobPathError';
  }
}

/** The default work root, beside the Node-RED user directory's other files. */
export function defaultWorkRoot(userDir: string): string {
  return join(userDir, 'clara-dicom', 'jobs');
}

/** A node's work-root setting as a folder: relative ones (as imported flows carry) in the user directory, empty the default. */
export function resolveWorkRoot(setting: string | undefined, userDir: string): string {
  const text = (setting ?? '').trim();
  return text ? resolve(userDir, text) : defaultWorkRoot(userDir);
}

export function newJobId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/**
 * The file name an instance is stored under. It is derived from the SOP Instance UID only after the
 * UID is checked, so a crafted UID ("../../x") can never name a path outside the job folder.
 */
export function instanceFileName(sopInstanceUID: string): string {
  if (!isValidUid(sopInstanceUID)) {
    throw new JobPathError(`invalid SOP Instance UID ${JSON.stringify(sopInstanceUID.slice(0, 80))}: a UID is numbers joined by single dots, without leading zeros, at most 64 characters`);
  }
  return `${sopInstanceUID}.dcm`;
}

/** Resolves a path inside a folder and refuses anything that would land outside it. */
export function insideDir(dir: string, ...parts: string[]): string {
  const base = resolve(dir);
  const target = resolve(base, ...parts);
  if (target !== base && !target.startsWith(base + sep)) throw new JobPathError(`path ${parts.join('/')} escapes ${base}`);
  return target;
}

export function jobFilePath(jobDir: string): string {
  return join(jobDir, JOB_FILE);
}

/**
 * The job reference a Node-RED message carries in `msg.job`, checked: the nodes after clara-dicom-in
 * refuse a message whose job folder does not exist, with a reason a flow author can act on.
 */
export function jobRefOf(message: { job?: unknown }): JobRef {
  const job = message.job as Partial<JobRef> | undefined;
  if (!job || typeof job !== 'object' || typeof job.dir !== 'string' || job.dir.trim() === '') {
    throw new Error('msg.job must be a job reference { id, dir, studyInstanceUID } from clara-dicom-in');
  }
  if (!existsSync(jobFilePath(job.dir))) throw new Error(`msg.job.dir ${job.dir} is not a job folder (it has no job.json)`);
  return { id: String(job.id ?? ''), dir: job.dir, studyInstanceUID: String(job.studyInstanceUID ?? '') };
}

/**
 * A path an earlier node put on the message (`msg.parser.dir`, `msg.selection.selectedImages`), when it is
 * a non-empty string; undefined otherwise, so the reader falls back to the job folder's usual place.
 */
export function messagePath(message: object, property: string, key: string): string | undefined {
  const holder = (message as Record<string, unknown>)[property];
  const value = holder && typeof holder === 'object' ? (holder as Record<string, unknown>)[key] : undefined;
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export function readJob(jobDir: string): JobRecord {
  return JSON.parse(readFileSync(jobFilePath(jobDir), 'utf8')) as JobRecord;
}

export function writeJob(jobDir: string, record: JobRecord): void {
  writeJsonAtomic(jobFilePath(jobDir), record);
}

/** Read-modify-write of job.json. Each job is driven by one flow at a time, so no lock is needed. */
export function updateJob(jobDir: string, change: (record: JobRecord) => void): JobRecord {
  const record = readJob(jobDir);
  change(record);
  record.updatedAt = new Date().toISOString();
  writeJob(jobDir, record);
  return record;
}

export function setJobState(jobDir: string, state: JobState, stage: string = state): JobRecord {
  return updateJob(jobDir, (r) => {
    r.state = state;
    r.timestamps[stage] = new Date().toISOString();
  });
}

export function recordJobError(jobDir: string, stage: string, message: string, fail = false): JobRecord {
  return updateJob(jobDir, (r) => {
    r.errors.push({ at: new Date().toISOString(), stage, message });
    if (fail) r.state = 'failed';
  });
}

/** States a job has only while a node works on it: found on disk after a restart, that work was cut off. */
export const WORKING_STATES: readonly JobState[] = ['parsing', 'inferring', 'writing', 'sending'];

/** When this process started: a job last updated before then cannot be in this process's hands. */
const PROCESS_STARTED_AT = Date.now() - process.uptime() * 1000;

/**
 * Marks failed, with the reason, the jobs of a work root that a previous process left in a working state
 * (it was killed or crashed mid-parse, mid-inference, mid-write): nothing would ever finish them, and a
 * job that says "parsing" forever hides the failure. Only jobs last updated before this process started
 * are touched, so work in progress here is never marked. Returns the jobs marked.
 */
export function failInterruptedJobs(store: JobStore, startedAt = PROCESS_STARTED_AT): JobRecord[] {
  const marked: JobRecord[] = [];
  for (const record of store.list()) {
    if (!WORKING_STATES.includes(record.state) || !(Date.parse(record.updatedAt) < startedAt)) continue;
    const stage = record.state;
    const reason = `interrupted: the process ${stage === 'writing' ? 'writing its results' : `in state "${stage}"`} stopped (killed, crashed or restarted) before the job finished; send the study again to run it`;
    try {
      marked.push(recordJobError(store.dirOf(record.id), stage, reason, true));
    } catch {
      // job.json cannot be written (a full or read-only disk): the next start tries again
    }
  }
  return marked;
}

/** Job folders under one work root. */
export class JobStore {
  readonly root: string;

  constructor(workRoot: string) {
    this.root = resolve(workRoot);
    mkdirSync(this.root, { recursive: true });
  }

  dirOf(jobId: string): string {
    if (!JOB_ID_PATTERN.test(jobId)) throw new JobPathError(`invalid job id ${JSON.stringify(jobId)}`);
    return insideDir(this.root, jobId);
  }

  create(init: { studyInstanceUID: string; callingAE?: string; calledAE?: string; remoteAddress?: string; state?: JobState; id?: string }): JobRecord {
    const id = init.id ?? newJobId();
    const dir = this.dirOf(id);
    mkdirSync(join(dir, DICOM_DIR), { recursive: true });
    const now = new Date().toISOString();
    const record: JobRecord = {
      id,
      state: init.state ?? 'receiving',
      studyInstanceUID: init.studyInstanceUID,
      callingAE: init.callingAE,
      calledAE: init.calledAE,
      remoteAddress: init.remoteAddress,
      counts: { instances: 0 },
      createdAt: now,
      updatedAt: now,
      timestamps: { created: now },
      errors: [],
    };
    writeJob(dir, record);
    return record;
  }

  ref(record: JobRecord): JobRef {
    return { id: record.id, dir: this.dirOf(record.id), studyInstanceUID: record.studyInstanceUID };
  }

  list(): JobRecord[] {
    const out: JobRecord[] = [];
    for (const name of readdirSync(this.root)) {
      if (!JOB_ID_PATTERN.test(name)) continue;
      const dir = join(this.root, name);
      if (!existsSync(jobFilePath(dir))) continue;
      try {
        out.push(readJob(dir));
      } catch {
        // a job.json being replaced right now; the next listing sees it
      }
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}

/** Folder of a job for one operator's output, created on demand. */
export function operatorDir(jobDir: string, operator: string): string {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(operator)) throw new JobPathError(`invalid operator folder name ${JSON.stringify(operator)}`);
  const dir = join(jobDir, operator);
  mkdirSync(dir, { recursive: true });
  return dir;
}

import { EventEmitter } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join, resolve as resolvePath } from 'node:path';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { type DicomFile, parseDicom, readDicomHeader } from '../dicom/reader';
import { Tag } from '../dicom/tags';
import { TransferSyntax } from '../dicom/uids';
import { writeJsonAtomic } from '../dicom/writer';
import { type AssociationTarget, AssociationError, type NegotiatedContext, type ProposedContext, ScuAssociation } from './association';

/**
 * A durable outbox: every send is a task file in the job folder before a byte goes out, and each
 * instance's outcome is journalled as soon as its C-STORE response arrives, so a crash, a redeploy or a
 * PACS that is down for an hour loses nothing and never stores an instance twice.
 */

export const OUTBOX_DIR = 'outbox';

/** Where a destination is, as written into the task (TLS material is never written: it is resolved again). */
export interface DestinationAddress {
  /** The destination's name as flows and Clara's `--data ["MYPACS"]` use it. */
  name: string;
  calledAE: string;
  host: string;
  port: number;
  callingAE: string;
  maxPduLength?: number;
  connectTimeoutMs?: number;
  pduTimeoutMs?: number;
  tls?: boolean;
}

/** A destination as the resolver gives it: the address plus the TLS options to connect with. */
export interface ResolvedDestination extends DestinationAddress {
  tlsOptions?: TlsConnectionOptions;
}

export type TaskState = 'pending' | 'in-progress' | 'succeeded' | 'failed';
export type InstanceState = 'pending' | 'succeeded' | 'failed';

export interface TaskInstance {
  file: string;
  sopClassUID?: string;
  sopInstanceUID?: string;
  transferSyntaxUID?: string;
  state: InstanceState;
  /** The last C-STORE response status. */
  status?: number;
  /** "Success", "Warning", "Refused: out of resources", ... with the peer's error comment. */
  statusText?: string;
  /** Why the instance is not delivered yet (or never will be, when failed). */
  error?: string;
  /** Whether another attempt may deliver it. */
  retryable?: boolean;
  attempts: number;
  /** Transfer syntax it went out in, when that was not the file's own. */
  sentTransferSyntax?: string;
  deliveredAt?: string;
}

export interface TaskAttempt {
  attempt: number;
  startedAt: string;
  endedAt: string;
  delivered: number;
  failed: number;
  error?: string;
}

export interface OutboxTask {
  version: 1;
  id: string;
  /** The node (or program) that queued it: only that owner resumes it. */
  owner?: string;
  jobDir: string;
  destination: DestinationAddress;
  state: TaskState;
  attempts: number;
  maxAttempts: number;
  createdAt: string;
  updatedAt: string;
  nextAttemptAt?: string;
  lastError?: string;
  completedAt?: string;
  instances: TaskInstance[];
  history: TaskAttempt[];
  /** Whatever the queuing side wants back on completion (a msg id, a topic); small JSON only. */
  context?: Record<string, unknown>;
}

export interface EnqueueRequest {
  jobDir: string;
  files: readonly string[];
  /** A name looked up through the resolver, or a full address. */
  destination: string | DestinationAddress;
  owner?: string;
  context?: Record<string, unknown>;
}

export interface OutboxProgress {
  task: OutboxTask;
  delivered: number;
  total: number;
}

export interface OutboxSnapshot {
  pending: number;
  inProgress: Array<{ id: string; destination: string; delivered: number; total: number }>;
  waiting: Array<{ id: string; destination: string; nextAttemptAt: string; attempt: number; maxAttempts: number; lastError?: string }>;
}

export interface OutboxOptions {
  /** Destination names → addresses, looked up when a task is queued and again before every attempt. */
  resolveDestination?: (name: string) => ResolvedDestination | undefined;
  /** Attempts per task, the first included (default 5). */
  maxAttempts?: number;
  /** Delay before the second attempt; doubled each time (default 2000 ms). */
  backoffMs?: number;
  /** Longest delay between attempts (default 10 minutes). */
  maxBackoffMs?: number;
  /** Tasks sent at the same time, to any destinations (default 2). */
  concurrency?: number;
  /** Written into tasks queued here; resume() takes only tasks with this owner. */
  owner?: string;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export interface OutboxEvents {
  /** A task's file changed (queued, attempt started, retry scheduled, settled). */
  update: [OutboxTask];
  progress: [OutboxProgress];
  /** A task reached succeeded or failed. */
  settled: [OutboxTask];
}

/** The task file could not be written: the task cannot go on durably. */
class TaskFileError extends Error {}

/** Task files any outbox of this process is working on: a second outbox over the same root leaves them alone. */
const claimed = new Set<string>();

/** Files up to this size are read whole (sync: a few microseconds) in the header pass and kept for the send. */
const SMALL_FILE = 1 << 20;
/** How much of a batch's files may be held at once that way. */
const CACHE_BUDGET = 64 << 20;
const VALID_UID = /^[0-9.]{1,64}$/;

/** Reads a file for sending: small ones synchronously (cheaper than a FileHandle round trip), large ones without blocking. */
function readForSend(path: string, cached: Buffer | undefined): Buffer | Promise<Buffer> {
  if (cached) return cached;
  try {
    if (statSync(path).size <= SMALL_FILE) return readFileSync(path);
  } catch (err) {
    return Promise.reject(err);
  }
  return readFile(path);
}

const UNCOMPRESSED = new Set<string>([TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRBigEndian]);
const FALLBACK = [TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian];

/** C-STORE statuses (PS3.4 B.2.3, PS3.7 C) as words, and whether trying again may help. */
export function describeStoreStatus(status: number): { text: string; delivered: boolean; retryable: boolean } {
  if (status === 0x0000) return { text: 'Success', delivered: true, retryable: false };
  if (status === 0x0001 || (status & 0xf000) === 0xb000) return { text: `Warning 0x${hex(status)}`, delivered: true, retryable: false };
  if ((status & 0xff00) === 0xa700) return { text: `Refused: out of resources (0x${hex(status)})`, delivered: false, retryable: true };
  if ((status & 0xff00) === 0xa900) return { text: `Error: data set does not match SOP class (0x${hex(status)})`, delivered: false, retryable: false };
  if ((status & 0xf000) === 0xc000) return { text: `Error: cannot understand (0x${hex(status)})`, delivered: false, retryable: false };
  if (status === 0x0110) return { text: 'Failure: processing failure (0x0110)', delivered: false, retryable: true };
  if (status === 0x0213) return { text: 'Failure: resource limitation (0x0213)', delivered: false, retryable: true };
  if (status === 0x0122) return { text: 'Failure: SOP class not supported (0x0122)', delivered: false, retryable: false };
  if (status === 0x0124) return { text: 'Refused: not authorized (0x0124)', delivered: false, retryable: false };
  return { text: `Failure 0x${hex(status)}`, delivered: false, retryable: false };
}

function hex(n: number): string {
  return n.toString(16).padStart(4, '0');
}

const nowIso = () => new Date().toISOString();

function taskPath(task: Pick<OutboxTask, 'jobDir' | 'id'>): string {
  return join(task.jobDir, OUTBOX_DIR, `${task.id}.json`);
}

const journalPath = (task: Pick<OutboxTask, 'jobDir' | 'id'>) => join(task.jobDir, OUTBOX_DIR, `${task.id}.journal`);

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 32) || 'dest';
}

function newTaskId(destination: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  return `${stamp}-${safeName(destination)}-${randomBytes(4).toString('hex')}`;
}

interface JournalLine {
  i: number;
  st: InstanceState;
  s?: number;
  t?: string;
  e?: string;
  r?: boolean;
  ts?: string;
  a: number;
  at?: string;
  c?: string;
  u?: string;
  x?: string;
}

/** Reads a task file and replays its journal (instances answered after the last checkpoint). */
export function loadTask(path: string): OutboxTask {
  const task = JSON.parse(readFileSync(path, 'utf8')) as OutboxTask;
  if (task.version !== 1 || !Array.isArray(task.instances)) throw new Error(`${path} is not an outbox task`);
  const journal = path.replace(/\.json$/, '.journal');
  if (existsSync(journal)) {
    for (const line of readFileSync(journal, 'utf8').split('\n')) {
      if (!line) continue;
      let entry: JournalLine;
      try {
        entry = JSON.parse(line) as JournalLine;
      } catch {
        continue; // a line torn by a crash: that instance's answer was not recorded, so it is sent again
      }
      const instance = task.instances[entry.i];
      if (!instance || instance.state === 'succeeded') continue;
      applyJournal(instance, entry);
    }
  }
  return task;
}

function applyJournal(instance: TaskInstance, entry: JournalLine): void {
  instance.state = entry.st;
  instance.attempts = entry.a;
  if (entry.s !== undefined) instance.status = entry.s;
  if (entry.t !== undefined) instance.statusText = entry.t;
  instance.error = entry.e;
  instance.retryable = entry.r;
  if (entry.ts !== undefined) instance.sentTransferSyntax = entry.ts;
  if (entry.at !== undefined) instance.deliveredAt = entry.at;
  if (entry.c !== undefined) instance.sopClassUID = entry.c;
  if (entry.u !== undefined) instance.sopInstanceUID = entry.u;
  if (entry.x !== undefined) instance.transferSyntaxUID = entry.x;
}

/** Every task file below a work root (`<root>/<job>/outbox/*.json`). */
export function findTaskFiles(workRoot: string): string[] {
  const out: string[] = [];
  let jobs: string[];
  try {
    jobs = readdirSync(workRoot);
  } catch {
    return out;
  }
  for (const job of jobs) {
    const dir = join(workRoot, job, OUTBOX_DIR);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) if (name.endsWith('.json') && !name.includes('.part')) out.push(join(dir, name));
  }
  return out.sort();
}

/** Byte offset where the data set starts: after the preamble and the group 0002 elements. */
function datasetStart(buf: Buffer): number {
  if (buf.length < 132 || buf.toString('latin1', 128, 132) !== 'DICM') return 0;
  let pos = 132;
  while (pos + 8 <= buf.length && buf.readUInt16LE(pos) === 0x0002) {
    const vr = buf.toString('latin1', pos + 4, pos + 6);
    if (['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV', 'SV', 'UV'].includes(vr)) pos += 12 + buf.readUInt32LE(pos + 8);
    else pos += 8 + buf.readUInt16LE(pos + 6);
  }
  return pos;
}

/** Re-encodes an uncompressed data set in another uncompressed transfer syntax (the fallback path only). */
interface DcmjsDict {
  meta: Record<string, { vr: string; Value: unknown[] }>;
  write(): ArrayBuffer;
}

function transcode(buf: Buffer, to: string): Buffer {
  // Loaded here: only the fallback path needs dcmjs's general-purpose reader and writer.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const dcmjs = require('dcmjs') as { data: { DicomMessage: { readFile(buffer: ArrayBuffer): DcmjsDict } } };
  const arrayBuffer = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const dict = dcmjs.data.DicomMessage.readFile(arrayBuffer);
  dict.meta['00020010'] = { vr: 'UI', Value: [to] };
  const out = Buffer.from(dict.write());
  return out.subarray(datasetStart(out));
}

function delayFor(attempt: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** Math.max(0, attempt - 1));
}

interface Running {
  task: OutboxTask;
  /** Aborted by close(): stops a connect still in progress. */
  stop: AbortController;
  /** File bytes read during the header pass, by instance index. */
  cache?: Map<number, Buffer>;
  association?: ScuAssociation;
  delivered: number;
  total: number;
}

export class Outbox extends EventEmitter<OutboxEvents> {
  private readonly tasks = new Map<string, OutboxTask>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly ready: string[] = [];
  private readonly running = new Map<string, Running>();
  /** Open journal files of running tasks. */
  private readonly journals = new Map<string, number>();
  private readonly idleWaiters: Array<() => void> = [];
  private closing = false;
  private readonly maxAttempts: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly concurrency: number;

  constructor(private readonly options: OutboxOptions = {}) {
    super();
    this.maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 5));
    this.backoffMs = Math.max(0, options.backoffMs ?? 2000);
    this.maxBackoffMs = Math.max(this.backoffMs, options.maxBackoffMs ?? 600000);
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 2));
  }

  /**
   * Writes the task file, then queues it. A destination name the resolver does not know gives a task
   * that is failed at once with that reason (it is written all the same: nothing is dropped silently).
   */
  enqueue(request: EnqueueRequest): OutboxTask {
    if (this.closing) throw new Error('the outbox is closed');
    const jobDir = resolvePath(request.jobDir);
    const name = typeof request.destination === 'string' ? request.destination : request.destination.name;
    const resolved = typeof request.destination === 'string' ? this.options.resolveDestination?.(request.destination) : request.destination;
    const created = nowIso();
    const files = [...new Set(request.files.map((f) => resolvePath(f)))];
    const task: OutboxTask = {
      version: 1,
      id: newTaskId(name),
      owner: request.owner ?? this.options.owner,
      jobDir,
      destination: resolved ? addressOf(resolved) : { name, calledAE: '', host: '', port: 0, callingAE: '' },
      state: 'pending',
      attempts: 0,
      maxAttempts: this.maxAttempts,
      createdAt: created,
      updatedAt: created,
      instances: files.map((file) => ({ file, state: 'pending', attempts: 0 })),
      history: [],
      context: request.context,
    };
    if (!resolved) {
      task.state = 'failed';
      task.lastError = `unknown destination "${name}": no destination of that name is configured`;
      task.completedAt = created;
      for (const i of task.instances) Object.assign(i, { state: 'failed', error: task.lastError, retryable: false });
    } else if (files.length === 0) {
      task.state = 'failed';
      task.lastError = 'nothing to send: no files';
      task.completedAt = created;
    }
    mkdirSync(join(jobDir, OUTBOX_DIR), { recursive: true });
    this.save(task);
    if (task.state === 'failed') {
      this.options.log?.('warn', `outbox task ${task.id}: ${task.lastError}`);
      queueMicrotask(() => this.emit('settled', task));
      return task;
    }
    claimed.add(taskPath(task));
    this.tasks.set(task.id, task);
    this.schedule(task);
    return task;
  }

  /**
   * Picks up the pending and in-progress tasks left under a work root (by this owner, when the outbox
   * has one). In-progress means the process stopped mid-send: the instances without an answer go again.
   */
  resume(workRoot: string): OutboxTask[] {
    const resumed: OutboxTask[] = [];
    for (const path of findTaskFiles(workRoot)) {
      if (claimed.has(path)) continue;
      let task: OutboxTask;
      try {
        task = loadTask(path);
      } catch (err) {
        this.options.log?.('warn', `outbox: cannot read ${path}: ${(err as Error).message}`);
        continue;
      }
      if (task.state !== 'pending' && task.state !== 'in-progress') continue;
      if (this.options.owner !== undefined && task.owner !== this.options.owner) continue;
      // The folder may have moved since the task was written; the task file's place is the truth.
      task.jobDir = resolvePath(path, '..', '..');
      if (task.state === 'in-progress') task.state = 'pending';
      // A restart is a good moment to try again: the peer may well be back.
      task.nextAttemptAt = undefined;
      claimed.add(path);
      this.tasks.set(task.id, task);
      this.save(task);
      this.schedule(task);
      resumed.push(task);
    }
    return resumed;
  }

  /** Tasks this outbox holds that are not settled. */
  get size(): number {
    return this.tasks.size;
  }

  snapshot(): OutboxSnapshot {
    const waiting: OutboxSnapshot['waiting'] = [];
    let pending = 0;
    for (const task of this.tasks.values()) {
      if (this.running.has(task.id)) continue;
      pending++;
      if (task.nextAttemptAt && task.attempts > 0) {
        waiting.push({ id: task.id, destination: task.destination.name, nextAttemptAt: task.nextAttemptAt, attempt: task.attempts + 1, maxAttempts: task.maxAttempts, lastError: task.lastError });
      }
    }
    const inProgress = [...this.running.values()].map((r) => ({ id: r.task.id, destination: r.task.destination.name, delivered: r.delivered, total: r.total }));
    return { pending, inProgress, waiting };
  }

  /** Resolves when nothing is queued, waiting or running (retries included). */
  whenIdle(): Promise<void> {
    if (this.tasks.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops timers, aborts associations in flight and leaves their tasks pending on disk (instances
   * already answered stay answered), for the next outbox to resume.
   */
  async close(): Promise<void> {
    this.closing = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.ready.length = 0;
    const runs = [...this.running.values()];
    for (const run of runs) {
      run.stop.abort();
      run.association?.abort();
    }
    await new Promise<void>((resolve) => {
      const check = () => (this.running.size === 0 ? resolve() : setTimeout(check, 10));
      check();
    });
    for (const task of this.tasks.values()) {
      claimed.delete(taskPath(task));
    }
    this.tasks.clear();
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private schedule(task: OutboxTask): void {
    if (this.closing) return;
    const wait = task.nextAttemptAt ? Date.parse(task.nextAttemptAt) - Date.now() : 0;
    if (wait > 0) {
      const timer = setTimeout(() => {
        this.timers.delete(task.id);
        this.ready.push(task.id);
        this.pump();
      }, wait);
      this.timers.set(task.id, timer);
    } else {
      this.ready.push(task.id);
      queueMicrotask(() => this.pump());
    }
  }

  private pump(): void {
    while (!this.closing && this.running.size < this.concurrency && this.ready.length > 0) {
      const id = this.ready.shift() as string;
      const task = this.tasks.get(id);
      if (!task || this.running.has(id)) continue;
      const run: Running = { task, stop: new AbortController(), delivered: 0, total: task.instances.length };
      this.running.set(id, run);
      this.attempt(run).catch((err: Error) => {
        if (!(err instanceof TaskFileError)) this.options.log?.('error', `outbox task ${task.id}: ${err.stack ?? err.message}`);
        try {
          this.finishAttempt(run, nowIso(), err instanceof TaskFileError ? err.message : `internal error: ${err.message}`);
        } catch (again) {
          this.running.delete(task.id);
          this.abandon(task, `internal error: ${(again as Error).message}`);
          this.pump();
          this.settleIfIdle();
        }
      });
    }
  }

  /** Writes the task file; false (and logged) when that is impossible, e.g. the job folder was deleted. */
  private save(task: OutboxTask): boolean {
    this.closeJournal(task);
    task.updatedAt = nowIso();
    try {
      writeJsonAtomic(taskPath(task), task);
    } catch (err) {
      this.options.log?.('error', `outbox task ${task.id}: cannot write ${taskPath(task)}: ${(err as Error).message}`);
      return false;
    }
    // The task file now holds every answer the journal had.
    try {
      unlinkSync(journalPath(task));
    } catch {
      // no journal yet
    }
    this.emit('update', task);
    return true;
  }

  /** A task whose file cannot be written any more is given up (its folder is gone): settled as failed. */
  private abandon(task: OutboxTask, why: string): void {
    this.closeJournal(task);
    task.state = 'failed';
    task.lastError = why;
    task.completedAt = nowIso();
    this.tasks.delete(task.id);
    claimed.delete(taskPath(task));
    this.emit('settled', task);
  }

  private journal(task: OutboxTask, index: number, instance: TaskInstance): void {
    let fd = this.journals.get(task.id);
    if (fd === undefined) {
      try {
        fd = openSync(journalPath(task), 'a');
      } catch (err) {
        // Without a journal the answer lives in memory until the task file is written at the end.
        this.options.log?.('warn', `outbox task ${task.id}: cannot journal: ${(err as Error).message}`);
        return;
      }
      this.journals.set(task.id, fd);
    }
    const entry: JournalLine = {
      i: index, st: instance.state, s: instance.status, t: instance.statusText, e: instance.error, r: instance.retryable,
      ts: instance.sentTransferSyntax, a: instance.attempts, at: instance.deliveredAt,
      c: instance.sopClassUID, u: instance.sopInstanceUID, x: instance.transferSyntaxUID,
    };
    // One write(2) per answer, no fsync: it survives the process dying, which is what a redeploy or
    // a crash does; a power cut may lose the last answers, and those instances are then sent again.
    writeSync(fd, JSON.stringify(entry) + '\n');
  }

  private closeJournal(task: OutboxTask): void {
    const fd = this.journals.get(task.id);
    if (fd === undefined) return;
    this.journals.delete(task.id);
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }

  private async attempt(run: Running): Promise<void> {
    const task = run.task;
    const startedAt = nowIso();
    task.attempts++;
    task.state = 'in-progress';
    task.nextAttemptAt = undefined;
    if (!this.save(task)) throw new TaskFileError(`the task file cannot be written (was ${task.jobDir} removed?)`);

    const stored = task.destination;
    const resolved = this.options.resolveDestination?.(stored.name);
    const destination: ResolvedDestination = resolved ?? stored;
    if (stored.tls && !resolved) {
      task.lastError = `destination "${stored.name}" needs TLS and is not configured any more`;
      return this.finishAttempt(run, startedAt, task.lastError);
    }
    if (resolved) task.destination = addressOf(resolved);

    const todo: number[] = [];
    task.instances.forEach((instance, i) => {
      if (instance.state === 'pending' || (instance.state === 'failed' && instance.retryable)) todo.push(i);
    });
    run.delivered = task.instances.filter((i) => i.state === 'succeeded').length;
    run.total = task.instances.length;

    // Headers first: the association must propose every SOP class and transfer syntax at hand. Small
    // files are read whole here and kept for the send, so each is read once.
    const sendable: number[] = [];
    run.cache = new Map();
    let cached = 0;
    for (const i of todo) {
      const instance = task.instances[i];
      if (instance.sopClassUID && instance.sopInstanceUID && instance.transferSyntaxUID) {
        sendable.push(i);
        continue;
      }
      try {
        let header: DicomFile;
        const size = statSync(instance.file).size;
        if (size <= SMALL_FILE && cached + size <= CACHE_BUDGET) {
          const bytes = readFileSync(instance.file);
          header = parseDicom(bytes, { stopAtPixelData: true, complete: true, fileSize: bytes.length });
          run.cache.set(i, bytes);
          cached += size;
        } else header = readDicomHeader(instance.file);
        const sopClassUID = header.meta.string(Tag.MediaStorageSOPClassUID) ?? header.dataset.string(Tag.SOPClassUID);
        const sopInstanceUID = header.meta.string(Tag.MediaStorageSOPInstanceUID) ?? header.dataset.string(Tag.SOPInstanceUID);
        if (!sopClassUID || !sopInstanceUID) throw new Error('no SOP Class UID or SOP Instance UID');
        if (!VALID_UID.test(sopClassUID) || !VALID_UID.test(sopInstanceUID)) throw new Error(`invalid UID ${JSON.stringify(VALID_UID.test(sopClassUID) ? sopInstanceUID : sopClassUID)}`);
        Object.assign(instance, { sopClassUID, sopInstanceUID, transferSyntaxUID: header.transferSyntaxUID });
        sendable.push(i);
      } catch (err) {
        run.cache.delete(i);
        const code = (err as NodeJS.ErrnoException).code;
        Object.assign(instance, {
          state: 'failed', retryable: false, attempts: instance.attempts + 1,
          error: code === 'ENOENT' ? `file not found: ${instance.file}` : `not a DICOM file that can be sent: ${(err as Error).message}`,
        });
        this.journal(task, i, instance);
      }
    }

    let attemptError: string | undefined;
    for (const batch of batches(sendable.map((i) => ({ i, instance: task.instances[i] })))) {
      if (this.closing) break;
      attemptError = await this.sendBatch(run, destination, batch) ?? attemptError;
      if (attemptError && !task.instances.some((inst) => inst.state === 'pending')) break;
    }
    run.cache = undefined;
    return this.finishAttempt(run, startedAt, attemptError);
  }

  /** One association for a batch. Returns the error that ended it early, if one did. */
  private async sendBatch(run: Running, destination: ResolvedDestination, batch: Array<{ i: number; instance: TaskInstance }>): Promise<string | undefined> {
    const task = run.task;
    const contexts = contextsFor(batch.map((b) => b.instance));
    const target: AssociationTarget = {
      host: destination.host, port: destination.port, calledAE: destination.calledAE, callingAE: destination.callingAE,
      maxPduLength: destination.maxPduLength, connectTimeoutMs: destination.connectTimeoutMs, pduTimeoutMs: destination.pduTimeoutMs,
      tls: destination.tlsOptions,
    };
    let association: ScuAssociation;
    try {
      association = await ScuAssociation.open(target, contexts, run.stop.signal);
    } catch (err) {
      const message = (err as Error).message;
      const transient = err instanceof AssociationError ? err.transient : true;
      for (const { i, instance } of batch) {
        instance.error = message;
        instance.retryable = transient;
        if (!transient) instance.state = 'failed';
        this.journal(task, i, instance);
      }
      return message;
    }
    run.association = association;
    try {
      const cache = run.cache ?? new Map<number, Buffer>();
      for (let k = 0; k < batch.length; k++) {
        const { i, instance } = batch[k];
        if (this.closing) return 'stopped';
        let bytes: Buffer;
        try {
          const read = readForSend(instance.file, cache.get(i));
          bytes = Buffer.isBuffer(read) ? read : await read;
          cache.delete(i);
        } catch (err) {
          Object.assign(instance, { state: 'failed', retryable: false, attempts: instance.attempts + 1, error: `cannot read ${instance.file}: ${(err as Error).message}` });
          this.journal(task, i, instance);
          continue;
        }
        const own = instance.transferSyntaxUID as string;
        let context: NegotiatedContext | undefined = association.contextFor(instance.sopClassUID as string, [own]);
        let dataset: Buffer | undefined;
        if (context) dataset = bytes.subarray(datasetStart(bytes));
        else if (UNCOMPRESSED.has(own)) {
          context = association.contextFor(instance.sopClassUID as string, FALLBACK);
          if (context) {
            try {
              dataset = transcode(bytes, context.transferSyntax as string);
              instance.sentTransferSyntax = context.transferSyntax;
            } catch (err) {
              Object.assign(instance, { state: 'failed', retryable: false, attempts: instance.attempts + 1, error: `cannot convert to ${context.transferSyntax}: ${(err as Error).message}` });
              this.journal(task, i, instance);
              continue;
            }
          }
        }
        if (!context || !dataset) {
          Object.assign(instance, {
            state: 'failed', retryable: false, attempts: instance.attempts + 1,
            error: `${destination.calledAE} does not accept SOP class ${instance.sopClassUID} in transfer syntax ${own}${UNCOMPRESSED.has(own) ? ' or Explicit/Implicit VR Little Endian' : ''}: ${association.refusalFor(instance.sopClassUID as string)}`,
          });
          this.journal(task, i, instance);
          continue;
        }
        instance.attempts++;
        let answer;
        try {
          answer = await association.store(context, instance.sopClassUID as string, instance.sopInstanceUID as string, dataset);
        } catch (err) {
          // No answer: we cannot know whether the peer stored it, so it goes again (a PACS replaces a
          // SOP instance it already holds; the tests check that none ends up stored twice).
          instance.error = (err as Error).message;
          instance.retryable = true;
          this.journal(task, i, instance);
          return instance.error;
        }
        const verdict = describeStoreStatus(answer.status);
        instance.status = answer.status;
        instance.statusText = answer.errorComment ? `${verdict.text}: ${answer.errorComment}` : verdict.text;
        if (verdict.delivered) {
          instance.state = 'succeeded';
          instance.error = undefined;
          instance.retryable = undefined;
          instance.deliveredAt = nowIso();
          run.delivered++;
        } else {
          instance.state = verdict.retryable ? 'pending' : 'failed';
          instance.retryable = verdict.retryable;
          instance.error = instance.statusText;
        }
        this.journal(task, i, instance);
        this.emit('progress', { task, delivered: run.delivered, total: run.total });
      }
    } finally {
      run.association = undefined;
      await association.release();
    }
    return undefined;
  }

  private finishAttempt(run: Running, startedAt: string, error: string | undefined): void {
    const task = run.task;
    this.running.delete(task.id);
    const delivered = task.instances.filter((i) => i.state === 'succeeded').length;
    const retryable = task.instances.filter((i) => i.state === 'pending' || (i.state === 'failed' && i.retryable));
    const failed = task.instances.filter((i) => i.state === 'failed' && !i.retryable);
    task.history.push({ attempt: task.attempts, startedAt, endedAt: nowIso(), delivered, failed: failed.length + retryable.length, error });
    if (task.history.length > 50) task.history.splice(0, task.history.length - 50);
    const firstError = error ?? retryable[0]?.error ?? failed[0]?.error;
    task.lastError = firstError;
    if (this.closing) {
      task.state = 'pending';
      this.save(task);
      return this.settleIfIdle();
    }
    if (!existsSync(join(task.jobDir, OUTBOX_DIR))) {
      this.abandon(task, `the task's folder ${join(task.jobDir, OUTBOX_DIR)} was removed`);
      this.pump();
      return this.settleIfIdle();
    }
    if (retryable.length > 0 && task.attempts < task.maxAttempts) {
      task.state = 'pending';
      const wait = delayFor(task.attempts, this.backoffMs, this.maxBackoffMs);
      task.nextAttemptAt = new Date(Date.now() + wait).toISOString();
      this.options.log?.('warn', `outbox task ${task.id} to ${task.destination.name}: ${retryable.length} instance(s) not delivered (${firstError}); attempt ${task.attempts + 1}/${task.maxAttempts} in ${Math.round(wait / 1000)} s`);
      this.save(task);
      this.schedule(task);
    } else {
      for (const i of retryable) Object.assign(i, { state: 'failed', retryable: false });
      task.state = retryable.length + failed.length === 0 ? 'succeeded' : 'failed';
      if (task.state === 'succeeded') task.lastError = undefined;
      else task.lastError = `${retryable.length + failed.length} of ${task.instances.length} instance(s) not delivered to ${task.destination.name}${task.attempts >= task.maxAttempts && retryable.length ? ` after ${task.attempts} attempt(s)` : ''}: ${firstError}`;
      task.completedAt = nowIso();
      this.save(task);
      this.tasks.delete(task.id);
      claimed.delete(taskPath(task));
      this.emit('settled', task);
    }
    this.pump();
    this.settleIfIdle();
  }

  private settleIfIdle(): void {
    if (this.tasks.size === 0 || (this.closing && this.running.size === 0)) for (const w of this.idleWaiters.splice(0)) w();
  }
}

function addressOf(d: DestinationAddress): DestinationAddress {
  const out: DestinationAddress = { name: d.name, calledAE: d.calledAE, host: d.host, port: d.port, callingAE: d.callingAE };
  if (d.maxPduLength !== undefined) out.maxPduLength = d.maxPduLength;
  if (d.connectTimeoutMs !== undefined) out.connectTimeoutMs = d.connectTimeoutMs;
  if (d.pduTimeoutMs !== undefined) out.pduTimeoutMs = d.pduTimeoutMs;
  if (d.tls) out.tls = true;
  return out;
}

/**
 * Presentation contexts for a set of instances: per SOP class, one context per transfer syntax the
 * files are in (sent as they are), and one offering Explicit then Implicit VR Little Endian for
 * uncompressed files whose own syntax the peer may refuse.
 */
export function contextsFor(instances: readonly Pick<TaskInstance, 'sopClassUID' | 'transferSyntaxUID'>[]): ProposedContext[] {
  const bySop = new Map<string, Set<string>>();
  for (const i of instances) {
    if (!i.sopClassUID || !i.transferSyntaxUID) continue;
    let set = bySop.get(i.sopClassUID);
    if (!set) bySop.set(i.sopClassUID, (set = new Set()));
    set.add(i.transferSyntaxUID);
  }
  const out: ProposedContext[] = [];
  for (const [sop, syntaxes] of bySop) {
    for (const ts of syntaxes) out.push({ abstractSyntax: sop, transferSyntaxes: [ts] });
    if ([...syntaxes].some((ts) => UNCOMPRESSED.has(ts))) {
      const rest = FALLBACK.filter((ts) => !syntaxes.has(ts));
      if (rest.length) out.push({ abstractSyntax: sop, transferSyntaxes: rest });
    }
  }
  return out;
}

/** Splits instances so that no association needs more than 128 presentation contexts. */
function batches<T extends { instance: TaskInstance }>(items: T[]): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  // At most two contexts per (SOP class, transfer syntax) pair: a bound that is cheap to keep.
  const pairs = new Set<string>();
  for (const item of items) {
    const key = `${item.instance.sopClassUID}|${item.instance.transferSyntaxUID}`;
    if (!pairs.has(key) && pairs.size >= 64 && current.length > 0) {
      out.push(current);
      current = [];
      pairs.clear();
    }
    pairs.add(key);
    current.push(item);
  }
  if (current.length) out.push(current);
  return out;
}

/**
 * Files below a job's output folders (seg/, rtstruct/ by default) for a send without a file list: the
 * writers' `<SOPInstanceUID>.dcm` files, never their reports or half-written `.part` files. With
 * `anyName`, every file but hidden, `.json` and `.part` ones (a folder someone else filled).
 */
export function jobOutputFiles(jobDir: string, folders: readonly string[] = ['seg', 'rtstruct'], anyName = false): string[] {
  const out: string[] = [];
  const wanted = (name: string) => !name.startsWith('.') && !name.endsWith('.part') && (anyName ? !name.endsWith('.json') : name.toLowerCase().endsWith('.dcm'));
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const path = join(dir, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else if (st.isFile() && wanted(name)) out.push(path);
    }
  };
  for (const folder of folders) walk(join(jobDir, folder));
  return out;
}


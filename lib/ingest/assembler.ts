import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Tag } from '../dicom/tags';
import { type DicomFile, readDicomHeader } from '../dicom/reader';
import { DICOM_DIR, type JobRecord, type JobRef, type JobStore, recordJobError, setJobState, updateJob } from '../job';

/**
 * How instances are grouped into jobs:
 * - `study`: by StudyInstanceUID (Clara DICOM Adapter's default);
 * - `study-calling-ae`: by StudyInstanceUID and calling AE, so two senders of one study make two jobs;
 * - `association`: each association is one job, whatever studies it carries (folder ingest: the folder).
 */
export type Grouping = 'study' | 'study-calling-ae' | 'association';
export const GROUPINGS: readonly Grouping[] = ['study', 'study-calling-ae', 'association'];

/** The attributes of one instance that grouping and the job summary need, read from its header. */
export interface InstanceInfo {
  sopInstanceUID: string;
  sopClassUID?: string;
  studyInstanceUID: string;
  seriesInstanceUID?: string;
  modality?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  studyDescription?: string;
  accessionNumber?: string;
}

/** Raised when a header lacks what grouping needs (no SOP Instance UID, no StudyInstanceUID), or carries an unsafe one. */
export class MissingIdentityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingIdentityError';
  }
}

/** What a Study or Series Instance UID may hold (validity beyond that is the sender's business). */
const UID_CHARACTERS = /^[0-9.]{1,64}$/;

export function instanceInfoOf(file: DicomFile): InstanceInfo {
  const ds = file.dataset;
  const sopInstanceUID = ds.string(Tag.SOPInstanceUID);
  if (!sopInstanceUID) throw new MissingIdentityError('no SOP Instance UID (0008,0018)');
  const studyInstanceUID = ds.string(Tag.StudyInstanceUID);
  if (!studyInstanceUID) throw new MissingIdentityError('no Study Instance UID (0020,000D)');
  // Study and series UIDs name nothing on disk at ingest, but they travel on (msg.topic, job.json, file
  // names of later stages): one made of anything but digits and dots (a path, "../..") is refused, the
  // same way for C-STORE and folder ingest.
  const seriesInstanceUID = ds.string(Tag.SeriesInstanceUID);
  for (const [what, uid] of [['Study', studyInstanceUID], ['Series', seriesInstanceUID]] as const) {
    if (uid !== undefined && !UID_CHARACTERS.test(uid)) throw new MissingIdentityError(`invalid ${what} Instance UID ${JSON.stringify(uid.slice(0, 80))}: a UID is digits and dots, at most 64 characters`);
  }
  return {
    sopInstanceUID,
    sopClassUID: ds.string(Tag.SOPClassUID) ?? file.meta.string(Tag.MediaStorageSOPClassUID),
    studyInstanceUID,
    seriesInstanceUID,
    modality: ds.string(Tag.Modality),
    seriesNumber: ds.number(Tag.SeriesNumber),
    seriesDescription: ds.string(Tag.SeriesDescription),
    studyDescription: ds.string(Tag.StudyDescription),
    accessionNumber: ds.string(Tag.AccessionNumber),
  };
}

export interface SeriesSummary {
  seriesInstanceUID: string;
  modality?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  instances: number;
}

export type CompletedBy = 'timeout' | 'association-end' | 'folder' | 'close' | 'resume';

/** The small summary of a finished job that becomes msg.payload: counts and identifiers, never pixels. */
export interface JobSummary {
  jobId: string;
  studyInstanceUID: string;
  /** Every study in the job; more than one only with association grouping or a mixed folder in that mode. */
  studyInstanceUIDs: string[];
  studyDescription?: string;
  accessionNumber?: string;
  instances: number;
  /** Instances answered with a failure status (or files skipped, for folder ingest) attributed to this job. */
  rejected: number;
  series: SeriesSummary[];
  source: 'dimse' | 'folder';
  callingAE?: string;
  calledAE?: string;
  remoteAddress?: string;
  /** For folder ingest: the folder that was read. */
  folder?: string;
  firstInstanceAt: string;
  lastInstanceAt: string;
  completedAt: string;
  completedBy: CompletedBy;
}

export interface CompletedJob {
  job: JobRef;
  summary: JobSummary;
}

/** Where an instance came from; the first instance of a job fills in the job's own fields. */
export interface SourceContext {
  callingAE?: string;
  calledAE?: string;
  remoteAddress?: string;
  /** Set by the SCP: the association the instance arrived on. */
  associationId?: string;
  folder?: string;
}

/** A job still collecting instances. */
export interface OpenJob {
  readonly key: string;
  readonly record: JobRecord;
  readonly ref: JobRef;
  readonly associations: Set<string>;
  readonly instances: Map<string, string>;
  readonly series: Map<string, SeriesSummary>;
  readonly studies: Set<string>;
  rejected: number;
  rejectionsLogged: number;
  firstInstanceAt: number;
  lastInstanceAt: number;
  studyDescription?: string;
  accessionNumber?: string;
  folder?: string;
  timer?: NodeJS.Timeout;
  dirty: boolean;
}

export interface AssemblerOptions {
  store: JobStore;
  grouping: Grouping;
  source: 'dimse' | 'folder';
  /** Completion this long after a job's last instance; leave out to complete only when told. */
  studyTimeoutMs?: number;
  onComplete: (job: CompletedJob) => void;
  /** True while an instance that may belong to the job is still arriving: completion waits for it. */
  isBusy?: (job: OpenJob) => boolean;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

/** Rejection reasons written to a job's job.json, at most; the count goes on. */
const MAX_LOGGED_REJECTIONS = 50;
/** How often counts of open jobs are written to their job.json (not per instance: that would dominate). */
const PERSIST_INTERVAL_MS = 1000;
const NO_SERIES = '(no series)';

/**
 * Groups instances into jobs. The first instance of a group creates its job folder; the job completes
 * `studyTimeoutMs` after its last instance (or when told), its job.json goes to state "received", and
 * `onComplete` fires once. An instance that arrives for an already-completed group opens a new job.
 */
export class JobAssembler {
  private readonly open = new Map<string, OpenJob>();
  private persistTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Refusals of instances whose group has no job yet, applied when (if) its job is created. */
  private readonly earlyRejections = new Map<string, { reasons: string[]; at: number }>();

  constructor(private readonly options: AssemblerOptions) {}

  get openJobs(): OpenJob[] {
    return [...this.open.values()];
  }

  keyOf(studyInstanceUID: string, source: SourceContext): string {
    switch (this.options.grouping) {
      case 'study':
        return `study:${studyInstanceUID}`;
      case 'study-calling-ae':
        return `study:${studyInstanceUID}\u0000${source.callingAE ?? ''}`;
      case 'association':
        return `association:${source.associationId ?? source.folder ?? ''}`;
    }
  }

  /** The open job an instance of this study (from this source) belongs to, created if needed. */
  jobFor(studyInstanceUID: string, source: SourceContext): OpenJob {
    if (this.closed) throw new Error('the job assembler is closed');
    const key = this.keyOf(studyInstanceUID, source);
    let job = this.open.get(key);
    if (!job) {
      const record = this.options.store.create({
        studyInstanceUID,
        callingAE: source.callingAE,
        calledAE: source.calledAE,
        remoteAddress: source.remoteAddress,
        state: 'receiving',
      });
      const now = Date.now();
      job = {
        key,
        record,
        ref: this.options.store.ref(record),
        associations: new Set(),
        instances: new Map(),
        series: new Map(),
        studies: new Set([studyInstanceUID]),
        rejected: 0,
        rejectionsLogged: 0,
        firstInstanceAt: now,
        lastInstanceAt: now,
        folder: source.folder,
        dirty: false,
      };
      this.open.set(key, job);
      this.arm(job);
      const early = this.earlyRejections.get(key);
      if (early) {
        this.earlyRejections.delete(key);
        for (const reason of early.reasons) this.addRejected(job, reason);
      }
    }
    if (source.associationId) job.associations.add(source.associationId);
    return job;
  }

  /**
   * Counts a refused instance of a known study against its job: the open one, or the one its group
   * opens next (a refusal alone never creates a job, so a study whose every instance is refused makes
   * no empty job). Refusals for groups that never get a job are forgotten after ten minutes.
   */
  noteRejection(studyInstanceUID: string, source: SourceContext, reason: string): JobRef | undefined {
    const key = this.keyOf(studyInstanceUID, source);
    const job = this.open.get(key);
    if (job) {
      this.addRejected(job, reason);
      return job.ref;
    }
    const now = Date.now();
    for (const [k, v] of this.earlyRejections) if (now - v.at > 600000) this.earlyRejections.delete(k);
    const entry = this.earlyRejections.get(key) ?? { reasons: [], at: now };
    entry.reasons.push(reason);
    entry.at = now;
    this.earlyRejections.set(key, entry);
    return undefined;
  }

  /** Counts a stored instance; a SOP instance already in the job was overwritten and is counted once. */
  addInstance(job: OpenJob, info: InstanceInfo): { duplicate: boolean } {
    const seriesUID = info.seriesInstanceUID ?? NO_SERIES;
    const previous = job.instances.get(info.sopInstanceUID);
    if (previous !== undefined) {
      const old = job.series.get(previous);
      if (old) {
        old.instances--;
        if (old.instances <= 0) job.series.delete(previous);
      }
    }
    job.instances.set(info.sopInstanceUID, seriesUID);
    let series = job.series.get(seriesUID);
    if (!series) {
      series = {
        seriesInstanceUID: seriesUID,
        modality: info.modality,
        seriesNumber: info.seriesNumber,
        seriesDescription: info.seriesDescription,
        instances: 0,
      };
      job.series.set(seriesUID, series);
    }
    series.instances++;
    job.studies.add(info.studyInstanceUID);
    job.studyDescription ??= info.studyDescription;
    job.accessionNumber ??= info.accessionNumber;
    job.lastInstanceAt = Date.now();
    this.touch(job);
    return { duplicate: previous !== undefined };
  }

  /** Counts a refused instance against a job and writes the reason to its job.json (the first few). */
  addRejected(job: OpenJob, reason: string): void {
    job.rejected++;
    if (job.rejectionsLogged < MAX_LOGGED_REJECTIONS) {
      job.rejectionsLogged++;
      try {
        recordJobError(job.ref.dir, 'receive', reason);
      } catch (err) {
        this.log('warn', `job ${job.ref.id}: cannot record a rejection in job.json: ${(err as Error).message}`);
      }
    }
    this.touch(job);
  }

  /**
   * Forgets an open job without completing it (its folder vanished: someone deleted it mid-transfer).
   * The next instance of its group opens a new job.
   */
  abandon(job: OpenJob, reason: string): void {
    if (this.open.get(job.key) !== job) return;
    this.open.delete(job.key);
    if (job.timer) clearTimeout(job.timer);
    job.timer = undefined;
    this.log('warn', `job ${job.ref.id} abandoned: ${reason}`);
  }

  /** Completes every open job that an association contributed to (association grouping, at its end). */
  completeAssociation(associationId: string): void {
    for (const job of [...this.open.values()]) {
      if (job.key === `association:${associationId}`) this.complete(job, 'association-end');
    }
  }

  /** Completes every open job now (folder ingest; or an SCP closing with flush). */
  completeAll(by: CompletedBy): void {
    for (const job of [...this.open.values()]) this.complete(job, by);
  }

  /**
   * Stops without completing: timers are cleared and counts persisted, and job.json keeps state
   * "receiving" so that the next assembler on this work root can adopt the jobs with `resume()`.
   */
  suspend(): void {
    this.closed = true;
    for (const job of this.open.values()) {
      if (job.timer) clearTimeout(job.timer);
      job.timer = undefined;
      this.persist(job);
    }
    this.open.clear();
    if (this.persistTimer) clearInterval(this.persistTimer);
    this.persistTimer = undefined;
  }

  /**
   * Adopts the jobs a previous SCP on this work root left in state "receiving" (a redeploy, a restart or
   * a crash) for this called AE. With study grouping they collect instances again and complete after the
   * timeout; association-grouped jobs cannot continue (their association is gone) and complete at once.
   */
  resume(calledAE: string): number {
    let adopted = 0;
    const candidates = this.options.store.list().filter((r) => r.state === 'receiving' && (r.calledAE ?? '') === calledAE);
    for (const record of candidates) {
      try {
        const ref = this.options.store.ref(record);
        const job: OpenJob = {
          key: this.options.grouping === 'association' ? `resumed:${record.id}` : this.keyOf(record.studyInstanceUID, { callingAE: record.callingAE }),
          record,
          ref,
          associations: new Set(),
          instances: new Map(),
          series: new Map(),
          studies: new Set([record.studyInstanceUID]),
          rejected: record.counts.rejected ?? 0,
          rejectionsLogged: record.errors.length,
          firstInstanceAt: Date.parse(record.createdAt) || Date.now(),
          lastInstanceAt: Date.now(),
          dirty: true,
        };
        this.rescan(job);
        const clash = this.open.get(job.key);
        if (clash) this.complete(clash, 'resume');
        this.open.set(job.key, job);
        adopted++;
        if (this.options.grouping === 'association') this.complete(job, 'resume');
        else this.arm(job);
      } catch (err) {
        this.log('warn', `cannot resume job ${record.id}: ${(err as Error).message}`);
      }
    }
    return adopted;
  }

  private rescan(job: OpenJob): void {
    const dir = join(job.ref.dir, DICOM_DIR);
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.dcm')) continue;
      try {
        this.addInstance(job, instanceInfoOf(readDicomHeader(join(dir, name))));
      } catch (err) {
        this.log('warn', `job ${job.ref.id}: ${name} is unreadable after restart: ${(err as Error).message}`);
      }
    }
  }

  private arm(job: OpenJob): void {
    const timeout = this.options.studyTimeoutMs;
    if (timeout === undefined) return;
    job.timer = setTimeout(() => this.onTimeout(job), timeout);
    job.timer.unref();
    if (!this.persistTimer) {
      this.persistTimer = setInterval(() => this.persistDirty(), PERSIST_INTERVAL_MS);
      this.persistTimer.unref();
    }
  }

  private touch(job: OpenJob): void {
    job.dirty = true;
    job.timer?.refresh();
  }

  private onTimeout(job: OpenJob): void {
    try {
      if (this.open.get(job.key) !== job) return;
      if (this.options.isBusy?.(job)) {
        job.timer?.refresh();
        return;
      }
      this.complete(job, 'timeout');
    } catch (err) {
      this.log('error', `completing job ${job.ref.id} failed: ${(err as Error).message}`);
    }
  }

  private persistDirty(): void {
    for (const job of this.open.values()) if (job.dirty) this.persist(job);
    if (this.open.size === 0 && this.persistTimer) {
      clearInterval(this.persistTimer);
      this.persistTimer = undefined;
    }
  }

  private persist(job: OpenJob): void {
    job.dirty = false;
    try {
      updateJob(job.ref.dir, (r) => {
        r.counts.instances = job.instances.size;
        r.counts.series = job.series.size;
        r.counts.rejected = job.rejected;
      });
    } catch (err) {
      this.log('warn', `job ${job.ref.id}: cannot update job.json: ${(err as Error).message}`);
    }
  }

  private complete(job: OpenJob, by: CompletedBy): void {
    if (this.open.get(job.key) !== job) return;
    this.open.delete(job.key);
    if (job.timer) clearTimeout(job.timer);
    job.timer = undefined;
    const completedAt = new Date();
    try {
      this.persist(job);
      setJobState(job.ref.dir, 'received');
    } catch (err) {
      this.log('error', `job ${job.ref.id}: cannot mark it received: ${(err as Error).message}`);
    }
    const series = [...job.series.values()].sort(
      (a, b) => (a.seriesNumber ?? Number.MAX_SAFE_INTEGER) - (b.seriesNumber ?? Number.MAX_SAFE_INTEGER) || a.seriesInstanceUID.localeCompare(b.seriesInstanceUID),
    );
    const summary: JobSummary = {
      jobId: job.ref.id,
      studyInstanceUID: job.record.studyInstanceUID,
      studyInstanceUIDs: [...job.studies],
      studyDescription: job.studyDescription,
      accessionNumber: job.accessionNumber,
      instances: job.instances.size,
      rejected: job.rejected,
      series: series.map((s) => ({ ...s })),
      source: this.options.source,
      callingAE: job.record.callingAE,
      calledAE: job.record.calledAE,
      remoteAddress: job.record.remoteAddress,
      folder: job.folder,
      firstInstanceAt: new Date(job.firstInstanceAt).toISOString(),
      lastInstanceAt: new Date(job.lastInstanceAt).toISOString(),
      completedAt: completedAt.toISOString(),
      completedBy: by,
    };
    for (const k of Object.keys(summary) as Array<keyof JobSummary>) if (summary[k] === undefined) delete summary[k];
    try {
      this.options.onComplete({ job: job.ref, summary });
    } catch (err) {
      this.log('error', `job ${job.ref.id}: completion handler failed: ${(err as Error).message}`);
    }
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.options.log?.(level, message);
  }
}

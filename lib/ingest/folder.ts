import { constants as fsConstants } from 'node:fs';
import { copyFile, mkdir, open, opendir, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { readDicomHeader } from '../dicom/reader';
import { DICOM_DIR, type JobStore, instanceFileName } from '../job';
import { type CompletedJob, type Grouping, type InstanceInfo, JobAssembler, MissingIdentityError, instanceInfoOf } from './assembler';

const MEDIA_STORAGE_DIRECTORY = '1.2.840.10008.1.3.10';

export interface SkippedFile {
  path: string;
  reason: string;
}

/** A file whose copy in a job was replaced by a later file of the same SOP instance. */
export interface ReplacedFile {
  path: string;
  by: string;
  sopInstanceUID: string;
}

export interface FolderIngestResult {
  folder: string;
  jobs: CompletedJob[];
  /** Files that are not stored, each with the reason (not DICOM, truncated, no study, bad UID, ...). */
  skipped: SkippedFile[];
  /**
   * Files stored and then replaced because a later file carries the same SOP Instance UID (one instance
   * in several encodings, say): the job holds one copy per instance, and these say which ones went.
   */
  replaced: ReplacedFile[];
  /** Files looked at, stored or not. */
  files: number;
  /** Source files deleted after ingest (removeSource only). */
  removed: number;
}

export interface FolderIngestOptions {
  /** As for the SCP; `association` puts the whole folder in one job. Default `study`. */
  grouping?: Grouping;
  /** Recorded in job.json as the called AE (the node's AE title), so jobs say which receiver made them. */
  calledAE?: string;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /**
   * Drop-folder semantics: once the jobs are complete, every file that was stored (or replaced by a later
   * copy) is deleted from the folder, after its copy is flushed to disk, and emptied subfolders go too.
   * Skipped files stay, so a file still being written is taken by the next ingest.
   */
  removeSource?: boolean;
}

/** The folder cannot be ingested at all (missing, not a folder, unreadable). Per-file problems are not errors. */
export class FolderIngestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FolderIngestError';
  }
}

/** Every regular file under `dir`. Symbolic links to folders are not followed (they can loop). */
async function* walk(dir: string, skipDir: string): AsyncGenerator<string> {
  const handle = await opendir(dir);
  const subdirs: string[] = [];
  const files: string[] = [];
  for await (const entry of handle) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (resolve(path) !== skipDir) subdirs.push(path);
    } else if (entry.isFile()) files.push(path);
    else if (entry.isSymbolicLink()) {
      try {
        if ((await stat(path)).isFile()) files.push(path);
      } catch {
        // a dangling link: nothing to read
      }
    }
  }
  // Sorted, so jobs and reports come out in the same order on every run.
  files.sort();
  subdirs.sort();
  yield* files;
  for (const sub of subdirs) yield* walk(sub, skipDir);
}

/**
 * Ingests a folder the way the SCP ingests a transfer: every DICOM file is read (header only), grouped
 * by study, and COPIED into its job's dicom/ folder under the SOP Instance UID. The source is never
 * modified or moved: copies use copy-on-write clones where the file system has them. Each job is
 * complete as soon as the folder has been read (no timeout). Files that are not DICOM, are truncated,
 * or lack a valid SOP Instance UID or a StudyInstanceUID are reported in `skipped` and not copied.
 */
export async function ingestFolder(folder: string, store: JobStore, options: FolderIngestOptions = {}): Promise<FolderIngestResult> {
  const root = resolve(folder);
  let info;
  try {
    info = await stat(root);
  } catch (err) {
    throw new FolderIngestError(`cannot read ${root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!info.isDirectory()) throw new FolderIngestError(`${root} is not a folder`);
  // Ingesting a folder that holds the work root must not re-ingest the jobs it is creating: the walk
  // skips the work root, and the work root itself is refused.
  const workRoot = store.root;
  if (workRoot === root) throw new FolderIngestError(`${root} is the work root itself`);

  const jobs: CompletedJob[] = [];
  const assembler = new JobAssembler({ store, grouping: options.grouping ?? 'study', source: 'folder', onComplete: (j) => jobs.push(j), log: options.log });
  const incoming = join(store.root, '.incoming');
  await mkdir(incoming, { recursive: true });
  const skipped: SkippedFile[] = [];
  const replaced: ReplacedFile[] = [];
  /** Which source file each job instance was copied from, to report replacements. */
  const copiedFrom = new Map<string, string>();
  const skippedByStudy = new Map<string, SkippedFile[]>();
  let files = 0;
  let sequence = 0;

  let walker: AsyncGenerator<string>;
  try {
    walker = walk(root, workRoot);
  } catch (err) {
    throw new FolderIngestError(`cannot list ${root}: ${(err as Error).message}`);
  }
  for await (const path of walker) {
    files++;
    const skip = (reason: string, studyInstanceUID?: string): void => {
      const entry = { path, reason };
      skipped.push(entry);
      if (studyInstanceUID) skippedByStudy.set(studyInstanceUID, [...(skippedByStudy.get(studyInstanceUID) ?? []), entry]);
    };
    let instance: InstanceInfo;
    try {
      const header = readDicomHeader(path);
      const mediaClass = header.meta.string(0x00020002);
      if (mediaClass === MEDIA_STORAGE_DIRECTORY) {
        skip('DICOMDIR: a directory of the media, not an instance');
        continue;
      }
      instance = instanceInfoOf(header);
    } catch (err) {
      skip(err instanceof MissingIdentityError ? err.message : `not readable as DICOM: ${(err as Error).message}`);
      continue;
    }
    let fileName: string;
    try {
      fileName = instanceFileName(instance.sopInstanceUID);
    } catch (err) {
      skip((err as Error).message, instance.studyInstanceUID);
      continue;
    }
    const job = assembler.jobFor(instance.studyInstanceUID, { folder: root, calledAE: options.calledAE });
    const temp = join(incoming, `${process.pid}.f${++sequence}.part`);
    try {
      // COPYFILE_FICLONE: a reflink where the file system supports it, a plain copy elsewhere.
      await copyFile(path, temp, fsConstants.COPYFILE_FICLONE);
      await rename(temp, join(job.ref.dir, DICOM_DIR, fileName));
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      const reason = `cannot copy into job ${job.ref.id}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      skipped.push({ path, reason });
      assembler.addRejected(job, `${path}: ${reason}`);
      continue;
    }
    const stored = join(job.ref.dir, DICOM_DIR, fileName);
    const earlier = copiedFrom.get(stored);
    if (earlier !== undefined) {
      replaced.push({ path: earlier, by: path, sopInstanceUID: instance.sopInstanceUID });
      options.log?.('warn', `${earlier} replaced in job ${job.ref.id} by ${path}: same SOP Instance UID ${instance.sopInstanceUID}`);
    }
    copiedFrom.set(stored, path);
    assembler.addInstance(job, instance);
  }
  for (const job of assembler.openJobs) {
    for (const study of job.studies) {
      for (const s of skippedByStudy.get(study) ?? []) assembler.addRejected(job, `${s.path}: ${s.reason}`);
    }
  }
  assembler.completeAll('folder');
  const removed = options.removeSource ? await removeSources(root, copiedFrom, replaced) : 0;
  return { folder: root, jobs, skipped, replaced, files, removed };
}

/** Deletes the sources of stored copies (each copy flushed first: the source is the only other copy). */
async function removeSources(root: string, copiedFrom: ReadonlyMap<string, string>, replaced: readonly ReplacedFile[]): Promise<number> {
  const sources = new Map<string, string>();
  for (const [stored, source] of copiedFrom) sources.set(source, stored);
  for (const r of replaced) sources.set(r.path, [...copiedFrom].find(([, s]) => s === r.by)?.[0] ?? '');
  let removed = 0;
  const folders = new Set<string>();
  for (const [source, stored] of sources) {
    if (!stored) continue;
    const handle = await open(stored, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await unlink(source).then(() => removed++, () => undefined);
    for (let dir = dirname(source); dir.startsWith(root + sep); dir = dirname(dir)) folders.add(dir);
  }
  // Deepest first, so a parent is empty by the time it is tried.
  for (const dir of [...folders].sort((a, b) => b.length - a.length)) {
    if ((await readdir(dir).catch(() => ['?'])).length === 0) await rmdir(dir).catch(() => undefined);
  }
  return removed;
}

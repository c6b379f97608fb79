/**
 * The viewer's job list: jobs under a work root that have a render publish folder, with just enough to
 * pick one: patient initials (never the full name: the list page is one click from anyone the
 * httpNode auth lets in), study date, series description, state.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { insideDir, JobStore, type JobState } from '../job';
import { DICOM_METADATA_FILE, type DicomMetadataFile } from '../volume/parse';
import { CONFIG_META, readPublishMeta } from './publish';

export const PUBLISH_DIR = 'publish';
export const RENDER_DIR = 'render';

export interface RegisteredJob {
  id: string;
  state: JobState;
  studyInstanceUID: string;
  /** e.g. "JD" for DOE^JOHN; "" when the name is absent. */
  patientInitials: string;
  /** YYYY-MM-DD, or "" when absent or malformed. */
  studyDate: string;
  seriesDescription: string;
  /** The model that made the masks (config.meta name). */
  model: string;
  createdAt: string;
  /** True when render/montage.png exists. */
  hasSnapshots: boolean;
}

/**
 * Initials of a DICOM Person Name (PS3.5 6.2: family^given^middle^prefix^suffix; "=" separates the
 * alphabetic, ideographic and phonetic groups, of which only the first is used): given, middle, family.
 */
export function personInitials(name: string): string {
  const [family = '', given = '', middle = ''] = name.split('=')[0].split('^');
  return [given, middle, family]
    .flatMap((part) => part.trim().split(/[\s-]+/))
    .map((word) => word.match(/\p{L}|\p{N}/u)?.[0] ?? '')
    .join('')
    .toUpperCase();
}

function textOf(attributes: unknown, tag: string): string {
  const element = attributes && typeof attributes === 'object' ? (attributes as Record<string, { Value?: unknown[] }>)[tag] : undefined;
  const value = element?.Value?.[0];
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { Alphabetic?: unknown }).Alphabetic === 'string') return (value as { Alphabetic: string }).Alphabetic;
  return '';
}

function isoDate(da: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}` : '';
}

/** The registry entry of one job folder, or undefined when it has no publish/config.meta. */
export function registeredJob(jobDir: string): RegisteredJob | undefined {
  const publishDir = join(jobDir, PUBLISH_DIR);
  if (!existsSync(join(publishDir, CONFIG_META))) return undefined;
  const record = JSON.parse(readFileSync(join(jobDir, 'job.json'), 'utf8')) as { id: string; state: JobState; studyInstanceUID: string; createdAt: string };
  let model = '';
  let densityUid = '';
  try {
    const meta = readPublishMeta(publishDir);
    model = meta.name;
    densityUid = meta.density.replace(/(\.output)?\.(nii\.gz|nii|mhd)$/, '');
  } catch {
    // a malformed config.meta still lists the job; opening it says what is wrong
  }
  let patientInitials = '';
  let studyDate = '';
  let seriesDescription = '';
  const metadataFile = join(jobDir, 'parser', DICOM_METADATA_FILE);
  if (existsSync(metadataFile)) {
    try {
      const metadata = JSON.parse(readFileSync(metadataFile, 'utf8')) as DicomMetadataFile;
      const all = metadata.studies.flatMap((s) => s.series);
      const series = all.find((s) => s.SeriesInstanceUID === densityUid) ?? all[0];
      if (series) {
        patientInitials = personInitials(textOf(series.attributes, '00100010'));
        studyDate = isoDate(textOf(series.attributes, '00080020'));
        seriesDescription = series.SeriesDescription ?? textOf(series.attributes, '0008103E');
      }
    } catch {
      // no metadata: the entry shows the job without patient details
    }
  }
  return {
    id: record.id,
    state: record.state,
    studyInstanceUID: record.studyInstanceUID,
    patientInitials,
    studyDate,
    seriesDescription,
    model,
    createdAt: record.createdAt,
    hasSnapshots: existsSync(insideDir(jobDir, RENDER_DIR, 'montage.png')),
  };
}

/** Every job of the work root with a publish folder, newest first. */
export function listRegisteredJobs(workRoot: string): RegisteredJob[] {
  const store = new JobStore(workRoot);
  const out: RegisteredJob[] = [];
  for (const record of store.list()) {
    try {
      const entry = registeredJob(store.dirOf(record.id));
      if (entry) out.push(entry);
    } catch {
      // a job folder being written right now; the next listing sees it
    }
  }
  return out.reverse();
}

import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DICOM_DIR, type JobRef, type JobStore, operatorDir, setJobState, updateJob } from '../../lib/job';
import { type PhantomOptions, type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import { compileRules, decodeRulesText } from '../../lib/select/rules';
import { runSelection } from '../../lib/select/run';
import { parseStudy } from '../../lib/volume/parse';

/** The Clara documentation page's pipeline YAML, in ../shared beside the repository (as CI lays it out). */
export const CLARA_PIPELINE_YAML = join(__dirname, '..', '..', '..', '..', 'shared', 'clara', 'advanced-dicom-integration-pipeline.yaml');

/**
 * The seed pipeline's NVIDIA_CLARA_SELECTION_RULES_BASE64, exactly as the YAML carries it: the rule that
 * must select the phantom's T1c series.
 */
export function seedSelectionRulesBase64(): string {
  const m = /NVIDIA_CLARA_SELECTION_RULES_BASE64:\s*([A-Za-z0-9+/=]+)/.exec(readFileSync(CLARA_PIPELINE_YAML, 'utf8'));
  if (!m) throw new Error(`no NVIDIA_CLARA_SELECTION_RULES_BASE64 in ${CLARA_PIPELINE_YAML}`);
  return m[1];
}

/** A phantom study as a job folder that clara-dicom-parser and clara-series-selector (seed rule) have handled. */
export interface SelectedPhantomJob {
  job: JobRef;
  study: PhantomStudy;
  /** The selected T1c volume in the job's parser/ folder. */
  targetVolume: string;
}

/**
 * Writes a phantom study into a new job of `store` and runs the parser and the seed selection rule on it
 * with the same lib/ functions the nodes call, so inference tests start from exactly what the flow hands on.
 */
export async function selectedPhantomJob(store: JobStore, phantomDir: string, options: PhantomOptions): Promise<SelectedPhantomJob> {
  const study = writePhantomStudy(phantomDir, options);
  const job = store.ref(store.create({ studyInstanceUID: study.studyInstanceUID, state: 'received' }));
  rmSync(join(job.dir, DICOM_DIR), { recursive: true });
  cpSync(join(phantomDir, DICOM_DIR), join(job.dir, DICOM_DIR), { recursive: true });
  await parseStudy(join(job.dir, DICOM_DIR), operatorDir(job.dir, 'parser'), { format: 'nifti-gz' });
  const run = runSelection(join(job.dir, 'parser'), operatorDir(job.dir, 'selector'), compileRules(decodeRulesText(seedSelectionRulesBase64())));
  const [series] = Object.values(run.mapping.T1C ?? {});
  if (!series || series.SeriesInstanceUID !== study.targetSeriesInstanceUID) throw new Error('the seed rule did not select the phantom target');
  setJobState(job.dir, 'selected');
  return { job, study, targetVolume: join(job.dir, 'selector', series.image) };
}

/** A copy of a job folder under a new id: the same inputs, run again without sharing outputs. */
export function copyJob(store: JobStore, source: JobRef): JobRef {
  const ref = store.ref(store.create({ studyInstanceUID: source.studyInstanceUID }));
  rmSync(ref.dir, { recursive: true });
  cpSync(source.dir, ref.dir, { recursive: true });
  updateJob(ref.dir, (r) => {
    r.id = ref.id;
  });
  return ref;
}

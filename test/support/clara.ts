import { readFileSync } from 'node:fs';
import { join } from 'node:path';

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

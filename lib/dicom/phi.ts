import { readDicomHeader } from './reader';
import { Tag } from './tags';

/**
 * Patient identity in log lines. Logs travel further than job folders (syslog, support bundles, the
 * editor's debug sidebar), so by default a line shows only enough to tell two patients apart at a glance:
 * the first letter of each name component and of the ID. The full values appear only where an
 * administrator asked for them, through the settings.js key below.
 */

/** settings.js key: `claraDicomLogPatientIdentity: true` logs PatientName and PatientID in full. */
export const LOG_PATIENT_IDENTITY_SETTING = 'claraDicomLogPatientIdentity';

export interface PatientIdentity {
  name?: string;
  id?: string;
}

const MASK = '***';

/** "DOE^JOHN^Q" → "D***^J***^Q***"; each "=" group (alphabetic, ideographic, phonetic) alike; empty stays empty. */
export function maskPersonName(name: string): string {
  return name
    .split('=')
    .map((group) => group.split('^').map((part) => {
      const first = part.trim().match(/\p{L}|\p{N}/u)?.[0];
      return first ? first + MASK : '';
    }).join('^').replace(/\^+$/, ''))
    .join('=')
    .replace(/=+$/, '');
}

/** "PHANTOM-4" → "P***": the first character only. */
export function maskIdentifier(id: string): string {
  const trimmed = id.trim();
  return trimmed ? trimmed[0] + MASK : '';
}

/** Whether Node-RED's settings (or any settings object) ask for patient identity in full. */
export function revealPatientIdentity(settings: unknown): boolean {
  if (!settings || typeof settings !== 'object') return false;
  try {
    return (settings as Record<string, unknown>)[LOG_PATIENT_IDENTITY_SETTING] === true;
  } catch {
    // Node-RED's settings object throws for keys it does not know in some versions: not set
    return false;
  }
}

/** `patient D***^J*** (ID P***)` for a log line, or the values in full when `reveal`. */
export function patientForLog(patient: PatientIdentity, reveal = false): string {
  const name = patient.name?.trim() ?? '';
  const id = patient.id?.trim() ?? '';
  if (!name && !id) return 'patient (none)';
  const shownName = reveal ? name : maskPersonName(name);
  const shownId = reveal ? id : maskIdentifier(id);
  return `patient ${shownName || '(no name)'}${shownId ? ` (ID ${shownId})` : ''}`;
}

/** PatientName and PatientID of one DICOM file (its header only); empty when it cannot be read. */
export function patientOfFile(path: string): PatientIdentity {
  try {
    const ds = readDicomHeader(path).dataset;
    return { name: ds.string(Tag.PatientName), id: ds.string(Tag.PatientID) };
  } catch {
    return {};
  }
}

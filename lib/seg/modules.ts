/**
 * The modules a derived object (SEG, and any other object made from a source series) copies from its
 * source instance: Patient, Clinical Trial Subject, General Study, Patient Study, Clinical Trial Study.
 * Values are copied as decoded text, so the output's character set is chosen once for all its strings
 * (the writer encodes text as UTF-8), never mixed with the source's.
 */
import type { DicomDataset } from '../dicom/dataset';
import { entryForKeyword, keywordOf } from '../dicom/dictionary';
import type { WriteDataset, WriteValue } from '../dicom/writer';

/** Type 2 attributes written empty when the source lacks them; the rest are copied only when present. */
export const PATIENT_MODULE = {
  required: ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex'],
  optional: [
    'IssuerOfPatientID', 'IssuerOfPatientIDQualifiersSequence', 'TypeOfPatientID', 'PatientBirthTime', 'OtherPatientIDsSequence', 'OtherPatientNames',
    'EthnicGroup', 'PatientComments', 'PatientSpeciesDescription', 'PatientSpeciesCodeSequence', 'PatientBreedDescription', 'PatientBreedCodeSequence',
    'BreedRegistrationSequence', 'ResponsiblePerson', 'ResponsiblePersonRole', 'ResponsibleOrganization', 'PatientIdentityRemoved', 'DeidentificationMethod',
    'DeidentificationMethodCodeSequence', 'QualityControlSubject',
  ],
} as const;

export const CLINICAL_TRIAL_SUBJECT_MODULE = {
  required: [],
  optional: [
    'ClinicalTrialSponsorName', 'ClinicalTrialProtocolID', 'ClinicalTrialProtocolName', 'ClinicalTrialSiteID', 'ClinicalTrialSiteName',
    'ClinicalTrialSubjectID', 'ClinicalTrialSubjectReadingID',
  ],
} as const;

export const GENERAL_STUDY_MODULE = {
  required: ['StudyInstanceUID', 'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'StudyID', 'AccessionNumber'],
  optional: [
    'IssuerOfAccessionNumberSequence', 'ReferringPhysicianIdentificationSequence', 'ConsultingPhysicianName', 'StudyDescription', 'ProcedureCodeSequence',
    'PhysiciansOfRecord', 'NameOfPhysiciansReadingStudy', 'ReferencedStudySequence', 'RequestingService', 'ReasonForPerformedProcedureCodeSequence',
  ],
} as const;

export const PATIENT_STUDY_MODULE = {
  required: [],
  optional: ['AdmittingDiagnosesDescription', 'PatientAge', 'PatientSize', 'PatientWeight', 'Occupation', 'AdditionalPatientHistory', 'PatientSexNeutered'],
} as const;

export const CLINICAL_TRIAL_STUDY_MODULE = {
  required: [],
  optional: ['ClinicalTrialTimePointID', 'ClinicalTrialTimePointDescription'],
} as const;

const TEXT_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT']);
const NUMBER_VRS = new Set(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'AT', 'UV', 'SV']);

/** One element of a parsed data set as a value the writer takes, with its VR kept. */
export function copyElement(ds: DicomDataset, tag: number): WriteValue {
  const el = ds.get(tag);
  if (!el) return undefined;
  if (el.vr === 'SQ' || el.items) return { vr: 'SQ', value: (el.items ?? []).map(copyDataset) };
  if (!el.bytes || el.bytes.length === 0) return { vr: el.vr, value: null };
  if (TEXT_VRS.has(el.vr)) {
    const values = ds.strings(tag);
    return { vr: el.vr, value: values.length === 0 ? null : values.length === 1 ? values[0] : values };
  }
  if (NUMBER_VRS.has(el.vr)) return { vr: el.vr, value: ds.numbers(tag) };
  // Bulk and unknown VRs: bytes as stored (little endian, which is what this package reads them as).
  return { vr: el.vr, value: new Uint8Array(el.bytes) };
}

/** A whole data set (a sequence item) copied element by element. */
export function copyDataset(ds: DicomDataset): WriteDataset {
  const out: WriteDataset = {};
  for (const tag of ds.elements.keys()) {
    // Group lengths are recomputed by nobody and mean nothing inside items; private elements are left behind.
    if ((tag & 0xffff) === 0 || (tag >>> 16) % 2 === 1) continue;
    out[keywordOf(tag)] = copyElement(ds, tag);
  }
  return out;
}

/** The attributes of one module from `source`: required ones empty where the source has none. */
export function copyModule(source: DicomDataset, module: { required: readonly string[]; optional: readonly string[] }): WriteDataset {
  const out: WriteDataset = {};
  for (const keyword of [...module.required, ...module.optional]) {
    const entry = entryForKeyword(keyword);
    if (!entry) throw new Error(`copyModule: unknown attribute ${keyword}`);
    const value = copyElement(source, entry.tag);
    if (value !== undefined) out[keyword] = value;
    else if ((module.required as readonly string[]).includes(keyword)) out[keyword] = null;
  }
  return out;
}

/** Every module of the patient and the study, as a derived object in the same study carries them. */
export function copyPatientAndStudy(source: DicomDataset): WriteDataset {
  return {
    ...copyModule(source, PATIENT_MODULE),
    ...copyModule(source, CLINICAL_TRIAL_SUBJECT_MODULE),
    ...copyModule(source, GENERAL_STUDY_MODULE),
    ...copyModule(source, PATIENT_STUDY_MODULE),
    ...copyModule(source, CLINICAL_TRIAL_STUDY_MODULE),
  };
}

/** True when any string in the data set (items included) has a character outside 7-bit ASCII. */
export function hasNonAscii(ds: WriteDataset): boolean {
  const check = (value: WriteValue): boolean => {
    if (value === null || value === undefined || value instanceof Uint8Array || typeof value === 'number') return false;
    if (typeof value === 'string') return /[^\x00-\x7f]/.test(value);
    if (Array.isArray(value)) return (value as unknown[]).some((v) => (typeof v === 'object' && v !== null ? hasNonAscii(v as WriteDataset) : check(v as WriteValue)));
    return check(value.value as WriteValue);
  };
  return Object.values(ds).some(check);
}

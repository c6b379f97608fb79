/**
 * Applies compiled selection rules to the series of a parsed job. Every condition is evaluated for
 * every series (no short cut), so that a "no match" or an editor preview can say, per series, which
 * condition failed and what the series had instead.
 */
import type { DicomJsonObject } from '../dicom/json';
import type { DicomMetadataFile } from '../volume/parse';
import type { CompiledCondition, CompiledConditionEntry, CompiledRules, CompiledSelection, ConditionValue, Plane } from './rules';

/** An attribute's value(s) as the rules see them. */
export type AttributeValue =
  | { kind: 'missing' }
  | { kind: 'text'; values: string[] }
  | { kind: 'number'; values: number[] }
  | { kind: 'sequence' };

/** Reads one attribute of the DICOM JSON model; person names compare by their alphabetic form. */
export function attributeValue(attributes: DicomJsonObject, jsonKey: string): AttributeValue {
  const attribute = attributes[jsonKey];
  if (!attribute || !attribute.Value || attribute.Value.length === 0) return { kind: 'missing' };
  if (attribute.vr === 'SQ') return { kind: 'sequence' };
  const values = attribute.Value;
  if (values.every((v) => typeof v === 'number')) return { kind: 'number', values: values as number[] };
  const texts = values.map((v) => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : 'Alphabetic' in v ? String(v.Alphabetic ?? '') : ''));
  // An empty text value is absent, as in MONAI (a falsy attribute never matches).
  if (texts.every((t) => t.trim() === '')) return { kind: 'missing' };
  return { kind: 'text', values: texts };
}

/** A series as the selector sees it. */
export interface SeriesCandidate {
  studyInstanceUID: string;
  seriesInstanceUID: string;
  seriesNumber?: number;
  seriesDescription?: string;
  modality?: string;
  instanceCount: number;
  /** The main volume, relative to the parser's folder; null when the parser did not convert the series. */
  image: string | null;
  skippedReason?: string;
  attributes: DicomJsonObject;
}

export interface ConditionResult {
  keyword: string;
  condition: ConditionValue;
  matched: boolean;
  /** What the series has, as short text ("missing" when absent); only for a condition that failed. */
  actual?: string;
  /** Why it failed; absent when it matched. */
  reason?: string;
}

export interface SeriesVerdict {
  studyInstanceUID: string;
  seriesInstanceUID: string;
  seriesNumber?: number;
  seriesDescription?: string;
  /** Every condition holds and the series has a volume. */
  matched: boolean;
  /** Chosen for the selection (the first match, or every match with all_matched). */
  selected: boolean;
  conditions: ConditionResult[];
  /** Why the series was not selected; absent when it was. */
  reason?: string;
}

export interface SelectionVerdict {
  name: string;
  allMatched: boolean;
  sortBySopInstanceCount: boolean;
  /** The selected series, study by study, in the order they were chosen. */
  selected: SeriesCandidate[];
  /** Every series of every study, in the order they were considered. */
  series: SeriesVerdict[];
}

export interface SelectionReport {
  /** No rules were given: every image series is selected, under the name "". */
  selectAll: boolean;
  selections: SelectionVerdict[];
  /** Every selection selected at least one series. */
  matched: boolean;
  studies: string[];
  seriesCount: number;
}

const PLANE_NAMES: Record<Plane, string> = { axial: 'Axial', coronal: 'Coronal', sagittal: 'Sagittal' };

function quote(text: string, max = 60): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max - 1)}…` : text);
}

function describeValue(value: AttributeValue): string {
  switch (value.kind) {
    case 'missing':
      return 'missing';
    case 'sequence':
      return 'a sequence';
    case 'text':
      return value.values.length === 1 ? quote(value.values[0]) : `[${value.values.map((v) => quote(v, 24)).join(', ')}]`;
    case 'number':
      return value.values.length === 1 ? String(value.values[0]) : `[${value.values.join(', ')}]`;
  }
}

function termPresent(term: string | number, value: AttributeValue & { kind: 'text' | 'number' }): boolean {
  if (value.kind === 'number') {
    const wanted = typeof term === 'number' ? term : Number(term.trim());
    return term !== '' && !Number.isNaN(wanted) && value.values.includes(wanted);
  }
  const folded = String(term).toLowerCase();
  return value.values.some((v) => v.trim().toLowerCase() === folded);
}

/** The plane whose axis is closest to the slice normal (row × column cosines), as MONAI decides it. */
export function planeOf(orientation: number[]): Plane | undefined {
  if (orientation.length !== 6 || orientation.some((v) => !Number.isFinite(v))) return undefined;
  const [rx, ry, rz, cx, cy, cz] = orientation;
  const normal = [Math.abs(ry * cz - rz * cy), Math.abs(rz * cx - rx * cz), Math.abs(rx * cy - ry * cx)];
  if (normal.every((v) => v === 0)) return undefined;
  const axis = normal.indexOf(Math.max(...normal));
  return (['sagittal', 'coronal', 'axial'] as const)[axis];
}

/** Tests one condition against one attribute value: undefined when it holds, else the reason it fails. */
function failureOf(condition: CompiledCondition, value: AttributeValue): string | undefined {
  if (value.kind === 'missing') return 'the series does not have this attribute';
  if (value.kind === 'sequence') return 'the attribute is a sequence, which conditions cannot test';
  switch (condition.kind) {
    case 'plane': {
      const plane = value.kind === 'number' ? planeOf(value.values) : undefined;
      if (!plane) return 'the orientation is not six direction cosines';
      return plane === condition.plane ? undefined : `the series is ${PLANE_NAMES[plane]}, not ${PLANE_NAMES[condition.plane]}`;
    }
    case 'text': {
      // A private attribute has no dictionary VM: several values make it multi-valued.
      const exclusion = condition.excludes ?? (value.values.length > 1 && condition.text.startsWith('!') ? condition.text.slice(1) : undefined);
      if (exclusion !== undefined) {
        return termPresent(exclusion, value) ? `${quote(exclusion)} is among the values, and the condition excludes it` : undefined;
      }
      if (value.kind === 'number') {
        // Python: re.fullmatch(condition, str(value)); the text is the shortest that reads back as the number.
        return value.values.some((n) => condition.fullMatch.test(String(n))) ? undefined : `the pattern ${quote(condition.text)} does not match the whole number`;
      }
      const holds = value.values.some((v) => v.toLowerCase() === condition.folded || condition.search.test(v));
      if (holds) return undefined;
      return value.values.length > 1 ? `no value equals or contains a match for ${quote(condition.text)}` : `neither equal to nor matching ${quote(condition.text)}`;
    }
    case 'terms': {
      const missing = condition.include.filter((t) => !termPresent(t, value));
      const present = condition.exclude.filter((t) => termPresent(t, value));
      if (!missing.length && !present.length) return undefined;
      const parts: string[] = [];
      if (missing.length) parts.push(`lacks ${missing.map((t) => quote(String(t))).join(', ')}`);
      if (present.length) parts.push(`has the excluded ${present.map((t) => quote(String(t))).join(', ')}`);
      return parts.join(' and ');
    }
    case 'number':
    case 'range':
    case 'compare': {
      const numbers = value.kind === 'number' ? value.values : value.values.map((t) => (t.trim() === '' ? NaN : Number(t)));
      if (numbers.some((n) => Number.isNaN(n))) return 'the value is text, not a number';
      if (condition.kind === 'number') return numbers.includes(condition.value) ? undefined : `not equal to ${condition.value}`;
      if (numbers.length !== 1) return `the attribute holds ${numbers.length} numbers; a range or comparison needs one`;
      const n = numbers[0];
      if (condition.kind === 'range') return n >= condition.min && n <= condition.max ? undefined : `outside [${condition.min}, ${condition.max}]`;
      const v = condition.value;
      const holds =
        condition.operator === '>' ? n > v : condition.operator === '>=' ? n >= v : condition.operator === '<' ? n < v : condition.operator === '<=' ? n <= v : n !== v;
      return holds ? undefined : `not ${condition.operator} ${v}`;
    }
  }
}

/** A series' attribute values, read once however many selections test them. */
type ValueCache = Map<string, AttributeValue>;

function evaluateCondition(entry: CompiledConditionEntry, attributes: DicomJsonObject, cache: ValueCache): ConditionResult {
  let value = cache.get(entry.jsonKey);
  if (!value) {
    value = attributeValue(attributes, entry.jsonKey);
    cache.set(entry.jsonKey, value);
  }
  const reason = failureOf(entry.condition, value);
  // Describing the value costs more than testing it: only a failure needs the description.
  if (reason === undefined) return { keyword: entry.keyword, condition: entry.written, matched: true };
  return { keyword: entry.keyword, condition: entry.written, matched: false, actual: describeValue(value), reason };
}

/** The series of dicom-metadata.json, study by study, in the parser's order. */
export function candidatesOf(metadata: DicomMetadataFile): SeriesCandidate[] {
  const out: SeriesCandidate[] = [];
  for (const study of metadata.studies) {
    for (const s of study.series) {
      out.push({
        studyInstanceUID: study.StudyInstanceUID,
        seriesInstanceUID: s.SeriesInstanceUID,
        seriesNumber: s.SeriesNumber,
        seriesDescription: s.SeriesDescription,
        modality: s.Modality,
        instanceCount: s.instanceCount,
        image: s.image,
        skippedReason: s.skippedReason,
        attributes: s.attributes ?? {},
      });
    }
  }
  return out;
}

function verdictFor(candidate: SeriesCandidate, conditions: ConditionResult[]): SeriesVerdict {
  const failed = conditions.filter((c) => !c.matched);
  const noVolume = candidate.image === null ? `not converted to a volume${candidate.skippedReason ? `: ${candidate.skippedReason}` : ''}` : undefined;
  return {
    studyInstanceUID: candidate.studyInstanceUID,
    seriesInstanceUID: candidate.seriesInstanceUID,
    seriesNumber: candidate.seriesNumber,
    seriesDescription: candidate.seriesDescription,
    matched: failed.length === 0 && !noVolume,
    selected: false,
    conditions,
    reason: failed.length ? failed.map((c) => `${c.keyword} is ${c.actual}: ${c.reason}`).join('; ') : noVolume,
  };
}

function applySelection(selection: CompiledSelection, candidates: SeriesCandidate[], caches: ValueCache[]): SelectionVerdict {
  const verdicts = candidates.map((c, i) => verdictFor(c, selection.conditions.map((entry) => evaluateCondition(entry, c.attributes, caches[i]))));
  const selected: SeriesCandidate[] = [];
  const studies = [...new Set(candidates.map((c) => c.studyInstanceUID))];
  for (const study of studies) {
    let order = candidates.map((_c, i) => i).filter((i) => candidates[i].studyInstanceUID === study);
    // Stable: series with the same count keep the parser's order.
    if (selection.sortBySopInstanceCount) order = [...order].sort((a, b) => candidates[b].instanceCount - candidates[a].instanceCount);
    let chosen: SeriesCandidate | undefined;
    for (const i of order) {
      if (!verdicts[i].matched) continue;
      if (chosen && !selection.allMatched) {
        verdicts[i].reason = `matched, but ${chosen.seriesDescription ? quote(chosen.seriesDescription) : chosen.seriesInstanceUID} came first (all_matched is false)`;
        continue;
      }
      chosen ??= candidates[i];
      verdicts[i].selected = true;
      verdicts[i].reason = undefined;
      selected.push(candidates[i]);
    }
  }
  return { name: selection.name, allMatched: selection.allMatched, sortBySopInstanceCount: selection.sortBySopInstanceCount, selected, series: verdicts };
}

/**
 * Applies the rules to every study of a parsed job. Per study and selection, the first matching series
 * is selected (every match with all_matched); with sort_by_sop_instance_count, series with more
 * instances come first. No rules select every series that has a volume, under the name "".
 */
export function selectSeries(metadata: DicomMetadataFile, rules: CompiledRules): SelectionReport {
  const candidates = candidatesOf(metadata);
  const caches = candidates.map((): ValueCache => new Map());
  const selections = rules.selectAll
    ? [applySelection({ name: '', conditions: [], allMatched: true, sortBySopInstanceCount: false }, candidates, caches)]
    : rules.selections.map((s) => applySelection(s, candidates, caches));
  return {
    selectAll: rules.selectAll,
    selections,
    matched: selections.every((s) => s.selected.length > 0),
    studies: metadata.studies.map((s) => s.StudyInstanceUID),
    seriesCount: candidates.length,
  };
}

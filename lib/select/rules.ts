/**
 * Clara / MONAI Deploy series selection rules: reading them (JSON, Base64 as in
 * NVIDIA_CLARA_SELECTION_RULES_BASE64, or a file) and checking every condition once, when a flow is
 * deployed, so that a rule that could never work is refused with its name, keyword and reason instead
 * of silently matching nothing. The semantics are written down in docs/selection-rules.md.
 */
import { readFileSync } from 'node:fs';
import { entryForKeyword, entryForTag } from '../dicom/dictionary';
import { dicomJsonKey } from '../dicom/json';
import { parseTag } from '../dicom/tags';
import { PatternTranslationError, compileSearch, translatePythonPattern } from './python-regex';

/** A condition as written in a rule file. */
export type ConditionValue = string | number | Array<string | number>;

/** One selection as written in a rule file. */
export interface SelectionRuleText {
  name: string;
  conditions: Record<string, ConditionValue | null>;
  all_matched?: boolean;
  sort_by_sop_instance_count?: boolean;
}

export type NumericOperator = '>' | '>=' | '<' | '<=' | '!=';
export const NUMERIC_OPERATORS: readonly NumericOperator[] = ['>', '>=', '<', '<=', '!='];
export type Plane = 'axial' | 'coronal' | 'sagittal';
const PLANES: readonly Plane[] = ['axial', 'coronal', 'sagittal'];

/**
 * A condition made ready to test. Which test applies depends on the value the series has (text or
 * number, one value or several), so a condition keeps every form it can be tested in.
 */
export type CompiledCondition =
  /**
   * A string: equality ignoring case, else a Python re.search (text); re.fullmatch against a number's text.
   * `excludes` is set for "!term" on a multi-valued attribute: the term must not be among the values.
   */
  | { kind: 'text'; text: string; folded: string; search: RegExp; fullMatch: RegExp; excludes?: string }
  /** A list of terms that must all be among the values; "!term" must not be. */
  | { kind: 'terms'; include: Array<string | number>; exclude: Array<string | number> }
  | { kind: 'number'; value: number }
  | { kind: 'range'; min: number; max: number }
  | { kind: 'compare'; operator: NumericOperator; value: number }
  | { kind: 'plane'; plane: Plane };

export interface CompiledConditionEntry {
  /** As written: a keyword or "(gggg,eeee)". */
  keyword: string;
  /** The attribute's tag as the DICOM JSON key "GGGGEEEE". */
  jsonKey: string;
  /** The dictionary's VR, or undefined for private and unknown tags (the value decides). */
  vr?: string;
  written: ConditionValue;
  condition: CompiledCondition;
}

export interface CompiledSelection {
  name: string;
  conditions: CompiledConditionEntry[];
  allMatched: boolean;
  sortBySopInstanceCount: boolean;
}

export interface CompiledRules {
  /** No rules at all (empty text): every image series is selected, under the name "". */
  selectAll: boolean;
  selections: CompiledSelection[];
  /** Not errors: ignored conditions, selections without conditions, unknown fields. */
  warnings: string[];
}

export interface RuleProblem {
  /** The selection's name, or "#n" (1-based) when it has none. */
  selection?: string;
  keyword?: string;
  reason: string;
}

/** Rules that cannot be used; the message lists every problem with the rule and keyword it concerns. */
export class RulesError extends Error {
  constructor(readonly problems: RuleProblem[]) {
    super(problems.map(describeProblem).join('; '));
    this.name = 'RulesError';
  }
}

export function describeProblem(p: RuleProblem): string {
  const where = [p.selection !== undefined ? `selection ${JSON.stringify(p.selection)}` : '', p.keyword ? `condition ${p.keyword}` : ''].filter(Boolean).join(', ');
  return where ? `${where}: ${p.reason}` : p.reason;
}

/** Defaults for the per-selection flags, as MONAI's operator takes them (a selection's own flags win). */
export interface RuleDefaults {
  allMatched?: boolean;
  sortBySopInstanceCount?: boolean;
}

export type RulesEncoding = 'auto' | 'json' | 'base64';

const BASE64_TEXT = /^[A-Za-z0-9+/_-]+={0,2}$/;

/**
 * The rule document in `text`: JSON, or Base64 of JSON (NVIDIA_CLARA_SELECTION_RULES_BASE64). With
 * 'auto', text starting with "{" is JSON and anything else is taken as Base64. Empty text means "no
 * rules" and gives undefined.
 */
export function decodeRulesText(text: string, encoding: RulesEncoding = 'auto'): unknown {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  const asBase64 = encoding === 'base64' || (encoding === 'auto' && !trimmed.startsWith('{') && !trimmed.startsWith('['));
  let json = trimmed;
  if (asBase64) {
    const compact = trimmed.replace(/\s+/g, '');
    if (!BASE64_TEXT.test(compact)) {
      throw new RulesError([{ reason: encoding === 'base64' ? 'the rules are not Base64 text' : 'the rules are neither JSON (starting with "{") nor Base64 text' }]);
    }
    json = Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64').toString('utf8').trim();
    if (json === '') return undefined;
  }
  try {
    return JSON.parse(json) as unknown;
  } catch (err) {
    const what = asBase64 ? 'the Base64 rules do not decode to JSON' : 'the rules are not valid JSON';
    throw new RulesError([{ reason: `${what}: ${(err as Error).message}` }]);
  }
}

/** Reads a rule file (JSON or Base64 text). */
export function readRulesFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RulesError([{ reason: `cannot read the rules file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  return decodeRulesText(text, 'auto');
}

const SELECTION_FIELDS = new Set(['name', 'conditions', 'all_matched', 'sort_by_sop_instance_count']);
const NUMERIC_VRS = new Set(['DS', 'IS', 'US', 'SS', 'UL', 'SL', 'FL', 'FD', 'UV', 'SV']);
const UNTESTABLE_VRS = new Set(['SQ', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** A keyword's tag, VR and VM from the dictionary, or a private "(gggg,eeee)" tag with no VR. */
function resolveKeyword(keyword: string): { jsonKey: string; vr?: string; vm?: string } | string {
  const tag = parseTag(keyword);
  if (tag !== undefined) {
    // A standard attribute written as a tag keeps its dictionary VR; a private one has none.
    const known = entryForTag(tag);
    return { jsonKey: dicomJsonKey(tag), vr: known?.vr, vm: known?.vm };
  }
  const entry = entryForKeyword(keyword);
  if (!entry) {
    const lower = keyword.toLowerCase();
    // Keywords are case-sensitive in DICOM (and in pydicom), but a near miss deserves a hint.
    const hint = /^[A-Za-z0-9]+$/.test(keyword) ? suggestKeyword(lower) : undefined;
    return `unknown DICOM keyword${hint ? ` (did you mean ${hint}?)` : ''}; name private attributes as "(gggg,eeee)"`;
  }
  return { jsonKey: dicomJsonKey(entry.tag), vr: entry.vr, vm: entry.vm };
}

function suggestKeyword(lower: string): string | undefined {
  for (const candidate of COMMON_KEYWORDS) if (candidate.toLowerCase() === lower) return candidate;
  // Fall back to the dictionary itself for the rarer attributes.
  const capitalised = lower.replace(/(^|[^a-z])([a-z])/g, (_m, p: string, c: string) => p + c.toUpperCase());
  const exact = entryForKeyword(capitalised)?.keyword;
  if (exact) return exact;
  // A typo of a keyword rule files commonly use: one or two letters off.
  let best: { keyword: string; distance: number } | undefined;
  for (const candidate of COMMON_KEYWORDS) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance <= 2 && (!best || distance < best.distance)) best = { keyword: candidate, distance };
  }
  return best?.keyword;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_v, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/** Attributes rule files test most; used only to suggest the right spelling of a mistyped keyword. */
const COMMON_KEYWORDS = [
  'Modality', 'StudyDescription', 'SeriesDescription', 'ImageType', 'SeriesNumber', 'BodyPartExamined', 'ProtocolName',
  'ImageOrientationPatient', 'SliceThickness', 'PixelSpacing', 'MRAcquisitionType', 'ScanningSequence', 'SequenceVariant',
  'SequenceName', 'EchoTime', 'RepetitionTime', 'InversionTime', 'FlipAngle', 'MagneticFieldStrength', 'ContrastBolusAgent',
  'Manufacturer', 'ManufacturerModelName', 'PatientPosition', 'Laterality', 'StudyInstanceUID', 'SeriesInstanceUID',
  'AccessionNumber', 'StudyID', 'Rows', 'Columns', 'ConvolutionKernel', 'KVP', 'ContrastBolusRoute',
];

/** `multiValued`: the dictionary allows several values (undefined for private tags: the value decides). */
function compileText(text: string, multiValued: boolean | undefined): CompiledCondition {
  const search = compileSearch(text);
  const { source, flags } = translatePythonPattern(text);
  // Python's re.fullmatch must span the whole value: anchors that ignore the (?m) flag.
  const fullMatch = new RegExp(`(?<![\\s\\S])(?:${source})(?![\\s\\S])`, flags);
  const excludes = multiValued && text.startsWith('!') ? text.slice(1) : undefined;
  return { kind: 'text', text, folded: text.toLowerCase(), search, fullMatch, excludes };
}

function compileTerms(list: Array<string | number>): CompiledCondition {
  const include: Array<string | number> = [];
  const exclude: Array<string | number> = [];
  for (const term of list) {
    if (typeof term === 'string' && term.startsWith('!')) exclude.push(term.slice(1));
    else include.push(term);
  }
  return { kind: 'terms', include, exclude };
}

/**
 * Compiles one condition. `vr`/`vm` come from the dictionary (undefined for private tags, whose
 * value decides at match time); they let a condition that can never apply be refused now.
 */
function compileCondition(keyword: string, written: unknown, vr: string | undefined, vm: string | undefined): CompiledCondition {
  if (vr && UNTESTABLE_VRS.has(vr)) throw new Error(`${keyword} has VR ${vr}; only text and number attributes can be tested`);
  if (keyword === 'ImageOrientationPatient') {
    const plane = typeof written === 'string' ? PLANES.find((p) => p === written.trim().toLowerCase()) : undefined;
    if (!plane) throw new Error(`must be "Axial", "Coronal" or "Sagittal", not ${JSON.stringify(written)}`);
    return { kind: 'plane', plane };
  }
  const numeric = vr !== undefined && NUMERIC_VRS.has(vr);
  const singleValued = vm === '1';
  if (typeof written === 'string') return compileText(written, vm === undefined ? undefined : vm !== '1');
  if (typeof written === 'number') {
    if (!Number.isFinite(written)) throw new Error('the number is not finite');
    if (vr !== undefined && !numeric) throw new Error(`${keyword} is text (VR ${vr}); write the condition as a string, e.g. ${JSON.stringify(String(written))}`);
    return { kind: 'number', value: written };
  }
  if (Array.isArray(written)) {
    if (!written.every((t) => typeof t === 'string' || (typeof t === 'number' && Number.isFinite(t)))) {
      throw new Error('a list condition may hold only strings and numbers');
    }
    const list = written as Array<string | number>;
    const [a, b] = list;
    const isRange = list.length === 2 && typeof a === 'number' && typeof b === 'number';
    const isCompare = list.length === 2 && typeof a === 'number' && typeof b === 'string' && (NUMERIC_OPERATORS as readonly string[]).includes(b);
    if (numeric && singleValued) {
      if (isRange) {
        if (a > b) throw new Error(`the range [${a}, ${b}] is empty: write [min, max]`);
        return { kind: 'range', min: a, max: b };
      }
      if (isCompare) return { kind: 'compare', operator: b as NumericOperator, value: a };
      throw new Error(`${keyword} holds one number: a list condition must be a range [min, max] or [value, ">"|">="|"<"|"<="|"!="], not ${JSON.stringify(written)}`);
    }
    if (vr !== undefined && !numeric && list.some((t) => typeof t === 'number')) {
      throw new Error(`${keyword} is text (VR ${vr}); list its terms as strings`);
    }
    if (list.length === 0) throw new Error('the list is empty');
    if (vr === undefined && (isRange || isCompare)) {
      // A private attribute: the value decides whether this is a range/comparison or a list of terms.
      return isRange ? { kind: 'range', min: Math.min(a as number, b as number), max: Math.max(a as number, b as number) } : { kind: 'compare', operator: b as NumericOperator, value: a as number };
    }
    return compileTerms(list);
  }
  throw new Error(`a condition must be a string, a number or a list, not ${typeName(written)}`);
}

/** True for the values MONAI skips as "no condition": null, "" and []. */
function isEmptyCondition(value: unknown): boolean {
  return value === null || value === undefined || value === '' || (Array.isArray(value) && value.length === 0);
}

/**
 * Checks and compiles a rule document (from decodeRulesText/readRulesFile, or an object). `undefined`
 * means no rules: every image series is selected. Every problem is collected before throwing, so one
 * deploy shows them all.
 */
export function compileRules(document: unknown, defaults: RuleDefaults = {}): CompiledRules {
  if (document === undefined) return { selectAll: true, selections: [], warnings: [] };
  if (!isPlainObject(document)) throw new RulesError([{ reason: `the rules must be an object {"selections": [...]}, not ${typeName(document)}` }]);
  const problems: RuleProblem[] = [];
  const warnings: string[] = [];
  for (const key of Object.keys(document)) if (key !== 'selections') warnings.push(`top-level field ${JSON.stringify(key)} is not used`);
  const selections = document.selections;
  if (!Array.isArray(selections) || selections.length === 0) {
    throw new RulesError([{ reason: Array.isArray(selections) ? '"selections" is empty' : 'the rules have no "selections" list' }]);
  }
  const compiled: CompiledSelection[] = [];
  const names = new Set<string>();
  selections.forEach((raw: unknown, index) => {
    const label = isPlainObject(raw) && typeof raw.name === 'string' && raw.name !== '' ? raw.name : `#${index + 1}`;
    if (!isPlainObject(raw)) {
      problems.push({ selection: label, reason: `a selection must be an object, not ${typeName(raw)}` });
      return;
    }
    if (typeof raw.name !== 'string' || raw.name.trim() === '') problems.push({ selection: label, reason: 'a selection needs a non-empty "name" (outputs are keyed by it)' });
    else if (names.has(raw.name)) problems.push({ selection: label, reason: 'another selection has the same name' });
    else names.add(raw.name);
    for (const key of Object.keys(raw)) if (!SELECTION_FIELDS.has(key)) warnings.push(`selection ${JSON.stringify(label)}: field ${JSON.stringify(key)} is not used`);
    for (const flag of ['all_matched', 'sort_by_sop_instance_count'] as const) {
      if (raw[flag] !== undefined && typeof raw[flag] !== 'boolean') problems.push({ selection: label, keyword: flag, reason: `must be true or false, not ${typeName(raw[flag])}` });
    }
    if (raw.conditions !== undefined && !isPlainObject(raw.conditions)) {
      problems.push({ selection: label, keyword: 'conditions', reason: `must be an object {Keyword: condition}, not ${typeName(raw.conditions)}` });
      return;
    }
    const conditions: CompiledConditionEntry[] = [];
    for (const [keyword, written] of Object.entries(raw.conditions ?? {})) {
      if (isEmptyCondition(written)) {
        warnings.push(`selection ${JSON.stringify(label)}: condition ${keyword} is empty and ignored`);
        continue;
      }
      const resolved = resolveKeyword(keyword);
      if (typeof resolved === 'string') {
        problems.push({ selection: label, keyword, reason: resolved });
        continue;
      }
      try {
        conditions.push({ keyword, jsonKey: resolved.jsonKey, vr: resolved.vr, written: written as ConditionValue, condition: compileCondition(keyword, written, resolved.vr, resolved.vm) });
      } catch (err) {
        const reason = err instanceof PatternTranslationError ? err.message : (err as Error).message;
        problems.push({ selection: label, keyword, reason });
      }
    }
    if (conditions.length === 0 && !problems.some((p) => p.selection === label)) {
      // MONAI skips a selection without conditions; so do we, but say so.
      warnings.push(`selection ${JSON.stringify(label)} has no conditions and is skipped`);
      return;
    }
    compiled.push({
      name: typeof raw.name === 'string' ? raw.name : label,
      conditions,
      allMatched: typeof raw.all_matched === 'boolean' ? raw.all_matched : defaults.allMatched ?? false,
      sortBySopInstanceCount: typeof raw.sort_by_sop_instance_count === 'boolean' ? raw.sort_by_sop_instance_count : defaults.sortBySopInstanceCount ?? false,
    });
  });
  if (problems.length) throw new RulesError(problems);
  if (compiled.length === 0) throw new RulesError([{ reason: 'no selection has a condition' }]);
  return { selectAll: false, selections: compiled, warnings };
}

/** Where rules come from: typed JSON, Base64 text, or a file (JSON or Base64). */
export interface RulesSource {
  kind: 'json' | 'base64' | 'file';
  text: string;
}

export function loadRules(source: RulesSource, defaults: RuleDefaults = {}): CompiledRules {
  if (source.kind === 'file') {
    if (source.text.trim() === '') throw new RulesError([{ reason: 'no rules file is set' }]);
    return compileRules(readRulesFile(source.text.trim()), defaults);
  }
  return compileRules(decodeRulesText(source.text, source.kind), defaults);
}

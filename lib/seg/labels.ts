/**
 * Segment definitions from the text a flow author or a command line gives: the labels list (Clara's
 * NVIDIA_SEG_LABELS, a JSON list where item i names mask value i + 1) and an optional per-label mapping of
 * codes and colours that replaces the defaults.
 */
import type { CodedConcept } from './codes';
import { SegmentationInputError, type SegmentDefinition } from './segmentation';

/** Clara's pipeline YAML: NVIDIA_SEG_LABELS '["Tumor-seg"]'. */
export const DEFAULT_LABELS = '["Tumor-seg"]';

/** A code written as ["value", "scheme", "meaning"] or { CodeValue, CodingSchemeDesignator, CodeMeaning }. */
export type CodeInput = [string, string, string] | CodedConcept;

/** What the mapping may set for one label (by its name, or by its mask value "1", "2", ...). */
export interface LabelSettings {
  description?: string;
  category?: CodeInput;
  type?: CodeInput;
  typeModifier?: CodeInput;
  anatomicRegion?: CodeInput;
  color?: [number, number, number];
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SegmentationInputError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function toCode(value: unknown, where: string): CodedConcept {
  if (Array.isArray(value) && value.length === 3 && value.every((v) => typeof v === 'string')) {
    return { CodeValue: value[0], CodingSchemeDesignator: value[1], CodeMeaning: value[2] };
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const c = value as Record<string, unknown>;
    if (typeof c.CodeValue === 'string' && typeof c.CodingSchemeDesignator === 'string' && typeof c.CodeMeaning === 'string') {
      return {
        CodeValue: c.CodeValue,
        CodingSchemeDesignator: c.CodingSchemeDesignator,
        CodeMeaning: c.CodeMeaning,
        CodingSchemeVersion: typeof c.CodingSchemeVersion === 'string' ? c.CodingSchemeVersion : undefined,
      };
    }
  }
  throw new SegmentationInputError(`${where} must be ["value", "scheme", "meaning"] or { "CodeValue", "CodingSchemeDesignator", "CodeMeaning" }`);
}

const SETTING_KEYS = ['description', 'category', 'type', 'typeModifier', 'anatomicRegion', 'color'];

function applySettings(definition: SegmentDefinition, settings: unknown, where: string): void {
  if (!settings || typeof settings !== 'object' || Array.isArray(settings)) throw new SegmentationInputError(`${where} must be an object`);
  const s = settings as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (key !== 'label' && !SETTING_KEYS.includes(key)) throw new SegmentationInputError(`${where}: unknown key "${key}" (known: ${SETTING_KEYS.join(', ')})`);
  }
  if (s.description !== undefined) {
    if (typeof s.description !== 'string') throw new SegmentationInputError(`${where}.description must be text`);
    definition.description = s.description;
  }
  for (const key of ['category', 'type', 'typeModifier', 'anatomicRegion'] as const) {
    if (s[key] !== undefined) definition[key] = toCode(s[key], `${where}.${key}`);
  }
  if (s.color !== undefined) {
    const c = s.color;
    if (!Array.isArray(c) || c.length !== 3 || c.some((v) => typeof v !== 'number' || !(v >= 0 && v <= 255))) throw new SegmentationInputError(`${where}.color must be [r, g, b], each 0–255`);
    definition.color = [c[0], c[1], c[2]];
  }
}

/**
 * Segments from a labels list and an optional mapping. Labels are names, or objects { label, ...settings };
 * the mapping is keyed by label name or by mask value ("1" for the first label) and wins over both the
 * defaults and a label object's own settings.
 */
export function parseSegmentDefinitions(labelsText: string | undefined, mappingText?: string): SegmentDefinition[] {
  const labels = parseJson(labelsText && labelsText.trim() ? labelsText : DEFAULT_LABELS, 'the labels list');
  if (!Array.isArray(labels) || labels.length === 0) throw new SegmentationInputError('the labels list must be a non-empty JSON list, e.g. ["Tumor-seg"] (item i names mask value i+1)');
  const definitions = labels.map((item, i): SegmentDefinition => {
    if (typeof item === 'string') return { label: item };
    if (item && typeof item === 'object' && !Array.isArray(item) && typeof (item as { label?: unknown }).label === 'string') {
      const definition: SegmentDefinition = { label: (item as { label: string }).label };
      applySettings(definition, item, `labels[${i}]`);
      return definition;
    }
    throw new SegmentationInputError(`labels[${i}] must be a name or an object with "label"`);
  });
  const seen = new Set<string>();
  for (const d of definitions) {
    if (seen.has(d.label)) throw new SegmentationInputError(`label ${JSON.stringify(d.label)} is listed twice`);
    seen.add(d.label);
  }
  if (mappingText && mappingText.trim()) {
    const mapping = parseJson(mappingText, 'the label codes mapping');
    if (!mapping || typeof mapping !== 'object' || Array.isArray(mapping)) throw new SegmentationInputError('the label codes mapping must be a JSON object keyed by label name or mask value');
    for (const [key, settings] of Object.entries(mapping as Record<string, unknown>)) {
      const byValue = /^\d+$/.test(key) ? definitions[Number(key) - 1] : undefined;
      const target = byValue ?? definitions.find((d) => d.label === key);
      if (!target) throw new SegmentationInputError(`the label codes mapping names ${JSON.stringify(key)}, which is not one of the labels (${definitions.map((d) => d.label).join(', ')}) nor a mask value 1–${definitions.length}`);
      applySettings(target, settings, `mapping[${JSON.stringify(key)}]`);
    }
  }
  return definitions;
}

import assert from 'node:assert/strict';
import { entryForKeyword } from '../../lib/dicom/dictionary';
import type { DicomJsonAttribute, DicomJsonObject } from '../../lib/dicom/json';
import { selectSeries } from '../../lib/select/match';
import { type CompiledRules, RulesError, compileRules, decodeRulesText } from '../../lib/select/rules';
import type { DicomMetadataFile, DicomMetadataSeries } from '../../lib/volume/parse';
import { seedSelectionRulesBase64 } from '../support/clara';

const AXIAL = [1, 0, 0, 0, 1, 0];
const AXIAL_OBLIQUE = [0.994522, 0.104528, 0, -0.100967, 0.960634, 0.258819];
const CORONAL = [1, 0, 0, 0, 0, -1];
const SAGITTAL = [0, 1, 0, 0, 0, -1];

type Attributes = Record<string, string | number | Array<string | number> | null | { private: DicomJsonAttribute }>;

/** DICOM JSON for a series' first instance, from keyword → value(s); the VR comes from the dictionary. */
function jsonOf(attributes: Attributes): DicomJsonObject {
  const out: DicomJsonObject = {};
  for (const [keyword, value] of Object.entries(attributes)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      out[keyword] = value.private;
      continue;
    }
    const entry = entryForKeyword(keyword);
    assert.ok(entry, `fixture keyword ${keyword}`);
    const key = entry.tag.toString(16).toUpperCase().padStart(8, '0');
    const values = value === null ? [] : Array.isArray(value) ? value : [value];
    out[key] = { vr: entry.vr, Value: entry.vr === 'PN' ? values.map((v) => ({ Alphabetic: String(v) })) : values };
  }
  return out;
}

interface FixtureSeries {
  description: string;
  number: number;
  count: number;
  attributes?: Attributes;
  image?: boolean;
}

const STUDY_ATTRIBUTES: Attributes = { Modality: 'MR', StudyDescription: 'MRI Brain w/wo contrast', ReferringPhysicianName: 'Doe^John' };
const ORIGINAL = ['ORIGINAL', 'PRIMARY', 'M', 'ND'];

/** The phantom's protocol plus a non-image series, as the parser describes them. */
const BRAIN_STUDY: FixtureSeries[] = [
  { description: '3Plane Loc', number: 1, count: 9, attributes: { ImageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'], ImageOrientationPatient: AXIAL, SliceThickness: 10 } },
  { description: 'Ax T1 SE', number: 2, count: 32, attributes: { ImageType: ORIGINAL, ImageOrientationPatient: AXIAL, SliceThickness: 5, EchoTime: 12, PixelSpacing: [0.9375, 0.9375] } },
  { description: 'Ax T2 FLAIR', number: 3, count: 32, attributes: { ImageType: ORIGINAL, ImageOrientationPatient: AXIAL, SliceThickness: 5, EchoTime: 120, PixelSpacing: [0.9375, 0.9375] } },
  { description: 'Ax 3D T1c MPRAGE', number: 4, count: 160, attributes: { ImageType: ORIGINAL, ImageOrientationPatient: AXIAL_OBLIQUE, SliceThickness: 1, EchoTime: 2.5, PixelSpacing: [1, 1], MRAcquisitionType: '3D' } },
  { description: 'Ax T1c 2x2 ref', number: 5, count: 80, attributes: { ImageType: ORIGINAL, ImageOrientationPatient: AXIAL_OBLIQUE, SliceThickness: 2, EchoTime: 2.5, PixelSpacing: [2, 2] } },
  { description: 'Cor T1c rfmt', number: 401, count: 40, attributes: { ImageType: ['DERIVED', 'SECONDARY', 'REFORMATTED'], ImageOrientationPatient: CORONAL, SliceThickness: 1 } },
  { description: 'Sag T1c MPR', number: 402, count: 40, attributes: { ImageType: ['DERIVED', 'SECONDARY', 'MPR'], ImageOrientationPatient: SAGITTAL, SliceThickness: 1 } },
  { description: 'Dose report', number: 999, count: 1, image: false, attributes: { Modality: 'SR' } },
];

function studyOf(uid: string, series: FixtureSeries[], studyAttributes: Attributes = STUDY_ATTRIBUTES): { StudyInstanceUID: string; series: DicomMetadataSeries[] } {
  return {
    StudyInstanceUID: uid,
    series: series.map((s) => {
      const seriesUid = `${uid}.${s.number}`;
      const image = s.image === false ? null : `${seriesUid}.nii.gz`;
      return {
        SeriesInstanceUID: seriesUid,
        SeriesNumber: s.number,
        SeriesDescription: s.description,
        Modality: String((s.attributes?.Modality as string | undefined) ?? studyAttributes.Modality),
        image,
        skippedReason: image ? undefined : 'non-image instance: structured report (SR)',
        instanceCount: s.count,
        attributes: jsonOf({ ...studyAttributes, SeriesDescription: s.description, SeriesNumber: s.number, ...s.attributes }),
        instances: [],
      };
    }),
  };
}

function metadataOf(...studies: Array<{ StudyInstanceUID: string; series: DicomMetadataSeries[] }>): DicomMetadataFile {
  return { dicomFolder: '../dicom', studies };
}

const ONE_STUDY = metadataOf(studyOf('1.2.3', BRAIN_STUDY));
const TWO_STUDIES = metadataOf(
  studyOf('1.2.3', BRAIN_STUDY),
  studyOf('1.2.4', [
    { description: 'Ax T1c post', number: 7, count: 60, attributes: { ImageType: ORIGINAL, ImageOrientationPatient: AXIAL, SliceThickness: 3 } },
    { description: 'Ax T1c post 3D', number: 8, count: 176, attributes: { ImageType: ORIGINAL, ImageOrientationPatient: AXIAL, SliceThickness: 1 } },
  ], { Modality: 'MR', StudyDescription: 'MR HEAD follow-up' }),
);

const SEED_BASE64 = seedSelectionRulesBase64();

type Conditions = Record<string, unknown>;
const one = (conditions: Conditions, extra: Record<string, unknown> = {}) => ({ selections: [{ name: 'S', conditions, ...extra }] });

interface Case {
  title: string;
  rules: unknown;
  metadata?: DicomMetadataFile;
  defaults?: { allMatched?: boolean; sortBySopInstanceCount?: boolean };
  /** Selection name → the selected series' descriptions, in order. */
  expect?: Record<string, string[]>;
  /** The RulesError message must match, and name what it says. */
  error?: RegExp;
  warning?: RegExp;
}

const CASES: Case[] = [
  // Regex flags, look-arounds and Python-only syntax
  { title: 'the seed rule (Base64 from the Clara pipeline) selects only the T1c target', rules: decodeRulesText(SEED_BASE64), expect: { T1C: ['Ax 3D T1c MPRAGE'] } },
  { title: '(?i) with ^ anchors a case-insensitive prefix', rules: one({ SeriesDescription: '(?i)^ax t2' }), expect: { S: ['Ax T2 FLAIR'] } },
  { title: 'a string searches anywhere in the value (not a full match)', rules: one({ SeriesDescription: 'MPRAGE' }), expect: { S: ['Ax 3D T1c MPRAGE'] } },
  { title: 'matching ignores case even without (?i)', rules: one({ SeriesDescription: 'flair' }), expect: { S: ['Ax T2 FLAIR'] } },
  { title: 'case-insensitive equality matches where the same text as a regex would not', rules: one({ SeriesDescription: 't1+c (post)' }), metadata: metadataOf(studyOf('1.2.3', [{ description: 'T1 post', number: 1, count: 3 }, { description: 'T1+C (POST)', number: 2, count: 3 }])), expect: { S: ['T1+C (POST)'] } },
  { title: 'regex metacharacters act as regex: "MPRAGE+$"', rules: one({ SeriesDescription: 'T1c MPRAGE+$' }), expect: { S: ['Ax 3D T1c MPRAGE'] } },
  { title: 'a lookahead and a negative lookahead', rules: one({ SeriesDescription: '^(?=.*T1c)(?!.*(rfmt|MPR$|ref))' }), expect: { S: ['Ax 3D T1c MPRAGE'] } },
  { title: 'a lookbehind', rules: one({ SeriesDescription: '(?<=Ax )T2' }), expect: { S: ['Ax T2 FLAIR'] } },
  { title: 'a negative lookbehind', rules: one({ SeriesDescription: '(?<!(Ax|3D) )T1c' }, { all_matched: true }), expect: { S: ['Cor T1c rfmt', 'Sag T1c MPR'] } },
  { title: '(?P<name>…) and (?P=name) backreference', rules: one({ StudyDescription: '(?P<w>w)/(?P=w)o' }), expect: { S: ['3Plane Loc'] } },
  { title: '\\A and \\Z anchor the whole value', rules: one({ SeriesDescription: '\\AAx T1 SE\\Z' }), expect: { S: ['Ax T1 SE'] } },
  { title: '(?x) verbose pattern with a comment', rules: one({ SeriesDescription: '(?x) ^ Sag \\s T1c  # the sagittal MPR' }), expect: { S: ['Sag T1c MPR'] } },
  { title: '(?s) lets . cross a newline', rules: one({ SeriesDescription: '(?s)T1.post' }), metadata: metadataOf(studyOf('1.2.3', [{ description: 'Ax T1\npost', number: 1, count: 3 }])), expect: { S: ['Ax T1\npost'] } },
  { title: 'without (?s), . does not cross a newline', rules: one({ SeriesDescription: 'T1.post' }), metadata: metadataOf(studyOf('1.2.3', [{ description: 'Ax T1\npost', number: 1, count: 3 }])), expect: { S: [] } },
  { title: '(?m) lets ^ match after a newline', rules: one({ SeriesDescription: '(?m)^post' }), metadata: metadataOf(studyOf('1.2.3', [{ description: 'Ax T1\npost', number: 1, count: 3 }])), expect: { S: ['Ax T1\npost'] } },
  { title: '(?#comment) is dropped', rules: one({ SeriesDescription: 'Cor(?#onal) T1c' }), expect: { S: ['Cor T1c rfmt'] } },
  { title: 'a conditional group cannot be translated: refused, naming rule and keyword', rules: one({ SeriesDescription: '(a)?(?(1)b|c)' }), error: /selection "S", condition SeriesDescription: .*conditional/ },
  { title: 'a scoped inline flag cannot be translated', rules: one({ SeriesDescription: 'Ax (?i:t1)' }), error: /condition SeriesDescription: .*only supported at the start/ },
  { title: 'a broken regex is refused', rules: one({ SeriesDescription: 'T1c(' }), error: /selection "S", condition SeriesDescription: .*Unterminated group/ },

  // Lists on multi-valued attributes
  { title: 'every listed term must be present', rules: one({ ImageType: ['ORIGINAL', 'PRIMARY'] }, { all_matched: true }), expect: { S: ['3Plane Loc', 'Ax T1 SE', 'Ax T2 FLAIR', 'Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref'] } },
  { title: '"!term" excludes', rules: one({ ImageType: ['ORIGINAL', '!LOCALIZER'] }, { all_matched: true }), expect: { S: ['Ax T1 SE', 'Ax T2 FLAIR', 'Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref'] } },
  { title: 'terms compare without case', rules: one({ ImageType: ['derived', 'mpr'] }), expect: { S: ['Sag T1c MPR'] } },
  { title: 'terms are whole values, not substrings (MONAI would match "ORIG")', rules: one({ ImageType: ['ORIG'] }), expect: { S: [] } },
  { title: 'a plain string on a multi-valued attribute matches one of its values', rules: one({ ImageType: 'reformat' }), expect: { S: ['Cor T1c rfmt'] } },
  { title: 'a "!term" string on a multi-valued attribute excludes', rules: one({ ImageType: '!DERIVED', SeriesDescription: 'T1c' }, { all_matched: true }), expect: { S: ['Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref'] } },
  { title: 'a "!term" string excludes on an attribute the dictionary calls multi-valued, even with one value', rules: one({ ImageType: '!DERIVED' }, { all_matched: true }), metadata: metadataOf(studyOf('1.2.3', [{ description: 'one value', number: 1, count: 3, attributes: { ImageType: ['ORIGINAL'] } }, { description: 'derived', number: 2, count: 3, attributes: { ImageType: ['DERIVED'] } }])), expect: { S: ['one value'] } },
  { title: 'a list on a single-valued text attribute: the value must be among the terms', rules: one({ Modality: ['MR'], SeriesDescription: 'Sag' }), expect: { S: ['Sag T1c MPR'] } },
  { title: 'numeric terms on a multi-valued number attribute', rules: one({ PixelSpacing: [2, '!1'] }), expect: { S: ['Ax T1c 2x2 ref'] } },

  // Numbers
  { title: 'numeric equality', rules: one({ SeriesNumber: 4 }), expect: { S: ['Ax 3D T1c MPRAGE'] } },
  { title: 'an inclusive range includes both ends', rules: one({ SliceThickness: [1, 2] }, { all_matched: true }), expect: { S: ['Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref', 'Cor T1c rfmt', 'Sag T1c MPR'] } },
  { title: '[value, ">"]', rules: one({ SeriesNumber: [5, '>'] }, { all_matched: true }), expect: { S: ['Cor T1c rfmt', 'Sag T1c MPR'] } },
  { title: '[value, ">="]', rules: one({ SeriesNumber: [5, '>='] }, { all_matched: true }), expect: { S: ['Ax T1c 2x2 ref', 'Cor T1c rfmt', 'Sag T1c MPR'] } },
  { title: '[value, "<"]', rules: one({ EchoTime: [12, '<'] }, { all_matched: true }), expect: { S: ['Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref'] } },
  { title: '[value, "<="]', rules: one({ EchoTime: [12, '<='] }, { all_matched: true }), expect: { S: ['Ax T1 SE', 'Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref'] } },
  { title: '[value, "!="]', rules: one({ SliceThickness: [1, '!='], ImageType: ['ORIGINAL'] }, { all_matched: true }), expect: { S: ['3Plane Loc', 'Ax T1 SE', 'Ax T2 FLAIR', 'Ax T1c 2x2 ref'] } },
  { title: 'a decimal number compares as a number', rules: one({ EchoTime: 2.5 }, { all_matched: true }), expect: { S: ['Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref'] } },
  { title: 'a string on a number attribute is a full match of its text', rules: one({ SeriesNumber: '40[0-9]' }, { all_matched: true }), expect: { S: ['Cor T1c rfmt', 'Sag T1c MPR'] } },
  { title: 'an empty range [max, min] is refused', rules: one({ SliceThickness: [5, 1] }), error: /condition SliceThickness: the range \[5, 1\] is empty/ },
  { title: 'an unknown operator is refused', rules: one({ SliceThickness: [1, '=='] }), error: /condition SliceThickness: .*range \[min, max\] or \[value/ },
  { title: 'a number on a text attribute is refused', rules: one({ Modality: 1 }), error: /condition Modality: Modality is text \(VR CS\)/ },

  // Orientation words
  { title: '"Axial" uses the slice normal (oblique axials included)', rules: one({ ImageOrientationPatient: 'Axial', SeriesDescription: 'T1c' }), expect: { S: ['Ax 3D T1c MPRAGE'] } },
  { title: '"coronal" in any case', rules: one({ ImageOrientationPatient: 'coronal' }), expect: { S: ['Cor T1c rfmt'] } },
  { title: '"Sagittal"', rules: one({ ImageOrientationPatient: 'Sagittal' }), expect: { S: ['Sag T1c MPR'] } },
  { title: 'any other orientation word is refused', rules: one({ ImageOrientationPatient: 'Oblique' }), error: /condition ImageOrientationPatient: must be "Axial", "Coronal" or "Sagittal"/ },

  // Missing attributes
  { title: 'a missing attribute never matches', rules: one({ BodyPartExamined: 'BRAIN' }), expect: { S: [] } },
  { title: 'an attribute with no value never matches', rules: one({ ProtocolName: '.*' }), metadata: metadataOf(studyOf('1.2.3', [{ description: 'Ax T1', number: 1, count: 3, attributes: { ProtocolName: null } }])), expect: { S: [] } },
  { title: 'a non-image series is never selected, even when every condition holds', rules: one({ SeriesDescription: 'Dose' }), expect: { S: [] } },
  { title: 'empty conditions (null, "") are ignored with a warning', rules: one({ SeriesDescription: 'FLAIR', BodyPartExamined: '', ProtocolName: null }), expect: { S: ['Ax T2 FLAIR'] }, warning: /condition BodyPartExamined is empty and ignored/ },
  { title: 'a person name compares by its text', rules: one({ ReferringPhysicianName: '^doe\\^' }), expect: { S: ['3Plane Loc'] } },
  { title: 'a private tag "(gggg,eeee)" with a range', rules: one({ '(0019,100C)': [500, 1500] }), metadata: metadataOf(studyOf('1.2.3', [
    { description: 'DWI b0', number: 1, count: 30, attributes: { '0019100C': { private: { vr: 'IS', Value: [0] } } } },
    { description: 'DWI b1000', number: 2, count: 30, attributes: { '0019100C': { private: { vr: 'IS', Value: [1000] } } } },
  ])), expect: { S: ['DWI b1000'] } },

  // all_matched, sorting, defaults
  { title: 'without all_matched, only the first match (in series order)', rules: one({ SeriesDescription: 'T1c' }), expect: { S: ['Ax 3D T1c MPRAGE'] } },
  { title: 'all_matched returns every match', rules: one({ SeriesDescription: 'T1c' }, { all_matched: true }), expect: { S: ['Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref', 'Cor T1c rfmt', 'Sag T1c MPR'] } },
  { title: 'sort_by_sop_instance_count puts the largest series first', rules: one({ SeriesDescription: '^Ax' }, { sort_by_sop_instance_count: true }), expect: { S: ['Ax 3D T1c MPRAGE'] } },
  { title: "the node's all_matched default applies where a selection is silent", rules: one({ SeriesDescription: 'T2|T1 SE' }), defaults: { allMatched: true }, expect: { S: ['Ax T1 SE', 'Ax T2 FLAIR'] } },
  { title: "a selection's own all_matched: false beats the node's default", rules: one({ SeriesDescription: 'T2|T1 SE' }, { all_matched: false }), defaults: { allMatched: true }, expect: { S: ['Ax T1 SE'] } },

  // Several selections and several studies
  {
    title: 'several selections, one series may satisfy more than one',
    rules: { selections: [{ name: 'T1C', conditions: { SeriesDescription: 'T1c', ImageType: ['ORIGINAL'] } }, { name: 'FLAIR', conditions: { SeriesDescription: 'FLAIR' } }, { name: 'THIN', conditions: { SliceThickness: [0, 1.5] } }] },
    expect: { T1C: ['Ax 3D T1c MPRAGE'], FLAIR: ['Ax T2 FLAIR'], THIN: ['Ax 3D T1c MPRAGE'] },
  },
  {
    title: 'one selection matching nothing leaves the others selected',
    rules: { selections: [{ name: 'T1C', conditions: { SeriesDescription: 'MPRAGE' } }, { name: 'DWI', conditions: { SeriesDescription: 'DWI' } }] },
    expect: { T1C: ['Ax 3D T1c MPRAGE'], DWI: [] },
  },
  { title: 'several studies: the first match in each study', rules: one({ SeriesDescription: '(?i)t1c', ImageType: ['ORIGINAL'] }), metadata: TWO_STUDIES, expect: { S: ['Ax 3D T1c MPRAGE', 'Ax T1c post'] } },
  { title: 'several studies: a study-level condition picks one study', rules: one({ StudyDescription: 'follow-up' }, { sort_by_sop_instance_count: true }), metadata: TWO_STUDIES, expect: { S: ['Ax T1c post 3D'] } },
  { title: 'no rules: every image series, under the name ""', rules: undefined, expect: { '': ['3Plane Loc', 'Ax T1 SE', 'Ax T2 FLAIR', 'Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref', 'Cor T1c rfmt', 'Sag T1c MPR'] } },

  // Invalid rule documents
  { title: 'an unknown keyword is refused with a hint', rules: one({ Seriesdescription: 'T1c' }), error: /condition Seriesdescription: unknown DICOM keyword \(did you mean SeriesDescription\?\)/ },
  { title: 'a misspelt keyword is refused with the keyword it is closest to', rules: one({ SeriesDescripton: 'T1c' }), error: /condition SeriesDescripton: unknown DICOM keyword \(did you mean SeriesDescription\?\)/ },
  { title: 'a sequence cannot be tested', rules: one({ ReferencedImageSequence: 'x' }), error: /condition ReferencedImageSequence: .*VR SQ/ },
  { title: 'an object condition is a wrong type', rules: one({ SeriesDescription: { regex: 'T1c' } }), error: /condition SeriesDescription: a condition must be a string, a number or a list, not an object/ },
  { title: 'a boolean condition is a wrong type', rules: one({ SeriesDescription: true }), error: /not a boolean/ },
  { title: 'all_matched must be a boolean', rules: one({ SeriesDescription: 'T1c' }, { all_matched: 'yes' }), error: /selection "S", condition all_matched: must be true or false/ },
  { title: 'a selection needs a name', rules: { selections: [{ conditions: { Modality: 'MR' } }] }, error: /selection "#1": a selection needs a non-empty "name"/ },
  { title: 'selection names are unique', rules: { selections: [{ name: 'A', conditions: { Modality: 'MR' } }, { name: 'A', conditions: { Modality: 'CT' } }] }, error: /selection "A": another selection has the same name/ },
  { title: 'rules without "selections" are refused (as MONAI does)', rules: { rules: [] }, error: /no "selections" list/ },
  { title: 'every problem is reported at once', rules: { selections: [{ name: 'A', conditions: { Modalty: 'MR', SeriesDescription: '(?<x' } }, { name: 'B', conditions: { SliceThickness: 'x', EchoTime: [3, 1] } }] }, error: /selection "A", condition Modalty: .*; selection "A", condition SeriesDescription: .*; selection "B", condition EchoTime: the range/ },
  { title: 'a selection without conditions is skipped (MONAI) with a warning', rules: { selections: [{ name: 'EMPTY', conditions: {} }, { name: 'S', conditions: { SeriesNumber: 3 } }] }, expect: { S: ['Ax T2 FLAIR'] }, warning: /selection "EMPTY" has no conditions and is skipped/ },
];

function descriptionsOf(rules: CompiledRules, metadata: DicomMetadataFile): Record<string, string[]> {
  const report = selectSeries(metadata, rules);
  return Object.fromEntries(report.selections.map((s) => [s.name, s.selected.map((c) => c.seriesDescription ?? '')]));
}

describe('lib/select: Clara / MONAI selection rules (table)', () => {
  it('has at least 40 cases', () => assert.ok(CASES.length >= 40, `${CASES.length} cases`));

  for (const c of CASES) {
    it(c.title, () => {
      if (c.error) {
        assert.throws(() => compileRules(c.rules, c.defaults), (err: Error) => {
          assert.ok(err instanceof RulesError, `a RulesError, got ${err}`);
          assert.match(err.message, c.error!);
          return true;
        });
        return;
      }
      const rules = compileRules(c.rules, c.defaults);
      assert.deepEqual(descriptionsOf(rules, c.metadata ?? ONE_STUDY), c.expect);
      if (c.warning) assert.ok(rules.warnings.some((w) => c.warning!.test(w)), `warnings: ${rules.warnings.join(' | ')}`);
    });
  }
});

describe('lib/select: reading rules and explaining verdicts', () => {
  it('Base64 and JSON of the same rules compile alike; URL-safe Base64 and wrapped lines too', () => {
    const json = Buffer.from(SEED_BASE64, 'base64').toString('utf8');
    assert.deepEqual(decodeRulesText(SEED_BASE64), JSON.parse(json));
    assert.deepEqual(decodeRulesText(json, 'json'), JSON.parse(json));
    assert.deepEqual(decodeRulesText(SEED_BASE64.replace(/(.{60})/g, '$1\n'), 'base64'), JSON.parse(json));
    assert.deepEqual(decodeRulesText(Buffer.from(json).toString('base64url')), JSON.parse(json));
  });

  it('empty text means no rules; broken text says what it is not', () => {
    assert.equal(decodeRulesText('  \n'), undefined);
    assert.throws(() => decodeRulesText('{"selections": ['), /not valid JSON/);
    assert.throws(() => decodeRulesText('not base64!'), /neither JSON .* nor Base64/);
    assert.throws(() => decodeRulesText(Buffer.from('{oops').toString('base64'), 'base64'), /Base64 rules do not decode to JSON/);
  });

  it('a failing series lists every failed condition with what it has', () => {
    const report = selectSeries(ONE_STUDY, compileRules(decodeRulesText(SEED_BASE64)));
    const byDescription = new Map(report.selections[0].series.map((v) => [v.seriesDescription, v]));
    assert.equal(report.matched, true);
    assert.equal(byDescription.get('Ax 3D T1c MPRAGE')?.selected, true);
    const rfmt = byDescription.get('Cor T1c rfmt')!;
    assert.equal(rfmt.matched, false);
    assert.deepEqual(rfmt.conditions.filter((c) => !c.matched).map((c) => c.keyword), ['ImageType', 'SeriesDescription']);
    assert.match(rfmt.reason!, /ImageType is \["DERIVED", "SECONDARY", "REFORMATTED"\]: lacks "ORIGINAL", "PRIMARY"; SeriesDescription is "Cor T1c rfmt"/);
    assert.match(byDescription.get('Dose report')!.reason!, /Modality is "SR".*|not converted to a volume/);
    assert.match(byDescription.get('Ax T1c 2x2 ref')!.reason!, /SeriesDescription is "Ax T1c 2x2 ref": neither equal to nor matching/);
  });

  it('a series that matched after the first says why it was not selected', () => {
    const report = selectSeries(ONE_STUDY, compileRules(one({ SeriesDescription: 'T1c' })));
    const second = report.selections[0].series.find((v) => v.seriesDescription === 'Ax T1c 2x2 ref')!;
    assert.equal(second.matched, true);
    assert.equal(second.selected, false);
    assert.match(second.reason!, /came first \(all_matched is false\)/);
  });
});

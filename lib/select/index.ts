/** lib/select: Clara / MONAI Deploy series selection rules over a parsed job. */
export { PatternTranslationError, compileSearch, translatePythonPattern } from './python-regex';
export {
  type CompiledRules, type CompiledSelection, type ConditionValue, type RuleDefaults, type RuleProblem, type RulesEncoding, type RulesSource,
  type SelectionRuleText, RulesError, compileRules, decodeRulesText, describeProblem, loadRules, readRulesFile,
} from './rules';
export {
  type AttributeValue, type ConditionResult, type SelectionReport, type SelectionVerdict, type SeriesCandidate, type SeriesVerdict,
  attributeValue, candidatesOf, planeOf, selectSeries,
} from './match';
export {
  SELECTED_IMAGES_FILE, SELECTION_REPORT_FILE, type SelectedImage, type SelectedImagesFile, type SelectionRun, type SelectionSummary,
  SelectionInputError, readDicomMetadata, runSelection, selectionSummaryOf,
} from './run';

/** RT Structure Set writing: marching-squares contours of a label volume on its source series. */
export { MAX_TOLERANCE_PX, type PixelBox, type PlanarContour, boxOf, removeCollinear, simplifyContour, traceContours } from './contours';
export { DEFAULT_LABELS, INTERPRETED_TYPES, LabelConfigError, type Rgb, type RoiLabel, type RoiStyle, parseLabels } from './labels';
export {
  type BuiltStructureSet, DETACHED_STUDY_MANAGEMENT_SOP_CLASS, type RoiSummary, RtStructInputError, type StructureSetOptions, type StructureSetResult,
  type StructureSetSummary, buildStructureSet, writeStructureSet,
} from './structure-set';
export {
  type JobRtStructFile, type JobRtStructOptions, type JobRtStructResult, RTSTRUCT_DIR, type SegmentationInput, segmentationsInJob,
  segmentationsOfInference, writeJobStructureSets,
} from './job';
export { readMaskVolume } from './mask';

/** lib/seg: DICOM Segmentation Storage objects from label volumes on their source series. */
export { Codes, type CodedConcept, defaultCodesFor, defaultColor, srgbToDicomLab } from './codes';
export { DEFAULT_LABELS, type CodeInput, type LabelSettings, parseSegmentDefinitions } from './labels';
export { type InferenceInput, type JobSegmentationFile, type JobSegmentationOptions, type JobSegmentationResult, SEG_DIR, writeJobSegmentations } from './job';
export { copyDataset, copyElement, copyModule, copyPatientAndStudy } from './modules';
export { BitPacker, binaryPixelDataLength, unpackBinaryFrame } from './packing';
export {
  type BuiltSegmentation, type EmptySegmentation, type SegmentDefinition, type SegmentSummary, type SegmentationOptions, type SegmentationResult,
  SegmentationInputError, type WriteSegmentationInput, type WrittenSegmentation, buildSegmentation, checkSegmentationSettings, writeSegmentation,
} from './segmentation';

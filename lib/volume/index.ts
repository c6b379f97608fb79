/** lib/volume: DICOM series to volumes (NIfTI-1, MetaImage) with dcm2niix's geometry, plus Clara's metadata files. */
export { type AxisLayout, applyLayout, nativeAffineRas, nearestCanonicalLayout, planeOf, spacingOf, type StackGeometry, type Vec3 } from './geometry';
export { readVolumeFile, readVolumeHeader, writeVolumeFile } from './file';
export { readMetaImage, readMetaImageHeader, writeMetaImage, metaImageHeader } from './metaimage';
export { encodeNifti, niftiHeader, readNifti, readNiftiHeader, writeNifti } from './nifti';
export {
  DICOM_METADATA_FILE, OUTPUT_FORMATS, PARSE_REPORT_FILE, SERIES_IMAGES_FILE, SPACING_POLICIES, ParseAbortedError, ParseInputError, parseStudy, parserSummaryOf, type ParserSummary,
  type OutputFormat, type ParseOptions, type ParseProgress, type ParseResult, type SkipRecord, type SliceSource, type SpacingPolicy,
  type VolumeRecord, type WarningRecord,
} from './parse';
export { writeNiftiStream, writeStreamAtomic } from './stream';
export { BYTES_PER_VOXEL, allocateVoxels, type Matrix4, type Volume, type VolumeHeader, type VoxelArray, type VoxelType } from './types';

/** lib/infer: sliding-window inference (MONAI semantics) and the KServe v2 gRPC client for Triton. */
export {
  type BlendMode, type Size3, type SlidingWindowOptions, type Tensor, type WindowPredictor, SlidingWindowAbortedError, importanceMap,
  slidingWindowInference, windowStarts,
} from './sliding-window';
export {
  type InferenceErrorKind, type KServeClient, type ModelMetadata, type NamedTensor, type ServerTarget, type TensorData, type TensorDatatype,
  type TensorMetadata, InferenceError,
} from './kserve/types';
export { KServeGrpcClient, inferenceServiceConstructor } from './kserve/grpc-client';
export { KServeHttpClient } from './kserve/http-client';
export { type EmbeddedModel, type EmbeddedOptions, type ModelConfig, ModelRepositoryError, openEmbeddedModel, parseModelConfig } from './model-repository';
export { type Grid, type Interpolation, invertAffine, rasGridCovering, realValues, resample, zScoreNonZero } from './resample';
export { type Activation, type LabelOptions, fillHoles, keepLargestComponent, labelsFromChannels } from './postprocess';
export { type BatchRunner, type Normalization, type SegmentProgress, type SegmentationResult, type SegmentationSpec, segmentVolume } from './segment';
export { type InferenceServer, type ModelHandle, type ServerHealth, type ServerSettings, connectInferenceServer, serverSettingsFromUrl } from './server';

/** lib/infer: segmentation models on a study job: MONAI-style pre/post-processing, sliding windows, embedded onnxruntime or Triton (KServe v2). */
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
export { type Grid, type Interpolation, invertAffine, orientedGridAtSpacing, realValues, resample, sameGrid, zScoreNonZero } from './resample';
export { type Activation, type LabelOptions, fillHoles, keepLargestComponent, labelsFromChannels } from './postprocess';
export {
  type BatchRunner, type Normalization, type SegmentProgress, type SegmentationResult, type SegmentationSpec, type TensorLayout, ModelContractError, checkModelContract,
  modelGridOf, segmentVolume,
} from './segment';
export { type InferenceConfig, type InferenceFields, type PresetName, InferenceConfigError, PRESETS, inferenceConfigFromFields, resolveSpec } from './config';
export { type JobInferenceResult, type LabelFormat, type SegmentedSeries, INFERENCE_REPORT_FILE, InferenceInputError, LABEL_FORMATS, PUBLISH_DIR, SEGMENTATION_DIR, inferJob } from './job';
export { type InferenceServer, type ModelHandle, type ServerHealth, type ServerSettings, connectInferenceServer, serverSettingsFromUrl } from './server';
export { dice, diceOnGrid } from './metrics';
export { type RegisterOptions, type RigidRegistration, registerRigid, resampleRegistered } from './register';

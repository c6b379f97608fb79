/** lib/infer: sliding-window inference (MONAI semantics) and the KServe v2 gRPC client for Triton. */
export {
  type BlendMode, type Size3, type SlidingWindowOptions, type Tensor, type WindowPredictor, SlidingWindowAbortedError, importanceMap,
  slidingWindowInference, windowStarts,
} from './sliding-window';
export {
  type GrpcTarget, type InferenceErrorKind, type ModelMetadata, type NamedTensor, type TensorData, type TensorDatatype, type TensorMetadata,
  InferenceError, KServeGrpcClient, inferenceServiceConstructor,
} from './kserve/grpc-client';

/** What the KServe v2 clients (gRPC and HTTP) share: tensors, metadata, targets, errors. */

export type TensorDatatype = 'FP32' | 'FP64' | 'INT8' | 'INT16' | 'INT32' | 'INT64' | 'UINT8' | 'UINT16' | 'UINT32' | 'BOOL';
export type TensorData = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array | Uint32Array;

export interface NamedTensor {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  data: TensorData;
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  /** -1 marks a variable dimension. */
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** Where a KServe v2 server is, and how patiently to talk to it (the same for gRPC and HTTP). */
export interface ServerTarget {
  host: string;
  port: number;
  /** PEM buffers; with none, the connection is plaintext. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string };
  /** Per call. Default 60 s. */
  deadlineMs?: number;
  /** Largest gRPC message either way. Default 256 MiB: a batch of 64³ windows is a few MiB per window. */
  maxMessageBytes?: number;
  /** Retries of a call the server could not take (unreachable, restarting, overloaded). Default 3. */
  retries?: number;
  /** First backoff; doubled each retry. Default 200 ms. */
  retryBaseMs?: number;
}

export type InferenceErrorKind = 'unavailable' | 'deadline' | 'not-found' | 'invalid' | 'server';

export class InferenceError extends Error {
  constructor(
    readonly kind: InferenceErrorKind,
    message: string,
    /** The gRPC status code or HTTP status, where there was one. */
    readonly code?: number,
  ) {
    super(message);
    this.name = 'InferenceError';
  }
}


/** A KServe v2 server as the inference node uses it, whichever protocol carries the calls. */
export interface KServeClient {
  serverLive(): Promise<boolean>;
  serverReady(): Promise<boolean>;
  modelReady(name: string, version?: string): Promise<boolean>;
  modelMetadata(name: string, version?: string): Promise<ModelMetadata>;
  infer(request: { model: string; version?: string; id?: string; inputs: NamedTensor[]; outputs?: string[] }): Promise<NamedTensor[]>;
  close(): void;
}

export const BYTES_PER_ELEMENT: Record<TensorDatatype, number> = { FP32: 4, FP64: 8, INT8: 1, INT16: 2, INT32: 4, INT64: 8, UINT8: 1, UINT16: 2, UINT32: 4, BOOL: 1 };

/** Refuses, before anything is sent, an input whose bytes do not fill its shape. */
export function checkInputSizes(inputs: NamedTensor[]): void {
  for (const input of inputs) {
    const expected = input.shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[input.datatype];
    if (input.data.byteLength !== expected) {
      throw new InferenceError('invalid', `input ${input.name}: ${input.data.byteLength} bytes do not fill the shape [${input.shape.join(', ')}] of ${input.datatype} (${expected} bytes)`);
    }
  }
}

/** Raw little-endian tensor bytes as a typed array, copied into a fresh aligned buffer (a received Buffer may start anywhere). */
export function typedArrayOf(datatype: string, bytes: Uint8Array): TensorData {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  switch (datatype) {
    case 'FP32': return new Float32Array(buffer);
    case 'FP64': return new Float64Array(buffer);
    case 'INT8': return new Int8Array(buffer);
    case 'INT16': return new Int16Array(buffer);
    case 'INT32': return new Int32Array(buffer);
    case 'INT64': return new BigInt64Array(buffer);
    case 'UINT8': case 'BOOL': return new Uint8Array(buffer);
    case 'UINT16': return new Uint16Array(buffer);
    case 'UINT32': return new Uint32Array(buffer);
    default: throw new InferenceError('invalid', `the server answered with datatype ${datatype}, which this client does not read`);
  }
}

/** Tensor bytes as they go on the wire (no copy). */
export function bytesOf(data: TensorData): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

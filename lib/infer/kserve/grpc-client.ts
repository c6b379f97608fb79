/**
 * A KServe v2 inference client over gRPC (Triton's GRPCInferenceService): health, model metadata and
 * inference with raw tensor contents. Deadlines are per call; UNAVAILABLE (server starting, restarting
 * or briefly unreachable) is retried with exponential backoff, every other failure is reported at once
 * as an InferenceError whose `kind` a caller can act on.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

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

export interface GrpcTarget {
  host: string;
  port: number;
  /** PEM buffers; with none, the channel is plaintext. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string };
  /** Per call. Default 60 s. */
  deadlineMs?: number;
  /** Largest message either way. Default 256 MiB: a batch of 64³ windows is a few MiB per window. */
  maxMessageBytes?: number;
  /** Retries of a call answered UNAVAILABLE. Default 3. */
  retries?: number;
  /** First backoff; doubled each retry. Default 200 ms. */
  retryBaseMs?: number;
}

export type InferenceErrorKind = 'unavailable' | 'deadline' | 'not-found' | 'invalid' | 'server';

export class InferenceError extends Error {
  constructor(
    readonly kind: InferenceErrorKind,
    message: string,
    readonly grpcCode?: number,
  ) {
    super(message);
    this.name = 'InferenceError';
  }
}

const BYTES_PER_ELEMENT: Record<TensorDatatype, number> = { FP32: 4, FP64: 8, INT8: 1, INT16: 2, INT32: 4, INT64: 8, UINT8: 1, UINT16: 2, UINT32: 4, BOOL: 1 };

function typedArrayOf(datatype: string, bytes: Buffer): TensorData {
  // Copied into a fresh, aligned buffer: a gRPC Buffer may start at any offset.
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

/** Typed contents (for servers that do not answer with raw contents). */
interface TypedContents {
  fp32_contents?: number[];
  fp64_contents?: number[];
  int_contents?: number[];
  int64_contents?: Array<number | string>;
  uint_contents?: number[];
  bool_contents?: boolean[];
}

function fromTypedContents(datatype: string, contents: TypedContents): TensorData {
  switch (datatype) {
    case 'FP32': return Float32Array.from(contents.fp32_contents ?? []);
    case 'FP64': return Float64Array.from(contents.fp64_contents ?? []);
    case 'INT8': return Int8Array.from(contents.int_contents ?? []);
    case 'INT16': return Int16Array.from(contents.int_contents ?? []);
    case 'INT32': return Int32Array.from(contents.int_contents ?? []);
    case 'INT64': return BigInt64Array.from((contents.int64_contents ?? []).map((v) => BigInt(v)));
    case 'UINT8': return Uint8Array.from(contents.uint_contents ?? []);
    case 'UINT16': return Uint16Array.from(contents.uint_contents ?? []);
    case 'UINT32': return Uint32Array.from(contents.uint_contents ?? []);
    case 'BOOL': return Uint8Array.from((contents.bool_contents ?? []).map((b) => (b ? 1 : 0)));
    default: throw new InferenceError('invalid', `the server answered with datatype ${datatype}, which this client does not read`);
  }
}

let serviceDefinition: grpc.ServiceClientConstructor | undefined;

/** The GRPCInferenceService from our proto, loaded once; int64 values arrive as numbers. */
export function inferenceServiceConstructor(): grpc.ServiceClientConstructor {
  if (!serviceDefinition) {
    const definition = protoLoader.loadSync(join(__dirname, 'grpc_service.proto'), { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } };
    serviceDefinition = loaded.inference.GRPCInferenceService;
  }
  return serviceDefinition;
}

/**
 * This client never cancels its own calls, so CANCELLED means the server dropped the call (killed or
 * restarted mid-request): as retryable as UNAVAILABLE, and inference requests are idempotent.
 */
function isRetryable(code: number): boolean {
  return code === grpc.status.UNAVAILABLE || code === grpc.status.CANCELLED;
}

function kindOf(code: number): InferenceErrorKind {
  if (isRetryable(code)) return 'unavailable';
  if (code === grpc.status.DEADLINE_EXCEEDED) return 'deadline';
  if (code === grpc.status.NOT_FOUND) return 'not-found';
  if (code === grpc.status.INVALID_ARGUMENT || code === grpc.status.FAILED_PRECONDITION || code === grpc.status.OUT_OF_RANGE) return 'invalid';
  return 'server';
}

type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, response: unknown) => void) => void;

export class KServeGrpcClient {
  private readonly client: grpc.Client;
  private readonly address: string;

  constructor(private readonly target: GrpcTarget) {
    const Service = inferenceServiceConstructor();
    this.address = `${target.host}:${target.port}`;
    const credentials = target.tls
      ? grpc.credentials.createSsl(target.tls.ca ?? null, target.tls.key ?? null, target.tls.cert ?? null)
      : grpc.credentials.createInsecure();
    const maxBytes = target.maxMessageBytes ?? 256 * 1024 * 1024;
    const options: grpc.ChannelOptions = {
      'grpc.max_send_message_length': maxBytes,
      'grpc.max_receive_message_length': maxBytes,
      ...(target.tls?.servername ? { 'grpc.ssl_target_name_override': target.tls.servername } : {}),
    };
    this.client = new Service(this.address, credentials, options);
  }

  private async call<T>(method: string, request: unknown): Promise<T> {
    const retries = this.target.retries ?? 3;
    const base = this.target.retryBaseMs ?? 200;
    for (let attempt = 0; ; attempt++) {
      try {
        return await new Promise<T>((resolve, reject) => {
          const deadline = new Date(Date.now() + (this.target.deadlineMs ?? 60000));
          const fn = (this.client as unknown as Record<string, UnaryMethod>)[method].bind(this.client);
          fn(request, new grpc.Metadata(), { deadline }, (err, response) => (err ? reject(err) : resolve(response as T)));
        });
      } catch (err) {
        const code = (err as grpc.ServiceError).code ?? grpc.status.UNKNOWN;
        const details = (err as grpc.ServiceError).details || (err as Error).message;
        if (isRetryable(code) && attempt < retries) {
          await new Promise((r) => setTimeout(r, base * 2 ** attempt));
          continue;
        }
        const kind = kindOf(code);
        const what =
          kind === 'unavailable' ? `the inference server at ${this.address} is unreachable (${details})${retries ? `, after ${retries} retr${retries === 1 ? 'y' : 'ies'}` : ''}`
          : kind === 'deadline' ? `${method} at ${this.address} exceeded its deadline of ${this.target.deadlineMs ?? 60000} ms`
          : `${method} at ${this.address} failed: ${details}`;
        throw new InferenceError(kind, what, code);
      }
    }
  }

  async serverLive(): Promise<boolean> {
    return (await this.call<{ live: boolean }>('ServerLive', {})).live;
  }

  async serverReady(): Promise<boolean> {
    return (await this.call<{ ready: boolean }>('ServerReady', {})).ready;
  }

  async modelReady(name: string, version = ''): Promise<boolean> {
    return (await this.call<{ ready: boolean }>('ModelReady', { name, version })).ready;
  }

  async serverMetadata(): Promise<{ name: string; version: string; extensions: string[] }> {
    return this.call('ServerMetadata', {});
  }

  async modelMetadata(name: string, version = ''): Promise<ModelMetadata> {
    const m = await this.call<{ name: string; versions: string[]; platform: string; inputs: Array<{ name: string; datatype: string; shape: Array<number | string> }>; outputs: Array<{ name: string; datatype: string; shape: Array<number | string> }> }>('ModelMetadata', { name, version });
    const tensors = (list: typeof m.inputs) => list.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(Number) }));
    return { name: m.name, versions: m.versions, platform: m.platform, inputs: tensors(m.inputs), outputs: tensors(m.outputs) };
  }

  /** One ModelInfer call; inputs travel as raw little-endian contents. */
  async infer(request: { model: string; version?: string; id?: string; inputs: NamedTensor[]; outputs?: string[] }): Promise<NamedTensor[]> {
    for (const input of request.inputs) {
      const expected = input.shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[input.datatype];
      if (input.data.byteLength !== expected) {
        throw new InferenceError('invalid', `input ${input.name}: ${input.data.byteLength} bytes do not fill the shape [${input.shape.join(', ')}] of ${input.datatype} (${expected} bytes)`);
      }
    }
    const response = await this.call<{
      outputs: Array<{ name: string; datatype: string; shape: Array<number | string>; contents?: TypedContents | null }>;
      raw_output_contents: Buffer[];
    }>('ModelInfer', {
      model_name: request.model,
      model_version: request.version ?? '',
      id: request.id ?? '',
      inputs: request.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
      outputs: (request.outputs ?? []).map((name) => ({ name })),
      raw_input_contents: request.inputs.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
    });
    return response.outputs.map((o, i) => {
      const raw = response.raw_output_contents[i];
      const data = raw && raw.length > 0 ? typedArrayOf(o.datatype, raw) : fromTypedContents(o.datatype, o.contents ?? {});
      return { name: o.name, datatype: o.datatype as TensorDatatype, shape: o.shape.map(Number), data };
    });
  }

  close(): void {
    this.client.close();
  }
}

/**
 * A KServe v2 inference client over gRPC (Triton's GRPCInferenceService): health, model metadata and
 * inference with raw tensor contents. Deadlines are per call; UNAVAILABLE (server starting, restarting
 * or briefly unreachable) is retried with exponential backoff, every other failure is reported at once
 * as an InferenceError whose `kind` a caller can act on.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  type ServerTarget, InferenceError, type InferenceErrorKind, type KServeClient, type ModelMetadata, type NamedTensor, type TensorData, type TensorDatatype,
  bytesOf, checkInputSizes, typedArrayOf,
} from './types';

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

export class KServeGrpcClient implements KServeClient {
  private readonly client: grpc.Client;
  private readonly address: string;

  constructor(private readonly target: ServerTarget) {
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
    checkInputSizes(request.inputs);
    const response = await this.call<{
      outputs: Array<{ name: string; datatype: string; shape: Array<number | string>; contents?: TypedContents | null }>;
      raw_output_contents: Buffer[];
    }>('ModelInfer', {
      model_name: request.model,
      model_version: request.version ?? '',
      id: request.id ?? '',
      inputs: request.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
      outputs: (request.outputs ?? []).map((name) => ({ name })),
      raw_input_contents: request.inputs.map((t) => bytesOf(t.data)),
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

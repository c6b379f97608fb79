import * as grpc from '@grpc/grpc-js';
import { type ModelMetadata, type NamedTensor, type TensorDatatype, inferenceServiceConstructor } from '../../lib/infer/kserve/grpc-client';

/** A model the test server serves: its metadata, whether it is ready, and how it computes. */
export interface ServedModel {
  metadata: ModelMetadata;
  ready: boolean;
  run(inputs: NamedTensor[]): Promise<NamedTensor[]>;
}

export interface KServeTestServer {
  port: number;
  models: Map<string, ServedModel>;
  /** Milliseconds every ModelInfer waits before answering (to provoke deadlines). */
  inferDelayMs: number;
  /** Called when a ModelInfer arrives (to kill the server mid-request). */
  onInfer?: () => void;
  requests: number;
  stop(): Promise<void>;
  kill(): void;
}

type Callback = grpc.sendUnaryData<unknown>;
type Call<T> = grpc.ServerUnaryCall<T, unknown>;

function fail(callback: Callback, code: grpc.status, details: string): void {
  callback({ code, details, name: 'Error', message: details, metadata: new grpc.Metadata() });
}

function tensorOf(datatype: string, shape: number[], raw: Buffer): NamedTensor['data'] {
  const buffer = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
  if (datatype === 'FP32') return new Float32Array(buffer);
  if (datatype === 'INT64') return new BigInt64Array(buffer);
  if (datatype === 'UINT8') return new Uint8Array(buffer);
  throw new Error(`the test server reads FP32, INT64 and UINT8, not ${datatype} (shape ${shape.join('×')})`);
}

/**
 * A real KServe v2 gRPC server on 127.0.0.1 (grpc-js, our proto), for the client's tests: it checks
 * requests against the model metadata as Triton does and answers with raw output contents. `port` 0
 * takes a free port; a given port lets a test restart the server where a client expects it.
 */
export async function startKServeTestServer(models: Record<string, ServedModel>, port = 0): Promise<KServeTestServer> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 512 * 1024 * 1024, 'grpc.max_send_message_length': 512 * 1024 * 1024 });
  const state: KServeTestServer = {
    port: 0,
    models: new Map(Object.entries(models)),
    inferDelayMs: 0,
    requests: 0,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    kill: () => server.forceShutdown(),
  };
  const model = (name: string, callback: Callback): ServedModel | undefined => {
    const found = state.models.get(name);
    if (!found) fail(callback, grpc.status.NOT_FOUND, `Request for unknown model: '${name}' is not found`);
    return found;
  };
  server.addService(inferenceServiceConstructor().service, {
    ServerLive: (_call: Call<unknown>, callback: Callback) => callback(null, { live: true }),
    ServerReady: (_call: Call<unknown>, callback: Callback) => callback(null, { ready: [...state.models.values()].every((m) => m.ready) }),
    ServerMetadata: (_call: Call<unknown>, callback: Callback) => callback(null, { name: 'clara-test-kserve', version: '2', extensions: ['model_repository'] }),
    ModelReady: (call: Call<{ name: string }>, callback: Callback) => {
      const found = model(call.request.name, callback);
      if (found) callback(null, { ready: found.ready });
    },
    ModelMetadata: (call: Call<{ name: string }>, callback: Callback) => {
      const found = model(call.request.name, callback);
      if (found) callback(null, found.metadata);
    },
    ModelInfer: async (call: Call<{ model_name: string; id: string; inputs: Array<{ name: string; datatype: string; shape: number[] }>; raw_input_contents: Buffer[] }>, callback: Callback) => {
      state.requests++;
      state.onInfer?.();
      const request = call.request;
      const found = model(request.model_name, callback);
      if (!found) return;
      if (!found.ready) return fail(callback, grpc.status.UNAVAILABLE, `Request for unknown model: '${request.model_name}' has no available versions`);
      const inputs: NamedTensor[] = [];
      for (const [i, input] of request.inputs.entries()) {
        const declared = found.metadata.inputs.find((t) => t.name === input.name);
        if (!declared) return fail(callback, grpc.status.INVALID_ARGUMENT, `unexpected inference input '${input.name}' for model '${request.model_name}'`);
        const shape = input.shape.map(Number);
        if (declared.shape.length !== shape.length || declared.shape.some((d, k) => d !== -1 && d !== shape[k])) {
          return fail(callback, grpc.status.INVALID_ARGUMENT, `unexpected shape for input '${input.name}' for model '${request.model_name}'. Expected [${declared.shape.join(',')}], got [${shape.join(',')}]`);
        }
        inputs.push({ name: input.name, datatype: input.datatype as TensorDatatype, shape, data: tensorOf(input.datatype, shape, request.raw_input_contents[i]) });
      }
      if (state.inferDelayMs) await new Promise((r) => setTimeout(r, state.inferDelayMs));
      try {
        const outputs = await found.run(inputs);
        callback(null, {
          model_name: request.model_name,
          model_version: found.metadata.versions[0] ?? '1',
          id: request.id,
          outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape })),
          raw_output_contents: outputs.map((o) => Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength)),
        });
      } catch (err) {
        fail(callback, grpc.status.INTERNAL, (err as Error).message);
      }
    },
  });
  state.port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
  return state;
}

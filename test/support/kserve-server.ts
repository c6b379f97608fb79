import { createServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { inferenceServiceConstructor } from '../../lib/infer/kserve/grpc-client';
import { type ModelMetadata, type NamedTensor, type TensorDatatype, typedArrayOf } from '../../lib/infer/kserve/types';

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

/** Triton's check of an input against the model's metadata: undefined when it fits, else the message. */
function shapeProblem(model: string, served: ServedModel, name: string, shape: number[]): string | undefined {
  const declared = served.metadata.inputs.find((t) => t.name === name);
  if (!declared) return `unexpected inference input '${name}' for model '${model}'`;
  if (declared.shape.length !== shape.length || declared.shape.some((d, k) => d !== -1 && d !== shape[k])) {
    return `unexpected shape for input '${name}' for model '${model}'. Expected [${declared.shape.join(',')}], got [${shape.join(',')}]`;
  }
  return undefined;
}

/**
 * A real KServe v2 gRPC server on 127.0.0.1 (grpc-js, our proto), for the client's tests: it checks
 * requests against the model metadata as Triton does and answers with raw output contents. `port` 0
 * takes a free port; a given port lets a test restart the server where a client expects it. With `tls`,
 * the server speaks TLS only (its certificate chain and key, PEM).
 */
export async function startKServeTestServer(models: Record<string, ServedModel>, port = 0, tls?: { cert: Buffer; key: Buffer }): Promise<KServeTestServer> {
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
        const shape = input.shape.map(Number);
        const problem = shapeProblem(request.model_name, found, input.name, shape);
        if (problem) return fail(callback, grpc.status.INVALID_ARGUMENT, problem);
        inputs.push({ name: input.name, datatype: input.datatype as TensorDatatype, shape, data: typedArrayOf(input.datatype, request.raw_input_contents[i]) });
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
    const credentials = tls ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false) : grpc.ServerCredentials.createInsecure();
    server.bindAsync(`127.0.0.1:${port}`, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
  return state;
}

/**
 * The same models over KServe v2 HTTP/REST with the binary tensor data extension, on 127.0.0.1: health,
 * model metadata and inference, answering binary outputs after the JSON header as Triton does.
 */
export async function startKServeHttpTestServer(models: Record<string, ServedModel>, port = 0): Promise<KServeTestServer> {
  const sockets = new Set<import('node:net').Socket>();
  const state: KServeTestServer = {
    port: 0,
    models: new Map(Object.entries(models)),
    inferDelayMs: 0,
    requests: 0,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
    kill: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
  const json = (res: import('node:http').ServerResponse, status: number, value: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const url = req.url ?? '';
      if (url === '/v2/health/live') return json(res, 200, {});
      if (url === '/v2/health/ready') return json(res, [...state.models.values()].every((m) => m.ready) ? 200 : 400, {});
      const m = /^\/v2\/models\/([^/]+)(?:\/versions\/[^/]+)?(\/ready|\/infer)?$/.exec(url);
      const name = m ? decodeURIComponent(m[1]) : '';
      const served = state.models.get(name);
      if (!m || !served) return json(res, 404, { error: `Request for unknown model: '${name}' is not found` });
      if (m[2] === '/ready') return json(res, served.ready ? 200 : 400, {});
      if (!m[2]) return json(res, 200, served.metadata);
      state.requests++;
      state.onInfer?.();
      if (!served.ready) return json(res, 503, { error: `Request for unknown model: '${name}' has no available versions` });
      const body = Buffer.concat(chunks);
      const headerLength = Number(req.headers['inference-header-content-length'] ?? body.length);
      const header = JSON.parse(body.subarray(0, headerLength).toString('utf8')) as { id?: string; inputs: Array<{ name: string; shape: number[]; datatype: string; parameters?: { binary_data_size?: number } }> };
      let offset = headerLength;
      const inputs: NamedTensor[] = [];
      for (const input of header.inputs) {
        const problem = shapeProblem(name, served, input.name, input.shape);
        if (problem) return json(res, 400, { error: problem });
        const size = input.parameters?.binary_data_size ?? 0;
        inputs.push({ name: input.name, datatype: input.datatype as TensorDatatype, shape: input.shape, data: typedArrayOf(input.datatype, body.subarray(offset, offset + size)) });
        offset += size;
      }
      if (state.inferDelayMs) await new Promise((r) => setTimeout(r, state.inferDelayMs));
      if (res.destroyed) return;
      const outputs = await served.run(inputs);
      const answer = Buffer.from(JSON.stringify({
        model_name: name,
        id: header.id,
        outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: o.data.byteLength } })),
      }));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'inference-header-content-length': answer.length });
      res.end(Buffer.concat([answer, ...outputs.map((o) => Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength))]));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  state.port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as import('node:net').AddressInfo).port));
  });
  return state;
}

/**
 * A KServe v2 inference client over HTTP/REST with Triton's binary tensor data extension: the JSON
 * inference header is followed by the raw tensors in the same body, and `Inference-Header-Content-Length`
 * says where the JSON ends. Clara pipeline YAML names Triton's HTTP port (8000), so this is what such a
 * pipeline talks to; the gRPC client is the default.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  InferenceError, type KServeClient, type ModelMetadata, type NamedTensor, type ServerTarget, type TensorDatatype, bytesOf, checkInputSizes, typedArrayOf,
} from './types';

const HEADER_LENGTH = 'inference-header-content-length';

interface HttpAnswer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** Errors that mean "the server is not there (yet)": retried like gRPC's UNAVAILABLE. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

export class KServeHttpClient implements KServeClient {
  private readonly origin: string;

  constructor(private readonly target: ServerTarget) {
    this.origin = `${target.tls ? 'https' : 'http'}://${target.host}:${target.port}`;
  }

  private once(method: 'GET' | 'POST', path: string, body?: Buffer, headers: Record<string, string | number> = {}): Promise<HttpAnswer> {
    const deadlineMs = this.target.deadlineMs ?? 60000;
    return new Promise<HttpAnswer>((resolve, reject) => {
      const send = this.target.tls ? httpsRequest : httpRequest;
      const req = send(
        `${this.origin}${path}`,
        {
          method,
          headers: { ...headers, ...(body ? { 'content-length': body.length } : {}) },
          timeout: deadlineMs,
          ...(this.target.tls ? { ca: this.target.tls.ca, cert: this.target.tls.cert, key: this.target.tls.key, servername: this.target.tls.servername } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      const timer = setTimeout(() => req.destroy(Object.assign(new Error('deadline'), { code: 'DEADLINE' })), deadlineMs);
      req.on('close', () => clearTimeout(timer));
      req.on('timeout', () => req.destroy(Object.assign(new Error('deadline'), { code: 'DEADLINE' })));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** A call with retries on an unreachable server or 503, and errors sorted into InferenceError kinds. */
  private async call(method: 'GET' | 'POST', path: string, body?: Buffer, headers?: Record<string, string | number>): Promise<HttpAnswer> {
    const retries = this.target.retries ?? 3;
    const base = this.target.retryBaseMs ?? 200;
    for (let attempt = 0; ; attempt++) {
      let failure: InferenceError;
      try {
        const answer = await this.once(method, path, body, headers);
        if (answer.status !== 503) return answer;
        failure = new InferenceError('unavailable', `the inference server at ${this.origin} answered 503 Service Unavailable to ${method} ${path}: ${detailOf(answer)}`, 503);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (code === 'DEADLINE') throw new InferenceError('deadline', `${method} ${path} at ${this.origin} exceeded its deadline of ${this.target.deadlineMs ?? 60000} ms`);
        if (!UNREACHABLE.has(code)) throw new InferenceError('server', `${method} ${path} at ${this.origin} failed: ${(err as Error).message}`);
        failure = new InferenceError('unavailable', `the inference server at ${this.origin} is unreachable (${code})`);
      }
      if (attempt >= retries) {
        throw new InferenceError('unavailable', `${failure.message}${retries ? `, after ${retries} retr${retries === 1 ? 'y' : 'ies'}` : ''}`, failure.code);
      }
      await new Promise((r) => setTimeout(r, base * 2 ** attempt));
    }
  }

  /** The JSON error of a non-2xx answer, as the InferenceError its status means. */
  private failed(answer: HttpAnswer, what: string): InferenceError {
    const detail = detailOf(answer);
    const kind = answer.status === 404 ? 'not-found' : answer.status === 400 || answer.status === 422 ? 'invalid' : 'server';
    return new InferenceError(kind, `${what} at ${this.origin} failed (HTTP ${answer.status}): ${detail}`, answer.status);
  }

  /** KServe v2 health: 200 means yes; anything else (but an unreachable server) means no. */
  private async health(path: string): Promise<boolean> {
    const answer = await this.call('GET', path);
    if (answer.status === 404 && path.startsWith('/v2/models/')) throw this.failed(answer, `GET ${path}`);
    return answer.status === 200;
  }

  serverLive(): Promise<boolean> {
    return this.health('/v2/health/live');
  }

  serverReady(): Promise<boolean> {
    return this.health('/v2/health/ready');
  }

  modelReady(name: string, version = ''): Promise<boolean> {
    return this.health(`${modelPath(name, version)}/ready`);
  }

  async modelMetadata(name: string, version = ''): Promise<ModelMetadata> {
    const answer = await this.call('GET', modelPath(name, version));
    if (answer.status !== 200) throw this.failed(answer, 'ModelMetadata');
    const m = JSON.parse(answer.body.toString('utf8')) as ModelMetadata;
    return { name: m.name, versions: m.versions ?? [], platform: m.platform ?? '', inputs: m.inputs ?? [], outputs: m.outputs ?? [] };
  }

  async infer(request: { model: string; version?: string; id?: string; inputs: NamedTensor[]; outputs?: string[] }): Promise<NamedTensor[]> {
    checkInputSizes(request.inputs);
    const header = Buffer.from(
      JSON.stringify({
        ...(request.id ? { id: request.id } : {}),
        inputs: request.inputs.map((t) => ({ name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: t.data.byteLength } })),
        ...(request.outputs?.length ? { outputs: request.outputs.map((name) => ({ name, parameters: { binary_data: true } })) } : { parameters: { binary_data_output: true } }),
      }),
    );
    const body = Buffer.concat([header, ...request.inputs.map((t) => bytesOf(t.data))]);
    const answer = await this.call('POST', `${modelPath(request.model, request.version ?? '')}/infer`, body, {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': header.length,
    });
    if (answer.status !== 200) throw this.failed(answer, 'ModelInfer');
    const jsonLength = Number(answer.headers[HEADER_LENGTH] ?? answer.body.length);
    const response = JSON.parse(answer.body.subarray(0, jsonLength).toString('utf8')) as {
      outputs: Array<{ name: string; datatype: TensorDatatype; shape: number[]; parameters?: { binary_data_size?: number }; data?: number[] }>;
    };
    let offset = jsonLength;
    return response.outputs.map((o) => {
      const size = o.parameters?.binary_data_size;
      if (size === undefined) {
        // Answered as JSON: the flattened values.
        const bytes = bytesOf(o.datatype === 'FP64' ? Float64Array.from(o.data ?? []) : Float32Array.from(o.data ?? []));
        return { name: o.name, datatype: o.datatype === 'FP64' ? 'FP64' : 'FP32', shape: o.shape, data: typedArrayOf(o.datatype === 'FP64' ? 'FP64' : 'FP32', bytes) };
      }
      if (offset + size > answer.body.length) throw new InferenceError('server', `ModelInfer at ${this.origin}: output ${o.name} claims ${size} bytes past the end of the answer`);
      const data = typedArrayOf(o.datatype, answer.body.subarray(offset, offset + size));
      offset += size;
      return { name: o.name, datatype: o.datatype, shape: o.shape, data };
    });
  }

  close(): void {
    // Plain requests: nothing is held open between calls.
  }
}

/** The server's own words: KServe's JSON `{"error": …}`, or the start of whatever text it sent. */
function detailOf(answer: HttpAnswer): string {
  const text = answer.body.toString('utf8').slice(0, 500);
  try {
    return (JSON.parse(text) as { error?: string }).error ?? text;
  } catch {
    return text;
  }
}

function modelPath(name: string, version: string): string {
  return `/v2/models/${encodeURIComponent(name)}${version ? `/versions/${encodeURIComponent(version)}` : ''}`;
}

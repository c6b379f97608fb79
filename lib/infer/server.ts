/**
 * Where models run, behind one interface: in-process (onnxruntime-node over a Triton-layout repository)
 * or on a Triton / KServe v2 server (gRPC or HTTP). The clara-triton-server config node holds one of
 * these; the CLI builds one from its options.
 */
import { resolve } from 'node:path';
import type { KServeGrpcClient } from './kserve/grpc-client';
import { KServeHttpClient } from './kserve/http-client';
import { InferenceError, type KServeClient, type ModelMetadata, type ServerTarget } from './kserve/types';
import { type EmbeddedModel, type EmbeddedOptions, openEmbeddedModel } from './model-repository';
import type { BatchRunner } from './segment';

export type ServerSettings =
  | ({ mode: 'embedded'; repository: string } & EmbeddedOptions)
  | ({ mode: 'triton'; protocol: 'grpc' | 'http' } & ServerTarget);

export interface ModelHandle {
  metadata: ModelMetadata;
  run: BatchRunner;
}

export interface ServerHealth {
  live: boolean;
  ready: boolean;
  /** Only when a model was asked about. */
  modelReady?: boolean;
  /** Why not live or not ready, in words. */
  detail?: string;
}

export interface InferenceServer {
  /** "embedded onnxruntime, repository /models" or "Triton gRPC 10.0.0.7:8001". */
  readonly description: string;
  health(model?: string, version?: string): Promise<ServerHealth>;
  /** The model's metadata and a runner; refused (InferenceError) when the model is unknown or not ready. */
  model(name: string, version?: string): Promise<ModelHandle>;
  close(): Promise<void>;
}

class EmbeddedServer implements InferenceServer {
  readonly description: string;
  /** Sessions stay open between jobs: creating one costs far more than a run. */
  private readonly sessions = new Map<string, Promise<EmbeddedModel>>();

  constructor(private readonly settings: Extract<ServerSettings, { mode: 'embedded' }>) {
    this.description = `embedded onnxruntime, repository ${settings.repository}`;
  }

  private open(name: string, version?: string): Promise<EmbeddedModel> {
    const key = `${name}/${version ?? ''}`;
    let session = this.sessions.get(key);
    if (!session) {
      session = openEmbeddedModel(this.settings.repository, name, version || undefined, this.settings);
      // A failed open is not cached: the file may be fixed and the next job should try again.
      session.catch(() => this.sessions.delete(key));
      this.sessions.set(key, session);
    }
    return session;
  }

  async health(model?: string, version?: string): Promise<ServerHealth> {
    if (!model) return { live: true, ready: true };
    try {
      await this.open(model, version);
      return { live: true, ready: true, modelReady: true };
    } catch (err) {
      return { live: true, ready: true, modelReady: false, detail: (err as Error).message };
    }
  }

  async model(name: string, version?: string): Promise<ModelHandle> {
    let session: EmbeddedModel;
    try {
      session = await this.open(name, version);
    } catch (err) {
      throw new InferenceError('not-found', (err as Error).message);
    }
    return { metadata: session.metadata, run: (inputs) => session.run(inputs) };
  }

  async close(): Promise<void> {
    const open = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(open.map(async (s) => (await s.catch(() => undefined))?.close()));
  }
}

/** @grpc/grpc-js and its proto loader take about 0.1 s to load: only a gRPC server's first connection pays it, not Node-RED's start. */
function loadGrpcClient(): typeof KServeGrpcClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./kserve/grpc-client') as typeof import('./kserve/grpc-client')).KServeGrpcClient;
}

class RemoteServer implements InferenceServer {
  readonly description: string;
  private readonly client: KServeClient;

  constructor(settings: Extract<ServerSettings, { mode: 'triton' }>) {
    this.client = settings.protocol === 'grpc' ? new (loadGrpcClient())(settings) : new KServeHttpClient(settings);
    this.description = `Triton ${settings.protocol === 'grpc' ? 'gRPC' : 'HTTP'} ${settings.host}:${settings.port}${settings.tls ? ' (TLS)' : ''}`;
  }

  async health(model?: string, version?: string): Promise<ServerHealth> {
    try {
      const live = await this.client.serverLive();
      const ready = live && (await this.client.serverReady());
      if (!model) return { live, ready, detail: live ? (ready ? undefined : 'the server is not ready') : 'the server is not live' };
      const modelReady = live && (await this.client.modelReady(model, version));
      return { live, ready, modelReady, detail: modelReady ? undefined : `model ${model} is not ready` };
    } catch (err) {
      return { live: false, ready: false, modelReady: model ? false : undefined, detail: (err as Error).message };
    }
  }

  async model(name: string, version = ''): Promise<ModelHandle> {
    if (!(await this.client.modelReady(name, version))) throw new InferenceError('unavailable', `model ${name}${version ? ` version ${version}` : ''} is not ready on ${this.description}`);
    const metadata = await this.client.modelMetadata(name, version);
    return { metadata, run: (inputs) => this.client.infer({ model: name, version, inputs }) };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

export function connectInferenceServer(settings: ServerSettings): InferenceServer {
  return settings.mode === 'embedded' ? new EmbeddedServer(settings) : new RemoteServer(settings);
}

/**
 * Settings from a URL: grpc://host[:8001], http(s)://host[:8000] (Triton's default ports), or a folder
 * path for an embedded model repository.
 */
export function serverSettingsFromUrl(location: string, options: { deadlineMs?: number } = {}): ServerSettings {
  const m = /^(grpc|grpcs|http|https):\/\/([^/:]+|\[[^\]]+\])(?::(\d+))?\/?$/.exec(location);
  if (!m) {
    if (/^[a-z]+:\/\//i.test(location)) throw new Error(`${location} is not grpc://host:port or http://host:port`);
    return { mode: 'embedded', repository: location };
  }
  const [, scheme, host, port] = m;
  const grpc = scheme.startsWith('grpc');
  return {
    mode: 'triton',
    protocol: grpc ? 'grpc' : 'http',
    host: host.replace(/^\[|\]$/g, ''),
    port: Number(port ?? (grpc ? 8001 : 8000)),
    tls: scheme.endsWith('s') ? {} : undefined,
    deadlineMs: options.deadlineMs,
  };
}

/** The clara-triton-server form's fields, as Node-RED stores them (numbers may arrive as strings). */
export interface ServerFields {
  mode?: string;
  protocol?: string;
  host?: string;
  port?: string | number;
  tls?: string;
  deadline?: string | number;
  maxMessageMb?: string | number;
  retries?: string | number;
  repository?: string;
  threads?: string | number;
  executionProvider?: string;
}

/** The bundled demo model repository (models/ in the package), used when an embedded server names none. */
export const BUNDLED_MODEL_REPOSITORY = resolve(__dirname, '..', '..', '..', 'models');

function integer(value: unknown, fallback: number, min: number, max: number, what: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${what} must be an integer from ${min} to ${max}, not ${JSON.stringify(value)}`);
  return n;
}

/** Settings from the editor's values; `tls` is the tls-config node's options, when one is chosen. */
/**
 * Settings from a form's fields (the clara-triton-server editor): checked, with defaults (the bundled
 * model repository; Triton's ports 8001/8000). `tls` holds the PEM options of a TLS configuration; a
 * relative repository is taken from `baseDir`.
 */
export function serverSettingsFromFields(config: ServerFields, tls: ServerTarget['tls'], baseDir: string): ServerSettings {
  const mode = config.mode || 'embedded';
  if (mode === 'embedded') {
    const provider = config.executionProvider || 'cpu';
    if (provider !== 'cpu' && provider !== 'cuda') throw new Error(`execution provider must be cpu or cuda, not ${JSON.stringify(provider)}`);
    return {
      mode: 'embedded',
      repository: config.repository ? resolve(baseDir, config.repository) : BUNDLED_MODEL_REPOSITORY,
      intraOpThreads: integer(config.threads, 0, 0, 256, 'threads'),
      executionProvider: provider,
    };
  }
  if (mode !== 'triton') throw new Error(`mode must be embedded or triton, not ${JSON.stringify(mode)}`);
  const protocol = config.protocol || 'grpc';
  if (protocol !== 'grpc' && protocol !== 'http') throw new Error(`protocol must be grpc or http, not ${JSON.stringify(protocol)}`);
  const host = (config.host ?? '').trim();
  if (!host) throw new Error('a Triton server needs a host');
  return {
    mode: 'triton',
    protocol,
    host,
    port: integer(config.port, protocol === 'grpc' ? 8001 : 8000, 1, 65535, 'port'),
    tls,
    deadlineMs: integer(config.deadline, 120, 1, 86400, 'deadline (s)') * 1000,
    maxMessageBytes: integer(config.maxMessageMb, 256, 1, 2048, 'largest message (MiB)') * 1024 * 1024,
    retries: integer(config.retries, 3, 0, 20, 'retries'),
  };
}


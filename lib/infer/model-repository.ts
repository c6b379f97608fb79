/**
 * Models in a Triton-layout repository (`<repo>/<model>/<version>/model.onnx`, optional
 * `<repo>/<model>/config.pbtxt`), run in-process with onnxruntime-node: the embedded mode that works on a
 * fresh machine with no Triton. The same repository can be handed to a Triton server unchanged.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelMetadata, NamedTensor, TensorDatatype, TensorMetadata } from './kserve/types';
import { openWorkerSession } from './ort-host';

/** What this package reads from a Triton model configuration (protobuf text format). */
export interface ModelConfig {
  name?: string;
  platform?: string;
  maxBatchSize: number;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export class ModelRepositoryError extends Error {}

type TextValue = string | number | TextMessage;
interface TextMessage {
  [field: string]: TextValue[];
}

/**
 * Parses protobuf text format as Triton's config.pbtxt uses it: `field: value`, `field { … }`,
 * `field: [ a, b ]`, `field [ { … }, { … } ]`, comments. Every field maps to the list of its values.
 */
export function parseTextProto(text: string): TextMessage {
  const tokens = [...text.replace(/#[^\n]*/g, '').matchAll(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{}[\]:,;]|[^\s{}[\]:,;"']+/g)].map((m) => m[0]);
  let at = 0;
  const expect = (token: string) => {
    if (tokens[at] !== token) throw new ModelRepositoryError(`config.pbtxt: expected "${token}" but found ${tokens[at] === undefined ? 'the end' : `"${tokens[at]}"`}`);
    at++;
  };
  const scalar = (): string | number => {
    const token = tokens[at++];
    if (token === undefined) throw new ModelRepositoryError('config.pbtxt: a value is missing at the end');
    if (token.startsWith('"') || token.startsWith("'")) return JSON.parse(token.startsWith("'") ? `"${token.slice(1, -1).replace(/"/g, '\\"')}"` : token) as string;
    const n = Number(token);
    return Number.isNaN(n) ? token : n;
  };
  const message = (closing: string | undefined): TextMessage => {
    const out: TextMessage = {};
    while (at < tokens.length && tokens[at] !== closing) {
      const field = tokens[at++];
      if (!/^[A-Za-z_][\w.]*$/.test(field)) throw new ModelRepositoryError(`config.pbtxt: "${field}" is not a field name`);
      if (tokens[at] === ':') at++;
      const values: TextValue[] = (out[field] ??= []);
      const one = (): TextValue => {
        if (tokens[at] === '{') {
          at++;
          const nested = message('}');
          expect('}');
          return nested;
        }
        return scalar();
      };
      if (tokens[at] === '[') {
        at++;
        while (tokens[at] !== ']') {
          if (at >= tokens.length) throw new ModelRepositoryError(`config.pbtxt: the list of ${field} is not closed`);
          values.push(one());
          if (tokens[at] === ',') at++;
        }
        at++;
      } else {
        values.push(one());
      }
      if (tokens[at] === ',' || tokens[at] === ';') at++;
    }
    return out;
  };
  const root = message(undefined);
  if (at < tokens.length) throw new ModelRepositoryError(`config.pbtxt: unexpected "${tokens[at]}"`);
  return root;
}

const TRITON_TYPES: Record<string, TensorDatatype> = {
  TYPE_FP32: 'FP32', TYPE_FP64: 'FP64', TYPE_INT8: 'INT8', TYPE_INT16: 'INT16', TYPE_INT32: 'INT32', TYPE_INT64: 'INT64',
  TYPE_UINT8: 'UINT8', TYPE_UINT16: 'UINT16', TYPE_UINT32: 'UINT32', TYPE_BOOL: 'BOOL',
};

/** A Triton model configuration's name, platform, batching and tensors; shapes as KServe metadata reports them. */
export function parseModelConfig(text: string): ModelConfig {
  const root = parseTextProto(text);
  const first = <T extends TextValue>(m: TextMessage, field: string): T | undefined => m[field]?.[0] as T | undefined;
  const maxBatchSize = Number(first(root, 'max_batch_size') ?? 0);
  const tensors = (field: string): TensorMetadata[] =>
    (root[field] ?? []).map((value) => {
      const t = value as TextMessage;
      const name = first<string>(t, 'name');
      const type = String(first(t, 'data_type') ?? '');
      if (!name) throw new ModelRepositoryError(`config.pbtxt: an ${field} has no name`);
      if (!TRITON_TYPES[type]) throw new ModelRepositoryError(`config.pbtxt: ${field} ${name} has data_type ${type || '(none)'}, which this package does not handle`);
      const dims = (t.dims ?? []).map(Number);
      // With batching, Triton's dims leave the batch dimension out; KServe metadata puts it back as -1.
      return { name, datatype: TRITON_TYPES[type], shape: maxBatchSize > 0 ? [-1, ...dims] : dims };
    });
  return { name: first<string>(root, 'name'), platform: first<string>(root, 'platform'), maxBatchSize, inputs: tensors('input'), outputs: tensors('output') };
}

export interface EmbeddedOptions {
  /** Threads inside one operator (0: onnxruntime decides). */
  intraOpThreads?: number;
  /** Threads across operators (0: onnxruntime decides). */
  interOpThreads?: number;
  /** 'cuda' needs onnxruntime's CUDA provider installed; otherwise the session cannot be created. */
  executionProvider?: 'cpu' | 'cuda';
}

export interface EmbeddedModel {
  metadata: ModelMetadata;
  version: string;
  file: string;
  run(inputs: NamedTensor[]): Promise<NamedTensor[]>;
  close(): Promise<void>;
}

/** The highest numeric version folder holding a model.onnx, or the one asked for. */
function versionFolder(modelDir: string, version: string | undefined): string {
  if (version) {
    if (!existsSync(join(modelDir, version, 'model.onnx'))) throw new ModelRepositoryError(`${modelDir} has no version ${version} (no ${join(version, 'model.onnx')})`);
    return version;
  }
  const versions = existsSync(modelDir)
    ? readdirSync(modelDir).filter((v) => /^\d+$/.test(v) && statSync(join(modelDir, v)).isDirectory() && existsSync(join(modelDir, v, 'model.onnx')))
    : [];
  if (versions.length === 0) throw new ModelRepositoryError(`${modelDir} holds no <version>/model.onnx`);
  return versions.sort((a, b) => Number(b) - Number(a))[0];
}

const ORT_TYPES: Partial<Record<TensorDatatype, string>> = { FP32: 'float32', FP64: 'float64', INT8: 'int8', INT16: 'int16', INT32: 'int32', INT64: 'int64', UINT8: 'uint8', UINT16: 'uint16', UINT32: 'uint32', BOOL: 'bool' };
const KSERVE_TYPES: Record<string, TensorDatatype> = Object.fromEntries(Object.entries(ORT_TYPES).map(([k, v]) => [v, k as TensorDatatype]));

/** Opens `<repository>/<model>` with onnxruntime-node. Tensor names, types and dims come from config.pbtxt, else from the ONNX file. */
export async function openEmbeddedModel(repository: string, model: string, version?: string, options: EmbeddedOptions = {}): Promise<EmbeddedModel> {
  if (!/^[\w.-]+$/.test(model) || model === '.' || model === '..') throw new ModelRepositoryError(`"${model}" is not a model name`);
  const modelDir = join(repository, model);
  const chosen = versionFolder(modelDir, version);
  const file = join(modelDir, chosen, 'model.onnx');
  const configFile = join(modelDir, 'config.pbtxt');
  const config = existsSync(configFile) ? parseModelConfig(readFileSync(configFile, 'utf8')) : undefined;
  // In the inference worker (ort-host.ts), which loads onnxruntime's native binding on first use: the
  // binding is large, and the Triton mode never needs it.
  const session = await openWorkerSession(file, {
    intraOpNumThreads: options.intraOpThreads ?? 0,
    interOpNumThreads: options.interOpThreads ?? 0,
    executionProviders: [options.executionProvider === 'cuda' ? 'cuda' : 'cpu'],
  });
  const fromSession = (names: readonly string[], metadata: readonly unknown[] | undefined): TensorMetadata[] =>
    names.map((name, i) => {
      const m = metadata?.[i] as { type?: string; shape?: Array<number | string> } | undefined;
      return { name, datatype: KSERVE_TYPES[m?.type ?? 'float32'] ?? 'FP32', shape: (m?.shape ?? []).map((d) => (typeof d === 'number' ? d : -1)) };
    });
  const inputs = config?.inputs.length ? config.inputs : fromSession(session.inputNames, session.inputMetadata);
  const outputs = config?.outputs.length ? config.outputs : fromSession(session.outputNames, session.outputMetadata);
  for (const t of inputs) if (!session.inputNames.includes(t.name)) throw new ModelRepositoryError(`config.pbtxt names input ${t.name}, but ${file} has ${session.inputNames.join(', ')}`);
  for (const t of outputs) if (!session.outputNames.includes(t.name)) throw new ModelRepositoryError(`config.pbtxt names output ${t.name}, but ${file} has ${session.outputNames.join(', ')}`);
  const metadata: ModelMetadata = { name: config?.name ?? model, versions: [chosen], platform: 'onnxruntime_onnx', inputs, outputs };
  return {
    metadata,
    version: chosen,
    file,
    async run(tensors) {
      const feeds = tensors.map((t) => {
        const type = ORT_TYPES[t.datatype];
        if (!type) throw new ModelRepositoryError(`onnxruntime cannot take ${t.datatype} input ${t.name}`);
        return { name: t.name, type, data: t.data, shape: t.shape };
      });
      const results = await session.run(
        feeds,
        outputs.map((o) => o.name),
      );
      return results.map((r) => ({ name: r.name, datatype: KSERVE_TYPES[r.type] ?? 'FP32', shape: r.dims, data: r.data as NamedTensor['data'] }));
    },
    close: () => session.release(),
  };
}

/**
 * Clara Deploy pipeline definitions (api-version 0.3.0 and 0.4.0, the untyped pipelines that both Argo and
 * Clara orchestration ran), read safely and checked: a size limit before parsing, a cap on alias
 * expansion (a "billion laughs" document is refused, not expanded), unique keys, and every problem reported
 * with the line and column it is at. Nothing here knows about Node-RED: mapping.ts turns the result into a
 * flow.
 */
import { type Document, Lexer, LineCounter, type Node as YamlNode, parseDocument } from 'yaml';

export const SUPPORTED_API_VERSIONS = ['0.3.0', '0.4.0'] as const;
export type ApiVersion = (typeof SUPPORTED_API_VERSIONS)[number];

/** Where a value is in the YAML text, 1-based. */
export interface SourcePosition {
  line: number;
  column: number;
}

export interface PipelineContainer {
  image: string;
  tag?: string;
  command?: string[];
}

export interface PipelineInput {
  /** The operator whose output this is; absent: the pipeline's payload (the study sent in). */
  from?: string;
  /** Which of that operator's outputs; may be left out when it has only one. */
  name?: string;
  path: string;
}

export interface PipelineOutput {
  name?: string;
  path: string;
}

export interface PipelineRequests {
  cpu?: number;
  gpu?: number;
  /** MB. */
  memory?: number;
}

export interface PipelineService {
  name: string;
  container: PipelineContainer;
  requests?: PipelineRequests;
  /** http connections: the environment variable that receives the service's address, and its port. */
  http: Array<{ name: string; port: number }>;
}

export interface PipelineOperator {
  name: string;
  description?: string;
  container: PipelineContainer;
  variables: Record<string, string>;
  requests?: PipelineRequests;
  inputs: PipelineInput[];
  outputs: PipelineOutput[];
  services: PipelineService[];
  position: SourcePosition;
}

export interface Pipeline {
  apiVersion: ApiVersion;
  name: string;
  orchestrator?: string;
  pullSecrets: string[];
  operators: PipelineOperator[];
  /** Things read but not used (unknown keys, api-version 0.5+ fields): worth telling the user, not fatal. */
  warnings: string[];
}

export class PipelineError extends Error {
  constructor(
    message: string,
    readonly position?: SourcePosition,
  ) {
    super(position ? `line ${position.line}, column ${position.column}: ${message}` : message);
    this.name = 'PipelineError';
  }
}

export interface PipelineLimits {
  /** Largest document accepted, in bytes (default 1 MiB: Clara pipelines are a few KB). */
  maxBytes?: number;
  /** Most alias expansions while building values (default 100). */
  maxAliasCount?: number;
}

const OPERATOR_KEYS = new Set(['name', 'description', 'container', 'variables', 'requests', 'input', 'output', 'services']);
const TOP_KEYS = new Set(['api-version', 'name', 'orchestrator', 'pull-secrets', 'operators']);

/**
 * Deep [ ] / { } nesting is refused before the YAML parser sees it: the parser recurses per level, and
 * a few thousand levels exhaust the stack or, parsed again, V8's regular-expression memory, which ends
 * the whole process (and Node-RED with it) instead of throwing.
 */
const MAX_FLOW_NESTING = 64;

/** Markers the YAML lexer yields that stand for no source text (document, scalar and flow-end markers, BOM). */
const LEXER_MARKERS = new Set(['\u0002', '\u0018', '\u001f', '\ufeff']);

/**
 * The deepest flow-collection nesting and where it first goes past the limit, from the YAML lexer's tokens
 * (it is iterative, so it does not recurse; brackets inside scalars and comments are not tokens of their own).
 */
function flowNesting(text: string): { depth: number; at?: SourcePosition } {
  let depth = 0;
  let deepest = 0;
  let offset = 0;
  let over: number | undefined;
  for (const token of new Lexer().lex(text)) {
    if (token === '[' || token === '{') {
      if (++depth > deepest) deepest = depth;
      if (depth === MAX_FLOW_NESTING + 1 && over === undefined) over = offset;
    } else if ((token === ']' || token === '}') && depth > 0) depth--;
    if (!LEXER_MARKERS.has(token)) offset += token.length;
  }
  if (over === undefined) return { depth: deepest };
  const before = text.slice(0, over);
  const line = before.split('\n').length;
  return { depth: deepest, at: { line, column: over - before.lastIndexOf('\n') } };
}

/** Reads and checks a pipeline document. Throws PipelineError, with the position, on the first problem. */
export function parsePipeline(text: string, limits: PipelineLimits = {}): Pipeline {
  const maxBytes = limits.maxBytes ?? 1024 * 1024;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) throw new PipelineError(`the document is ${(bytes / 2 ** 20).toFixed(1)} MiB; a pipeline may be at most ${(maxBytes / 2 ** 20).toFixed(1)} MiB`);
  const deepest = flowNesting(text);
  if (deepest.depth > MAX_FLOW_NESTING) throw new PipelineError(`flow collections ([ ] and { }) nested more than ${MAX_FLOW_NESTING} deep; a pipeline needs a few`, deepest.at);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true });
  const at = (offset: number | undefined): SourcePosition | undefined => {
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  if (doc.errors.length > 0) {
    const first = doc.errors[0];
    throw new PipelineError(`not valid YAML: ${first.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`, at(first.pos[0]));
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: limits.maxAliasCount ?? 100 });
  } catch (err) {
    throw new PipelineError(`the document expands too many aliases (${(err as Error).message}); it is refused rather than expanded`);
  }
  return checkPipeline(value, doc, at);
}

type PositionOf = (path: Array<string | number>) => SourcePosition | undefined;

function checkPipeline(value: unknown, doc: Document, at: (offset: number | undefined) => SourcePosition | undefined): Pipeline {
  const positionOf: PositionOf = (path) => {
    // The deepest node that exists along the path: a missing key is reported where its parent is.
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as YamlNode | undefined;
      if (node && typeof node === 'object' && 'range' in node && node.range) return at(node.range[0]);
    }
    return { line: 1, column: 1 };
  };
  const fail = (path: Array<string | number>, message: string): never => {
    throw new PipelineError(message, positionOf(path));
  };
  const warnings: string[] = [];
  if (!isPlainObject(value)) fail([], 'a pipeline is a mapping with api-version, name and operators');
  const top = value as Record<string, unknown>;
  for (const key of Object.keys(top)) if (!TOP_KEYS.has(key)) warnings.push(`line ${positionOf([key])?.line}: top-level key "${key}" is not used`);
  const apiVersion = normaliseApiVersion(top['api-version']);
  if (!apiVersion) {
    fail(['api-version'], `api-version ${JSON.stringify(top['api-version'] ?? null)} is not supported: this importer reads ${SUPPORTED_API_VERSIONS.join(' and ')} (untyped pipelines)`);
  }
  const name = text(top.name);
  if (!name) fail(['name'], 'the pipeline needs a name');
  const operatorsValue = top.operators;
  if (!Array.isArray(operatorsValue) || operatorsValue.length === 0) fail(['operators'], 'the pipeline needs a list of operators');
  const operators = (operatorsValue as unknown[]).map((raw, index) => checkOperator(raw, ['operators', index], fail, positionOf, warnings));
  const byName = new Map<string, PipelineOperator>();
  operators.forEach((op, index) => {
    if (byName.has(op.name)) fail(['operators', index, 'name'], `two operators are named "${op.name}" (the first at line ${byName.get(op.name)!.position.line})`);
    byName.set(op.name, op);
  });
  operators.forEach((op, index) => {
    op.inputs.forEach((input, k) => {
      if (input.from === undefined) return;
      const source = byName.get(input.from);
      if (!source) fail(['operators', index, 'input', k, 'from'], `operator "${op.name}" takes input from "${input.from}", which is not an operator of this pipeline`);
      if (input.name !== undefined && !source!.outputs.some((o) => o.name === input.name)) {
        fail(['operators', index, 'input', k, 'name'], `operator "${input.from}" has no output named "${input.name}" (it has ${source!.outputs.map((o) => o.name ?? '(unnamed)').join(', ') || 'none'})`);
      }
      if (input.name === undefined && source!.outputs.length > 1 && !source!.outputs.some((o) => o.name === undefined)) {
        fail(['operators', index, 'input', k], `operator "${input.from}" has ${source!.outputs.length} outputs: the input must name one`);
      }
    });
  });
  const cycle = findCycle(operators);
  if (cycle) fail(['operators', operators.findIndex((o) => o.name === cycle[0]), 'input'], `the operators' inputs form a cycle: ${cycle.join(' → ')}`);
  const orchestrator = top.orchestrator === undefined ? undefined : text(top.orchestrator);
  const pullSecrets = Array.isArray(top['pull-secrets']) ? (top['pull-secrets'] as unknown[]).map((s) => String(s)) : [];
  return { apiVersion: apiVersion as ApiVersion, name: name as string, orchestrator, pullSecrets, operators, warnings };
}

function normaliseApiVersion(value: unknown): ApiVersion | undefined {
  const textValue = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
  const full = /^\d+\.\d+$/.test(textValue) ? `${textValue}.0` : textValue;
  return (SUPPORTED_API_VERSIONS as readonly string[]).includes(full) ? (full as ApiVersion) : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string' && value.trim()) return value.trim();
  if (typeof value === 'number') return String(value);
  return undefined;
}

function checkContainer(raw: unknown, path: Array<string | number>, fail: (p: Array<string | number>, m: string) => never): PipelineContainer {
  if (!isPlainObject(raw)) fail(path, 'container must be a mapping with an image');
  const c = raw as Record<string, unknown>;
  const image = text(c.image);
  if (!image) fail([...path, 'image'], 'container needs an image');
  let command: string[] | undefined;
  if (c.command !== undefined) {
    if (!Array.isArray(c.command) || c.command.some((v) => typeof v !== 'string' && typeof v !== 'number')) fail([...path, 'command'], 'command must be a list of strings');
    command = (c.command as unknown[]).map(String);
  }
  return { image: image as string, tag: c.tag === undefined ? undefined : String(c.tag), command };
}

function checkRequests(raw: unknown, path: Array<string | number>, fail: (p: Array<string | number>, m: string) => never): PipelineRequests | undefined {
  if (raw === undefined) return undefined;
  if (!isPlainObject(raw)) fail(path, 'requests must be a mapping of cpu, gpu and memory');
  const out: PipelineRequests = {};
  for (const key of ['cpu', 'gpu', 'memory'] as const) {
    const v = (raw as Record<string, unknown>)[key];
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) fail([...path, key], `requests.${key} must be a number, not ${JSON.stringify(v)}`);
    out[key] = n;
  }
  return out;
}

function checkOperator(raw: unknown, path: Array<string | number>, fail: (p: Array<string | number>, m: string) => never, positionOf: PositionOf, warnings: string[]): PipelineOperator {
  if (!isPlainObject(raw)) fail(path, 'an operator must be a mapping with a name and a container');
  const op = raw as Record<string, unknown>;
  const name = text(op.name);
  if (!name) fail([...path, 'name'], 'an operator needs a name');
  for (const key of Object.keys(op)) if (!OPERATOR_KEYS.has(key)) warnings.push(`line ${positionOf([...path, key])?.line}: operator "${name}": key "${key}" is not used by api-version 0.3/0.4`);
  const container = checkContainer(op.container, [...path, 'container'], fail);
  // Some published pipelines nest variables under container; both places mean the operator's environment.
  const nested = isPlainObject(op.container) ? (op.container as Record<string, unknown>).variables : undefined;
  const variablesRaw = op.variables ?? nested;
  const variables: Record<string, string> = {};
  if (variablesRaw !== undefined) {
    if (!isPlainObject(variablesRaw)) fail([...path, 'variables'], 'variables must be a mapping of names to values');
    for (const [key, v] of Object.entries(variablesRaw as Record<string, unknown>)) {
      if (v !== null && typeof v === 'object') fail([...path, 'variables', key], `variable ${key} must be a string, not a ${Array.isArray(v) ? 'list' : 'mapping'}`);
      variables[key] = v === null ? '' : String(v);
    }
  }
  const list = (key: 'input' | 'output'): Array<Record<string, unknown>> => {
    const v = op[key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((item) => !isPlainObject(item))) fail([...path, key], `${key} must be a list of mappings with a path`);
    return v as Array<Record<string, unknown>>;
  };
  const inputs: PipelineInput[] = list('input').map((item, k) => {
    const inputPath = text(item.path);
    if (!inputPath) fail([...path, 'input', k], 'every input needs a path (api-version 0.4.0 and earlier)');
    return { from: text(item.from), name: text(item.name), path: inputPath as string };
  });
  const outputs: PipelineOutput[] = list('output').map((item, k) => {
    const outputPath = text(item.path);
    if (!outputPath || !outputPath.startsWith('/')) fail([...path, 'output', k], 'every output needs a rooted path');
    return { name: text(item.name), path: outputPath as string };
  });
  const servicesRaw = op.services;
  if (servicesRaw !== undefined && !Array.isArray(servicesRaw)) fail([...path, 'services'], 'services must be a list');
  const services: PipelineService[] = ((servicesRaw as unknown[] | undefined) ?? []).map((s, k) => {
    const sp = [...path, 'services', k];
    if (!isPlainObject(s)) fail(sp, 'a service must be a mapping with a name and a container');
    const service = s as Record<string, unknown>;
    const serviceName = text(service.name);
    if (!serviceName) fail([...sp, 'name'], 'a service needs a name');
    const connections = service.connections;
    const http: Array<{ name: string; port: number }> = [];
    if (isPlainObject(connections) && connections.http !== undefined) {
      if (!Array.isArray(connections.http)) fail([...sp, 'connections', 'http'], 'connections.http must be a list of { name, port }');
      (connections.http as unknown[]).forEach((c, j) => {
        const cp = [...sp, 'connections', 'http', j];
        const conn = isPlainObject(c) ? c : {};
        const port = Number(conn.port);
        if (!text(conn.name)) fail(cp, 'an http connection needs a name (the environment variable)');
        if (!Number.isInteger(port) || port < 1024 || port > 65535) fail([...cp, 'port'], `an http connection's port must be 1024–65535, not ${JSON.stringify(conn.port ?? null)}`);
        http.push({ name: text(conn.name) as string, port });
      });
    }
    return { name: serviceName as string, container: checkContainer(service.container, [...sp, 'container'], fail), requests: checkRequests(service.requests, [...sp, 'requests'], fail), http };
  });
  return {
    name: name as string,
    description: op.description === undefined ? undefined : String(op.description),
    container,
    variables,
    requests: checkRequests(op.requests, [...path, 'requests'], fail),
    inputs,
    outputs,
    services,
    position: positionOf(path) ?? { line: 1, column: 1 },
  };
}

/** A cycle through `input.from`, as operator names (the first repeated at the end), or undefined. */
function findCycle(operators: PipelineOperator[]): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const sources = new Map(operators.map((op) => [op.name, [...new Set(op.inputs.flatMap((i) => (i.from ? [i.from] : [])))]]));
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const from of sources.get(name) ?? []) {
      const cycle = visit(from);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const op of operators) {
    const cycle = visit(op.name);
    if (cycle) return cycle.reverse();
  }
  return undefined;
}

/** Each operator's depth in the dependency graph: 0 for those reading only the payload, else 1 + the deepest source. */
export function dependencyDepths(pipeline: Pick<Pipeline, 'operators'>): Map<string, number> {
  const depths = new Map<string, number>();
  const byName = new Map(pipeline.operators.map((op) => [op.name, op]));
  const depthOf = (name: string): number => {
    const known = depths.get(name);
    if (known !== undefined) return known;
    const op = byName.get(name)!;
    const froms = op.inputs.flatMap((i) => (i.from ? [i.from] : []));
    const depth = froms.length === 0 ? 0 : 1 + Math.max(...froms.map(depthOf));
    depths.set(name, depth);
    return depth;
  };
  for (const op of pipeline.operators) depthOf(op.name);
  return depths;
}


/**
 * A Clara pipeline as a Node-RED flow: one tab, nodes laid out left to right by dependency depth, wired by
 * `input.from` / `name`. The mapping from Clara operator images to this package's nodes is the table
 * OPERATOR_MAPPINGS below: to support another operator, add an entry. An operator no entry matches becomes a
 * clearly flagged `clara-operator` placeholder that keeps its container spec and passes messages through.
 *
 * Every operator's first node keeps the operator as it was written (`clara` property: container,
 * variables, inputs, outputs, services, requests), so export.ts can write the pipeline back.
 */
import { createHash } from 'node:crypto';
import { type Pipeline, type PipelineOperator, dependencyDepths } from './pipeline';

export interface FlowNode {
  id: string;
  type: string;
  z?: string;
  name?: string;
  x?: number;
  y?: number;
  wires?: string[][];
  [property: string]: unknown;
}

/** What an operator's node keeps of the YAML, for export. */
export interface OperatorRecord {
  operator: string;
  description?: string;
  container: PipelineOperator['container'];
  variables: Record<string, string>;
  requests?: PipelineOperator['requests'];
  inputs: PipelineOperator['inputs'];
  outputs: PipelineOperator['outputs'];
  services: PipelineOperator['services'];
}

export interface DestinationAddress {
  calledAE: string;
  host: string;
  port: number;
}

export interface ImportOptions {
  /** Addresses for clara-dicom-destination nodes by name (MYPACS=AE@host:port); unnamed ones get placeholders to fill in. */
  destinations?: Record<string, DestinationAddress>;
  /** Port of the clara-dicom-in SCP (default 104, DICOM's). */
  dicomPort?: number;
  /** Address it listens on (default 0.0.0.0: the PACS is on another machine). */
  dicomHost?: string;
  /** First port of the local archive SCPs that stand in for destinations given no address (default 11113). */
  archivePort?: number;
  /** Where AI operators run: embedded (the default: the bundled model, works anywhere) or a Triton server. */
  triton?: 'embedded' | { protocol: 'grpc' | 'http'; host: string; port: number };
}

export interface ImportResult {
  /** The tab, its nodes and config nodes, as RED.view.importNodes and POST /flows take them. */
  flow: FlowNode[];
  tabId: string;
  /** Per operator: the nodes it became. */
  operators: Array<{ operator: string; image: string; nodes: Array<{ id: string; type: string }>; placeholder: boolean }>;
  warnings: string[];
}

/** How one operator becomes nodes: the chain's first node takes the input; `exits` maps output names to the node that sends it. */
interface MappedOperator {
  nodes: FlowNode[];
  entry: string;
  /** Output name (or '' for an unnamed single output) → [node id, output port]. */
  exits: Record<string, [string, number]>;
  configNodes?: FlowNode[];
  warnings?: string[];
}

interface MappingContext {
  id(suffix: string): string;
  options: ImportOptions;
  /** One config node per destination name, shared by every operator sending there. */
  destination(name: string): string;
}

interface OperatorMapping {
  /** What this entry turns into, for documentation and the importer's preview. */
  describe: string;
  matches(op: PipelineOperator): boolean;
  map(op: PipelineOperator, ctx: MappingContext): MappedOperator;
}

const imageName = (op: PipelineOperator) => op.container.image.replace(/^([^/]+\.[^/]+\/)?(nvidia\/)?/, '').replace(/:.*$/, '');

/** `--agent X` and `--data [..]` of register-results' command line. */
function registerArguments(op: PipelineOperator): { agent?: string; data: string[] } {
  const command = op.container.command ?? [];
  const value = (flag: string) => {
    const at = command.indexOf(flag);
    return at >= 0 ? command[at + 1] : undefined;
  };
  let data: string[] = [];
  const raw = value('--data');
  if (raw) {
    try {
      const parsed = JSON.parse(raw) as unknown;
      data = Array.isArray(parsed) ? parsed.map(String) : [String(parsed)];
    } catch {
      data = [raw];
    }
  }
  return { agent: value('--agent'), data };
}

const single = (node: FlowNode): MappedOperator => ({ nodes: [node], entry: node.id, exits: { '': [node.id, 0] } });

/** The mapping table. Order matters: the first entry that matches an operator is used. */
export const OPERATOR_MAPPINGS: OperatorMapping[] = [
  {
    describe: 'clara/dicom-parser → clara-dicom-parser + clara-series-selector (rules from NVIDIA_CLARA_SELECTION_RULES_BASE64 or the rules file)',
    matches: (op) => /(^|\/)dicom-parser$/.test(imageName(op)),
    map(op, ctx) {
      const parser: FlowNode = { id: ctx.id('parse'), type: 'clara-dicom-parser', name: op.name, format: 'nifti-gz', spacingPolicy: 'warn' };
      const base64 = op.variables.NVIDIA_CLARA_SELECTION_RULES_BASE64;
      const file = op.variables.NVIDIA_CLARA_SELECTION_RULES_FILE;
      const selector: FlowNode = {
        id: ctx.id('select'), type: 'clara-series-selector', name: `${op.name} rules`,
        rulesType: base64 ? 'base64' : file ? 'file' : 'json', rules: base64 ?? file ?? '', allMatched: false, sortBySopInstanceCount: false,
      };
      parser.wires = [[selector.id]];
      return { nodes: [parser, selector], entry: parser.id, exits: { '': [selector.id, 0] } };
    },
  },
  {
    describe: 'clara/ai-* with a Triton/TRTIS service → clara-triton-infer + a clara-triton-server config node from the service',
    matches: (op) => /(^|\/)ai-[\w-]+$/.test(imageName(op)) && op.services.some((s) => /trt|triton/i.test(`${s.name} ${s.container.image}`)),
    map(op, ctx) {
      const service = op.services.find((s) => /trt|triton/i.test(`${s.name} ${s.container.image}`))!;
      const triton = ctx.options.triton ?? 'embedded';
      const http = service.http[0];
      const serverNode: FlowNode = {
        id: ctx.id('triton'), type: 'clara-triton-server', name: service.name,
        ...(triton === 'embedded'
          ? { mode: 'embedded', repository: '', protocol: http ? 'http' : 'grpc', host: '127.0.0.1', port: http?.port ?? 8001 }
          : { mode: 'triton', protocol: triton.protocol, host: triton.host, port: triton.port }),
        deadline: 120, maxMessageMb: 256, retries: 3, threads: 0, executionProvider: 'cpu',
      };
      // The brain tumour operator's own model only runs on its Triton; embedded, the bundled demo model stands in.
      const brain = /braintumor|brain-tumor/.test(imageName(op));
      const preset = triton === 'embedded' || !brain ? 'demo' : 'clara-brain-tumor-t1c2tc';
      const infer: FlowNode = { id: ctx.id('infer'), type: 'clara-triton-infer', name: op.name, server: serverNode.id, preset, format: 'nifti-gz' };
      const exits: MappedOperator['exits'] = { '': [infer.id, 0] };
      for (const output of op.outputs) exits[output.name ?? ''] = [infer.id, 0];
      const warnings = triton === 'embedded' && !brain ? [`operator "${op.name}" (${op.container.image}) runs embedded with the bundled demo model: choose its own model in the clara-triton-infer node`] : [];
      return { nodes: [infer], entry: infer.id, exits, configNodes: [serverNode], warnings };
    },
  },
  {
    describe: 'clara/dicom-seg-writer → clara-seg-writer (labels from NVIDIA_SEG_LABELS)',
    matches: (op) => /(^|\/)dicom-seg-writer$/.test(imageName(op)),
    map: (op, ctx) => withOutputs(op, single({ id: ctx.id('seg'), type: 'clara-seg-writer', name: op.name, labels: op.variables.NVIDIA_SEG_LABELS ?? '["Tumor-seg"]' })),
  },
  {
    describe: 'clara/rtstruct_writer → clara-rtstruct-writer (labels from NVIDIA_SEG_LABELS when set)',
    matches: (op) => /(^|\/)rtstruct[_-]writer$/.test(imageName(op)),
    map: (op, ctx) => withOutputs(op, single({ id: ctx.id('rtstruct'), type: 'clara-rtstruct-writer', name: op.name, labels: op.variables.NVIDIA_SEG_LABELS ?? '["Tumor-seg"]' })),
  },
  {
    describe: 'clara/register-results --agent ClaraSCU --data [names] → clara-scu-out + one clara-dicom-destination per name',
    matches: (op) => /(^|\/)register-results$/.test(imageName(op)) && /^claraSCU$/i.test(registerArguments(op).agent ?? ''),
    map(op, ctx) {
      const { data } = registerArguments(op);
      const names = data.length ? data : ['MYPACS'];
      const ids = names.map((n) => ctx.destination(n));
      // The node's own destination is the first; further ones it looks up by name among the destination nodes.
      return single({ id: ctx.id('scu'), type: 'clara-scu-out', name: op.name, destination: ids[0], destinations: names.slice(1).join(','), folders: 'seg,rtstruct', maxAttempts: 5, backoff: 2, maxBackoff: 600, concurrency: 2 });
    },
  },
  {
    describe: 'clara/register-results --agent renderserver → clara-render-register',
    matches: (op) => /(^|\/)register-results$/.test(imageName(op)) && /^renderserver$/i.test(registerArguments(op).agent ?? ''),
    map: (op, ctx) => single({ id: ctx.id('render'), type: 'clara-render-register', name: op.name, mode: 'viewer' }),
  },
];

/** Every named output of the operator leaves by the node's first output. */
function withOutputs(op: PipelineOperator, mapped: MappedOperator): MappedOperator {
  for (const output of op.outputs) mapped.exits[output.name ?? ''] = mapped.exits[''];
  return mapped;
}

const COLUMN = 260;
const ROW = 80;

/** The flow for a pipeline. IDs are derived from the pipeline and operator names, so importing twice gives the same flow. */
export function pipelineToFlow(pipeline: Pipeline, options: ImportOptions = {}): ImportResult {
  const seed = createHash('sha256').update(pipeline.name).digest('hex');
  const tabId = seed.slice(0, 16);
  const ids = new Set<string>();
  const idOf = (scope: string) => (suffix: string) => {
    const id = createHash('sha256').update(`${pipeline.name}\0${scope}\0${suffix}`).digest('hex').slice(0, 16);
    if (ids.has(id)) throw new Error(`duplicate node id for ${scope}/${suffix}`);
    ids.add(id);
    return id;
  };
  const warnings = [...pipeline.warnings];
  const configNodes: FlowNode[] = [];
  const destinations = new Map<string, string>();
  const destinationId = idOf('destinations');
  // A destination given no address is a local archive: an SCP on this machine that keeps what it receives,
  // so the imported flow runs end to end on a fresh machine; point the destination at the real PACS later.
  const archives: FlowNode[] = [];
  const destination = (name: string): string => {
    const known = destinations.get(name);
    if (known) return known;
    const id = destinationId(name);
    destinations.set(name, id);
    let address = options.destinations?.[name];
    if (!address) {
      address = { calledAE: name.slice(0, 16), host: '127.0.0.1', port: (options.archivePort ?? 11113) + archives.length };
      archives.push({
        id: idOf('archives')(name), type: 'clara-dicom-in', name: `${name} (local archive)`, aeTitle: address.calledAE, port: address.port, host: '127.0.0.1', allow: '',
        acceptAnyCalledAE: false, studyTimeout: 5, grouping: 'study', workRoot: `clara-dicom/archive/${name.replace(/[^\w.-]/g, '_')}`, maxPdu: 65536, wires: [[]],
      });
    }
    configNodes.push({ id, type: 'clara-dicom-destination', name, calledAE: address.calledAE, host: address.host, port: address.port, callingAE: 'ClaraSCU', maxPdu: 65536, connectTimeout: 10, pduTimeout: 30 });
    return id;
  };

  const depths = dependencyDepths(pipeline);
  const nodes: FlowNode[] = [];
  const mapped = new Map<string, MappedOperator>();
  const operators: ImportResult['operators'] = [];
  const rowsAtDepth = new Map<number, number>();
  // The study sent in (inputs without `from`) arrives through one SCP.
  const needsPayload = pipeline.operators.some((op) => op.inputs.some((i) => i.from === undefined));
  const dicomIn: FlowNode | undefined = needsPayload
    ? { id: idOf('pipeline')('dicom-in'), type: 'clara-dicom-in', name: 'payload', aeTitle: 'CLARA', port: options.dicomPort ?? 104, host: options.dicomHost ?? '0.0.0.0', allow: '', acceptAnyCalledAE: false, studyTimeout: 5, grouping: 'study', workRoot: '', maxPdu: 65536, wires: [[]] }
    : undefined;
  if (dicomIn) {
    Object.assign(dicomIn, { x: 140, y: 80 });
    nodes.push(dicomIn);
  }

  for (const op of pipeline.operators) {
    const ctx: MappingContext = { id: idOf(op.name), options, destination };
    const rule = OPERATOR_MAPPINGS.find((m) => m.matches(op));
    const result = rule ? rule.map(op, ctx) : placeholder(op, ctx);
    if (!rule) warnings.push(`operator "${op.name}" (${op.container.image}${op.container.tag ? `:${op.container.tag}` : ''}) has no Node-RED equivalent: it became a clara-operator placeholder that passes messages through`);
    warnings.push(...(result.warnings ?? []));
    const record: OperatorRecord = { operator: op.name, description: op.description, container: op.container, variables: op.variables, requests: op.requests, inputs: op.inputs, outputs: op.outputs, services: op.services };
    const depth = (depths.get(op.name) ?? 0) + (dicomIn ? 1 : 0);
    const row = rowsAtDepth.get(depth) ?? 0;
    rowsAtDepth.set(depth, row + 1);
    result.nodes.forEach((node, k) => {
      node.x = 140 + depth * COLUMN + k * 40;
      node.y = 80 + row * ROW + k * 50;
      node.wires ??= [[]];
    });
    const first = result.nodes[0];
    first.clara = record;
    if (op.requests) first.requests = op.requests;
    configNodes.push(...(result.configNodes ?? []));
    mapped.set(op.name, result);
    nodes.push(...result.nodes);
    operators.push({ operator: op.name, image: op.container.image, nodes: result.nodes.map((n) => ({ id: n.id, type: n.type })), placeholder: !rule });
  }

  // Wiring: an operator's entry is fed by its deepest source; the other inputs (the study itself, the
  // parser's selection) are already in the job folder every message points at. An operator reading only
  // the study is fed by the SCP.
  for (const op of pipeline.operators) {
    const target = mapped.get(op.name)!;
    const sources = op.inputs.filter((i) => i.from !== undefined);
    if (sources.length === 0) {
      if (dicomIn) dicomIn.wires![0].push(target.entry);
      continue;
    }
    const deepest = sources.reduce((a, b) => ((depths.get(b.from!) ?? 0) > (depths.get(a.from!) ?? 0) ? b : a));
    const source = mapped.get(deepest.from!)!;
    const [nodeId, port] = source.exits[deepest.name ?? ''] ?? Object.values(source.exits)[0];
    const node = nodes.find((n) => n.id === nodeId)!;
    while (node.wires!.length <= port) node.wires!.push([]);
    if (!node.wires![port].includes(target.entry)) node.wires![port].push(target.entry);
  }

  const lastColumn = Math.max(0, ...nodes.map((n) => n.x ?? 0));
  archives.forEach((archive, k) => {
    archive.x = lastColumn + COLUMN;
    archive.y = 80 + k * ROW;
    nodes.push(archive);
  });

  const tab: FlowNode = { id: tabId, type: 'tab', label: pipeline.name, info: `Imported from the Clara pipeline "${pipeline.name}" (api-version ${pipeline.apiVersion}).`, clara: { apiVersion: pipeline.apiVersion, name: pipeline.name, orchestrator: pipeline.orchestrator, pullSecrets: pipeline.pullSecrets } };
  for (const n of nodes) n.z = tabId;
  return { flow: [tab, ...nodes, ...configNodes], tabId, operators, warnings };
}

function placeholder(op: PipelineOperator, ctx: MappingContext): MappedOperator {
  const node: FlowNode = { id: ctx.id('operator'), type: 'clara-operator', name: op.name, image: op.container.image, tag: op.container.tag ?? '', command: op.container.command ?? [] };
  const mapped = single(node);
  return withOutputs(op, mapped);
}

/**
 * A flow back to a Clara pipeline. Operators imported from YAML come back as they were written (mapping.ts
 * keeps each on its first node), with the settings the flow's nodes now hold written into their variables
 * and command lines: the selection rules, the SEG labels, the destinations. The pipeline keeps its
 * operators, their wiring and their variables through YAML → flow → YAML.
 */
import { stringify } from 'yaml';
import type { FlowNode, OperatorRecord } from './mapping';
import type { Pipeline, PipelineOperator } from './pipeline';

export class ExportError extends Error {}

/** Where the flow's current settings go in the operator, per node type. */
function applyNodeSettings(record: OperatorRecord, node: FlowNode, flow: FlowNode[]): OperatorRecord {
  const variables = { ...record.variables };
  let command = record.container.command;
  const chain = (type: string) => flow.find((n) => n.type === type && n.z === node.z && (node.wires ?? []).flat().includes(n.id));
  if (node.type === 'clara-dicom-parser') {
    const selector = chain('clara-series-selector');
    if (selector && typeof selector.rules === 'string') {
      delete variables.NVIDIA_CLARA_SELECTION_RULES_BASE64;
      delete variables.NVIDIA_CLARA_SELECTION_RULES_FILE;
      if (selector.rulesType === 'base64') variables.NVIDIA_CLARA_SELECTION_RULES_BASE64 = selector.rules;
      else if (selector.rulesType === 'file') variables.NVIDIA_CLARA_SELECTION_RULES_FILE = selector.rules;
      else if (selector.rules.trim()) variables.NVIDIA_CLARA_SELECTION_RULES_BASE64 = Buffer.from(selector.rules, 'utf8').toString('base64');
    }
  }
  if ((node.type === 'clara-seg-writer' || node.type === 'clara-rtstruct-writer') && typeof node.labels === 'string') {
    if (node.type === 'clara-seg-writer' || variables.NVIDIA_SEG_LABELS !== undefined) variables.NVIDIA_SEG_LABELS = node.labels;
  }
  if (node.type === 'clara-scu-out') {
    const first = flow.find((n) => n.id === node.destination)?.name;
    const more = typeof node.destinations === 'string' ? node.destinations.split(',').map((n) => n.trim()) : [];
    const names = [first, ...more].filter((n): n is string => typeof n === 'string' && n !== '');
    const at = (command ?? []).indexOf('--data');
    if (at >= 0 && names.length) command = [...command!.slice(0, at + 1), JSON.stringify(names), ...command!.slice(at + 2)];
  }
  return { ...record, variables, container: { ...record.container, command } };
}

/** The pipeline of the flow's first tab that came from Clara YAML (or the tab named). */
export function flowToPipeline(flow: FlowNode[], tabId?: string): Pipeline {
  if (!Array.isArray(flow)) throw new ExportError('a flow is a JSON array of nodes');
  const fromClara = (n: FlowNode) => Boolean(n.clara) && typeof (n.clara as OperatorRecord).operator === 'string';
  // The editor keeps no custom property on a tab: a flow imported there has its records on the nodes only.
  const tab = tabId
    ? flow.find((n) => n.id === tabId && n.type === 'tab')
    : (flow.find((n) => n.type === 'tab' && n.clara) ?? flow.find((n) => n.type === 'tab' && flow.some((m) => m.z === n.id && fromClara(m))));
  if (!tab) throw new ExportError(tabId ? `the flow has no tab ${tabId}` : 'the flow has no tab imported from a Clara pipeline');
  const meta = (tab.clara ?? {}) as { apiVersion?: string; name?: string; orchestrator?: string; pullSecrets?: string[] };
  const nodes = flow.filter((n) => n.z === tab.id && fromClara(n));
  if (nodes.length === 0) throw new ExportError(`tab "${String(tab.label ?? tab.id)}" holds no node that came from a Clara operator`);
  // Nodes in the order they were imported: their records keep the operators' order.
  const operators: PipelineOperator[] = nodes.map((node) => {
    const record = applyNodeSettings(node.clara as OperatorRecord, node, flow);
    return {
      name: record.operator,
      description: record.description,
      container: record.container,
      variables: record.variables,
      requests: record.requests,
      inputs: record.inputs,
      outputs: record.outputs,
      services: record.services,
      position: { line: 0, column: 0 },
    };
  });
  return {
    apiVersion: meta.apiVersion === '0.3.0' ? '0.3.0' : '0.4.0',
    name: meta.name ?? String(tab.label ?? 'pipeline'),
    orchestrator: meta.orchestrator,
    pullSecrets: meta.pullSecrets ?? [],
    operators,
    warnings: [],
  };
}

/** Clara pipeline YAML, in the key order Clara's documentation uses. */
export function pipelineToYaml(pipeline: Pipeline): string {
  const container = (c: PipelineOperator['container']) => ({ image: c.image, ...(c.tag !== undefined ? { tag: c.tag } : {}), ...(c.command ? { command: c.command } : {}) });
  const document = {
    'api-version': pipeline.apiVersion,
    name: pipeline.name,
    ...(pipeline.orchestrator ? { orchestrator: pipeline.orchestrator } : {}),
    ...(pipeline.pullSecrets.length ? { 'pull-secrets': pipeline.pullSecrets } : {}),
    operators: pipeline.operators.map((op) => ({
      name: op.name,
      ...(op.description !== undefined ? { description: op.description } : {}),
      container: container(op.container),
      ...(Object.keys(op.variables).length ? { variables: op.variables } : {}),
      ...(op.requests ? { requests: op.requests } : {}),
      ...(op.inputs.length ? { input: op.inputs.map((i) => ({ ...(i.from !== undefined ? { from: i.from } : {}), ...(i.name !== undefined ? { name: i.name } : {}), path: i.path })) } : {}),
      ...(op.outputs.length ? { output: op.outputs.map((o) => ({ ...(o.name !== undefined ? { name: o.name } : {}), path: o.path })) } : {}),
      ...(op.services.length
        ? { services: op.services.map((s) => ({ name: s.name, container: container(s.container), ...(s.requests ? { requests: s.requests } : {}), ...(s.http.length ? { connections: { http: s.http } } : {}) })) }
        : {}),
    })),
  };
  return `# Exported by node-red-contrib-clara-dicom from a Node-RED flow.\n${stringify(document, { lineWidth: 0 })}`;
}

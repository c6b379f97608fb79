import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { flowToPipeline, pipelineToYaml } from '../../flows/export';
import { type FlowNode, pipelineToFlow } from '../../flows/mapping';
import { parsePipeline } from '../../flows/pipeline';
import { CLARA_PIPELINE_YAML, seedSelectionRulesBase64 } from '../support/clara';

const SEED = readFileSync(CLARA_PIPELINE_YAML, 'utf8');

const byType = (flow: FlowNode[], type: string) => flow.filter((n) => n.type === type);
const one = (flow: FlowNode[], type: string) => {
  const found = byType(flow, type);
  assert.equal(found.length, 1, `one ${type}, found ${found.length}`);
  return found[0];
};
const wiredTo = (node: FlowNode, port = 0) => node.wires?.[port] ?? [];

describe('flows/mapping and export: a Clara pipeline as a Node-RED flow, and back', () => {
  it('maps the Advanced DICOM Integration pipeline onto this package\'s nodes, prewired, with no placeholder and no warning', () => {
    const options = { destinations: { MYPACS: { calledAE: 'ORTHANC', host: '127.0.0.1', port: 4242 } } };
    const result = pipelineToFlow(parsePipeline(SEED), options);
    assert.deepEqual(result.warnings, []);
    assert.ok(result.operators.every((o) => !o.placeholder));
    const { flow } = result;
    const tab = one(flow, 'tab');
    assert.equal(tab.label, 'advanced-dicom-integration-pipeline');
    const dicomIn = one(flow, 'clara-dicom-in');
    const parser = one(flow, 'clara-dicom-parser');
    const selector = one(flow, 'clara-series-selector');
    const infer = one(flow, 'clara-triton-infer');
    const server = one(flow, 'clara-triton-server');
    const seg = one(flow, 'clara-seg-writer');
    const rtstruct = one(flow, 'clara-rtstruct-writer');
    const render = one(flow, 'clara-render-register');
    const scus = byType(flow, 'clara-scu-out');
    const destination = one(flow, 'clara-dicom-destination');
    assert.equal(scus.length, 2);
    // The wiring follows input.from / name: study → parser → selector → AI → (SEG, RTSTRUCT, render) → SCU.
    assert.deepEqual(wiredTo(dicomIn), [parser.id]);
    assert.deepEqual(wiredTo(parser), [selector.id]);
    assert.deepEqual(wiredTo(selector), [infer.id]);
    assert.deepEqual(new Set(wiredTo(infer)), new Set([seg.id, rtstruct.id, render.id]));
    assert.equal(scus.filter((s) => wiredTo(seg).includes(s.id)).length, 1);
    assert.equal(scus.filter((s) => wiredTo(rtstruct).includes(s.id)).length, 1);
    // Settings from the YAML.
    assert.equal(selector.rulesType, 'base64');
    assert.equal(selector.rules, seedSelectionRulesBase64());
    assert.equal(seg.labels, '["Tumor-seg"]');
    assert.deepEqual(scus.map((s) => [s.destination, s.destinations]), [[destination.id, ''], [destination.id, '']]);
    assert.deepEqual([destination.name, destination.calledAE, destination.host, destination.port], ['MYPACS', 'ORTHANC', '127.0.0.1', 4242]);
    assert.equal(infer.server, server.id);
    assert.equal(server.mode, 'embedded');
    assert.equal(server.name, 'trtis');
    assert.deepEqual(infer.requests, { memory: 8192 });
    assert.deepEqual(rtstruct.requests, { memory: 2048 });
    // Laid out left to right by depth; every node on the tab; ids unique and stable.
    assert.ok((parser.x as number) > (dicomIn.x as number) && (infer.x as number) > (selector.x as number) && (scus[0].x as number) > (seg.x as number));
    assert.ok(flow.filter((n) => !['tab', 'clara-triton-server', 'clara-dicom-destination'].includes(n.type)).every((n) => n.z === tab.id));
    assert.equal(new Set(flow.map((n) => n.id)).size, flow.length);
    assert.deepEqual(pipelineToFlow(parsePipeline(SEED), options).flow.map((n) => n.id), flow.map((n) => n.id));
  });

  it('keeps an unknown operator as a flagged clara-operator placeholder, wired through, and archives locally for a destination without an address', () => {
    const yaml = SEED.replace('image: clara/rtstruct_writer', 'image: acme/lung-report');
    const result = pipelineToFlow(parsePipeline(yaml), { triton: { protocol: 'grpc', host: 'triton.local', port: 8001 } });
    const placeholder = one(result.flow, 'clara-operator');
    assert.equal(placeholder.image, 'acme/lung-report');
    assert.ok(result.operators.find((o) => o.operator === 'rtstruct-writer')?.placeholder);
    assert.ok(result.warnings.some((w) => /operator "rtstruct-writer" \(acme\/lung-report:latest\) has no Node-RED equivalent/.test(w)), result.warnings.join('\n'));
    // MYPACS had no address: a local archive SCP on the tab stands in for it, and the destination points there.
    const archive = byType(result.flow, 'clara-dicom-in').find((n) => n.name === 'MYPACS (local archive)')!;
    assert.deepEqual([archive.aeTitle, archive.host, archive.port, archive.workRoot], ['MYPACS', '127.0.0.1', 11113, 'clara-dicom/archive/MYPACS']);
    const pacs = one(result.flow, 'clara-dicom-destination');
    assert.deepEqual([pacs.calledAE, pacs.host, pacs.port], ['MYPACS', '127.0.0.1', 11113]);
    assert.ok(!result.warnings.some((w) => /MYPACS/.test(w)), result.warnings.join('\n'));
    assert.ok(wiredTo(one(result.flow, 'clara-triton-infer')).includes(placeholder.id));
    assert.ok(byType(result.flow, 'clara-scu-out').some((s) => wiredTo(placeholder).includes(s.id)));
    const server = one(result.flow, 'clara-triton-server');
    assert.deepEqual([server.mode, server.protocol, server.host, server.port], ['triton', 'grpc', 'triton.local', 8001]);
    assert.equal(one(result.flow, 'clara-triton-infer').preset, 'clara-brain-tumor-t1c2tc');
  });

  it('round-trips YAML → flow → YAML: operators, wiring, variables, services and requests are kept', () => {
    const original = parsePipeline(SEED);
    const { flow } = pipelineToFlow(original);
    const again = parsePipeline(pipelineToYaml(flowToPipeline(flow)));
    const strip = (p: typeof original) => ({ ...p, operators: p.operators.map(({ position: _position, ...rest }) => rest) });
    assert.deepEqual(strip(again), strip(original));
  });

  it('writes the flow\'s current settings back into the YAML: rules, labels, destinations', () => {
    const { flow } = pipelineToFlow(parsePipeline(SEED));
    one(flow, 'clara-series-selector').rules = '{"selections":[{"name":"T2","conditions":{"SeriesDescription":"T2"}}]}';
    one(flow, 'clara-series-selector').rulesType = 'json';
    one(flow, 'clara-seg-writer').labels = '["Core","Edema"]';
    one(flow, 'clara-dicom-destination').name = 'ARCHIVE';
    const pipeline = flowToPipeline(flow);
    const parser = pipeline.operators.find((o) => o.name === 'dicom-parser')!;
    assert.deepEqual(JSON.parse(Buffer.from(parser.variables.NVIDIA_CLARA_SELECTION_RULES_BASE64, 'base64').toString('utf8')), { selections: [{ name: 'T2', conditions: { SeriesDescription: 'T2' } }] });
    assert.equal(pipeline.operators.find((o) => o.name === 'dicom-seg-writer')!.variables.NVIDIA_SEG_LABELS, '["Core","Edema"]');
    assert.deepEqual(pipeline.operators.find((o) => o.name === 'register-dicom-output')!.container.command, ['python', 'register.py', '--agent', 'ClaraSCU', '--data', '["ARCHIVE"]']);
    assert.throws(() => flowToPipeline([{ id: 't', type: 'tab' }]), /no tab imported from a Clara pipeline/);
  });
});

describe('examples/03 Clara advanced DICOM integration', () => {
  it('is exactly what the importer makes of the shared pipeline today (regenerate with node dist/flows/examples.js)', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ADVANCED_DICOM_INTEGRATION_EXAMPLE, advancedDicomIntegrationExample } = require('../../flows/examples') as typeof import('../../flows/examples');
    const committed = JSON.parse(readFileSync(ADVANCED_DICOM_INTEGRATION_EXAMPLE, 'utf8')) as FlowNode[];
    assert.deepEqual(committed, JSON.parse(JSON.stringify(advancedDicomIntegrationExample(SEED))));
  });
});

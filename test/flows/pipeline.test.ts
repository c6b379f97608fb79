import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PipelineError, dependencyDepths, parsePipeline } from '../../flows/pipeline';
import { CLARA_PIPELINE_YAML } from '../support/clara';

const SEED = readFileSync(CLARA_PIPELINE_YAML, 'utf8');

/** A PipelineError at the given line, whose message matches. */
function refused(text: string, pattern: RegExp, line?: number): void {
  assert.throws(() => parsePipeline(text), (err: unknown) => {
    assert.ok(err instanceof PipelineError, `a PipelineError, not ${String(err)}`);
    assert.match(err.message, pattern);
    if (line !== undefined) {
      assert.equal(err.position?.line, line, err.message);
      assert.match(err.message, new RegExp(`^line ${line}, column \\d+: `));
    }
    return true;
  });
}

const minimal = (operators: string, version = '0.4.0') => `api-version: ${version}\nname: test\noperators:\n${operators}`;

describe('flows/pipeline: Clara pipeline YAML, read safely and checked', () => {
  it('reads the Advanced DICOM Integration pipeline: seven operators, their wiring, variables, services, no warnings', () => {
    const pipeline = parsePipeline(SEED);
    assert.equal(pipeline.apiVersion, '0.4.0');
    assert.equal(pipeline.name, 'advanced-dicom-integration-pipeline');
    assert.deepEqual(pipeline.warnings, []);
    assert.deepEqual(pipeline.operators.map((o) => o.name), [
      'dicom-parser', 'brain-tumor-segmentation', 'dicom-seg-writer', 'register-volume-images-for-rendering', 'register-dicom-output', 'rtstruct-writer', 'register-dicom-rtstruct-output',
    ]);
    const [parser, ai, seg] = pipeline.operators;
    assert.match(parser.variables.NVIDIA_CLARA_SELECTION_RULES_BASE64, /^ewog/);
    assert.equal(parser.position.line, 10);
    assert.deepEqual(ai.requests, { memory: 8192 });
    assert.deepEqual(ai.outputs, [{ name: 'segmentation', path: '/output' }, { name: 'rendering', path: '/publish' }]);
    assert.deepEqual(ai.services[0].http, [{ name: 'NVIDIA_CLARA_TRTISURI', port: 8000 }]);
    assert.deepEqual(ai.services[0].container.command, ['tritonserver', '--model-repository=$(NVIDIA_CLARA_SERVICE_DATA_PATH)/models']);
    assert.equal(seg.variables.NVIDIA_SEG_LABELS, '["Tumor-seg"]');
    assert.deepEqual(seg.inputs, [{ from: 'brain-tumor-segmentation', name: 'segmentation', path: '/input' }, { from: 'dicom-parser', name: undefined, path: '/series_selection' }, { from: undefined, name: undefined, path: '/dcm' }]);
    assert.deepEqual(Object.fromEntries(dependencyDepths(pipeline)), {
      'dicom-parser': 0, 'brain-tumor-segmentation': 1, 'dicom-seg-writer': 2, 'register-volume-images-for-rendering': 2, 'register-dicom-output': 3, 'rtstruct-writer': 2, 'register-dicom-rtstruct-output': 3,
    });
  });

  it('accepts api-version 0.3.0 and 0.3, and refuses others with the line', () => {
    const op = '- name: a\n  container:\n    image: x\n  input:\n  - path: /input\n';
    assert.equal(parsePipeline(minimal(op, '0.3.0')).apiVersion, '0.3.0');
    assert.equal(parsePipeline(minimal(op, '0.3')).apiVersion, '0.3.0');
    refused(minimal(op, '0.5.0'), /api-version "0\.5\.0" is not supported: this importer reads 0\.3\.0 and 0\.4\.0/, 1);
  });

  it('points at bad indentation, duplicate names, unknown sources, cycles and missing fields', () => {
    refused(SEED.replace('  container:\n    image: clara/ai-braintumor', '  container:\n   image: clara/ai-braintumor'), /not valid YAML/);
    refused('api-version: 0.4.0\nname: x\noperators:\n- name: a\n  container:\n    image: x\n   tag: y\n', /not valid YAML/, 7);
    refused(minimal('- name: a\n  container: {image: x}\n- name: a\n  container: {image: y}\n'), /two operators are named "a" \(the first at line 4\)/, 6);
    refused(minimal('- name: a\n  container: {image: x}\n  input:\n  - from: ghost\n    path: /in\n'), /operator "a" takes input from "ghost", which is not an operator of this pipeline/, 7);
    refused(minimal('- name: a\n  container: {image: x}\n  input:\n  - {from: b, path: /in}\n  output:\n  - {path: /out}\n- name: b\n  container: {image: y}\n  input:\n  - {from: a, path: /in}\n  output:\n  - {path: /out}\n'), /form a cycle: (a → b → a|b → a → b)/);
    refused(minimal('- name: a\n  container: {tag: latest}\n'), /container needs an image/, 5);
    refused(minimal('- name: a\n  container: {image: x}\n  input:\n  - {from: a2}\n'), /every input needs a path/, 7);
    refused(minimal('- name: a\n  container: {image: x}\n  output:\n  - {name: o, path: /o}\n- name: b\n  container: {image: y}\n  input:\n  - {from: a, name: p, path: /in}\n'), /operator "a" has no output named "p" \(it has o\)/, 11);
    refused('api-version: 0.4.0\nname: x\nname: y\noperators: []\n', /not valid YAML: Map keys must be unique/, 3);
    refused('- just a list\n', /a pipeline is a mapping/);
  });

  it('refuses a billion-laughs alias bomb and an oversized document without expanding them', () => {
    const bomb = ['api-version: 0.4.0', 'name: lol', 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const [n, prev] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd'], ['f', 'e'], ['g', 'f'], ['h', 'g'], ['i', 'h']]) bomb.push(`${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]`);
    bomb.push('operators:\n- name: x\n  container: {image: x}\n  variables: {V: *i}\n');
    const started = Date.now();
    refused(bomb.join('\n'), /expands too many aliases .* refused rather than expanded/);
    assert.ok(Date.now() - started < 2000, 'refused quickly');
    const huge = `api-version: 0.4.0\nname: big\n# ${'x'.repeat(50 * 1024 * 1024)}\noperators: []\n`;
    refused(huge, /the document is 50\.0 MiB; a pipeline may be at most 1\.0 MiB/);
  });

  it('refuses flow collections nested thousands deep before the YAML parser recurses into them, as often as it is asked', () => {
    // Parsed twice in one process, such a document used to end the process (V8 out of regexp memory).
    const deep = `api-version: 0.4.0\nname: deep\noperators: []\nx: ${'['.repeat(2284)}1\n`;
    for (let k = 0; k < 3; k++) refused(deep, /flow collections \(\[ \] and \{ \}\) nested more than 64 deep/, 4);
    // Brackets inside quoted scalars and comments, and an apostrophe in plain text, are not nesting.
    const pipeline = parsePipeline(minimal(`- name: a\n  description: Clara's ${'['.repeat(100)} "text"\n  container: {image: x, command: ["${'{'.repeat(100)}"]}\n  # ${'['.repeat(100)}\n  input:\n  - path: /input\n`));
    assert.equal(pipeline.operators[0].description, `Clara's ${'['.repeat(100)} "text"`);
  });

  it('warns about keys api-version 0.3/0.4 do not use, and reads variables nested under container', () => {
    const pipeline = parsePipeline(minimal('- name: a\n  container:\n    image: x\n    variables: {NVIDIA_SEG_LABELS: \'["A"]\'}\n  models: [m]\n  input:\n  - path: /input\n'));
    assert.deepEqual(pipeline.operators[0].variables, { NVIDIA_SEG_LABELS: '["A"]' });
    assert.deepEqual(pipeline.warnings, ['line 8: operator "a": key "models" is not used by api-version 0.3/0.4']);
  });
});

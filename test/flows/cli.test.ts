import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePipeline } from '../../flows/pipeline';
import { CLARA_PIPELINE_YAML } from '../support/clara';
import { scratchDir } from '../support/tools';

const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

describe('clara-dicom import / export (CLI)', () => {
  const scratch = scratchDir('import-cli');
  after(() => scratch.cleanup());

  it('imports the shared pipeline into flow JSON and exports it back to an equivalent pipeline', () => {
    const flowFile = join(scratch.dir, 'flow.json');
    const run = cli('import', CLARA_PIPELINE_YAML, '-o', flowFile, '--set', 'MYPACS=ORTHANC@127.0.0.1:4242', '--dicom-port', '11112');
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '', 'no warnings');
    assert.match(run.stdout, /dicom-parser\s+→ clara-dicom-parser \+ clara-series-selector\n/);
    assert.match(run.stdout, /wrote 12 nodes to /);
    const flow = JSON.parse(readFileSync(flowFile, 'utf8')) as Array<{ type: string; port?: number; host?: string }>;
    assert.equal(flow.find((n) => n.type === 'clara-dicom-in')?.port, 11112);
    assert.equal(flow.find((n) => n.type === 'clara-dicom-destination')?.host, '127.0.0.1');
    const yamlFile = join(scratch.dir, 'pipeline.yaml');
    const back = cli('export', flowFile, '-o', yamlFile);
    assert.equal(back.status, 0, back.stderr);
    const strip = (text: string) => parsePipeline(text).operators.map(({ position: _p, ...rest }) => rest);
    assert.deepEqual(strip(readFileSync(yamlFile, 'utf8')), strip(readFileSync(CLARA_PIPELINE_YAML, 'utf8')));
  });

  it('exits 1 with the line on malformed YAML and writes nothing; 2 on wrong usage', () => {
    const bad = join(scratch.dir, 'bad.yaml');
    writeFileSync(bad, 'api-version: 0.4.0\nname: x\noperators:\n- name: a\n  container: {image: x}\n  input:\n  - {from: nowhere, path: /in}\n');
    const out = join(scratch.dir, 'never.json');
    const run = cli('import', bad, '-o', out);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /^clara-dicom import: .*bad\.yaml: line 7, column \d+: operator "a" takes input from "nowhere"/);
    assert.ok(!existsSync(out), 'no partial output');
    assert.equal(cli('import', bad).status, 2);
    assert.equal(cli('import', CLARA_PIPELINE_YAML, '-o', out, '--set', 'MYPACS').status, 2);
    assert.equal(cli('export', join(scratch.dir, 'missing.json'), '-o', out).status, 1);
  });
});

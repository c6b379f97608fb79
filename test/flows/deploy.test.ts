import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { CLARA_PIPELINE_YAML } from '../support/clara';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { scratchDir } from '../support/tools';

const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');

/** The CLI in a child process, without blocking this one (the target Node-RED runs in another process). */
function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('clara-dicom deploy: a pipeline onto another Node-RED through its Admin API (adminAuth on)', function () {
  this.timeout(120000);
  const scratch = scratchDir('deploy');
  let red: HeadlessRed;
  const existing = [
    { id: 'mine', type: 'tab', label: 'the edge box\'s own flow' },
    { id: 'inj', z: 'mine', type: 'inject', name: 'heartbeat', props: [], repeat: '', once: false, x: 100, y: 60, wires: [[]] },
  ];
  before(async () => {
    red = await startHeadlessRed(join(scratch.dir, 'edge'), existing, { users: [{ username: 'deployer', password: 'deploy-pass', permissions: '*' }] });
  });
  after(async () => {
    await red?.stop();
    scratch.cleanup();
  });

  const flowsOnTarget = async () => {
    const token = await red.token('deployer', 'deploy-pass', '*');
    const res = await fetch(`${red.url}/flows`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    return (await res.json()) as Array<{ id: string; type: string; z?: string; label?: string }>;
  };

  it('refuses without credentials, deploys with them, keeps the target\'s other flows, and updates on a second deploy', async () => {
    const dicomPort = await freeLoopbackPort();
    const denied = await cli('deploy', CLARA_PIPELINE_YAML, '--target', red.url);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /needs credentials \(its adminAuth is on\)/);
    const wrong = await cli('deploy', CLARA_PIPELINE_YAML, '--target', red.url, '--user', 'deployer', '--password', 'nope');
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /login as deployer .* was refused/);

    const first = await cli('deploy', CLARA_PIPELINE_YAML, '--target', red.url, '--user', 'deployer', '--password', 'deploy-pass', '--set', 'MYPACS=ORTHANC@127.0.0.1:4242', '--dicom-port', String(dicomPort), '--dicom-host', '127.0.0.1');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^added tab [0-9a-f]{16} on http:\/\/127\.0\.0\.1:\d+: 12 nodes, 2 other nodes kept/);
    const after1 = await flowsOnTarget();
    assert.ok(after1.some((n) => n.type === 'tab' && n.label === 'advanced-dicom-integration-pipeline'));
    assert.ok(after1.some((n) => n.id === 'inj'), 'the target\'s own flow is kept');
    assert.equal(after1.filter((n) => n.type === 'clara-triton-infer').length, 1);

    const second = await cli('deploy', CLARA_PIPELINE_YAML, '--target', red.url, '--user', 'deployer', '--password', 'deploy-pass', '--set', 'MYPACS=ORTHANC@127.0.0.1:4242', '--dicom-port', String(dicomPort), '--dicom-host', '127.0.0.1');
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^updated tab /);
    const after2 = await flowsOnTarget();
    assert.equal(after2.length, after1.length, 'nothing duplicated');
    const dead = await cli('deploy', CLARA_PIPELINE_YAML, '--target', 'http://127.0.0.1:9', '--token', 'x');
    assert.equal(dead.code, 1);
    assert.match(dead.stderr, /cannot reach http:\/\/127\.0\.0\.1:9\/flows/);
  });
});

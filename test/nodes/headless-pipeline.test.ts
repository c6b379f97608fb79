import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import type { SelectionReport } from '../../lib/select/match';
import type { SelectionSummary } from '../../lib/select/run';
import { dicomFilesUnder, storeResponses, storescu } from '../dimse/helpers';
import { delay, scratchDir } from '../support/tools';
import { seedSelectionRulesBase64 } from '../support/clara';

const NODES_DIR = join(__dirname, '..', '..', 'nodes');
const SEED_BASE64 = seedSelectionRulesBase64();

/**
 * The pipeline in a real, headless Node-RED (red.js in its own process, admin API locked by adminAuth):
 * clara-dicom-in → clara-dicom-parser → clara-series-selector, fed by dcmtk's storescu. Outputs are
 * observed the way a user would: core file nodes write msg.selection of each output to a file.
 */
describe('headless Node-RED: dicom-in → parser → series selector, admin API with adminAuth', function () {
  this.timeout(180000);
  const scratch = scratchDir('headless');
  let study: PhantomStudy;
  let redProcess: ChildProcess | undefined;
  let redLog = '';
  let adminUrl = '';
  let dicomPort = 0;
  const selectedFile = () => join(scratch.dir, 'selected.jsonl');
  const noMatchFile = () => join(scratch.dir, 'nomatch.jsonl');

  async function token(username: string, password: string, scope: string): Promise<string> {
    const res = await fetch(`${adminUrl}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username, password }),
    });
    assert.equal(res.status, 200, `login of ${username}`);
    return ((await res.json()) as { access_token: string }).access_token;
  }
  async function postJson(path: string, body: unknown, bearer?: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${adminUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : { text } };
  }

  before(async () => {
    study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 32, slices: 12, seed: 17 });
    const userDir = join(scratch.dir, 'node-red');
    mkdirSync(userDir, { recursive: true });
    dicomPort = await freeLoopbackPort();
    const uiPort = await freeLoopbackPort();
    adminUrl = `http://127.0.0.1:${uiPort}`;
    const flow = [
      { id: 'tab1', type: 'tab', label: 'Clara pipeline' },
      { id: 'in', z: 'tab1', type: 'clara-dicom-in', aeTitle: 'CLARA', port: dicomPort, host: '127.0.0.1', allow: '', studyTimeout: 1, grouping: 'study', workRoot: join(scratch.dir, 'jobs'), maxPdu: 65536, wires: [['parse']] },
      { id: 'parse', z: 'tab1', type: 'clara-dicom-parser', format: 'nifti-gz', spacingPolicy: 'warn', wires: [['sel']] },
      { id: 'sel', z: 'tab1', type: 'clara-series-selector', rulesType: 'base64', rules: '${CLARA_TEST_SELECTION_RULES_BASE64}', allMatched: false, sortBySopInstanceCount: false, wires: [['toSelected'], ['toNoMatch']] },
      { id: 'toSelected', z: 'tab1', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'selection', tot: 'msg' }], wires: [['selectedOut']] },
      { id: 'selectedOut', z: 'tab1', type: 'file', filename: selectedFile(), filenameType: 'str', appendNewline: true, createDir: true, overwriteFile: 'false', encoding: 'none', wires: [[]] },
      { id: 'toNoMatch', z: 'tab1', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'selection', tot: 'msg' }], wires: [['noMatchOut']] },
      { id: 'noMatchOut', z: 'tab1', type: 'file', filename: noMatchFile(), filenameType: 'str', appendNewline: true, createDir: true, overwriteFile: 'false', encoding: 'none', wires: [[]] },
    ];
    writeFileSync(join(userDir, 'flows.json'), JSON.stringify(flow));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const bcrypt = require('bcryptjs') as { hashSync(text: string, rounds: number): string };
    const settings = {
      uiHost: '127.0.0.1',
      uiPort,
      userDir,
      flowFile: 'flows.json',
      credentialSecret: false,
      nodesDir: [NODES_DIR],
      adminAuth: {
        type: 'credentials',
        users: [
          { username: 'admin', password: bcrypt.hashSync('admin-pass', 8), permissions: '*' },
          { username: 'viewer', password: bcrypt.hashSync('viewer-pass', 8), permissions: 'read' },
        ],
      },
      logging: { console: { level: 'info' } },
      editorTheme: { projects: { enabled: false }, tours: false },
    };
    const settingsFile = join(userDir, 'settings.js');
    writeFileSync(settingsFile, `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
    redProcess = spawn(process.execPath, [require.resolve('node-red/red.js'), '--settings', settingsFile, '--userDir', userDir], {
      env: { ...process.env, CLARA_TEST_SELECTION_RULES_BASE64: SEED_BASE64 },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    redProcess.stdout!.on('data', (d: Buffer) => (redLog += d.toString()));
    redProcess.stderr!.on('data', (d: Buffer) => (redLog += d.toString()));
    const deadline = Date.now() + 60000;
    while (!/Started flows/.test(redLog)) {
      if (redProcess.exitCode !== null || Date.now() > deadline) throw new Error(`Node-RED did not start:\n${redLog}`);
      await delay(200);
    }
    while (!/listening/.test(redLog) && Date.now() < deadline) await delay(100);
  });
  after(async () => {
    if (redProcess && redProcess.exitCode === null) {
      redProcess.kill('SIGINT');
      await new Promise((r) => redProcess!.once('exit', r));
    }
    scratch.cleanup();
  });

  it('selects exactly the T1c target of a study sent by storescu (seed Base64 rule from ${ENV})', async () => {
    const files = dicomFilesUnder(join(scratch.dir, 'phantom', 'dicom'));
    const sent = await storescu(dicomPort, files, { calledAE: 'CLARA' });
    assert.equal(sent.code, 0, sent.stderr);
    assert.ok(storeResponses(sent).every((r) => r === 'Success'));
    const deadline = Date.now() + 60000;
    while (!existsSync(selectedFile()) && !existsSync(noMatchFile())) {
      if (Date.now() > deadline) throw new Error(`no selection was written; Node-RED log:\n${redLog}`);
      await delay(250);
    }
    await delay(300);
    assert.ok(!existsSync(noMatchFile()), 'nothing went out of "no match"');
    const lines = readFileSync(selectedFile(), 'utf8').trim().split('\n');
    assert.equal(lines.length, 1, 'one job, one selection');
    const selection = JSON.parse(lines[0]) as SelectionSummary;
    const target = study.series.find((s) => s.isTarget)!;
    assert.deepEqual(selection.selections.map((s) => [s.name, s.series.map((x) => x.seriesInstanceUID)]), [['T1C', [target.seriesInstanceUID]]]);
    assert.ok(existsSync(selection.selections[0].series[0].image));

    // Why every other series was refused: the reformat, the 2x2 reference, the DERIVED MPR and the localizer.
    const report = JSON.parse(readFileSync(selection.report, 'utf8')) as SelectionReport;
    const failedKeywords = new Map(report.selections[0].series.map((v) => [v.seriesDescription, v.conditions.filter((c) => !c.matched).map((c) => c.keyword)]));
    assert.deepEqual(failedKeywords.get('Cor T1c rfmt'), ['ImageType', 'SeriesDescription']);
    assert.deepEqual(failedKeywords.get('Ax T1c 2x2 ref'), ['SeriesDescription']);
    assert.deepEqual(failedKeywords.get('Sag T1c MPR'), ['ImageType']);
    assert.deepEqual(failedKeywords.get('3Plane Loc'), ['SeriesDescription']);
    assert.deepEqual(failedKeywords.get('Ax 3D T1c MPRAGE'), []);
  });

  it('guards the editor endpoints with adminAuth: 401 without a token; a read-only user may validate and preview', async () => {
    const anonymous = await postJson('/clara-series-selector/validate', { rulesType: 'base64', rules: SEED_BASE64 });
    assert.equal(anonymous.status, 401);
    const anonymousPreview = await postJson('/clara-series-selector/sel/preview', { rulesType: 'base64', rules: SEED_BASE64 });
    assert.equal(anonymousPreview.status, 401);

    const viewer = await token('viewer', 'viewer-pass', 'read');
    const validated = await postJson('/clara-series-selector/validate', { rulesType: 'json', rules: '{"selections":[{"name":"T2","conditions":{"SeriesDescripton":"T2"}}]}' }, viewer);
    assert.equal(validated.status, 200);
    assert.equal(validated.body.ok, false);
    assert.match(String(validated.body.message), /selection "T2", condition SeriesDescripton: unknown DICOM keyword/);

    const preview = await postJson('/clara-series-selector/sel/preview', { rulesType: 'json', rules: '{"selections":[{"name":"T2","conditions":{"SeriesDescription":"T2"}}]}' }, viewer);
    assert.equal(preview.status, 200, JSON.stringify(preview.body));
    const report = preview.body.report as SelectionReport;
    assert.deepEqual(report.selections[0].series.filter((v) => v.selected).map((v) => v.seriesDescription), ['Ax T2 FLAIR']);
    assert.doesNotMatch(redLog, /\[error\]/, 'the runtime logged no error');
  });
});

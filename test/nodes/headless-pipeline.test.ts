import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import type { SelectionReport } from '../../lib/select/match';
import type { SelectionSummary } from '../../lib/select/run';
import { dicomFilesUnder, storeResponses, storescu } from '../dimse/helpers';
import { seedSelectionRulesBase64 } from '../support/clara';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { delay, scratchDir } from '../support/tools';

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
  let red: HeadlessRed;
  let dicomPort = 0;
  const selectedFile = () => join(scratch.dir, 'selected.jsonl');
  const noMatchFile = () => join(scratch.dir, 'nomatch.jsonl');

  async function postJson(path: string, body: unknown, bearer?: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${red.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : { text } };
  }

  before(async () => {
    study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 32, slices: 12, seed: 17 });
    dicomPort = await freeLoopbackPort();
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
    red = await startHeadlessRed(join(scratch.dir, 'node-red'), flow, {
      users: [
        { username: 'admin', password: 'admin-pass', permissions: '*' },
        { username: 'viewer', password: 'viewer-pass', permissions: 'read' },
      ],
      env: { CLARA_TEST_SELECTION_RULES_BASE64: SEED_BASE64 },
    });
    const deadline = Date.now() + 30000;
    while (!/listening/.test(red.log()) && Date.now() < deadline) await delay(100);
  });
  after(async () => {
    await red?.stop();
    scratch.cleanup();
  });

  it('selects exactly the T1c target of a study sent by storescu (seed Base64 rule from ${ENV})', async () => {
    const files = dicomFilesUnder(join(scratch.dir, 'phantom', 'dicom'));
    const sent = await storescu(dicomPort, files, { calledAE: 'CLARA' });
    assert.equal(sent.code, 0, sent.stderr);
    assert.ok(storeResponses(sent).every((r) => r === 'Success'));
    const deadline = Date.now() + 60000;
    while (!existsSync(selectedFile()) && !existsSync(noMatchFile())) {
      if (Date.now() > deadline) throw new Error(`no selection was written; Node-RED log:\n${red.log()}`);
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

    const viewer = await red.token('viewer', 'viewer-pass', 'read');
    const validated = await postJson('/clara-series-selector/validate', { rulesType: 'json', rules: '{"selections":[{"name":"T2","conditions":{"SeriesDescripton":"T2"}}]}' }, viewer);
    assert.equal(validated.status, 200);
    assert.equal(validated.body.ok, false);
    assert.match(String(validated.body.message), /selection "T2", condition SeriesDescripton: unknown DICOM keyword/);

    const preview = await postJson('/clara-series-selector/sel/preview', { rulesType: 'json', rules: '{"selections":[{"name":"T2","conditions":{"SeriesDescription":"T2"}}]}' }, viewer);
    assert.equal(preview.status, 200, JSON.stringify(preview.body));
    const report = preview.body.report as SelectionReport;
    assert.deepEqual(report.selections[0].series.filter((v) => v.selected).map((v) => v.seriesDescription), ['Ax T2 FLAIR']);
    assert.doesNotMatch(red.log(), /\[error\]/, 'the runtime logged no error');
  });

  it('serves the nodes as the node-red-contrib-clara-dicom module, with their message catalogues and the example flow', async () => {
    const admin = await red.token('admin', 'admin-pass', '*');
    const get = (path: string) => fetch(`${red.url}${path}`, { headers: { authorization: `Bearer ${admin}`, accept: 'application/json' } });
    const sets = (await (await get('/nodes')).json()) as Array<{ id: string; module: string; types: string[] }>;
    const ours = sets.filter((s) => s.module === 'node-red-contrib-clara-dicom').map((s) => s.types).flat().sort();
    assert.deepEqual(ours, ['clara-dicom-destination', 'clara-dicom-in', 'clara-dicom-parser', 'clara-operator', 'clara-render-register', 'clara-rtstruct-writer', 'clara-scu-out', 'clara-seg-writer', 'clara-series-selector', 'clara-triton-infer', 'clara-triton-server']);
    const catalog = (await (await get('/locales/node-red-contrib-clara-dicom/clara-series-selector?lng=en-US')).json()) as { 'clara-series-selector'?: { label?: { rulesType?: string } } };
    assert.equal(catalog['clara-series-selector']?.label?.rulesType, 'Rules from');
    const editor = await (await fetch(`${red.url}/nodes`, { headers: { authorization: `Bearer ${admin}`, accept: 'text/html' } })).text();
    assert.match(editor, /data-template-name="clara-series-selector"/);
    assert.match(editor, /data-help-name="clara-series-selector"/);
    const examples = await get('/library/examples/flows/node-red-contrib-clara-dicom/01%20Receive%2C%20parse%20and%20select%20a%20study');
    assert.equal(examples.status, 200);
    const flow = (await examples.json()) as Array<{ type: string; rulesType?: string; rules?: string }>;
    assert.equal(flow.find((n) => n.type === 'clara-series-selector')?.rules, SEED_BASE64);
  });
});

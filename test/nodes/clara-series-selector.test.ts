import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type JobRef, JobStore, readJob } from '../../lib/job';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import type { SelectionSummary, SelectedImagesFile } from '../../lib/select/run';
import { parseStudy } from '../../lib/volume/parse';
import { type TestNode, callsOn, collectMessages, helper, logOf, statusTexts, waitFor } from '../support/node-red';
import { delay, scratchDir } from '../support/tools';
import { seedSelectionRulesBase64 } from '../support/clara';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const selectorNode = require(join(__dirname, '..', '..', 'nodes', 'clara-series-selector', 'clara-series-selector.js')) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require(join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'common', '25-catch.js')) as unknown;

interface SelectedMsg {
  job: JobRef;
  selection: SelectionSummary;
  tag?: string;
}
interface CaughtMsg {
  job?: JobRef;
  error: { message: string; source: { id: string } };
}
interface SupertestResponse {
  status: number;
  body: Record<string, unknown>;
}
interface SupertestRequest {
  post(path: string): { send(body: unknown): Promise<SupertestResponse> };
}

const SEED_BASE64 = seedSelectionRulesBase64();
const rulesFor = (name: string, conditions: Record<string, unknown>) => JSON.stringify({ selections: [{ name, conditions }] });

describe('clara-series-selector node in a Node-RED 4 runtime', function () {
  this.timeout(120000);
  const scratch = scratchDir('node-selector');
  let study: PhantomStudy;
  let store: JobStore;
  let parsedJob: JobRef;

  /** A job as clara-dicom-parser leaves it (parsed once, then copied per test so runs never share outputs). */
  function freshJob(): JobRef {
    const record = store.create({ studyInstanceUID: study.studyInstanceUID, state: 'parsed' });
    const ref = store.ref(record);
    rmSync(ref.dir, { recursive: true });
    // The parser's outputs are plain files; a copy of the whole job folder is a second, independent job.
    cpSync(parsedJob.dir, ref.dir, { recursive: true });
    const job = JSON.parse(readFileSync(join(ref.dir, 'job.json'), 'utf8')) as { id: string };
    job.id = ref.id;
    writeFileSync(join(ref.dir, 'job.json'), JSON.stringify(job));
    return ref;
  }

  const flow = (props: Record<string, unknown> = {}) => [
    { id: 'tab', type: 'tab', label: 'selector test' },
    { id: 'selector', z: 'tab', type: 'clara-series-selector', name: '', rulesType: 'base64', rules: SEED_BASE64, allMatched: false, sortBySopInstanceCount: false, wires: [['selected'], ['nomatch']], ...props },
    { id: 'selected', z: 'tab', type: 'helper' },
    { id: 'nomatch', z: 'tab', type: 'helper' },
    { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'tab', type: 'helper' },
  ];

  before(async () => {
    study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 32, slices: 12, seed: 13 });
    store = new JobStore(join(scratch.dir, 'jobs'));
    parsedJob = store.ref(store.create({ studyInstanceUID: study.studyInstanceUID, state: 'received' }));
    rmSync(join(parsedJob.dir, 'dicom'), { recursive: true });
    cpSync(join(scratch.dir, 'phantom', 'dicom'), join(parsedJob.dir, 'dicom'), { recursive: true });
    await parseStudy(join(parsedJob.dir, 'dicom'), join(parsedJob.dir, 'parser'), { format: 'nifti-gz' });
  });
  afterEach(async () => {
    await helper.unload();
  });
  after(() => scratch.cleanup());

  it('selects the T1c target with the seed Base64 rule: output 1, selected-images.json, job.json', async () => {
    await helper.load([selectorNode, catchNode], flow());
    const selector = helper.getNode('selector');
    const selected = collectMessages<SelectedMsg>(helper.getNode('selected'));
    const nomatch = collectMessages<SelectedMsg>(helper.getNode('nomatch'));
    const job = freshJob();
    selector.receive({ job, tag: 'carried' });
    const msg = await waitFor(() => selected[0], 10000, 'the selected msg');
    await delay(100);
    assert.equal(nomatch.length, 0);
    assert.equal(msg.tag, 'carried');
    const target = study.series.find((s) => s.isTarget)!;
    assert.equal(msg.selection.matched, true);
    assert.deepEqual(msg.selection.selections.map((s) => [s.name, s.series.map((x) => x.seriesInstanceUID)]), [['T1C', [target.seriesInstanceUID]]]);
    const picked = msg.selection.selections[0].series[0];
    assert.equal(picked.image, join(job.dir, 'parser', `${target.seriesInstanceUID}.nii.gz`));
    assert.ok(existsSync(picked.image));
    assert.deepEqual(picked.dims, [32, 32, 12]);
    assert.equal(msg.selection.selectedImages, join(job.dir, 'selector', 'selected-images.json'));
    const mapping = JSON.parse(readFileSync(msg.selection.selectedImages, 'utf8')) as SelectedImagesFile;
    assert.deepEqual(Object.keys(mapping.T1C), [target.seriesInstanceUID]);
    assert.equal(mapping.T1C[target.seriesInstanceUID].image, `../parser/${target.seriesInstanceUID}.nii.gz`);
    assert.equal(mapping.T1C[target.seriesInstanceUID].SeriesDescription, 'Ax 3D T1c MPRAGE');
    const record = readJob(job.dir);
    assert.equal(record.state, 'selected');
    assert.equal(record.counts.selectedSeries, 1);
    assert.match(statusTexts(selector).at(-1) ?? '', /^selected 1: Ax 3D T1c MPRAGE$/);
  });

  it('sends a job that matches nothing out of output 2 with every series\' reason, and keeps going', async () => {
    await helper.load([selectorNode, catchNode], flow({ rulesType: 'json', rules: rulesFor('DWI', { SeriesDescription: '(?i)dwi|diffusion' }) }));
    const selector = helper.getNode('selector');
    const selected = collectMessages<SelectedMsg>(helper.getNode('selected'));
    const nomatch = collectMessages<SelectedMsg>(helper.getNode('nomatch'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const job = freshJob();
    selector.receive({ job });
    const msg = await waitFor(() => nomatch[0], 10000, 'the no-match msg');
    await delay(100);
    assert.equal(selected.length, 0);
    assert.equal(caught.length, 0, 'no match is not an error');
    assert.equal(msg.selection.matched, false);
    assert.equal(msg.selection.unmatched[0].name, 'DWI');
    assert.equal(msg.selection.unmatched[0].series.length, study.series.length);
    for (const s of msg.selection.unmatched[0].series) assert.match(s.reason, /^SeriesDescription is ".*": neither equal to nor matching "\(\?i\)dwi\|diffusion"$/);
    assert.deepEqual(JSON.parse(readFileSync(msg.selection.selectedImages, 'utf8')), { DWI: {} });
    assert.equal(readJob(job.dir).state, 'no-match');
    assert.match(statusTexts(selector).at(-1) ?? '', /^no match: DWI$/);
    assert.ok(logOf(selector).some((l) => /no series matched selection\(s\) DWI/.test(l.message)));
  });

  it('msg.rules (object, JSON or Base64) overrides the node for that msg; a bad msg.rules fails only that msg', async () => {
    await helper.load([selectorNode, catchNode], flow());
    const selector = helper.getNode('selector');
    const selected = collectMessages<SelectedMsg>(helper.getNode('selected'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const flairRules = { selections: [{ name: 'FLAIR', conditions: { SeriesDescription: 'FLAIR', ImageOrientationPatient: 'Axial' } }] };
    selector.receive({ job: freshJob(), rules: flairRules });
    selector.receive({ job: freshJob(), rules: Buffer.from(JSON.stringify(flairRules)).toString('base64') });
    selector.receive({ job: freshJob(), rules: '{"selections":[{"name":"BAD","conditions":{"SeriesDescription":"(?<=a+)b(?(1)c)"}}]}' });
    selector.receive({ job: freshJob() });
    await waitFor(() => (selected.length >= 3 && caught.length >= 1 ? true : undefined), 10000, 'three selections and one error');
    assert.deepEqual(selected.map((m) => m.selection.selections[0].series[0].seriesDescription), ['Ax T2 FLAIR', 'Ax T2 FLAIR', 'Ax 3D T1c MPRAGE']);
    assert.match(caught[0].error.message, /^(Error: )?clara-series-selector: job .*: msg\.rules: selection "BAD", condition SeriesDescription: .*conditional groups/);
    assert.equal(caught[0].error.source.id, 'selector');
  });

  for (const [what, rulesType, rules, expected] of [
    ['bad JSON', 'json', '{"selections": [{"name": "T1C", "conditions": {"Modality": "MR",}}]}', /the rules are not valid JSON/],
    ['a bad regex', 'json', rulesFor('T1C', { SeriesDescription: '(?P<x>T1c' }), /selection "T1C", condition SeriesDescription: cannot use the Python pattern/],
    ['an unknown keyword', 'json', rulesFor('T1C', { SeriesDescriptoin: 'T1c' }), /selection "T1C", condition SeriesDescriptoin: unknown DICOM keyword/],
    ['a wrong type', 'json', rulesFor('T1C', { SliceThickness: { min: 1 } }), /selection "T1C", condition SliceThickness: a condition must be a string, a number or a list, not an object/],
    ['a missing rules file', 'file', '/nonexistent/rules.json', /cannot read the rules file \/nonexistent\/rules.json: ENOENT/],
    ['Base64 that is not JSON', 'base64', Buffer.from('selections: T1C').toString('base64'), /the Base64 rules do not decode to JSON/],
  ] as const) {
    it(`reports ${what} at deploy, naming the rule; the runtime and other nodes keep running`, async () => {
      const good = { id: 'good', z: 'tab', type: 'clara-series-selector', name: '', rulesType: 'base64', rules: SEED_BASE64, wires: [['selected'], []] };
      await helper.load([selectorNode, catchNode], [...flow({ rulesType, rules }), good]);
      const selector = helper.getNode('selector');
      const errors = callsOn('error', selector).map((a) => String(a[0]));
      assert.equal(errors.length, 1);
      assert.match(errors[0], /^clara-series-selector: invalid selection rules: /);
      assert.match(errors[0], expected);
      const status = callsOn('status', selector).at(-1)?.[0] as { fill: string; text: string };
      assert.equal(status.fill, 'red');
      const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
      const selected = collectMessages<SelectedMsg>(helper.getNode('selected'));
      selector.receive({ job: freshJob() });
      (helper.getNode('good') as TestNode).receive({ job: freshJob() });
      await waitFor(() => (caught[0] && selected[0] ? true : undefined), 10000, 'the error and the good node\'s msg');
      assert.match(caught[0].error.message, expected);
      assert.equal(selected[0].selection.selections[0].name, 'T1C');
    });
  }

  it('reads its rules from a file (Base64 or JSON), once, when the flow is deployed', async () => {
    const rulesFile = join(scratch.dir, 'rules.b64');
    writeFileSync(rulesFile, `${SEED_BASE64.replace(/(.{76})/g, '$1\n')}\n`);
    await helper.load([selectorNode, catchNode], flow({ rulesType: 'file', rules: rulesFile }));
    const selected = collectMessages<SelectedMsg>(helper.getNode('selected'));
    helper.getNode('selector').receive({ job: freshJob() });
    const msg = await waitFor(() => selected[0], 10000, 'the selected msg');
    assert.deepEqual(msg.selection.selections[0].series.map((s) => s.seriesDescription), ['Ax 3D T1c MPRAGE']);

    // The editor endpoints never read files (read permission must not probe the server's disk) ...
    const request = (helper as unknown as { request(): SupertestRequest }).request();
    const checked = await request.post('/clara-series-selector/validate').send({ rulesType: 'file', rules: '/etc/shadow' });
    assert.deepEqual(checked.body, { ok: true, deferred: true, warnings: ['a rules file is read, and checked, when the flow is deployed'] });
    // ... and preview a rules file as the deployed node read it.
    const preview = await request.post('/clara-series-selector/selector/preview').send({ rulesType: 'file', rules: rulesFile });
    assert.equal(preview.status, 200);
    assert.equal((preview.body.report as { selections: Array<{ name: string }> }).selections[0].name, 'T1C');
    const other = await request.post('/clara-series-selector/selector/preview').send({ rulesType: 'file', rules: '/etc/passwd' });
    assert.equal(other.status, 400);
    assert.match(String(other.body.error), /deploy the flow first/);
  });

  it('refuses a msg without a parsed job through done(err), with the reason', async () => {
    await helper.load([selectorNode, catchNode], flow());
    const selector = helper.getNode('selector');
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    selector.receive({ payload: 'no job' });
    const unparsed = store.ref(store.create({ studyInstanceUID: '1.2.3', state: 'received' }));
    selector.receive({ job: unparsed });
    await waitFor(() => (caught.length >= 2 ? true : undefined), 10000, 'two errors');
    assert.match(caught[0].error.message, /msg\.job must be a job reference/);
    assert.match(caught[1].error.message, /no dicom-metadata\.json in .*parser: run clara-dicom-parser on the job first/);
    assert.equal(readJob(unparsed.dir).errors[0].stage, 'select');
  });

  it('validates unsaved rules and previews them against the last job through admin endpoints', async () => {
    // Its own node id: the last job is kept per node id across redeploys, and other tests used "selector".
    await helper.load([selectorNode, catchNode], flow({ id: 'previewer' }));
    const request = (helper as unknown as { request(): SupertestRequest }).request();
    const notYet = await request.post('/clara-series-selector/previewer/preview').send({ rulesType: 'base64', rules: SEED_BASE64 });
    assert.equal(notYet.status, 404);
    assert.match(String(notYet.body.error), /has not handled a job yet/);

    const valid = await request.post('/clara-series-selector/validate').send({ rulesType: 'base64', rules: SEED_BASE64 });
    assert.deepEqual([valid.status, valid.body.ok, valid.body.selections], [200, true, ['T1C']]);
    const invalid = await request.post('/clara-series-selector/validate').send({ rulesType: 'json', rules: rulesFor('X', { Modality: 7, SeriesDescription: '(' }) });
    assert.equal(invalid.body.ok, false);
    assert.deepEqual((invalid.body.problems as Array<{ selection: string; keyword: string }>).map((p) => [p.selection, p.keyword]), [['X', 'Modality'], ['X', 'SeriesDescription']]);

    const selected = collectMessages<SelectedMsg>(helper.getNode('selected'));
    const job = freshJob();
    helper.getNode('previewer').receive({ job });
    await waitFor(() => selected[0], 10000, 'the selected msg');
    // Unsaved rules: which series does "T1c, any ImageType" pick, and why do the others fail?
    const preview = await request.post('/clara-series-selector/previewer/preview').send({ rulesType: 'json', rules: rulesFor('ANY T1C', { SeriesDescription: 'T1c', ImageType: ['!LOCALIZER'] }), allMatched: true });
    assert.equal(preview.status, 200);
    assert.equal((preview.body.job as { id: string }).id, job.id);
    const report = preview.body.report as { selections: Array<{ name: string; series: Array<{ seriesDescription: string; selected: boolean; conditions: Array<{ keyword: string; matched: boolean; actual: string }> }> }> };
    const verdicts = report.selections[0].series;
    assert.deepEqual(verdicts.filter((v) => v.selected).map((v) => v.seriesDescription), ['Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref', 'Cor T1c rfmt', 'Sag T1c MPR']);
    const localizer = verdicts.find((v) => v.seriesDescription === '3Plane Loc')!;
    assert.deepEqual(localizer.conditions.filter((c) => !c.matched).map((c) => c.keyword), ['SeriesDescription', 'ImageType']);
    const bad = await request.post('/clara-series-selector/previewer/preview').send({ rulesType: 'json', rules: '{' });
    assert.equal(bad.status, 400);
    assert.match(String(bad.body.error), /not valid JSON/);
  });
});

import assert from 'node:assert/strict';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { type JobRef, JobStore, readJob } from '../../lib/job';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import { parseStudy } from '../../lib/volume/parse';
import { seedSelectionRulesBase64 } from '../support/clara';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { delay, scratchDir } from '../support/tools';

const SEED_BASE64 = seedSelectionRulesBase64();
/** Debian's chromium, which .ci/run installs. */
const CHROMIUM = '/usr/bin/chromium';
/** Screenshots are kept for a reviewer (git-ignored). */
const ARTIFACTS = join(__dirname, '..', '..', '..', 'test-artifacts', 'clara-series-selector-editor');

/**
 * The selector's edit dialog in a real browser against a real Node-RED: rules checked as they are typed,
 * the red triangle for rules that do not parse, the preview against the last job, and a save + deploy.
 */
describe('clara-series-selector edit dialog in chromium', function () {
  this.timeout(180000);
  const scratch = scratchDir('selector-editor');
  let study: PhantomStudy;
  let job: JobRef;
  let red: HeadlessRed;
  let browser: Browser;
  let page: Page;

  async function openDialog(): Promise<void> {
    await page.evaluate(() => {
      const editor = (window as unknown as { RED: { editor: { edit(node: unknown): void }; nodes: { node(id: string): unknown } } }).RED;
      editor.editor.edit(editor.nodes.node('sel'));
    });
    await page.waitForSelector('#node-input-rulesType', { state: 'visible' });
  }
  async function setJsonRules(text: string): Promise<void> {
    await page.selectOption('#node-input-rulesType', 'json');
    await page.evaluate((value) => {
      const node = (window as unknown as { RED: { nodes: { node(id: string): { rulesEditor: { setValue(v: string): void } } } } }).RED.nodes.node('sel');
      node.rulesEditor.setValue(value);
    }, text);
  }
  const clickInDialog = (selector: string) => page.evaluate((s) => (window as unknown as { $: (s: string) => { trigger(e: string): void } }).$(s).trigger('click'), selector);

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 32, slices: 12, seed: 23 });
    const store = new JobStore(join(scratch.dir, 'jobs'));
    job = store.ref(store.create({ studyInstanceUID: study.studyInstanceUID, state: 'received' }));
    cpSync(join(scratch.dir, 'phantom', 'dicom'), join(job.dir, 'dicom'), { recursive: true });
    await parseStudy(join(job.dir, 'dicom'), join(job.dir, 'parser'), { format: 'nifti-gz' });
    // An inject node hands the parsed job to the selector once at start, so the preview has a last job.
    const flow = [
      { id: 'tab1', type: 'tab', label: 'selector editor' },
      { id: 'kick', z: 'tab1', type: 'inject', name: 'parsed job', props: [{ p: 'job', v: JSON.stringify(job), vt: 'json' }], repeat: '', crontab: '', once: true, onceDelay: 0.1, topic: '', x: 120, y: 80, wires: [['sel']] },
      { id: 'sel', z: 'tab1', type: 'clara-series-selector', name: '', rulesType: 'base64', rules: SEED_BASE64, allMatched: false, sortBySopInstanceCount: false, x: 340, y: 80, wires: [[], []] },
    ];
    red = await startHeadlessRed(join(scratch.dir, 'node-red'), flow);
    const deadline = Date.now() + 30000;
    while (readJob(job.dir).state !== 'selected') {
      if (Date.now() > deadline) throw new Error(`the selector did not handle the injected job:\n${red.log()}`);
      await delay(200);
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { chromium } = require('playwright-core') as typeof import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(red.url);
    await page.waitForFunction(() => {
      const RED = (window as unknown as { RED?: { nodes?: { node(id: string): unknown } } }).RED;
      return Boolean(RED?.nodes?.node('sel'));
    }, null, { timeout: 60000 });
  });
  after(async () => {
    await browser?.close();
    await red?.stop();
    scratch.cleanup();
  });

  it('shows the Base64 rules checked by the server, with translated labels', async () => {
    await openDialog();
    await page.waitForSelector('#clara-rules-check .clara-check-ok');
    assert.equal((await page.textContent('#clara-rules-check'))?.trim(), '✓ 1 selection(s): T1C');
    assert.equal((await page.textContent('label[for=node-input-rulesType]'))?.trim(), 'Rules from');
    await page.screenshot({ path: join(ARTIFACTS, '1-base64-rules-checked.png') });
  });

  it('lists every problem of invalid JSON rules as they are typed, naming selection and keyword', async () => {
    await setJsonRules(JSON.stringify({ selections: [{ name: 'T2', conditions: { SeriesDescripton: 'T2', Modality: 3, EchoTime: [90, '=>'] } }] }, null, 2));
    await page.waitForSelector('#clara-rules-check ul.clara-check-error li');
    const problems = await page.$$eval('#clara-rules-check ul.clara-check-error li', (items) => items.map((li) => li.textContent ?? ''));
    assert.equal(problems.length, 3);
    assert.match(problems[0], /^selection "T2" · SeriesDescripton: unknown DICOM keyword \(did you mean SeriesDescription\?\)/);
    assert.match(problems[1], /^selection "T2" · Modality: Modality is text \(VR CS\)/);
    assert.match(problems[2], /^selection "T2" · EchoTime: EchoTime holds one number/);
    await page.screenshot({ path: join(ARTIFACTS, '2-invalid-rules-listed.png') });
  });

  it('previews unsaved rules against the last job: what each series is and which condition failed', async () => {
    await setJsonRules(JSON.stringify({ selections: [{ name: 'T1C ANY', conditions: { SeriesDescription: 'T1c', ImageType: ['!LOCALIZER', '!DERIVED'] } }] }, null, 2));
    await page.waitForSelector('#clara-rules-check .clara-check-ok');
    await clickInDialog('#clara-rules-preview-button');
    await page.waitForSelector('#clara-rules-preview table');
    assert.match((await page.textContent('#clara-rules-preview .clara-preview-job')) ?? '', new RegExp(`^Job ${job.id} \\(handled `));
    const rows = await page.$$eval('#clara-rules-preview tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => (td.textContent ?? '').trim())));
    const byDescription = new Map(rows.map((r) => [r[1], r[2]]));
    assert.equal(rows.length, study.series.length);
    assert.equal(byDescription.get('Ax 3D T1c MPRAGE'), '✓ selected');
    assert.match(byDescription.get('Ax T1c 2x2 ref') ?? '', /^≈ matched, but "Ax 3D T1c MPRAGE" came first/);
    assert.match(byDescription.get('Cor T1c rfmt') ?? '', /^✗ ImageType = \["DERIVED", "SECONDARY", "REFORMATTED"\]: has the excluded "DERIVED"$/);
    assert.match(byDescription.get('Ax T2 FLAIR') ?? '', /^✗ SeriesDescription = "Ax T2 FLAIR": neither equal to nor matching "T1c"$/);
    await page.screenshot({ path: join(ARTIFACTS, '3-preview.png'), fullPage: true });
  });

  it('marks the node invalid while its JSON does not parse, and saves and deploys the edited rules', async () => {
    await setJsonRules('{"selections": [');
    await clickInDialog('#node-dialog-ok');
    await delay(300);
    assert.equal(await page.evaluate(() => (window as unknown as { RED: { nodes: { node(id: string): { valid: boolean } } } }).RED.nodes.node('sel').valid), false);
    await page.screenshot({ path: join(ARTIFACTS, '4-invalid-node.png') });

    const rules = JSON.stringify({ selections: [{ name: 'FLAIR', conditions: { SeriesDescription: 'FLAIR' } }] });
    await openDialog();
    await setJsonRules(rules);
    await page.waitForSelector('#clara-rules-check .clara-check-ok');
    await clickInDialog('#node-dialog-ok');
    await delay(300);
    assert.equal(await page.evaluate(() => (window as unknown as { RED: { nodes: { node(id: string): { valid: boolean } } } }).RED.nodes.node('sel').valid), true);
    await clickInDialog('#red-ui-header-button-deploy');
    const deadline = Date.now() + 30000;
    let deployed: { rulesType?: string; rules?: string } | undefined;
    while (!deployed || deployed.rulesType !== 'json') {
      if (Date.now() > deadline) throw new Error(`the edited rules were not deployed:\n${red.log()}`);
      await delay(300);
      const flows = (await (await fetch(`${red.url}/flows`, { headers: { accept: 'application/json', 'Node-RED-API-Version': 'v1' } })).json()) as Array<{ id: string; rulesType?: string; rules?: string }>;
      deployed = flows.find((n) => n.id === 'sel');
    }
    assert.equal(deployed.rules, rules);
    await page.screenshot({ path: join(ARTIFACTS, '5-deployed.png') });
  });
});

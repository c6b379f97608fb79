import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { CLARA_PIPELINE_YAML } from '../support/clara';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { scratchDir } from '../support/tools';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(__dirname, '..', '..', '..', 'test-artifacts', 'clara-import');
const SEED = readFileSync(CLARA_PIPELINE_YAML, 'utf8');

interface EditorWindow {
  RED: { actions: { invoke(name: string): void }; nodes: { filterNodes(f: { type: string }): unknown[]; workspaces(): unknown }; workspaces: { active(): string } };
}

describe('Import › Clara pipeline… (editor plugin) against a headless Node-RED', function () {
  this.timeout(180000);
  const scratch = scratchDir('import-editor');
  let red: HeadlessRed;
  let browser: Browser | undefined;
  after(async () => {
    await browser?.close();
    await red?.stop();
    scratch.cleanup();
  });

  it('serves the conversion only to users who may write flows, with the line of a YAML error', async () => {
    red = await startHeadlessRed(join(scratch.dir, 'locked'), [], {
      users: [{ username: 'admin', password: 'admin-pass', permissions: '*' }, { username: 'viewer', password: 'viewer-pass', permissions: 'read' }],
    });
    const post = async (body: unknown, token?: string) => {
      const res = await fetch(`${red.url}/clara-dicom/import`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json().catch(() => ({}))) as { flow?: Array<{ type: string }>; warnings?: string[]; error?: string; line?: number } };
    };
    assert.equal((await post({ yaml: SEED })).status, 401);
    assert.equal((await post({ yaml: SEED }, await red.token('viewer', 'viewer-pass', 'read'))).status, 401);
    const admin = await red.token('admin', 'admin-pass', '*');
    const ok = await post({ yaml: SEED }, admin);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.warnings, []);
    assert.ok(ok.body.flow?.some((n) => n.type === 'clara-triton-infer'));
    const bad = await post({ yaml: 'api-version: 0.9.0\nname: x\noperators: []\n' }, admin);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.line, 1);
    assert.match(String(bad.body.error), /api-version "0\.9\.0" is not supported/);
    await red.stop();
  });

  it('adds the menu entry, previews the shared YAML, and imports it as a tab of prewired nodes', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    red = await startHeadlessRed(join(scratch.dir, 'open'), []);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { chromium } = require('playwright-core') as typeof import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(red.url);
    await page.waitForFunction(() => Boolean((window as unknown as Partial<EditorWindow>).RED?.workspaces?.active?.()), null, { timeout: 60000 });
    await page.waitForSelector('#menu-item-import-clara-pipeline', { state: 'attached', timeout: 30000 });
    // The entry sits right below Node-RED's own Import.
    assert.equal(await page.evaluate(() => document.querySelector('#menu-item-import')?.parentElement?.nextElementSibling?.querySelector('a')?.id), 'menu-item-import-clara-pipeline');
    await page.evaluate(() => (window as unknown as EditorWindow).RED.actions.invoke('clara-dicom:import-clara-pipeline'));
    await page.waitForSelector('#clara-import-yaml', { state: 'visible' });
    await page.fill('#clara-import-yaml', SEED);
    await page.waitForSelector('.clara-import-table', { timeout: 20000 });
    const preview = await page.textContent('#clara-import-preview');
    assert.match(preview ?? '', /brain-tumor-segmentation.*clara\/ai-braintumor.*clara-triton-infer/s);
    assert.match(preview ?? '', /No warnings\./);
    await page.screenshot({ path: join(ARTIFACTS, 'preview.png') });
    await page.click('#clara-import-button');
    await page.waitForFunction(() => (window as unknown as EditorWindow).RED.nodes.filterNodes({ type: 'clara-triton-infer' }).length === 1, null, { timeout: 20000 });
    const counts = await page.evaluate(() => {
      const RED = (window as unknown as EditorWindow).RED;
      const imported = RED.nodes.filterNodes({ type: 'clara-triton-infer' })[0] as { z: string };
      const onTab = (RED.nodes.filterNodes as unknown as (f: { z: string }) => Array<{ type: string; _orig?: { type: string } }>)({ z: imported.z });
      return { types: ['clara-dicom-in', 'clara-dicom-parser', 'clara-series-selector'].map((type) => RED.nodes.filterNodes({ type }).length), onTab: onTab.map((n) => n._orig?.type ?? n.type).sort() };
    });
    assert.deepEqual(counts.types, [2, 1, 1]);
    assert.deepEqual(counts.onTab, ['clara-dicom-in', 'clara-dicom-in', 'clara-dicom-parser', 'clara-render-register', 'clara-rtstruct-writer', 'clara-scu-out', 'clara-scu-out', 'clara-seg-writer', 'clara-series-selector', 'clara-triton-infer']);
    await page.screenshot({ path: join(ARTIFACTS, 'imported.png') });
    // A malformed document says where, and imports nothing.
    await page.evaluate(() => (window as unknown as EditorWindow).RED.actions.invoke('clara-dicom:import-clara-pipeline'));
    await page.waitForSelector('#clara-import-yaml', { state: 'visible' });
    await page.fill('#clara-import-yaml', SEED.replace('name: dicom-seg-writer', 'name: dicom-parser'));
    await page.waitForSelector('.clara-import-error', { timeout: 20000 });
    assert.match((await page.textContent('.clara-import-error')) ?? '', /^line \d+, column \d+: two operators are named "dicom-parser"/);
    await page.click('#clara-import-button');
    assert.equal(await page.evaluate(() => (window as unknown as EditorWindow).RED.nodes.filterNodes({ type: 'clara-triton-infer' }).length), 1);
  });
});

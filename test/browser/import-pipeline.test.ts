import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { flowToPipeline } from '../../flows/export';
import type { FlowNode } from '../../flows/mapping';
import { parsePipeline } from '../../flows/pipeline';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { echoscu } from '../dimse/helpers';
import { CLARA_PIPELINE_YAML } from '../support/clara';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { scratchDir } from '../support/tools';
import { type DeployedNode, type EditorWindow, closeEditDialog, deploy, deployedFlows, invalidNodes, launchChromium, openEditDialog, openEditor, snap, statusLabel, waitInPage } from './editor';

const SEED = readFileSync(CLARA_PIPELINE_YAML, 'utf8');
const MAPPED_TYPES = ['clara-dicom-in', 'clara-dicom-in', 'clara-dicom-parser', 'clara-render-register', 'clara-rtstruct-writer', 'clara-scu-out', 'clara-scu-out', 'clara-seg-writer', 'clara-series-selector', 'clara-triton-infer'];

/**
 * Properties of the conversion an editor import would lose: Node-RED's editor keeps only the properties a
 * node type declares in its defaults. Every node type declares the importer's records (`clara`, `requests`),
 * so none is lost; a key listed here would be one the editor drops.
 */
const EDITOR_DROPS: string[] = [];

/** A node's wires without the unwired outputs at the end (the editor writes one empty list per output). */
function usedOutputs(wires: string[][] | undefined): string[][] {
  const out = [...(wires ?? [])];
  while (out.length > 0 && out[out.length - 1].length === 0) out.pop();
  return out;
}

/** What POST /clara-dicom/import answers (the fields the test reads). */
interface Conversion {
  flow: DeployedNode[];
  warnings: string[];
}

/**
 * Scenario (b) of the editor: the shared Clara pipeline YAML uploaded into "Import Clara pipeline…" from
 * the main menu, previewed, imported as a tab of prewired nodes and deployed. The endpoint's permission
 * check and its answer to a malformed document are tested here too, as they are what the dialog relies on.
 */
describe('editor: Import Clara pipeline… → deploy (chromium, headless Node-RED)', function () {
  this.timeout(180000);
  const scratch = scratchDir('browser-import');
  let red: HeadlessRed;
  let browser: Browser | undefined;
  let page: Page;
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

  it('uploads the shared YAML from the main menu entry, previews it with no warnings, imports and deploys the tab', async () => {
    red = await startHeadlessRed(join(scratch.dir, 'open'), []);
    browser = await launchChromium();
    page = await openEditor(browser, red);
    await page.waitForSelector('#menu-item-import-clara-pipeline', { state: 'attached', timeout: 30000 });
    // The entry sits right below Node-RED's own Import, in the main menu.
    assert.equal(await page.evaluate(() => document.querySelector('#menu-item-import')?.parentElement?.nextElementSibling?.querySelector('a')?.id), 'menu-item-import-clara-pipeline');
    await page.click('#red-ui-header-button-sidemenu');
    await page.click('#menu-item-import-clara-pipeline');
    await page.waitForSelector('#clara-import-yaml', { state: 'visible' });
    await page.setInputFiles('#clara-import-file', CLARA_PIPELINE_YAML);
    await page.waitForSelector('.clara-import-table', { timeout: 20000 });
    assert.equal(await page.inputValue('#clara-import-yaml'), SEED, 'the uploaded file fills the text box');
    const preview = (await page.textContent('#clara-import-preview')) ?? '';
    assert.match(preview, /brain-tumor-segmentation.*clara\/ai-braintumor.*clara-triton-infer/s);
    assert.match(preview, /No warnings\./);
    assert.equal(await page.locator('.clara-import-warnings li').count(), 0);
    await snap(page, 'b1-import-preview');
    await page.click('#clara-import-button');
    await page.waitForFunction(() => (window as unknown as EditorWindow).RED.nodes.filterNodes({ type: 'clara-triton-infer' }).length === 1, null, { timeout: 20000 });
    const imported = await page.evaluate(() => {
      const RED = (window as unknown as EditorWindow).RED;
      const infer = RED.nodes.filterNodes({ type: 'clara-triton-infer' })[0];
      return { tab: infer.z, onTab: RED.nodes.filterNodes({ z: infer.z }).map((n) => n._orig?.type ?? n.type).sort() };
    });
    assert.deepEqual(imported.onTab, MAPPED_TYPES);
    await snap(page, 'b2-imported');
    // Imported as converted, every node passes its edit form's validation: Deploy asks no "not properly
    // configured" question.
    assert.deepEqual(await invalidNodes(page), [], 'the imported nodes are valid in the editor');

    // The pipeline's SCP listens on 0.0.0.0:104 as imported; a user points it at their own port first
    // (here a free loopback port, as every network test here stays on 127.0.0.1).
    const conversion = (await (await fetch(`${red.url}/clara-dicom/import`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ yaml: SEED }) })).json()) as Conversion;
    const scp = conversion.flow.find((n) => n.type === 'clara-dicom-in' && n.z === imported.tab && n.name === 'payload');
    assert.ok(scp, 'the pipeline input is a clara-dicom-in');
    const dicomPort = await freeLoopbackPort();
    await page.evaluate((tab) => (window as unknown as { RED: { workspaces: { show(id: string): void } } }).RED.workspaces.show(tab), imported.tab);
    await openEditDialog(page, scp.id);
    await page.fill('#node-input-port', String(dicomPort));
    await page.fill('#node-input-host', '127.0.0.1');
    await snap(page, 'b3-scp-port');
    await closeEditDialog(page);
    await deploy(page);

    const deployed = await deployedFlows(red);
    const tab = deployed.find((n) => n.id === imported.tab);
    assert.equal(tab?.type, 'tab');
    assert.equal(tab?.label, conversion.flow.find((n) => n.id === imported.tab)?.label);
    assert.deepEqual(deployed.filter((n) => n.z === imported.tab).map((n) => n.type).sort(), MAPPED_TYPES);
    // Every node and config node of the conversion is deployed as converted: same wires, same settings,
    // but for the port and host typed into the dialog.
    const byId = new Map(deployed.map((n) => [n.id, n]));
    const lost: string[] = [];
    for (const node of conversion.flow) {
      // The editor keeps only its own properties of a tab (label, info, env, …): the tab's `clara` pipeline
      // record is lost the same way (see EDITOR_DROPS).
      if (node.type === 'tab') continue;
      const live = byId.get(node.id);
      assert.ok(live, `${node.type} ${node.id} is deployed`);
      const expected: Record<string, unknown> = node.id === scp.id ? { ...node, port: dicomPort, host: '127.0.0.1' } : node;
      for (const [key, value] of Object.entries(expected)) {
        if (key === 'x' || key === 'y' || EDITOR_DROPS.includes(key)) continue;
        try {
          if (key === 'wires') assert.deepEqual(usedOutputs(live.wires), usedOutputs(value as string[][]));
          else assert.deepEqual(key === 'port' ? Number(live[key]) : live[key], value);
        } catch {
          lost.push(`${node.type}.${key}`);
        }
      }
    }
    assert.deepEqual(lost, [], 'every converted property is deployed');
    // What the editor deployed exports back to the pipeline it came from: the operators' records survived.
    const exported = flowToPipeline(deployed as unknown as FlowNode[]);
    const original = parsePipeline(SEED);
    // Operators are keyed by name (the editor may list the nodes in another order); undefined keys are absent keys.
    const comparable = (ops: typeof original.operators) => JSON.parse(JSON.stringify(ops.map(({ position: _p, ...op }) => op).sort((a, b) => a.name.localeCompare(b.name))));
    assert.deepEqual(comparable(exported.operators), comparable(original.operators));
    const status = await waitInPage(page, async () => {
      const text = await statusLabel(page, scp.id);
      return text.includes(String(dicomPort)) ? text : undefined;
    }, 'the imported SCP to listen');
    assert.match(status, /listening/i);
    assert.equal((await echoscu(dicomPort, { calledAE: String(scp.aeTitle) })).code, 0, 'the deployed pipeline SCP answers C-ECHO');
    await snap(page, 'b4-deployed');

    // A malformed document says where, and imports nothing.
    await page.evaluate(() => (window as unknown as EditorWindow).RED.actions.invoke('clara-dicom:import-clara-pipeline'));
    await page.waitForSelector('#clara-import-yaml', { state: 'visible' });
    await page.fill('#clara-import-yaml', SEED.replace('name: dicom-seg-writer', 'name: dicom-parser'));
    await page.waitForSelector('.clara-import-error', { timeout: 20000 });
    assert.match((await page.textContent('.clara-import-error')) ?? '', /^line \d+, column \d+: two operators are named "dicom-parser"/);
    await snap(page, 'b5-malformed');
    await page.click('#clara-import-button');
    assert.equal(await page.evaluate(() => (window as unknown as EditorWindow).RED.nodes.filterNodes({ type: 'clara-triton-infer' }).length), 1);
  });
});

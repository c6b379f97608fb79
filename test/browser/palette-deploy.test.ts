import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { echoscu } from '../dimse/helpers';
import { seedSelectionRulesBase64 } from '../support/clara';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { scratchDir } from '../support/tools';
import { chooseTypedOption, closeEditDialog, deploy, deployedFlows, dragFromPalette, launchChromium, openEditDialog, openEditor, snap, statusLabel, waitInPage, wire } from './editor';

/**
 * Scenario (a) of the editor: a user builds the receiving half of the pipeline from the palette with the
 * mouse (drag three nodes, drag two wires), fills in each edit dialog, and deploys. The Admin API must then
 * hold exactly that flow, and the deployed clara-dicom-in must answer a C-ECHO on the port typed in.
 */
describe('editor: palette → wire → configure → deploy (chromium, headless Node-RED)', function () {
  this.timeout(120000);
  const scratch = scratchDir('browser-palette');
  let red: HeadlessRed;
  let browser: Browser;
  let page: Page;
  after(async () => {
    await browser?.close();
    await red?.stop();
    scratch.cleanup();
  });

  it('deploys clara-dicom-in → clara-dicom-parser → clara-series-selector as configured, and the SCP answers C-ECHO', async () => {
    red = await startHeadlessRed(join(scratch.dir, 'node-red'), [{ id: 'tab1', type: 'tab', label: 'Flow 1' }]);
    browser = await launchChromium();
    page = await openEditor(browser, red);
    const dicomPort = await freeLoopbackPort();
    const workRoot = join(scratch.dir, 'jobs');
    const rules = seedSelectionRulesBase64();

    const chart = await page.locator('#red-ui-workspace-chart').boundingBox();
    assert.ok(chart);
    const y = chart.y + 160;
    const dicomIn = await dragFromPalette(page, 'clara-dicom-in', chart.x + 180, y);
    const parser = await dragFromPalette(page, 'clara-dicom-parser', chart.x + 440, y);
    const selector = await dragFromPalette(page, 'clara-series-selector', chart.x + 700, y);
    await snap(page, 'a1-dragged');
    await wire(page, dicomIn, parser);
    await wire(page, parser, selector);
    const links = await page.evaluate(() => {
      const nodes = (window as unknown as { RED: { nodes: { eachLink(cb: (l: { source: { id: string }; target: { id: string } }) => void): void } } }).RED.nodes;
      const out: string[] = [];
      nodes.eachLink((l) => out.push(`${l.source.id}>${l.target.id}`));
      return out.sort();
    });
    assert.deepEqual(links, [`${dicomIn}>${parser}`, `${parser}>${selector}`].sort(), 'the two wires dragged in the editor');
    await snap(page, 'a2-wired');

    await openEditDialog(page, dicomIn);
    await page.fill('#node-input-name', 'PACS in');
    await page.fill('#node-input-aeTitle', 'EDITORSCP');
    await page.fill('#node-input-port', String(dicomPort));
    await page.fill('#node-input-host', '127.0.0.1');
    await page.fill('#node-input-studyTimeout', '2');
    await page.fill('#node-input-workRoot', workRoot);
    await page.fill('#node-input-allow', 'ECHOSCU@127.0.0.1');
    await snap(page, 'a3-dicom-in-dialog');
    await closeEditDialog(page);

    await openEditDialog(page, parser);
    await chooseTypedOption(page, 'node-input-format', 'mhd');
    await chooseTypedOption(page, 'node-input-spacingPolicy', 'reject');
    await snap(page, 'a4-parser-dialog');
    await closeEditDialog(page);

    await openEditDialog(page, selector);
    await page.selectOption('#node-input-rulesType', 'base64');
    await page.fill('#node-input-rules-base64', rules);
    await page.locator('#node-input-allMatched').check();
    // The dialog checks the rules on the server as they are entered.
    await page.waitForSelector('#clara-rules-check .clara-check-ok', { timeout: 20000 });
    await snap(page, 'a5-selector-dialog');
    await closeEditDialog(page);

    const valid = await page.evaluate((ids) => ids.map((id) => (window as unknown as { RED: { nodes: { node(id: string): { valid: boolean } } } }).RED.nodes.node(id).valid), [dicomIn, parser, selector]);
    assert.deepEqual(valid, [true, true, true], 'no node is marked invalid');
    await deploy(page);

    // The runtime's flows, not the editor's copy: what the Admin API says is deployed.
    const flows = await deployedFlows(red);
    const byId = new Map(flows.map((n) => [n.id, n]));
    const deployedIn = byId.get(dicomIn);
    const deployedParser = byId.get(parser);
    const deployedSelector = byId.get(selector);
    assert.ok(deployedIn && deployedParser && deployedSelector, `the three nodes are deployed: ${JSON.stringify(flows.map((n) => n.type))}`);
    assert.equal(deployedIn.type, 'clara-dicom-in');
    assert.deepEqual(deployedIn.wires, [[parser]]);
    assert.deepEqual(deployedParser.wires, [[selector]]);
    assert.deepEqual(deployedSelector.wires, [[], []]);
    assert.equal(new Set([deployedIn.z, deployedParser.z, deployedSelector.z]).size, 1, 'all on one tab');
    assert.deepEqual(
      { name: deployedIn.name, aeTitle: deployedIn.aeTitle, port: Number(deployedIn.port), host: deployedIn.host, studyTimeout: Number(deployedIn.studyTimeout), workRoot: deployedIn.workRoot, allow: deployedIn.allow },
      { name: 'PACS in', aeTitle: 'EDITORSCP', port: dicomPort, host: '127.0.0.1', studyTimeout: 2, workRoot, allow: 'ECHOSCU@127.0.0.1' },
    );
    assert.deepEqual({ format: deployedParser.format, spacingPolicy: deployedParser.spacingPolicy }, { format: 'mhd', spacingPolicy: 'reject' });
    assert.deepEqual({ rulesType: deployedSelector.rulesType, rules: deployedSelector.rules, allMatched: deployedSelector.allMatched }, { rulesType: 'base64', rules, allMatched: true });

    // Listening on the typed port: the editor shows it under the node, and a real C-ECHO gets an answer.
    const status = await waitInPage(page, async () => {
      const text = await statusLabel(page, dicomIn);
      return text.includes(String(dicomPort)) ? text : undefined;
    }, 'the listening status under clara-dicom-in');
    assert.match(status, /listening/i);
    await snap(page, 'a6-deployed-listening');
    const echo = await echoscu(dicomPort, { callingAE: 'ECHOSCU', calledAE: 'EDITORSCP' });
    assert.equal(echo.code, 0, `echoscu: ${echo.stderr}`);
    // The allow-list typed in the dialog is in force: another calling AE is refused.
    const refused = await echoscu(dicomPort, { callingAE: 'STRANGER', calledAE: 'EDITORSCP' });
    assert.notEqual(refused.code, 0, 'an AE outside the allow-list is refused');
    assert.doesNotMatch(red.log(), /\[error\]/, 'the runtime logged no error');
  });
});

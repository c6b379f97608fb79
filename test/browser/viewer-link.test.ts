import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { writePhantomStudy } from '../../lib/phantom';
import { dicomFilesUnder, storeResponses, storescu } from '../dimse/helpers';
import { type HeadlessRed, PACKAGE_ROOT, startHeadlessRed } from '../support/headless-red';
import { scratchDir } from '../support/tools';
import { BROWSER_ARTIFACTS, type DeployedNode, countPixels, launchChromium, openEditDialog, openEditor, snap, statusLabel, waitInPage } from './editor';

const EXAMPLE_02 = join(PACKAGE_ROOT, 'examples', '02 Receive, select and segment a study.json');

/** Example 02 as shipped, listening on `port` of 127.0.0.1 into `workRoot`, with a render node after inference. */
function exampleWithRenderNode(port: number, workRoot: string): DeployedNode[] {
  const flow = JSON.parse(readFileSync(EXAMPLE_02, 'utf8')) as DeployedNode[];
  const dicomIn = flow.find((n) => n.type === 'clara-dicom-in')!;
  Object.assign(dicomIn, { port, host: '127.0.0.1', workRoot, studyTimeout: 1 });
  const infer = flow.find((n) => n.type === 'clara-triton-infer')!;
  infer.wires = [[...infer.wires![0], 'render']];
  flow.push({ id: 'render', type: 'clara-render-register', z: dicomIn.z, name: '', mode: 'viewer', url: '', timeout: '30', workRoot: '', x: 700, y: 240, wires: [[]] });
  return flow;
}

/**
 * Scenario (c) of the editor: example 02 plus a render node, deployed; a phantom study sent over C-STORE is
 * received, parsed, selected, segmented (embedded demo model) and registered. The editor shows the viewer
 * link of the job; following it opens niivue with the volume drawn, and the edit dialog's link the job list.
 */
describe('editor: phantom study → render node link → viewer (chromium, headless Node-RED)', function () {
  this.timeout(180000);
  const scratch = scratchDir('browser-viewer');
  let red: HeadlessRed;
  let browser: Browser;
  after(async () => {
    await browser?.close();
    await red?.stop();
    scratch.cleanup();
  });

  it('opens the viewer of a processed phantom study from the link the render node shows', async () => {
    const dicomPort = await freeLoopbackPort();
    // Node-RED and chromium start in their own processes while this one writes the phantom.
    const starting = startHeadlessRed(join(scratch.dir, 'node-red'), exampleWithRenderNode(dicomPort, join(scratch.dir, 'jobs')));
    const launching = launchChromium();
    const study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 64, slices: 40, seed: 4 });
    red = await starting;
    browser = await launching;
    const editor = await openEditor(browser, red);
    const dicomIn = 'c1a7a0000000b001';
    await waitInPage(editor, async () => ((await statusLabel(editor, dicomIn)).includes(String(dicomPort)) ? true : undefined), 'clara-dicom-in to listen');
    await snap(editor, 'c1-deployed');

    const sent = await storescu(dicomPort, dicomFilesUnder(join(scratch.dir, 'phantom', 'dicom')), { calledAE: 'CLARA' });
    assert.equal(sent.code, 0, sent.stderr);
    assert.ok(storeResponses(sent).every((r) => r === 'Success'));

    // The job's viewer link pops up in the editor once the render node has registered it.
    const link = editor.locator('.clara-viewer-notification a.clara-viewer-link');
    await link.waitFor({ state: 'visible', timeout: 120000 }).catch(async (err: Error) => {
      await snap(editor, 'c-timeout-no-link');
      throw new Error(`no viewer link in the editor (${err.message}); Node-RED log:\n${red.log()}`);
    });
    const notification = (await editor.locator('.clara-viewer-notification').textContent()) ?? '';
    const jobId = /job (\S+) rendered/.exec(notification)?.[1];
    assert.ok(jobId, `the notification names the job: ${JSON.stringify(notification)}`);
    const href = await link.getAttribute('href');
    assert.equal(href, `/clara-dicom/viewer/${encodeURIComponent(jobId)}`);
    // The status under the node names the same viewer page.
    const renderStatus = await statusLabel(editor, 'render');
    assert.ok(renderStatus.includes(href), `the render node's status names the viewer page: ${JSON.stringify(renderStatus)}`);
    await snap(editor, 'c2-viewer-link');

    const [viewer] = await Promise.all([editor.context().waitForEvent('page'), link.click()]);
    const problems: string[] = [];
    viewer.on('pageerror', (e) => problems.push(e.message));
    await viewer.waitForFunction(() => document.body.dataset.ready === 'true' || document.body.dataset.error !== undefined, undefined, { timeout: 60000 });
    assert.equal(await viewer.evaluate(() => document.body.dataset.error), undefined, problems.join('\n'));
    assert.equal(new URL(viewer.url()).pathname, href);
    const volumes = await viewer.evaluate(() => (window as unknown as { claraViewer: { volumes: Array<{ img: ArrayLike<number> }> } }).claraViewer.volumes.map((v) => v.img.length));
    assert.equal(volumes.length, 2, 'the density volume and the mask are loaded');
    assert.ok(volumes.every((n) => n > 0));
    await viewer.waitForTimeout(800); // a few frames drawn
    const canvas = await viewer.locator('#gl').screenshot({ path: join(BROWSER_ARTIFACTS, 'c3-viewer-canvas.png') });
    // Share of the canvas that is not background (niivue clears to black): the volume was drawn.
    const pixels = await countPixels(viewer, canvas);
    const lit = pixels.lit / (pixels.width * pixels.height);
    assert.ok(lit > 0.05, `the canvas shows the volume (${(lit * 100).toFixed(1)} % lit)`);
    await snap(viewer, 'c3-viewer');

    // The render node's edit dialog links to the job list and to its last job.
    await openEditDialog(editor, 'render');
    const listLink = editor.locator('#clara-render-viewer-list');
    assert.equal(await listLink.getAttribute('href'), '/clara-dicom/viewer');
    assert.equal(await editor.locator('#clara-render-viewer-last a').getAttribute('href'), href);
    await snap(editor, 'c4-dialog-links');
    const [list] = await Promise.all([editor.context().waitForEvent('page'), listLink.click()]);
    await list.waitForLoadState();
    const row = list.locator(`a[href="viewer/${encodeURIComponent(jobId)}"]`);
    assert.equal(await row.count(), 1, 'the job list names the job');
    // Its row: the selected (target) series, of the processed job.
    assert.ok(((await list.locator('tbody').textContent()) ?? '').includes(study.series.find((s) => s.isTarget)!.description), 'the row names the selected series');
    await snap(list, 'c5-job-list');
    assert.doesNotMatch(red.log(), /\[error\]/, 'the runtime logged no error');
  });
});

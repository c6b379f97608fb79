import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { HeadlessRed } from '../support/headless-red';
import { delay } from '../support/tools';

/** Debian's chromium, which .ci/run installs: without it these tests fail (they do not skip). */
export const CHROMIUM = '/usr/bin/chromium';
/** Screenshots of every step, kept for a reviewer (git-ignored). */
export const BROWSER_ARTIFACTS = join(__dirname, '..', '..', '..', 'test-artifacts', 'browser');

/** A node as GET /flows returns it (the fields the tests read). */
export interface DeployedNode {
  id: string;
  type: string;
  z?: string;
  label?: string;
  wires?: string[][];
  [field: string]: unknown;
}

/** The editor's RED object, typed for the calls the tests make in the page. */
export interface EditorWindow {
  RED: {
    actions: { invoke(name: string): void };
    nodes: {
      filterNodes(filter: { type?: string; z?: string }): Array<{ id: string; type: string; z: string; x: number; y: number; _orig?: { type: string } }>;
      node(id: string): { id: string; valid: boolean; dirty: boolean } | undefined;
      dirty(): boolean;
    };
    workspaces: { active(): string };
    view: { scale(): number };
  };
}

export async function launchChromium(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} (Debian chromium) is needed: .ci/run installs it`);
  mkdirSync(BROWSER_ARTIFACTS, { recursive: true });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}

/** A screenshot of the whole page as test-artifacts/browser/<name>.png. */
export async function snap(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(BROWSER_ARTIFACTS, `${name}.png`) });
}

/** Opens the editor and waits until it has loaded the palette and the flows. */
export async function openEditor(browser: Browser, red: HeadlessRed): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(red.url);
  await page.waitForFunction(() => Boolean((window as unknown as Partial<EditorWindow>).RED?.workspaces?.active?.()), null, { timeout: 60000 });
  await page.waitForSelector('.red-ui-palette-node[data-palette-type="clara-dicom-in"]', { state: 'attached', timeout: 30000 });
  assert.deepEqual(problems, [], 'the editor loaded without script errors');
  return page;
}

/** The ids of the editor's nodes of `type`, in the order they were added. */
export function editorNodesOf(page: Page, type: string): Promise<string[]> {
  return page.evaluate((t) => (window as unknown as EditorWindow).RED.nodes.filterNodes({ type: t }).map((n) => n.id), type);
}

/**
 * Drags a node type from the palette onto the workspace at (x, y) of the page, with the mouse as a user
 * does (jQuery UI's draggable needs real mouse moves), and returns the new node's id.
 */
export async function dragFromPalette(page: Page, type: string, x: number, y: number): Promise<string> {
  const before = await editorNodesOf(page, type);
  const item = page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
  await item.scrollIntoViewIfNeeded();
  const box = await item.boundingBox();
  assert.ok(box, `${type} is not in the palette`);
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 30, box.y + box.height / 2, { steps: 5 });
  await page.mouse.move(x, y, { steps: 15 });
  await page.mouse.up();
  const added = await waitInPage(page, async () => (await editorNodesOf(page, type)).find((id) => !before.includes(id)), `a ${type} node on the workspace`);
  return added;
}

/** Drags a wire from `from`'s first output port to `to`'s input port. */
export async function wire(page: Page, from: string, to: string): Promise<void> {
  const output = await page.locator(`g[id="${from}"] .red-ui-flow-port-output .red-ui-flow-port`).first().boundingBox();
  const input = await page.locator(`g[id="${to}"] .red-ui-flow-port-input .red-ui-flow-port`).first().boundingBox();
  assert.ok(output && input, `ports of ${from} → ${to}`);
  await page.mouse.move(output.x + output.width / 2, output.y + output.height / 2);
  await page.mouse.down();
  await page.mouse.move(input.x + input.width / 2, input.y + input.height / 2, { steps: 15 });
  await page.mouse.up();
}

/** Opens a node's edit dialog by double-clicking it on the workspace. */
export async function openEditDialog(page: Page, id: string): Promise<void> {
  await page.locator(`g[id="${id}"] .red-ui-flow-node`).first().dblclick();
  await page.waitForSelector('#node-dialog-ok', { state: 'visible' });
  // The tray slides in: let it settle before typing into it.
  await delay(400);
}

export async function closeEditDialog(page: Page): Promise<void> {
  await page.click('#node-dialog-ok');
  await page.waitForSelector('#node-dialog-ok', { state: 'detached' });
}

/** Picks an option of a typedInput's option menu (the widget Node-RED turns a text input into). */
export async function chooseTypedOption(page: Page, inputId: string, value: string): Promise<void> {
  const container = page.locator(`#${inputId}`).locator('xpath=..');
  // On a loaded machine a click can land while the tray or an earlier menu still animates, and be lost:
  // the pick is tried again, up to three times, before the test gives up.
  for (let attempt = 1; ; attempt++) {
    const option = page.locator(`.red-ui-typedInput-options:visible a[value="${value}"]`);
    // Opened unless a menu from the try before is still open (a second click on the trigger would close it).
    if (!(await option.isVisible().catch(() => false))) await container.locator('.red-ui-typedInput-option-trigger').click();
    // Only the menu just opened is visible; one still closing from an earlier pick is not.
    await option.click();
    try {
      // The widget writes the choice into its input when the menu closes: wait for it, not for the animation.
      await page.waitForFunction(([id, v]) => (document.getElementById(id) as HTMLInputElement | null)?.value === v, [inputId, value] as const, { timeout: 10000 });
      break;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
  await page.waitForSelector('.red-ui-typedInput-options:visible', { state: 'detached', timeout: 10000 }).catch(() => undefined);
}

/** The editor's nodes (and config nodes) that fail their edit form's validation, with the failing properties. */
export function invalidNodes(page: Page): Promise<Array<{ type: string; name: string; properties: string[] }>> {
  return page.evaluate(() => {
    type EditorNode = { type: string; name?: string; valid?: boolean; validationErrors?: string[] };
    const nodes = (window as unknown as { RED: { nodes: { eachNode(cb: (n: EditorNode) => void): void; eachConfig(cb: (n: EditorNode) => void): void } } }).RED.nodes;
    const out: Array<{ type: string; name: string; properties: string[] }> = [];
    const check = (n: EditorNode) => {
      if (n.valid === false) out.push({ type: n.type, name: n.name ?? '', properties: n.validationErrors ?? [] });
    };
    nodes.eachNode(check);
    nodes.eachConfig(check);
    return out;
  });
}

/**
 * Clicks Deploy and waits until the editor reports that nothing is left undeployed. A deploy the editor
 * questions ("not properly configured") fails here, with the nodes it names.
 */
export async function deploy(page: Page): Promise<void> {
  await page.click('#red-ui-header-button-deploy');
  const question = page.locator('.red-ui-notification:has-text("not properly configured")');
  await waitInPage(page, async () => {
    if (await question.count()) {
      await snap(page, 'deploy-questioned');
      throw new Error(`Deploy asks to confirm nodes that are not properly configured: ${JSON.stringify(await invalidNodes(page))}`);
    }
    return (await page.evaluate(() => (window as unknown as EditorWindow).RED.nodes.dirty())) ? undefined : true;
  }, 'the deploy to finish');
}

/** The flows the runtime runs, from the Admin API. */
export async function deployedFlows(red: HeadlessRed): Promise<DeployedNode[]> {
  const res = await fetch(`${red.url}/flows`, { headers: { accept: 'application/json', 'Node-RED-API-Version': 'v1' } });
  assert.equal(res.status, 200);
  return (await res.json()) as DeployedNode[];
}

/** The status text Node-RED's editor shows under a node. */
export function statusLabel(page: Page, id: string): Promise<string> {
  return page.evaluate((nodeId) => document.querySelector(`g[id="${nodeId}"] .red-ui-flow-node-status-label`)?.textContent ?? '', id);
}

/** Polls `check` (which may ask the page) until it gives something other than undefined. */
export async function waitInPage<T>(page: Page, check: () => Promise<T | undefined>, what: string, timeoutMs = 20000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      await snap(page, `timeout-${what.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`);
      throw new Error(`timed out waiting for ${what}`);
    }
    await delay(100);
  }
}

/** Pixels of a PNG screenshot counted in the browser itself (a 2D canvas reads it back). */
export async function countPixels(page: Page, png: Buffer): Promise<{ width: number; height: number; lit: number; overlay: number; box: number[]; quadrants: number[] }> {
  return page.evaluate(async (dataUrl) => {
    const img = new Image();
    img.src = dataUrl;
    await img.decode();
    const canvas = document.createElement('canvas');
    [canvas.width, canvas.height] = [img.width, img.height];
    const ctx = canvas.getContext('2d')!;
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, img.width, img.height).data;
    let lit = 0, overlay = 0;
    const box = [Infinity, Infinity, -1, -1];
    // niivue's multiplanar layout here is 2 × 2 tiles (coronal, sagittal / axial, 3D): red per tile.
    const quadrants = [0, 0, 0, 0];
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] + d[i + 1] + d[i + 2] > 60) lit++;
      // Label 1 is pure red blended over grey: red well above green and blue, green ≈ blue.
      if (d[i] > d[i + 1] + 60 && Math.abs(d[i + 1] - d[i + 2]) < 24) {
        overlay++;
        const x = (i / 4) % img.width, y = Math.floor(i / 4 / img.width);
        quadrants[(y < img.height / 2 ? 0 : 2) + (x < img.width / 2 ? 0 : 1)]++;
        box[0] = Math.min(box[0], x); box[1] = Math.min(box[1], y); box[2] = Math.max(box[2], x); box[3] = Math.max(box[3], y);
      }
    }
    return { width: img.width, height: img.height, lit, overlay, box, quadrants };
  }, `data:image/png;base64,${png.toString('base64')}`);
}

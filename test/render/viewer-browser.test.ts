import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { type JobRef, JobStore } from '../../lib/job';
import { inferenceConfigFromFields } from '../../lib/infer/config';
import { inferJob } from '../../lib/infer/job';
import { BUNDLED_MODEL_REPOSITORY, connectInferenceServer } from '../../lib/infer/server';
import { selectedPhantomJob } from '../support/clara';
import { delay, scratchDir } from '../support/tools';
import { CHROMIUM, countPixels } from '../browser/editor';

const ARTIFACTS = join(__dirname, '..', '..', '..', 'test-artifacts', 'clara-render');
// The compiled node folder: red.js loads it through nodesDir, as the package's "node-red" section does not
// list the node (yet).
const NODE_DIR = join(__dirname, '..', '..', 'nodes', 'clara-render-register');
const USER = { user: 'viewer', pass: 'not-for-diagnostic-use' };

/** red.js headless with httpNodeAuth on, the render node from nodesDir, and a flow that registers `job` at start. */
async function startRed(userDir: string, job: JobRef, workRoot: string): Promise<{ url: string; log(): string; stop(): Promise<void> }> {
  mkdirSync(userDir, { recursive: true });
  const port = await freeLoopbackPort();
  const flow = [
    { id: 'tab', type: 'tab', label: 'render' },
    // The inject node fires once at start with msg.job: no admin API call needed.
    { id: 'go', z: 'tab', type: 'inject', props: [{ p: 'job', v: JSON.stringify(job), vt: 'json' }], once: true, onceDelay: 0.2, repeat: '', wires: [['render']] },
    { id: 'render', z: 'tab', type: 'clara-render-register', workRoot, wires: [[]] },
  ];
  writeFileSync(join(userDir, 'flows.json'), JSON.stringify(flow));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const bcrypt = require('bcryptjs') as { hashSync(text: string, rounds: number): string };
  const settings = {
    uiHost: '127.0.0.1', uiPort: port, userDir, flowFile: 'flows.json', credentialSecret: false,
    nodesDir: [NODE_DIR],
    httpNodeAuth: { user: USER.user, pass: bcrypt.hashSync(USER.pass, 8) },
    logging: { console: { level: 'info' } },
    diagnostics: { enabled: false, ui: false }, telemetry: { enabled: false },
    editorTheme: { projects: { enabled: false }, tours: false },
  };
  const settingsFile = join(userDir, 'settings.js');
  writeFileSync(settingsFile, `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  let output = '';
  const child: ChildProcess = spawn(process.execPath, [require.resolve('node-red/red.js'), '--settings', settingsFile, '--userDir', userDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 60000;
  while (!/Started flows/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Node-RED did not start:\n${output}`);
    }
    await delay(200);
  }
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGINT');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

describe('clara-render-register viewer in chromium (red.js headless, httpNodeAuth)', function () {
  this.timeout(300000);
  const scratch = scratchDir('render-browser');
  const store = new JobStore(join(scratch.dir, 'jobs'));
  let red: Awaited<ReturnType<typeof startRed>> | undefined;
  let browser: Browser | undefined;
  let job: JobRef;

  before(async function () {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} (Debian chromium) is needed: .ci/run installs it`);
    const selected = await selectedPhantomJob(store, join(scratch.dir, 'phantom'), { size: 96, slices: 60, seed: 4 });
    job = selected.job;
    await runDemoInference(job.dir);
    red = await startRed(join(scratch.dir, 'red'), job, store.root);
    mkdirSync(ARTIFACTS, { recursive: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { chromium } = require('playwright-core') as typeof import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  });
  after(async () => {
    await browser?.close();
    await red?.stop();
    scratch.cleanup();
  });

  it('is behind httpNodeAuth', async () => {
    const viewer = `${red!.url}/clara-dicom/viewer`;
    assert.equal((await fetch(viewer)).status, 401);
    assert.equal((await fetch(viewer, { headers: { authorization: `Basic ${Buffer.from(`${USER.user}:wrong`).toString('base64')}` } })).status, 401);
    const ok = await fetch(viewer, { headers: { authorization: `Basic ${Buffer.from(`${USER.user}:${USER.pass}`).toString('base64')}` } });
    assert.equal(ok.status, 200);
    assert.equal((await fetch(`${viewer}/niivue.js`)).status, 401);
  });

  it('shows the processed job in niivue with the mask overlay near the lesion', async () => {
    const context = await browser!.newContext({ httpCredentials: { username: USER.user, password: USER.pass }, viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const console: string[] = [];
    page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => console.push(`pageerror: ${e.message}`));
    // The inject node registered the job at start: wait for its snapshots, then open the list.
    const deadline = Date.now() + 60000;
    while (!existsSync(join(job.dir, 'render', 'montage.png'))) {
      if (Date.now() > deadline) throw new Error(`the job was not registered:\n${red!.log()}`);
      await delay(200);
    }
    copyFileSync(join(job.dir, 'render', 'montage.png'), join(ARTIFACTS, 'montage.png'));
    await page.goto(`${red!.url}/clara-dicom/viewer`);
    await page.click(`a[href="viewer/${job.id}"]`);
    await page.waitForFunction(() => document.body.dataset.ready === 'true' || document.body.dataset.error !== undefined, undefined, { timeout: 60000 });
    const error = await page.evaluate(() => document.body.dataset.error);
    assert.equal(error, undefined, `viewer error: ${error}\n${console.join('\n')}`);
    await delay(1000); // a few frames drawn
    const canvas = page.locator('#gl');
    const shot = await canvas.screenshot({ path: join(ARTIFACTS, 'viewer.png') });
    const withMask = await countPixels(page, shot);
    assert.ok(withMask.lit > withMask.width * withMask.height * 0.05, `canvas nearly blank: ${JSON.stringify(withMask)}\n${console.join('\n')}`);
    const debug = await page.evaluate(() => {
      const nv = (window as unknown as { claraViewer: { volumes: Array<{ img: ArrayLike<number>; colormap: string; cal_min: number; cal_max: number; colormapLabel: unknown; opacity: number; hdr: { datatypeCode: number } }> } }).claraViewer;
      return nv.volumes.map((v) => ({ nonZero: Array.from(v.img).filter((x) => x !== 0).length, n: v.img.length, colormap: v.colormap, cal: [v.cal_min, v.cal_max], label: !!v.colormapLabel, opacity: v.opacity, type: v.hdr.datatypeCode }));
    });
    assert.ok(withMask.overlay > 50, `no overlay-coloured pixels: ${JSON.stringify(withMask)} ${JSON.stringify(debug)}`);
    // The slices go through the lesion (the crosshair starts at the mask's centroid): red in every view.
    assert.ok(withMask.quadrants.every((n) => n > 10), `overlay not in every view: ${JSON.stringify(withMask.quadrants)}`);
    // The red pixels are the mask: opacity 0 takes them away.
    await page.locator('#opacity').fill('0');
    await delay(500);
    const shotNoMask = await canvas.screenshot({ path: join(ARTIFACTS, 'viewer-opacity0.png') });
    const noMask = await countPixels(page, shotNoMask);
    assert.ok(noMask.overlay < withMask.overlay / 10, `overlay stays at opacity 0: ${noMask.overlay} vs ${withMask.overlay}`);
    writeFileSync(join(ARTIFACTS, 'pixels.json'), JSON.stringify({ withMask, noMask }, null, 2));
    await context.close();
  });
});

/** clara-triton-infer's embedded path with the demo preset (the bundled model, in-process), without Node-RED. */
async function runDemoInference(jobDir: string): Promise<void> {
  const server = connectInferenceServer({ mode: 'embedded', repository: BUNDLED_MODEL_REPOSITORY });
  try {
    await inferJob(jobDir, { server, config: inferenceConfigFromFields({ preset: 'demo' }), format: 'nifti-gz' });
  } finally {
    await server.close();
  }
}

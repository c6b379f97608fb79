import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { type AddressInfo } from 'node:net';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { type JobRef, JobStore, readJob } from '../../lib/job';
import { type SelectedPhantomJob, copyJob, selectedPhantomJob } from '../support/clara';
import { type TestNode, callsOn, collectMessages, helper, statusTexts, waitFor } from '../support/node-red';
import { scratchDir } from '../support/tools';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { decodePng, pixel } from '../render/helpers';

const nodeFile = (type: string) => join(__dirname, '..', '..', 'nodes', type, `${type}.js`);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const inferNode = require(nodeFile('clara-triton-infer')) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const renderModule = require(nodeFile('clara-render-register')) as (RED: { httpNode: unknown }) => void;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require(join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'common', '25-catch.js')) as unknown;

type Handler = (req: IncomingMessage, res: import('node:http').ServerResponse) => void;
// Node-RED's httpNode app as the helper builds it (express): captured when the node registers.
let httpNode: Handler | undefined;
const renderNode = (RED: { httpNode: unknown }) => {
  httpNode = RED.httpNode as Handler;
  return renderModule(RED);
};

interface RenderMsg {
  job: JobRef;
  payload: Buffer;
  render: { dir: string; snapshots: Record<'axial' | 'coronal' | 'sagittal' | 'montage', string>; viewerUrl: string; centre: number[]; lesion: boolean; url?: string; status?: number; files?: string[]; response?: unknown };
}
interface CaughtMsg {
  job?: JobRef;
  error: { message: string };
}

async function listen(handler: Handler): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('clara-render-register node in a Node-RED 4 runtime', function () {
  this.timeout(300000);
  const scratch = scratchDir('node-render');
  const store = new JobStore(join(scratch.dir, 'jobs'));
  let small: SelectedPhantomJob;
  let inferred: JobRef;

  before(async () => {
    small = await selectedPhantomJob(store, join(scratch.dir, 'small'), { size: 64, slices: 40, seed: 4 });
    // The real publish folder: clara-triton-infer with the bundled demo model, then unloaded.
    await helper.load([inferNode], [
      { id: 'tab', type: 'tab', label: 'infer' },
      { id: 'infer', z: 'tab', type: 'clara-triton-infer', preset: 'demo', format: 'nifti-gz', wires: [['out']] },
      { id: 'out', z: 'tab', type: 'helper' },
    ]);
    const out = collectMessages<{ job: JobRef }>(helper.getNode('out'));
    inferred = copyJob(store, small.job);
    helper.getNode('infer').receive({ job: inferred });
    await waitFor(() => out[0], 240000, 'inference');
    await helper.unload();
    // A patient name the list must reduce to initials.
    const metadataFile = join(inferred.dir, 'parser', 'dicom-metadata.json');
    const metadata = JSON.parse(readFileSync(metadataFile, 'utf8')) as { studies: Array<{ series: Array<{ attributes: Record<string, unknown> }> }> };
    for (const s of metadata.studies[0].series) s.attributes['00100010'] = { vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane^Quinn' }] };
    writeFileSync(metadataFile, JSON.stringify(metadata));
  });
  afterEach(() => helper.unload());
  after(() => scratch.cleanup());

  const flow = (extra: Record<string, unknown> = {}) => [
    { id: 'tab', type: 'tab', label: 'render' },
    { id: 'render', z: 'tab', type: 'clara-render-register', workRoot: store.root, wires: [['done']], ...extra },
    { id: 'done', z: 'tab', type: 'helper' },
    { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'tab', type: 'helper' },
  ];

  it('viewer mode: writes snapshots with the mask near the lesion, sends the montage, serves the viewer', async () => {
    await helper.load([renderNode, catchNode], flow());
    const done = collectMessages<RenderMsg>(helper.getNode('done'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const job = copyJob(store, inferred);
    helper.getNode('render').receive({ job, inference: { publishDir: join(job.dir, 'publish') } });
    const msg = await waitFor(() => done[0], 60000, () => `render; caught: ${caught.map((c) => c.error.message).join(' | ') || 'nothing'}`);
    assert.equal(msg.render.dir, join(job.dir, 'render'));
    assert.equal(msg.render.viewerUrl, `/clara-dicom/viewer/${job.id}`);
    assert.equal(msg.render.lesion, true);
    assert.ok(Buffer.isBuffer(msg.payload) && msg.payload.length < 400_000, `montage ${msg.payload.length} bytes`);
    assert.ok(msg.payload.equals(readFileSync(msg.render.snapshots.montage)));
    for (const plane of ['axial', 'coronal', 'sagittal'] as const) {
      const png = decodePng(msg.render.snapshots[plane]);
      // The slice goes through the lesion centroid, so labelled (red-tinted) pixels are on it.
      let red = 0;
      for (let y = 0; y < png.height; y++) for (let x = 0; x < png.width; x++) {
        const [r, g, b] = pixel(png, x, y);
        if (r > g + 30 && g === b) red++;
      }
      assert.ok(red > 10, `${plane}: ${red} overlay pixels`);
    }
    assert.ok(statusTexts(helper.getNode('render')).includes(`/clara-dicom/viewer/${job.id}`));
    assert.ok(readJob(job.dir).timestamps.rendered);

    // The viewer on Node-RED's httpNode app.
    const { server, url } = await listen(httpNode!);
    try {
      const list = await (await fetch(`${url}/clara-dicom/viewer`)).text();
      assert.match(list, new RegExp(`viewer/${job.id}`));
      assert.match(list, /<td>JQD<\/td>/);
      assert.doesNotMatch(list, /Doe|Jane/i);
      const page = await fetch(`${url}/clara-dicom/viewer/${job.id}`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /niivue\.js/);
      const bundle = await fetch(`${url}/clara-dicom/viewer/niivue.js`);
      assert.equal(bundle.status, 200);
      assert.ok((await bundle.text()).includes('niivue'));
      const uid = small.study.targetSeriesInstanceUID;
      const density = await fetch(`${url}/clara-dicom/viewer/${job.id}/files/${uid}.nii.gz`);
      assert.equal(density.status, 200);
      assert.equal(Buffer.from(await density.arrayBuffer()).length, statSync(join(job.dir, 'publish', `${uid}.nii.gz`)).size);
      assert.equal((await fetch(`${url}/clara-dicom/viewer/${job.id}/files/${uid}.output.nii.gz`)).status, 200);
      // Not named in config.meta, outside the folder, or not a job id: refused.
      assert.equal((await fetch(`${url}/clara-dicom/viewer/${job.id}/files/job.json`)).status, 404);
      assert.equal((await fetch(`${url}/clara-dicom/viewer/${job.id}/files/..%2Fjob.json`)).status, 404);
      assert.equal((await fetch(`${url}/clara-dicom/viewer/..%2F..%2Fetc/files/passwd`)).status, 404);
      assert.equal((await fetch(`${url}/clara-dicom/viewer/no-such-job`)).status, 404);
      const snap = await fetch(`${url}/clara-dicom/viewer/${job.id}/snapshots/montage.png`);
      assert.equal(snap.status, 200);
      assert.equal(snap.headers.get('content-type'), 'image/png');
    } finally {
      server.close();
    }
  });

  it('fails a job without a publish folder with a clear reason, and keeps serving the next', async () => {
    await helper.load([renderNode, catchNode], flow());
    const done = collectMessages<RenderMsg>(helper.getNode('done'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const bare = copyJob(store, small.job);
    helper.getNode('render').receive({ job: bare });
    const error = await waitFor(() => caught[0], 30000, 'the error');
    assert.match(error.error.message, new RegExp(`^(Error: )?clara-render-register: job ${bare.id}: .*config\\.meta does not exist`));
    assert.equal(readJob(bare.dir).errors.at(-1)?.stage, 'render');
    assert.ok(callsRed(helper.getNode('render')));
    const good = copyJob(store, inferred);
    helper.getNode('render').receive({ job: good });
    await waitFor(() => done[0], 60000, 'the next job');
    assert.equal(done[0].job.id, good.id);
  });

  it('render-server mode: POSTs config.meta, config_render.json and the volumes as one JSON; errors name the server', async () => {
    const bodies: Array<{ job: { id: string }; meta: { density: string }; settings: unknown; files: Array<{ name: string; size: number; base64: string }> }> = [];
    let answer = 200;
    const { server, url } = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (answer === 0) return; // never answers: the timeout
        bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(answer, { 'content-type': 'application/json' }).end(JSON.stringify(answer === 200 ? { accepted: true } : { error: 'disk full' }));
      });
    });
    try {
      await helper.load([renderNode, catchNode], flow({ mode: 'render-server', url: `${url}/upload`, timeout: '2' }));
      const done = collectMessages<RenderMsg>(helper.getNode('done'));
      const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
      const job = copyJob(store, inferred);
      helper.getNode('render').receive({ job });
      const msg = await waitFor(() => done[0], 30000, () => `post; caught: ${caught.map((c) => c.error.message).join(' | ')}`);
      assert.equal(msg.render.status, 200);
      assert.deepEqual(msg.render.response, { accepted: true });
      const uid = small.study.targetSeriesInstanceUID;
      assert.deepEqual(msg.render.files!.sort(), [`${uid}.nii.gz`, `${uid}.output.nii.gz`, 'config.meta', 'config_render.json'].sort());
      const [body] = bodies;
      assert.equal(body.job.id, job.id);
      assert.equal(body.meta.density, `${uid}.nii.gz`);
      const density = body.files.find((f) => f.name === `${uid}.nii.gz`)!;
      assert.ok(Buffer.from(density.base64, 'base64').equals(readFileSync(join(job.dir, 'publish', density.name))));

      answer = 500;
      helper.getNode('render').receive({ job });
      const e500 = await waitFor(() => caught[0], 30000, 'the 500');
      assert.match(e500.error.message, new RegExp(`^(Error: )?clara-render-register: job ${job.id}: render server http://127\\.0\\.0\\.1:\\d+ answered 500 .*disk full`));
      answer = 0;
      helper.getNode('render').receive({ job });
      const timeout = await waitFor(() => caught[1], 30000, 'the timeout');
      assert.match(timeout.error.message, /did not answer within 2 s/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
    const unreachable = copyJob(store, inferred);
    await helper.unload();
    const closed = await freeLoopbackPort(); // nothing listens there
    await helper.load([renderNode, catchNode], flow({ mode: 'render-server', url: `http://127.0.0.1:${closed}/upload` }));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    helper.getNode('render').receive({ job: unreachable });
    const refused = await waitFor(() => caught[0], 30000, 'the refused connection');
    assert.match(refused.error.message, new RegExp(`render server http://127\\.0\\.0\\.1:${closed} cannot be reached: ECONNREFUSED`));
  });

  it('says at deploy when the render server URL is not a URL', async () => {
    await helper.load([renderNode, catchNode], flow({ mode: 'render-server', url: 'not a url' }));
    assert.ok(statusTexts(helper.getNode('render')).some((t) => /is not a URL/.test(t)));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const job = copyJob(store, inferred);
    helper.getNode('render').receive({ job });
    const e = await waitFor(() => caught[0], 30000, 'the error');
    assert.match(e.error.message, /clara-render-register: job .*: render server URL "not a url" is not a URL/);
    assert.equal(existsSync(join(job.dir, 'render')), false);
  });
});

/** A red status was shown (the failure's reason). */
function callsRed(node: TestNode): boolean {
  return callsOn('status', node).some((args) => (args[0] as { fill?: string } | undefined)?.fill === 'red');
}

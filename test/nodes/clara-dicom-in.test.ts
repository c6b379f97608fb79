import assert from 'node:assert/strict';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { readJob } from '../../lib/job';
import { writePhantomStudy } from '../../lib/phantom';
import { dicomFilesUnder, echoscu, storeResponses, storescu } from '../dimse/helpers';
import { type TestNode, callsOn, collectMessages, helper, listeningPort, statusTexts, waitFor } from '../support/node-red';
import { delay, scratchDir } from '../support/tools';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const claraDicomIn = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-in', 'clara-dicom-in.js')) as unknown;

interface JobMsg {
  payload: { studyInstanceUID: string; instances: number; series: Array<{ seriesInstanceUID: string; instances: number }>; callingAE?: string; source: string };
  job: { id: string; dir: string; studyInstanceUID: string };
  topic: string;
  skipped?: Array<{ path: string; reason: string }>;
  skippedCount?: number;
}

describe('clara-dicom-in node in a Node-RED 4 runtime', function () {
  this.timeout(120000);
  const scratch = scratchDir('node-in');
  let studyDir: string;
  let files: string[];
  let sopUIDs: string[];
  let studyInstanceUID: string;
  let flowCounter = 0;

  before(() => {
    studyDir = join(scratch.dir, 'phantom');
    const study = writePhantomStudy(studyDir, { size: 32, slices: 8, seed: 5 });
    files = dicomFilesUnder(join(studyDir, 'dicom'));
    sopUIDs = study.series.flatMap((s) => s.sopInstanceUIDs).sort();
    studyInstanceUID = study.studyInstanceUID;
  });
  afterEach(async () => {
    await helper.unload();
  });
  after(() => scratch.cleanup());

  function flow(props: Record<string, unknown> = {}): Array<Record<string, unknown>> {
    return [
      {
        id: 'in', type: 'clara-dicom-in', name: '', aeTitle: 'CLARA', port: 0, host: '127.0.0.1', allow: '', studyTimeout: 0.5,
        grouping: 'study', workRoot: join(scratch.dir, `work-${++flowCounter}`), maxPdu: 65536, wires: [['out']], ...props,
      },
      { id: 'out', type: 'helper' },
    ];
  }

  it('turns a study sent by storescu into exactly one msg, with every instance on disk', async () => {
    await helper.load(claraDicomIn, flow());
    const node = helper.getNode('in');
    const msgs = collectMessages<JobMsg>(helper.getNode('out'));
    const port = await listeningPort(node);
    const result = await storescu(port, files);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(storeResponses(result).every((r) => r === 'Success'));
    await waitFor(() => (msgs.length > 0 ? true : undefined), 10000, 'the job msg');
    await delay(1200);
    assert.equal(msgs.length, 1, 'one msg per study');
    const msg = msgs[0];
    assert.equal(msg.topic, studyInstanceUID);
    assert.equal(msg.job.studyInstanceUID, studyInstanceUID);
    assert.equal(msg.payload.instances, files.length);
    assert.equal(msg.payload.callingAE, 'STORESCU');
    assert.deepEqual(readdirSync(join(msg.job.dir, 'dicom')).sort(), sopUIDs.map((u) => `${u}.dcm`).sort());
    assert.equal(readJob(msg.job.dir).state, 'received');
    // Small metadata only: no buffers anywhere in the msg.
    const json = JSON.stringify(msg);
    assert.ok(json.length < 8000, `msg is ${json.length} bytes`);
    assert.ok(!/"type":"Buffer"/.test(json));
    const last = await waitFor(() => statusTexts(node).find((t) => /1 job\(s\)/.test(t)), 3000, 'status with the job count');
    assert.match(last, new RegExp(`listening :${port} · 1 job\\(s\\), ${files.length} instance\\(s\\)`));
  });

  it('rejects a calling AE that is not allowed, and answers echoscu from one that is', async () => {
    await helper.load(claraDicomIn, flow({ allow: 'PACS\nECHOSCU@127.0.0.1' }));
    const node = helper.getNode('in');
    const msgs = collectMessages<JobMsg>(helper.getNode('out'));
    const port = await listeningPort(node);
    const rejected = await storescu(port, files.slice(0, 2), { callingAE: 'STRANGER' });
    assert.notEqual(rejected.code, 0);
    assert.match(rejected.stderr + rejected.stdout, /Calling AE Title Not Recognized/);
    const echo = await echoscu(port);
    assert.equal(echo.code, 0, echo.stderr);
    await delay(800);
    assert.equal(msgs.length, 0);
    const status = await waitFor(() => statusTexts(node).find((t) => /rejected STRANGER/.test(t)), 3000, 'the rejection in the status');
    assert.match(status, /rejected STRANGER@127\.0\.0\.1/);
    assert.ok(callsOn('status', node).some((args) => (args[0] as { fill?: string }).fill === 'red'));
  });

  it('survives three redeploys in a row on the same port: never EADDRINUSE, echo answered each time', async () => {
    const port = await freeLoopbackPort();
    const workRoot = join(scratch.dir, 'redeploy');
    const base = flow({ port, workRoot });
    await helper.load(claraDicomIn, base);
    assert.equal((await echoscu(port)).code, 0);
    const seen = new Set<TestNode>([helper.getNode('in')]);
    for (let round = 1; round <= 3; round++) {
      const next = flow({ port, workRoot, name: `round ${round}`, studyTimeout: 0.5 + round / 10 });
      await helper.setFlows(next, 'full');
      const node = helper.getNode('in');
      assert.ok(!seen.has(node), 'the redeploy made a new node instance');
      seen.add(node);
      assert.equal(await listeningPort(node), port);
      const echo = await echoscu(port);
      assert.equal(echo.code, 0, `round ${round}: ${echo.stderr}`);
    }
    const errors = helper._NodePrototype.error.getCalls().map((c) => String(c.args[0]));
    assert.deepEqual(errors.filter((e) => /in use|EADDRINUSE/.test(e)), []);
  });

  it('ingests a folder given in msg.payload and sends the job msg, reporting junk files', async () => {
    const source = join(scratch.dir, 'to-ingest');
    mkdirSync(source, { recursive: true });
    writePhantomStudy(join(source, 'exam'), { size: 16, slices: 8, seed: 6 });
    writeFileSync(join(source, 'readme.txt'), 'not dicom');
    await helper.load(claraDicomIn, flow());
    const node = helper.getNode('in');
    const msgs = collectMessages<JobMsg>(helper.getNode('out'));
    node.receive({ payload: source, topic: 'ingest', correlation: 42 });
    await waitFor(() => (msgs.length > 0 ? true : undefined), 10000, 'the folder job msg');
    const msg = msgs[0] as JobMsg & { correlation?: number };
    assert.equal(msg.payload.source, 'folder');
    assert.equal(msg.correlation, 42, 'the incoming msg is carried on');
    assert.equal(msg.payload.instances, readdirSync(join(msg.job.dir, 'dicom')).length);
    assert.equal(msg.skippedCount, 3); // readme.txt, phantom.json, the ground-truth NIfTI
    assert.ok(msg.skipped?.some((s) => s.path.endsWith('readme.txt')));
    assert.ok(callsOn('warn', node).some((args) => /skipped/.test(String(args[0]))));
  });

  it('reports a bad folder path through done(err) with the msg, and keeps running', async () => {
    await helper.load(claraDicomIn, flow());
    const node = helper.getNode('in');
    const port = await listeningPort(node);
    node.receive({ payload: join(scratch.dir, 'no-such-folder') });
    node.receive({ payload: 42 });
    const errors = await waitFor(() => {
      const calls = callsOn('error', node);
      return calls.length >= 2 ? calls : undefined;
    }, 5000, 'two errors');
    const texts = errors.map((args) => String(args[0]));
    assert.ok(texts.some((t) => /cannot read .*no-such-folder: ENOENT/.test(t)), texts.join(' | '));
    assert.ok(texts.some((t) => /msg.payload must be the path of a folder/.test(t)), texts.join(' | '));
    assert.ok(errors.every((args) => args[1] !== undefined), 'errors carry the msg, so a catch node sees them');
    assert.equal((await echoscu(port)).code, 0);
  });

  it('puts jobs under <userDir>/clara-dicom/jobs when no work root is set', async () => {
    const userDir = join(scratch.dir, 'userdir');
    mkdirSync(userDir, { recursive: true });
    helper.settings({ userDir });
    try {
      await helper.load(claraDicomIn, flow({ workRoot: '' }));
      const node = helper.getNode('in');
      const msgs = collectMessages<JobMsg>(helper.getNode('out'));
      node.receive({ payload: studyDir });
      await waitFor(() => (msgs.length > 0 ? true : undefined), 10000, 'the job msg');
      assert.ok(msgs[0].job.dir.startsWith(join(userDir, 'clara-dicom', 'jobs') + '/'), msgs[0].job.dir);
    } finally {
      helper.settings({ userDir: undefined });
    }
  });

  it('shows a red status and an error for a port in use or a bad setting, without crashing', async () => {
    const blocker = createServer();
    const port = await new Promise<number>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)));
    try {
      await helper.load(claraDicomIn, flow({ port }));
      const node = helper.getNode('in');
      const error = await waitFor(() => callsOn('error', node).find((args) => /already in use/.test(String(args[0]))), 5000, 'the port error');
      assert.match(String(error[0]), new RegExp(`port 127.0.0.1:${port} is already in use`));
      assert.ok(callsOn('status', node).some((args) => (args[0] as { fill?: string }).fill === 'red'));
    } finally {
      blocker.close();
    }
    await helper.unload();
    await helper.load(claraDicomIn, flow({ aeTitle: 'THIS_AE_TITLE_IS_TOO_LONG' }));
    const node = helper.getNode('in');
    const status = callsOn('status', node).map((args) => args[0] as { fill?: string; text?: string });
    assert.equal(status[0].fill, 'red');
    assert.match(String(callsOn('error', node)[0][0]), /AE title/);
    // A work root that cannot be created (a file stands in the way).
    await helper.unload();
    const file = join(scratch.dir, 'not-a-folder');
    writeFileSync(file, 'x');
    await helper.load(claraDicomIn, flow({ workRoot: join(file, 'jobs') }));
    const blocked = helper.getNode('in');
    assert.match(String(callsOn('error', blocked)[0][0]), /ENOTDIR/);
    assert.equal((callsOn('status', blocked)[0][0] as { fill?: string }).fill, 'red');
  });
});

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type JobRef, JobStore, readJob } from '../../lib/job';
import { DICOM_METADATA_FILE } from '../../lib/volume/parse';
import { collectMessages, helper, waitFor } from '../support/node-red';
import { delay, scratchDir } from '../support/tools';

/**
 * Node-RED's Catch and Status nodes with every processing node: a bad job ends in done(err) with the
 * msg (a Catch node gets msg.error, its source naming the node, and the msg's own properties), and a
 * Status node sees the node's progress before the red status with the reason, never a stack.
 */

const nodesDir = join(__dirname, '..', '..', 'nodes');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeModule = (type: string) => require(join(nodesDir, type, `${type}.js`)) as unknown;
const coreNode = (file: string) =>
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require(join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'common', file)) as unknown;

interface CaughtMsg {
  marker?: string;
  job?: JobRef;
  error: { message: string; source: { id: string; type: string; name?: string } };
}
interface StatusMsg {
  status: { fill?: string; shape?: string; text?: string; source: { id: string; type: string } };
}

describe('Catch and Status nodes see every processing node fail a bad job', function () {
  this.timeout(120000);
  const scratch = scratchDir('catch-status');
  let store: JobStore;

  /** A job folder as clara-dicom-in leaves it, with `dicom/` holding what is given. */
  function job(files: Record<string, string> = {}): JobRef {
    const ref = store.ref(store.create({ studyInstanceUID: '1.2.826.0.1.3680043.10.1.1', state: 'received' }));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(ref.dir, 'dicom', name), text);
    return ref;
  }
  /** A job the parser seems to have handled, but whose metadata is not JSON. */
  function jobWithBrokenMetadata(): JobRef {
    const ref = job();
    mkdirSync(join(ref.dir, 'parser'), { recursive: true });
    writeFileSync(join(ref.dir, 'parser', DICOM_METADATA_FILE), 'this is not JSON');
    return ref;
  }

  interface Case {
    type: string;
    props?: Record<string, unknown>;
    outputs: number;
    /** The bad msg, made when the case runs. */
    msg: () => Record<string, unknown>;
    /** What the Status node must see before the red status, in order (text patterns). */
    progress: RegExp[];
    /** The reason in msg.error.message, and what the red status says (the reason, shortened). */
    reason: RegExp;
    status: RegExp;
  }

  const cases: Case[] = [
    {
      type: 'clara-dicom-in',
      props: { aeTitle: 'CATCHME', port: 0, host: '127.0.0.1', workRoot: join(scratch.dir, 'received') },
      outputs: 1,
      msg: () => {
        const folder = join(scratch.dir, 'not-dicom');
        mkdirSync(folder, { recursive: true });
        writeFileSync(join(folder, 'notes.txt'), 'not a DICOM file');
        return { payload: folder };
      },
      progress: [/^starting$/, /^listening :\d+ · 0 job\(s\), 0 instance\(s\)$/],
      reason: /no DICOM instances in/,
      status: /^no DICOM instances in .* · :\d+$/,
    },
    {
      type: 'clara-dicom-parser',
      props: { format: 'nifti-gz', spacingPolicy: 'warn' },
      outputs: 1,
      msg: () => ({ job: job({ 'a.dcm': 'garbage', 'b.dcm': 'more garbage' }) }),
      progress: [/^parsing: reading headers$/],
      reason: /no image series could be converted/,
      status: /^no image series could be converted/,
    },
    {
      type: 'clara-series-selector',
      props: { rulesType: 'json', rules: '' },
      outputs: 2,
      msg: () => ({ job: jobWithBrokenMetadata() }),
      progress: [/^selecting series$/],
      reason: /^clara-series-selector: job \S+: the parser metadata \S+ is not/,
      status: /^the parser metadata /,
    },
    {
      type: 'clara-triton-infer',
      props: { preset: 'demo' },
      outputs: 1,
      msg: () => ({ job: job() }),
      progress: [/^inferring: loading brain-tumor-tc$/],
      reason: /^clara-triton-infer: job \S+: no selected-images\.json at \S+: run clara-series-selector/,
      status: /^no selected-images\.json at …\/selector\/selected-images\.json/,
    },
    {
      type: 'clara-seg-writer',
      props: { labels: '["Tumor-seg"]' },
      outputs: 2,
      msg: () => ({ job: job() }),
      progress: [/^writing SEG$/],
      reason: /^clara-seg-writer: job \S+: no segmentation to write: no msg\.inference/,
      status: /^no segmentation to write: no msg\.inference/,
    },
    {
      type: 'clara-rtstruct-writer',
      props: { labels: '["Tumor-seg"]' },
      outputs: 2,
      msg: () => ({ job: job() }),
      progress: [/^contouring$/],
      reason: /^clara-rtstruct-writer: job \S+: the job has no segmentation\/ folder/,
      status: /^the job has no segmentation\/ folder/,
    },
    {
      type: 'clara-render-register',
      props: { mode: 'viewer', workRoot: join(scratch.dir, 'jobs') },
      outputs: 1,
      msg: () => ({ job: job() }),
      progress: [/^rendering snapshots$/],
      reason: /^clara-render-register: job \S+: \S+\/publish\/config\.meta does not exist/,
      status: /^…\/publish\/config\.meta does not exist/,
    },
    {
      type: 'clara-scu-out',
      props: { destinations: 'NOWHERE', folders: 'seg,rtstruct', workRoot: join(scratch.dir, 'jobs') },
      outputs: 2,
      msg: () => ({ job: job() }),
      progress: [/^idle$/],
      reason: /^clara-scu-out: nothing to send: no files in msg, and none in seg\/, rtstruct\/ of job /,
      status: /^nothing to send: no files in msg/,
    },
  ];

  before(() => {
    store = new JobStore(join(scratch.dir, 'jobs'));
  });
  afterEach(async () => {
    await helper.unload();
  });
  after(() => scratch.cleanup());

  for (const c of cases) {
    it(`${c.type}: a Catch node gets msg.error from it with the msg, a Status node its progress and then the reason`, async () => {
      await helper.load([nodeModule(c.type), coreNode('25-catch.js'), coreNode('25-status.js')], [
        // The watchers first: a status the node sets as it starts reaches only the Status nodes already there.
        { id: 'tab', type: 'tab', label: c.type },
        { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
        { id: 'caught', z: 'tab', type: 'helper' },
        { id: 'watcher', z: 'tab', type: 'status', scope: ['node'], wires: [['statuses']] },
        { id: 'statuses', z: 'tab', type: 'helper' },
        { id: 'node', z: 'tab', type: c.type, name: 'under test', wires: Array.from({ length: c.outputs }, () => ['out']), ...c.props },
        { id: 'out', z: 'tab', type: 'helper' },
      ]);
      const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
      const statuses = collectMessages<StatusMsg>(helper.getNode('statuses'));
      const out = collectMessages<unknown>(helper.getNode('out'));
      const seen = () => statuses.map((s) => `${s.status.fill ?? ''}:${s.status.text ?? ''}`).join(' | ');
      // Deploy-time statuses (dicom-in listening, scu-out idle) are part of the progress to see.
      if (c.type === 'clara-dicom-in') await waitFor(() => statuses.find((s) => /^listening/.test(s.status.text ?? '')), 10000, seen);
      await delay(50);

      const msg = { ...c.msg(), marker: `bad job for ${c.type}` };
      helper.getNode('node').receive(msg);
      const error = await waitFor(() => caught[0], 30000, () => `a caught error; statuses: ${seen()}`);
      const red = await waitFor(() => statuses.find((s) => s.status.fill === 'red'), 5000, () => `a red status; statuses: ${seen()}`);
      await delay(100);

      assert.equal(caught.length, 1, 'one error per bad msg');
      assert.equal(out.length, 0, 'nothing is sent on for a bad job');
      assert.deepEqual({ type: error.error.source.type, id: error.error.source.id, name: error.error.source.name }, { type: c.type, id: 'node', name: 'under test' });
      assert.equal(error.marker, msg.marker, 'the Catch node gets the msg that failed');
      // Node-RED puts the error as text on msg.error.message ("Error: <message>").
      const message = error.error.message.replace(/^Error: /, '');
      assert.match(message, c.reason);
      assert.match(message, new RegExp(`^${c.type}: `), 'the message names the node type');

      const texts = statuses.map((s) => s.status.text ?? '');
      const redIndex = statuses.indexOf(red);
      let from = 0;
      for (const step of c.progress) {
        const at = texts.findIndex((t, i) => i >= from && step.test(t));
        assert.ok(at >= 0 && at < redIndex, `progress ${step} before the red status; statuses: ${seen()}`);
        from = at + 1;
      }
      for (const s of statuses) assert.equal(s.status.source.type, c.type);
      const redText = red.status.text ?? '';
      assert.ok(redText.length > 0 && redText.length <= 60, `the red status is short: ${redText}`);
      assert.ok(!/\n|\s+at \S+ \(|\.js:\d+/.test(redText), `no stack in the status: ${redText}`);
      assert.ok(!texts.some((t) => new RegExp(`^${c.type}\\.status\\.`).test(t)), `a status shows its catalogue key: ${seen()}`);
      assert.match(redText, c.status);
      // The job records what failed (nodes that work on a job folder).
      const job = (msg as { job?: JobRef }).job;
      if (job && c.type !== 'clara-scu-out') assert.ok(readJob(job.dir).errors.length > 0, `${c.type} records the error in job.json`);
    });
  }

  it('clara-operator never fails a msg: it passes it on, with its warning status', async () => {
    await helper.load([nodeModule('clara-operator'), coreNode('25-catch.js'), coreNode('25-status.js')], [
      { id: 'tab', type: 'tab', label: 'operator' },
      { id: 'node', z: 'tab', type: 'clara-operator', image: 'acme/report', tag: '2', command: [], wires: [['out']] },
      { id: 'out', z: 'tab', type: 'helper' },
      { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'tab', type: 'helper' },
    ]);
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const out = collectMessages<{ marker: string }>(helper.getNode('out'));
    helper.getNode('node').receive({ marker: 'anything' });
    await waitFor(() => out[0], 5000, 'the msg passed on');
    await delay(100);
    assert.equal(caught.length, 0);
    assert.equal(out[0].marker, 'anything');
  });
});

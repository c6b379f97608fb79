import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type JobRef, JobStore, readJob } from '../../lib/job';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import type { ParserSummary } from '../../lib/volume/parse';
import { collectMessages, helper, statusTexts, waitFor } from '../support/node-red';
import { delay, scratchDir } from '../support/tools';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const parserNode = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-parser', 'clara-dicom-parser.js')) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require(join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'common', '25-catch.js')) as unknown;

interface ParsedMsg {
  job: JobRef;
  parser: ParserSummary;
  correlation?: number;
}
interface CaughtMsg {
  job?: JobRef;
  error: { message: string; source: { id: string; type: string } };
}

describe('clara-dicom-parser node in a Node-RED 4 runtime', function () {
  this.timeout(120000);
  const scratch = scratchDir('node-parser');
  let study: PhantomStudy;
  let store: JobStore;

  /** A job folder as clara-dicom-in leaves it: dicom/ with the instances, job.json in state received. */
  function makeJob(files: string[]): JobRef {
    const record = store.create({ studyInstanceUID: study.studyInstanceUID, state: 'received' });
    const ref = store.ref(record);
    for (const f of files) copyFileSync(f, join(ref.dir, 'dicom', basename(f)));
    return ref;
  }
  function phantomFiles(): string[] {
    const out: string[] = [];
    for (const s of study.series) for (const f of readdirSync(join(scratch.dir, 'phantom', s.dir))) out.push(join(scratch.dir, 'phantom', s.dir, f));
    return out;
  }
  const flow = (props: Record<string, unknown> = {}) => [
    { id: 'tab', type: 'tab', label: 'parser test' },
    { id: 'parser', z: 'tab', type: 'clara-dicom-parser', name: '', format: 'nifti-gz', spacingPolicy: 'warn', wires: [['out']], ...props },
    { id: 'out', z: 'tab', type: 'helper' },
    { id: 'catcher', z: 'tab', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'tab', type: 'helper' },
  ];

  before(() => {
    study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 32, slices: 12, seed: 11 });
    store = new JobStore(join(scratch.dir, 'jobs'));
  });
  afterEach(async () => {
    await helper.unload();
  });
  after(() => scratch.cleanup());

  it('parses a job: one msg with the volumes and metadata paths, job.json updated, no pixel data in the msg', async () => {
    await helper.load([parserNode, catchNode], flow());
    const parser = helper.getNode('parser');
    const out = collectMessages<ParsedMsg>(helper.getNode('out'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const job = makeJob(phantomFiles());
    parser.receive({ job, payload: { studyInstanceUID: study.studyInstanceUID }, correlation: 7 });
    const msg = await waitFor(() => out[0], 60000, 'the parsed msg');
    await delay(200);
    assert.equal(out.length, 1);
    assert.equal(caught.length, 0);
    assert.deepEqual(msg.job, job);
    assert.equal(msg.correlation, 7, 'the incoming msg is carried on');
    const p = msg.parser;
    assert.equal(p.dir, join(job.dir, 'parser'));
    assert.equal(p.volumes.length, 9);
    for (const v of p.volumes) {
      assert.ok(v.file.startsWith(join(job.dir, 'parser')) && v.file.endsWith('.nii.gz'));
      assert.ok(statSync(v.file).size > 352);
    }
    const target = study.series.find((s) => s.isTarget)!;
    assert.ok(p.volumes.some((v) => v.file === join(job.dir, 'parser', `${target.seriesInstanceUID}.nii.gz`) && v.dims.join() === '32,32,12'));
    for (const f of [p.seriesImages, p.dicomMetadata, p.report]) assert.ok(existsSync(f), f);
    const record = readJob(job.dir);
    assert.equal(record.state, 'parsed');
    assert.equal(record.counts.volumes, 9);
    assert.ok(record.timestamps.parsing && record.timestamps.parsed);
    const json = JSON.stringify(msg);
    assert.ok(json.length < 12000, `msg is ${json.length} bytes`);
    assert.ok(!/"type":"Buffer"/.test(json));
    const final = await waitFor(() => statusTexts(parser).find((t) => t.startsWith('parsed')), 3000, 'the final status');
    assert.match(final, /^parsed 9 volume\(s\) in [\d.]+ s$/);
    assert.ok(statusTexts(parser).some((t) => /^parsing \d+\/7 series$/.test(t)));
  });

  it('fails a job of garbage through done(err) (a catch node gets it), marks it failed, and parses the next job', async () => {
    await helper.load([parserNode, catchNode], flow({ format: 'mhd' }));
    const parser = helper.getNode('parser');
    const out = collectMessages<ParsedMsg>(helper.getNode('out'));
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    const bad = makeJob([]);
    writeFileSync(join(bad.dir, 'dicom', 'x.dcm'), 'this is not DICOM');
    parser.receive({ job: bad });
    const error = await waitFor(() => caught[0], 30000, 'the caught error');
    assert.equal(error.error.source.id, 'parser');
    assert.match(error.error.message, /no image series could be converted \(1 file\(s\), 0 series\): not a readable DICOM file/);
    assert.deepEqual(error.job, bad, 'the catch node gets the msg');
    const record = readJob(bad.dir);
    assert.equal(record.state, 'failed');
    assert.match(record.errors[0].message, /no image series/);
    assert.equal(record.errors[0].stage, 'parse');
    await waitFor(() => statusTexts(parser).find((t) => /no image series/.test(t)), 3000, 'the red status');

    const good = makeJob(phantomFiles().slice(0, 20));
    parser.receive({ job: good });
    const msg = await waitFor(() => out[0], 60000, 'the next job');
    assert.ok(msg.parser.volumes.length > 0);
    assert.ok(msg.parser.volumes.every((v) => v.file.endsWith('.mhd')));
    assert.equal(readJob(good.dir).state, 'parsed');
    assert.equal(out.length, 1);
  });

  it('rejects a msg without a job, or with a folder that is not a job, through done(err)', async () => {
    await helper.load([parserNode, catchNode], flow());
    const parser = helper.getNode('parser');
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    parser.receive({ payload: 'no job here' });
    parser.receive({ job: { id: 'x', dir: join(scratch.dir, 'not-a-job'), studyInstanceUID: '1.2' } });
    await waitFor(() => (caught.length >= 2 ? true : undefined), 10000, 'two caught errors');
    assert.match(caught[0].error.message, /msg\.job must be a job reference/);
    assert.match(caught[1].error.message, /is not a job folder \(it has no job\.json\)/);
  });

  it('refuses an invalid format setting with a red status and errors for each msg', async () => {
    await helper.load([parserNode, catchNode], flow({ format: 'png' }));
    const parser = helper.getNode('parser');
    const caught = collectMessages<CaughtMsg>(helper.getNode('caught'));
    assert.ok(statusTexts(parser).some((t) => /format must be one of/.test(t)));
    parser.receive({ job: makeJob([]) });
    const error = await waitFor(() => caught[0], 5000, 'the caught error');
    assert.match(error.error.message, /format must be one of nifti, nifti-gz, mhd/);
  });
});

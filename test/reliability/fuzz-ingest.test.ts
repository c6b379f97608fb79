import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { type TestNode, collectMessages, helper, logOf, waitFor } from '../support/node-red';
import { delay, scratchDir } from '../support/tools';
import { SOAK, type FuzzCase, type SeedFile, describeCase, fuzzCase, ownSeeds, pydicomSeeds, writeCase } from './seeds';
import { echo, incomingLeftovers, jobsUnder, sendAll, storedInstances, waitForEcho, waitForJobsComplete } from './support';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const claraDicomIn = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-in', 'clara-dicom-in.js')) as unknown;

const RUN_SEED = Number(process.env.CLARA_FUZZ_SEED ?? 20261201);
/** Mutants per path: CI sends 10,000 through C-STORE (under a minute on 2 cores) and 4,000 through folder ingest; soak 50,000 each. */
const CSTORE_CASES = SOAK ? 50000 : 10000;
const FOLDER_CASES = SOAK ? 50000 : 4000;
const FOLDER_CHUNK = 1000;

interface JobMsg {
  payload: { jobId: string; instances: number; folder?: string; studyInstanceUID: string };
  job: { id: string; dir: string };
  skippedCount?: number;
  replacedCount?: number;
}

describe('reliability: mutants through C-STORE and folder ingest into clara-dicom-in in a Node-RED runtime', function () {
  this.timeout(SOAK ? 3600000 : 600000);
  const scratch = scratchDir('fuzz-ingest');
  const workRoot = join(scratch.dir, 'jobs');
  let seeds: SeedFile[];
  let port: number;
  let node: TestNode;
  let msgs: JobMsg[];

  before(async () => {
    const corpus = pydicomSeeds();
    assert.ok(corpus.all.length > 100, 'the pydicom corpus is missing (install python3-pydicom)');
    seeds = [...corpus.seeds, ...(await ownSeeds(join(scratch.dir, 'own')))];
    port = await freeLoopbackPort();
    await helper.load(claraDicomIn, [
      { id: 'in', type: 'clara-dicom-in', aeTitle: 'CLARA', port, host: '127.0.0.1', allow: '', studyTimeout: 0.5, grouping: 'study', workRoot, maxPdu: 65536, wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    node = helper.getNode('in');
    msgs = collectMessages<JobMsg>(helper.getNode('out'));
    await waitForEcho(port);
  });
  after(async () => {
    await helper.unload();
    scratch.cleanup();
  });

  it(`C-STORE: ${CSTORE_CASES} mutants, each answered (failure status with a reason, or success and kept on disk); the runtime keeps serving`, async () => {
    const cases: FuzzCase[] = [];
    for (let i = 0; i < CSTORE_CASES; i++) cases.push(fuzzCase(seeds, RUN_SEED, i));
    const started = Date.now();
    const sent = await sendAll(port, cases.map((c) => ({ sopClassUID: c.seedFile.sopClassUID, sopInstanceUID: c.sopInstanceUID, transferSyntaxUID: c.seedFile.transferSyntaxUID, dataset: c.dataset })));
    const seconds = (Date.now() - started) / 1000;
    assert.deepEqual(sent.broken, [], 'no association broke');
    const succeeded = new Set<string>();
    let refused = 0;
    const notSent: string[] = [];
    sent.results.forEach((r, i) => {
      const c = cases[i];
      if (r.notSent) {
        notSent.push(`${describeCase(c, RUN_SEED)}: ${r.notSent}`);
        return;
      }
      if (r.status!.status === 0) succeeded.add(c.sopInstanceUID);
      else {
        refused++;
        assert.ok((r.status!.errorComment ?? '').length > 5, `${describeCase(c, RUN_SEED)}: refused with 0x${r.status!.status.toString(16)} but no reason`);
      }
      if (c.mutant.kind === 'none') assert.equal(r.status!.status, 0, `${describeCase(c, RUN_SEED)}: an unmutated control was refused: ${r.status!.errorComment}`);
    });
    // Contexts the SCP does not accept (non-storage SOP classes of the corpus) are not mutant failures.
    assert.ok(notSent.length < cases.length / 20, `too many cases could not be sent: ${notSent.slice(0, 3).join('; ')}`);
    await waitForJobsComplete(workRoot, 60000);
    assert.equal(await echo(port), 0, 'C-ECHO after the run');
    const onDisk = storedInstances(workRoot);
    assert.equal(onDisk.length, new Set(onDisk).size);
    assert.deepEqual([...onDisk].sort(), [...succeeded].sort(), 'the files kept are exactly the instances answered Success');
    assert.deepEqual(incomingLeftovers(workRoot), [], 'no temporary file left');
    const refusalsLogged = logOf(node).filter((l) => /refused with 0x[0-9A-F]{4}/.test(l.message)).length;
    assert.equal(refusalsLogged, refused, 'every refusal is in the log with its status and reason');
    const jobs = jobsUnder(workRoot);
    assert.ok(jobs.every((j) => j.record.state === 'received'), 'every job completed');
    await waitFor(() => (msgs.length >= jobs.filter((j) => j.record.counts.instances > 0).length ? true : undefined), 10000, 'a msg per job');
    assert.equal(new Set(msgs.map((m) => m.payload.jobId)).size, msgs.length, 'one msg per job');
    console.log(`      [reliability] C-STORE fuzz: ${cases.length} cases (${cases.filter((c) => c.mutant.kind === 'none').length} controls) in ${seconds.toFixed(1)} s, ${succeeded.size} stored, ${refused} refused with a reason, ${notSent.length} not sendable (context refused), 0 crashes, 0 lost, ${jobs.length} jobs (run seed ${RUN_SEED}, ${SOAK ? 'soak' : 'CI'} mode)`);
  });

  it(`folder ingest: ${FOLDER_CASES} mutant files through msg.payload, each stored or skipped with a reason; the runtime keeps serving`, async () => {
    const folderRoot = join(scratch.dir, 'folders');
    let stored = 0;
    let skipped = 0;
    let replaced = 0;
    let controls = 0;
    const started = Date.now();
    for (let from = 0; from < FOLDER_CASES; from += FOLDER_CHUNK) {
      // Each chunk alone, so that the disk holds one chunk and its jobs at a time.
      rmSync(workRoot, { recursive: true, force: true });
      const folder = join(folderRoot, `chunk-${from}`);
      mkdirSync(folder, { recursive: true });
      const cases: FuzzCase[] = [];
      for (let i = from; i < Math.min(FOLDER_CASES, from + FOLDER_CHUNK); i++) {
        const c = fuzzCase(seeds, RUN_SEED + 1, i);
        writeCase(folder, c);
        cases.push(c);
      }
      const before = msgs.length;
      node.receive({ payload: folder });
      const failed = () => logOf(node).some((l) => l.level === 20 && l.message.includes(folder));
      await waitFor(() => (msgs.slice(before).some((m) => m.payload.folder === folder) || failed() ? true : undefined), 120000, `the ingest of ${folder}`);
      await delay(200);
      const mine = msgs.slice(before).filter((m) => m.payload.folder === folder);
      assert.ok(mine.length > 0, `chunk ${from}: no job came out (the controls alone make one); log: ${logOf(node).slice(-5).map((l) => l.message.slice(0, 300)).join(' | ')}`);
      const instances = mine.reduce((n, m) => n + m.payload.instances, 0);
      const chunkSkipped = mine[0].skippedCount ?? 0;
      const chunkReplaced = mine[0].replacedCount ?? 0;
      assert.equal(instances + chunkSkipped + chunkReplaced, cases.length, `chunk ${from}: every file is stored, replaced by a later copy, or skipped`);
      const onDisk = storedInstances(workRoot);
      assert.equal(onDisk.length, instances, `chunk ${from}: the files in the jobs are the instances the msgs count`);
      const kept = new Set(onDisk);
      for (const c of cases) {
        if (c.mutant.kind !== 'none') continue;
        controls++;
        assert.ok(kept.has(c.sopInstanceUID), `${describeCase(c, RUN_SEED + 1)}: an unmutated control was not kept`);
      }
      assert.deepEqual(incomingLeftovers(workRoot), [], 'no temporary file left');
      stored += instances;
      skipped += chunkSkipped;
      replaced += chunkReplaced;
      rmSync(folder, { recursive: true, force: true });
    }
    const warned = logOf(node).filter((l) => /file\(s\) in .* skipped/.test(l.message)).length;
    assert.ok(warned > 0, 'skipped files are reported in the log');
    assert.equal(await echo(port), 0, 'C-ECHO after the run');
    console.log(`      [reliability] folder-ingest fuzz: ${FOLDER_CASES} cases (${controls} controls) in ${((Date.now() - started) / 1000).toFixed(1)} s, ${stored} stored, ${skipped} skipped with a reason, ${replaced} replaced by a later copy of the same UID, 0 crashes, 0 lost (run seed ${RUN_SEED + 1}, ${SOAK ? 'soak' : 'CI'} mode)`);
  });
});

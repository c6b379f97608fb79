import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SopClass, TransferSyntax, generateUid } from '../../lib/dicom/uids';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { mrInstance } from '../dimse/helpers';
import { encodeDataset } from '../../lib/dicom/writer';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { delay, scratchDir } from '../support/tools';
import { SOAK } from './seeds';
import { type Outgoing, heapProbeOptions, jobsUnder, liveHeapOf, memoryOf, percentile, sendAll, waitForEcho } from './support';

const ASSOCIATIONS = 8;
const STUDIES_PER_ASSOCIATION = 2;
/** Instances per association: 500 in both modes; CI repeats the load twice, soak five times. */
const INSTANCES_PER_ASSOCIATION = 500;
const REPETITIONS = Number(process.env.CLARA_LOAD_REPETITIONS) || (SOAK ? 5 : 2);
/**
 * From the first repetition to any later one, after two forced full collections in Node-RED's process (the heap
 * probe), the live JS heap may not grow by more than HEAP_GROWTH_LIMIT_MIB, nor resident memory by more than
 * RSS_GROWTH_LIMIT_MIB. Without the forced collections RSS rose about 13.5 MiB per repetition: garbage V8 had not
 * yet collected, not live objects, so RSS alone could not tell a leak from a lazy collector.
 */
const HEAP_GROWTH_LIMIT_MIB = 4;
const RSS_GROWTH_LIMIT_MIB = 16;
const PEAK_LIMIT_MIB = 1024;

/** One association's load: 500 small MR instances, half in each of its two studies. */
function associationLoad(): { items: Outgoing[]; studies: string[] } {
  const studies = Array.from({ length: STUDIES_PER_ASSOCIATION }, () => generateUid());
  const series = studies.map(() => generateUid());
  const items: Outgoing[] = [];
  for (let i = 0; i < INSTANCES_PER_ASSOCIATION; i++) {
    const s = i % STUDIES_PER_ASSOCIATION;
    const sopInstanceUID = generateUid();
    const dataset = encodeDataset(mrInstance({ SOPInstanceUID: sopInstanceUID, StudyInstanceUID: studies[s], SeriesInstanceUID: series[s], InstanceNumber: i + 1 }));
    items.push({ sopClassUID: SopClass.MrImageStorage, sopInstanceUID, transferSyntaxUID: TransferSyntax.ExplicitVRLittleEndian, dataset });
  }
  return { items, studies };
}

describe(`reliability: load, ${ASSOCIATIONS} concurrent associations × ${INSTANCES_PER_ASSOCIATION} instances into clara-dicom-in (headless Node-RED), ${REPETITIONS} repetitions`, function () {
  this.timeout(SOAK ? 1800000 : 600000);
  const scratch = scratchDir('load');
  const workRoot = join(scratch.dir, 'jobs');
  const jobsFile = join(scratch.dir, 'jobs.jsonl');
  const probeFile = join(scratch.dir, 'heap.json');
  let red: HeadlessRed;
  let port: number;

  before(async () => {
    port = await freeLoopbackPort();
    red = await startHeadlessRed(join(scratch.dir, 'node-red'), [
      { id: 'load-tab', type: 'tab', label: 'load' },
      { id: 'in', z: 'load-tab', type: 'clara-dicom-in', aeTitle: 'CLARA', port, host: '127.0.0.1', allow: '', studyTimeout: 1, grouping: 'study', workRoot, maxPdu: 65536, wires: [['to-line']] },
      // Each job msg leaves one line: the job id and the study, as a user's flow would record it.
      { id: 'to-line', z: 'load-tab', type: 'function', func: 'msg.payload = JSON.stringify({ job: msg.payload.jobId, study: msg.payload.studyInstanceUID, instances: msg.payload.instances });\nreturn msg;', outputs: 1, wires: [['jobs-out']] },
      { id: 'jobs-out', z: 'load-tab', type: 'file', filename: jobsFile, filenameType: 'str', appendNewline: true, createDir: true, overwriteFile: 'false', encoding: 'none', wires: [[]] },
    ], { env: heapProbeOptions(probeFile) });
    await waitForEcho(port);
  });
  after(async () => {
    await red?.stop();
    scratch.cleanup();
  });

  it('stores every instance, makes exactly one job per study, and keeps memory bounded', async () => {
    const latencies: number[] = [];
    const rssAfter: number[] = [];
    const heapAfter: number[] = [];
    let stored = 0;
    for (let rep = 0; rep < REPETITIONS; rep++) {
      const loads = Array.from({ length: ASSOCIATIONS }, associationLoad);
      const sent = await Promise.all(loads.map((l) => sendAll(port, l.items, { callingAE: 'LOADSCU' }))).catch((e: Error) => {
        throw new Error(`${e.message}; Node-RED said:\n${red.log().slice(-3000)}`);
      });
      for (const s of sent) {
        assert.deepEqual(s.broken, []);
        for (const r of s.results) {
          assert.equal(r.status?.status, 0, r.notSent ?? r.status?.errorComment);
          latencies.push(r.milliseconds);
        }
      }
      const studies = new Set(loads.flatMap((l) => l.studies));
      // Every study becomes exactly one job holding every instance, and one msg.
      const deadline = Date.now() + 60000;
      const lines = () => (existsSync(jobsFile) ? readFileSync(jobsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { job: string; study: string; instances: number }) : []);
      while (lines().filter((l) => studies.has(l.study)).length < studies.size) {
        if (Date.now() > deadline) throw new Error(`only ${lines().filter((l) => studies.has(l.study)).length} of ${studies.size} job msgs; Node-RED said:\n${red.log().slice(-3000)}`);
        await delay(100);
      }
      await delay(1500); // a second msg for a study would come within the study timeout
      const msgs = lines().filter((l) => studies.has(l.study));
      assert.equal(msgs.length, studies.size, 'one msg per study');
      assert.equal(new Set(msgs.map((m) => m.study)).size, studies.size);
      const jobs = jobsUnder(workRoot).filter((j) => studies.has(j.record.studyInstanceUID));
      assert.equal(jobs.length, studies.size, 'one job per study');
      for (const job of jobs) {
        const files = readdirSync(join(job.dir, 'dicom')).filter((n) => n.endsWith('.dcm'));
        assert.equal(files.length, INSTANCES_PER_ASSOCIATION / STUDIES_PER_ASSOCIATION, `job ${job.record.id}`);
        assert.equal(job.record.state, 'received');
      }
      stored += jobs.length * (INSTANCES_PER_ASSOCIATION / STUDIES_PER_ASSOCIATION);
      const live = await liveHeapOf(red.pid, probeFile);
      heapAfter.push((live.heapUsed + live.external) / 1048576);
      rssAfter.push(live.rss / 1048576);
    }
    const { peakMiB } = memoryOf(red.pid);
    const rssGrowth = Math.max(...rssAfter.slice(1)) - rssAfter[0];
    const heapGrowth = Math.max(...heapAfter.slice(1)) - heapAfter[0];
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    console.log(`      [reliability] load: ${REPETITIONS} × ${ASSOCIATIONS} associations × ${INSTANCES_PER_ASSOCIATION} instances (${stored} stored, ${REPETITIONS * ASSOCIATIONS * STUDIES_PER_ASSOCIATION} jobs, one per study); C-STORE latency p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms; Node-RED peak RSS ${peakMiB.toFixed(0)} MiB; after each repetition and a forced full GC, live heap ${heapAfter.map((h) => h.toFixed(1)).join(', ')} MiB, RSS ${rssAfter.map((r) => r.toFixed(0)).join(', ')} MiB (${SOAK ? 'soak' : 'CI'} mode)`);
    assert.equal(stored, REPETITIONS * ASSOCIATIONS * INSTANCES_PER_ASSOCIATION);
    assert.ok(peakMiB < PEAK_LIMIT_MIB, `peak RSS ${peakMiB} MiB`);
    assert.ok(heapGrowth < HEAP_GROWTH_LIMIT_MIB, `live heap grew by ${heapGrowth.toFixed(1)} MiB over the repetitions: ${heapAfter.join(', ')}`);
    assert.ok(rssGrowth < RSS_GROWTH_LIMIT_MIB, `RSS grew by ${rssGrowth.toFixed(0)} MiB over the repetitions: ${rssAfter.join(', ')}`);
  });
});

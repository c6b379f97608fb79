import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SopClass } from '../../lib/dicom/uids';
import { type OutboxTask, loadTask } from '../../lib/dimse/outbox';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { type JobRecord, writeJob } from '../../lib/job';
import { receivedUids, startStorescp, writeMrSeries } from '../dimse/storescp';
import { writeHeadlessUserDir } from '../support/headless-red';
import { delay, hasTool, scratchDir } from '../support/tools';

/**
 * A real Node-RED 4 process (red.js) that this test kills with SIGKILL and starts again. It loads this
 * build's clara-dicom-destination and clara-scu-out from their folders (nodesDir), so it does not depend
 * on package.json's node list; test/support/headless-red.ts loads the package as installed.
 */
interface Red {
  log(): string;
  kill(): Promise<void>;
}

async function startRed(userDir: string, flow: unknown[]): Promise<Red> {
  const nodes = join(__dirname, '..', '..', 'nodes');
  const settingsFile = writeHeadlessUserDir(userDir, flow, await freeLoopbackPort(), [join(nodes, 'clara-dicom-destination'), join(nodes, 'clara-scu-out'), join(nodes, 'clara-dicom-in')]);
  let output = '';
  const child: ChildProcess = spawn(process.execPath, [require.resolve('node-red/red.js'), '--settings', settingsFile, '--userDir', userDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 60000;
  while (!/Started flows/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Node-RED did not start:\n${output}`);
    }
    await delay(100);
  }
  if (/Waiting for missing types/.test(output)) throw new Error(`Node-RED is missing node types:\n${output}`);
  return {
    log: () => output,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

function taskFiles(jobDir: string): string[] {
  const dir = join(jobDir, 'outbox');
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.json')).map((n) => join(dir, n)) : [];
}

async function waitForTask(jobDir: string, check: (t: OutboxTask) => boolean, timeoutMs: number, what: string, red: Red): Promise<OutboxTask> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [file] = taskFiles(jobDir);
    if (file) {
      try {
        const task = loadTask(file);
        if (check(task)) return task;
      } catch {
        // being replaced this very moment
      }
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; Node-RED said:\n${red.log().slice(-3000)}`);
    await delay(50);
  }
}

describe('clara-scu-out in a Node-RED process that is killed and started again', function () {
  before(() => assert.ok(hasTool('storescp'), 'dcmtk (Debian) is needed: .ci/run installs it'));
  this.timeout(180000);
  let scratch: ReturnType<typeof scratchDir>;
  let red: Red | undefined;
  beforeEach(() => {
    scratch = scratchDir('scu-restart');
  });
  afterEach(async () => {
    await red?.kill();
    red = undefined;
    scratch.cleanup();
  });

  function flow(port: number, workRoot: string, job?: { id: string; dir: string; studyInstanceUID: string }): unknown[] {
    const nodes: Array<Record<string, unknown>> = [
      { id: 'tab', type: 'tab', label: 'send' },
      { id: 'dest', type: 'clara-dicom-destination', name: 'MYPACS', calledAE: 'PACS', host: '127.0.0.1', port, callingAE: 'ClaraSCU', connectTimeout: 3, pduTimeout: 5 },
      { id: 'scu', z: 'tab', type: 'clara-scu-out', destination: 'dest', workRoot, maxAttempts: 50, backoff: 0.5, maxBackoff: 1, wires: [[], []] },
    ];
    // The first run queues the job once at start; the restarted flow has no inject, only the node's own resume.
    if (job) nodes.push({ id: 'go', z: 'tab', type: 'inject', once: true, onceDelay: 0.1, props: [{ p: 'job', v: JSON.stringify(job), vt: 'json' }], wires: [['scu']] });
    return nodes;
  }

  function makeJob(root: string, id: string) {
    const dir = join(root, id);
    mkdirSync(dir, { recursive: true });
    const now = new Date().toISOString();
    const record: JobRecord = { id, state: 'seg-written', studyInstanceUID: '1.2.3', counts: { instances: 0 }, createdAt: now, updatedAt: now, timestamps: {}, errors: [] };
    writeJob(dir, record);
    return { id, dir, studyInstanceUID: '1.2.3' };
  }

  it('PACS down, Node-RED killed with the task pending; PACS up, Node-RED started: delivered once', async () => {
    const port = await freeLoopbackPort();
    const root = join(scratch.dir, 'jobs');
    const job = makeJob(root, 'job-1');
    const seg = writeMrSeries(join(job.dir, 'seg'), 3, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG' });
    const userDir = join(scratch.dir, 'red');
    red = await startRed(userDir, flow(port, root, job));
    const pending = await waitForTask(job.dir, (t) => t.state === 'pending' && t.attempts >= 2, 30000, 'a pending task that was retried', red);
    assert.match(pending.lastError ?? '', /connection refused/);
    await red.kill();

    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      red = await startRed(userDir, flow(port, root));
      const done = await waitForTask(job.dir, (t) => t.state === 'succeeded' || t.state === 'failed', 30000, 'the resumed task', red);
      assert.equal(done.state, 'succeeded', done.lastError);
      assert.match(red.log(), /resumed 1 pending task/);
      assert.deepEqual(receivedUids(peer.dir).sort(), [...seg.uids].sort());
      assert.equal(peer.receptions(), 3);
      assert.equal(taskFiles(job.dir).length, 1, 'the restart queued nothing new');
    } finally {
      await peer.stop();
    }
  });

  it("resumes a task in a job under a clara-dicom-in's own work root, not the node's", async () => {
    const port = await freeLoopbackPort();
    const root = join(scratch.dir, 'receiver-jobs');
    const job = makeJob(root, 'job-3');
    const seg = writeMrSeries(join(job.dir, 'seg'), 2, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG' });
    const userDir = join(scratch.dir, 'red');
    red = await startRed(userDir, flow(port, root, job));
    await waitForTask(job.dir, (t) => t.state === 'pending' && t.attempts >= 1, 30000, 'a pending task', red);
    await red.kill();

    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      // The restarted flow: scu-out with the default work root (the user folder's), beside the receiver whose jobs it sends.
      const restarted = flow(port, '').concat([{ id: 'in', z: 'tab', type: 'clara-dicom-in', aeTitle: 'CLARA', port: await freeLoopbackPort(), host: '127.0.0.1', workRoot: root, studyTimeout: 5, wires: [[]] }]);
      red = await startRed(userDir, restarted);
      const done = await waitForTask(job.dir, (t) => t.state === 'succeeded' || t.state === 'failed', 30000, 'the resumed task', red);
      assert.equal(done.state, 'succeeded', done.lastError);
      assert.ok(red.log().includes(`resumed 1 pending task(s) from ${root}`), red.log().slice(-2000));
      assert.deepEqual(receivedUids(peer.dir).sort(), [...seg.uids].sort());
    } finally {
      await peer.stop();
    }
  });

  it('Node-RED killed in the middle of a send: after the restart the rest is delivered, none stored twice', async () => {
    const port = await freeLoopbackPort();
    const root = join(scratch.dir, 'jobs');
    const job = makeJob(root, 'job-2');
    const n = 1500;
    const seg = writeMrSeries(join(job.dir, 'seg'), n, { SOPClassUID: SopClass.SegmentationStorage, Modality: 'SEG' });
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      const userDir = join(scratch.dir, 'red');
      red = await startRed(userDir, flow(port, root, job));
      await waitForTask(job.dir, (t) => t.instances.filter((i) => i.state === 'succeeded').length >= 100, 30000, '100 answers journalled', red);
      await red.kill();
      await delay(300); // storescp's log of what it received reaches us through a pipe
      const before = peer.receptions();
      const left = loadTask(taskFiles(job.dir)[0]);
      const answered = left.instances.filter((i) => i.state === 'succeeded').length;
      assert.equal(left.state, 'in-progress');
      assert.ok(answered < n, 'killed before the end');

      red = await startRed(userDir, flow(port, root));
      const done = await waitForTask(job.dir, (t) => t.state === 'succeeded' || t.state === 'failed', 60000, 'the resumed task', red);
      assert.equal(done.state, 'succeeded', done.lastError);
      await delay(200);
      const uids = receivedUids(peer.dir);
      assert.deepEqual([...new Set(uids)].sort(), [...seg.uids].sort());
      const total = peer.receptions();
      // Sent again at most: what was received but had no answer journalled when the process died (one in flight).
      assert.ok(total - n <= before - answered && before - answered <= 1, `${total} receptions for ${n}; ${before} before the kill, ${answered} answers journalled`);
    } finally {
      await peer.stop();
    }
  });
});

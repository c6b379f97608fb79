import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDicom } from '../../lib/dicom/reader';
import { Tag } from '../../lib/dicom/tags';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { JobStore, readJob } from '../../lib/job';
import { writePhantomStudy } from '../../lib/phantom';
import { dicomFilesUnder } from '../dimse/helpers';
import { collectMessages, helper, logOf, waitFor } from '../support/node-red';
import { allFilesUnder, scratchDir } from '../support/tools';
import { type Outgoing, echo, incomingLeftovers, sendAll, storedInstances, waitForEcho } from './support';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const claraDicomIn = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-in', 'clara-dicom-in.js')) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const claraDicomParser = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-parser', 'clara-dicom-parser.js')) as unknown;

/** A tmpfs of `size` mounted at `dir` (root is needed: the tests run as root in CI). */
function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir]);
  } catch {
    execFileSync('umount', ['-l', dir]);
  }
}

/** Fills the file system of `dir` until about `leaveBytes` are free. */
function fillDisk(dir: string, leaveBytes: number): string {
  const stats = statfsSync(dir);
  const free = stats.bavail * stats.bsize;
  const filler = join(dir, 'filler.bin');
  writeFileSync(filler, Buffer.alloc(Math.max(0, free - leaveBytes)));
  return filler;
}

function outgoingOf(file: string): Outgoing {
  const bytes = readFileSync(file);
  const parsed = parseDicom(bytes, { complete: true, stopAtPixelData: true, fileSize: bytes.length });
  return {
    sopClassUID: parsed.dataset.string(Tag.SOPClassUID)!,
    sopInstanceUID: parsed.dataset.string(Tag.SOPInstanceUID)!,
    transferSyntaxUID: parsed.transferSyntaxUID,
    dataset: bytes.subarray(parsed.datasetOffset),
  };
}

describe('reliability: a full disk under the job root', function () {
  this.timeout(180000);
  const scratch = scratchDir('full-disk');
  const mounts: string[] = [];
  let files: string[];
  let targetDir: string;

  before(() => {
    assert.equal(process.getuid?.(), 0, 'mounting a tmpfs needs root (CI runs as root)');
    const study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 64, slices: 16, seed: 21 });
    files = dicomFilesUnder(join(scratch.dir, 'phantom', 'dicom'));
    targetDir = join(scratch.dir, 'phantom', study.series.find((s) => s.isTarget)!.dir);
  });
  afterEach(async () => {
    await helper.unload();
  });
  after(() => {
    for (const dir of mounts) unmount(dir);
    scratch.cleanup();
  });

  it('C-STORE answers 0xA7xx (out of resources) once the disk is full, keeps no partial file, and stores again once space is freed', async () => {
    const workRoot = join(scratch.dir, 'tmpfs-scp');
    mountTmpfs(workRoot, '2m');
    mounts.push(workRoot);
    const port = await freeLoopbackPort();
    await helper.load(claraDicomIn, [
      { id: 'in', type: 'clara-dicom-in', aeTitle: 'CLARA', port, host: '127.0.0.1', allow: '', studyTimeout: 1, grouping: 'study', workRoot, maxPdu: 65536, wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const node = helper.getNode('in');
    const msgs = collectMessages<{ payload: { instances: number } }>(helper.getNode('out'));
    await waitForEcho(port);
    // Room for a job folder and a few instances (each about 9 KB), not for the study.
    const filler = fillDisk(workRoot, 160 * 1024);
    const items = files.map(outgoingOf);
    const first = await sendAll(port, items);
    assert.deepEqual(first.broken, []);
    const statuses = first.results.map((r) => r.status!.status);
    const succeeded = items.filter((_, i) => statuses[i] === 0).map((i) => i.sopInstanceUID);
    const refused = first.results.filter((r) => r.status!.status !== 0);
    assert.ok(succeeded.length > 0, 'the first instances fit');
    assert.ok(refused.length > 0, 'the disk filled up');
    for (const r of refused) {
      assert.equal(r.status!.status & 0xff00, 0xa700, `refused with 0x${r.status!.status.toString(16)} (${r.status!.errorComment}), not out of resources`);
      assert.match(r.status!.errorComment ?? '', /ENOSPC|no space/i);
    }
    // Every file kept is a whole instance: it parses to the end, its pixel data all there.
    const kept = storedInstances(workRoot);
    assert.deepEqual([...kept].sort(), [...succeeded].sort());
    for (const file of allFilesUnder(workRoot).filter((f) => f.endsWith('.dcm'))) {
      const bytes = readFileSync(file);
      parseDicom(bytes, { complete: true, fileSize: bytes.length });
    }
    assert.deepEqual(incomingLeftovers(workRoot), [], 'no temporary file left on the full disk');
    assert.ok(logOf(node).some((l) => /refused with 0xA700/.test(l.message)), 'the refusals are logged');
    assert.equal(await echo(port), 0, 'the node still serves');

    // Space freed: the refused instances go through, and the study completes as one job with all of them.
    rmSync(filler);
    const again = await sendAll(port, items.filter((_, i) => statuses[i] !== 0));
    assert.ok(again.results.every((r) => r.status?.status === 0), `after freeing space: ${again.results.map((r) => r.status?.errorComment).filter(Boolean).slice(0, 3).join('; ')}`);
    assert.equal(storedInstances(workRoot).length, items.length);
    await waitFor(() => (msgs.length > 0 ? true : undefined), 20000, 'the job msg');
    assert.equal(msgs.reduce((n, m) => n + m.payload.instances, 0), items.length);
    console.log(`      [reliability] full disk (tmpfs 2 MiB): ${items.length} instances sent, ${succeeded.length} stored before the disk filled, ${refused.length} refused with 0xA700, 0 partial files; after freeing space all ${items.length} stored in one job`);
  });

  it('the parser on a full disk: the job fails with the reason (no partial volume), the node goes on, and parses once space is freed', async () => {
    const workRoot = join(scratch.dir, 'tmpfs-parse');
    mountTmpfs(workRoot, '3m');
    mounts.push(workRoot);
    const store = new JobStore(workRoot);
    const record = store.create({ studyInstanceUID: '1.2.3.4', state: 'received' });
    const job = store.ref(record);
    cpSync(targetDir, join(job.dir, 'dicom'), { recursive: true });
    await helper.load(claraDicomParser, [
      { id: 'parse', type: 'clara-dicom-parser', format: 'nifti', spacingPolicy: 'warn', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const node = helper.getNode('parse');
    const out = collectMessages<{ parser: { volumes: unknown[] } }>(helper.getNode('out'));
    // Room for job.json, not for the volume (64 × 64 × 16 × 2 bytes).
    const filler = fillDisk(workRoot, 48 * 1024);
    node.receive({ job });
    const failure = await waitFor(() => logOf(node).find((l) => l.level === 20), 30000, 'the parse to fail');
    assert.match(failure.message, /ENOSPC|no space/i);
    assert.equal(out.length, 0);
    const failed = readJob(job.dir);
    assert.equal(failed.state, 'failed');
    assert.match(failed.errors.map((e) => e.message).join('\n'), /ENOSPC|no space/i);
    assert.deepEqual(readdirSync(join(job.dir, 'parser')).filter((n) => /\.nii|\.part/.test(n)), [], 'no partial volume or temporary file');

    rmSync(filler);
    node.receive({ job });
    await waitFor(() => (out.length > 0 ? true : undefined), 30000, 'the parse after freeing space');
    assert.equal(readJob(job.dir).state, 'parsed');
    assert.ok(out[0].parser.volumes.length > 0);
  });
});

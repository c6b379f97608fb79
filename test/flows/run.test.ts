import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FlowRunReport } from '../../flows/run';
import { readDicomHeader } from '../../lib/dicom/reader';
import { Tag } from '../../lib/dicom/tags';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { readJob } from '../../lib/job';
import { writePhantomStudy } from '../../lib/phantom';
import { CLARA_PIPELINE_YAML } from '../support/clara';
import { allFilesUnder, scratchDir } from '../support/tools';

const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const EXAMPLES = join(__dirname, '..', '..', '..', 'examples');
const SEG_STORAGE = '1.2.840.10008.5.1.4.1.1.66.4';
const RTSTRUCT_STORAGE = '1.2.840.10008.5.1.4.1.1.481.3';

interface FlowNode {
  id: string;
  type: string;
  [key: string]: unknown;
}

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [CLI, 'run', ...args], { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, ...env } });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function reportOf(outDir: string): FlowRunReport {
  return JSON.parse(readFileSync(join(outDir, 'run-report.json'), 'utf8')) as FlowRunReport;
}

function sopClassesUnder(dir: string): string[] {
  return allFilesUnder(dir)
    .filter((f) => /[\\/]dicom[\\/][^\\/]+\.dcm$/.test(f))
    .map((f) => readDicomHeader(f).dataset.string(Tag.SOPClassUID) ?? '?')
    .sort();
}

/**
 * `clara-dicom run`: a flow (or a Clara pipeline YAML, imported on the way) runs as a batch job in a Node-RED
 * runtime the command starts, on a folder of DICOM files; it ends when the flow is quiet and says what happened.
 */
describe('clara-dicom run (a flow as a batch job in an embedded Node-RED)', function () {
  this.timeout(300000);
  const scratch = scratchDir('run');
  const input = join(scratch.dir, 'phantom', 'dicom');
  let inputFiles: string[] = [];
  before(() => {
    writePhantomStudy(join(scratch.dir, 'phantom'), { size: 96, slices: 60, seed: 3 });
    inputFiles = allFilesUnder(input);
  });
  after(() => scratch.cleanup());

  it("runs Clara's pipeline YAML over C-STORE: SEG and RTSTRUCT in the job, both delivered to the MYPACS local archive, every stage timed", () => {
    const out = join(scratch.dir, 'yaml');
    const run = runCli([CLARA_PIPELINE_YAML, '--input', input, '--out', out, '--via', 'c-store']);
    assert.equal(run.status, 0, run.stderr + run.stdout);
    const report = reportOf(out);
    assert.equal(report.ok, true);
    assert.equal(report.input.instances, inputFiles.length);
    assert.equal(report.jobs.length, 1);
    const [job] = report.jobs;
    assert.equal(job.instances, inputFiles.length, 'every instance sent reached the job');
    assert.ok(job.outputs.some((f) => f.startsWith('seg/') && f.endsWith('.dcm')), 'a SEG in the job');
    assert.ok(job.outputs.some((f) => f.startsWith('rtstruct/') && f.endsWith('.dcm')), 'an RTSTRUCT in the job');
    // Each node of the pipeline worked on the job, and the summary lists each with its time.
    for (const type of ['clara-dicom-parser', 'clara-series-selector', 'clara-triton-infer', 'clara-seg-writer', 'clara-rtstruct-writer', 'clara-render-register', 'clara-scu-out']) {
      assert.ok(report.timings.some((t) => t.type === type && t.jobId === job.id && !t.error), `${type} timed on the job`);
      assert.match(run.stdout, new RegExp(`\\n {4}${type} +\\S.* +\\d+\\.\\d\\d s`), `${type} in the summary`);
    }
    // What reached the archive is exactly the two results, each once, in the source study.
    assert.deepEqual(report.deliveries.map((d) => d.state), ['succeeded', 'succeeded']);
    const [archive] = report.archives;
    assert.equal(archive.name, 'MYPACS');
    assert.deepEqual(sopClassesUnder(archive.dir), [SEG_STORAGE, RTSTRUCT_STORAGE].sort());
    for (const f of allFilesUnder(archive.dir).filter((x) => /[\\/]dicom[\\/][^\\/]+\.dcm$/.test(x))) {
      assert.equal(readDicomHeader(f).dataset.string(Tag.StudyInstanceUID), job.studyInstanceUID);
    }
    assert.ok(job.viewerUrl && /\/clara-dicom\/viewer\//.test(job.viewerUrl), 'registered with the viewer');
    assert.match(run.stdout, /npx node-red --settings \S+settings\.js/);
    // The flow as run is kept, so the editor can open it again with the results in place.
    const kept = JSON.parse(readFileSync(join(report.userDir, 'flows.json'), 'utf8')) as FlowNode[];
    assert.ok(kept.some((n) => n.type === 'clara-dicom-in' && n.workRoot === join(out, 'jobs')));
  });

  it('runs the "DICOM in → SEG out" example by folder ingest, leaving the input folder as it was', () => {
    const out = join(scratch.dir, 'seg-out');
    const run = runCli([join(EXAMPLES, '04 DICOM in, SEG out.json'), '--input', input, '--out', out, '--json']);
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout) as FlowRunReport;
    assert.deepEqual(report, reportOf(out), '--json prints the report it writes');
    assert.equal(report.input.via, 'ingest');
    assert.equal(report.jobs[0].state, 'seg-written');
    assert.deepEqual(sopClassesUnder(report.archives[0].dir), [SEG_STORAGE]);
    assert.deepEqual(allFilesUnder(input), inputFiles, 'folder ingest copies; the input is untouched');
  });

  it('takes the study from dcmtk storescu in a process of its own (--via storescu), as from a PACS', () => {
    const out = join(scratch.dir, 'storescu');
    const run = runCli([join(EXAMPLES, '04 DICOM in, SEG out.json'), '--input', input, '--out', out]);
    assert.equal(run.status, 0, run.stderr + run.stdout);
    const viaStorescu = runCli([join(EXAMPLES, '04 DICOM in, SEG out.json'), '--input', input, '--out', `${out}-2`, '--via', 'storescu']);
    assert.equal(viaStorescu.status, 0, viaStorescu.stderr + viaStorescu.stdout);
    const report = reportOf(`${out}-2`);
    assert.equal(report.input.via, 'storescu');
    assert.deepEqual(report.input.skipped, []);
    assert.match(viaStorescu.stdout, new RegExp(`storescu: ${inputFiles.length} instance\\(s\\) sent to CLARA@127\\.0\\.0\\.1:\\d+`));
    assert.equal(report.jobs.length, 1);
    assert.equal(report.jobs[0].instances, inputFiles.length, 'every instance storescu sent reached the job');
    assert.equal(readJob(report.jobs[0].dir).callingAE, 'CLARA-RUN', 'received from storescu, calling as the run');
    assert.deepEqual(sopClassesUnder(report.archives[0].dir), [SEG_STORAGE]);
    // The same study by folder ingest made the same SEG frames: the route changes nothing downstream.
    assert.equal(report.jobs[0].state, reportOf(out).jobs[0].state);

    // Without dcmtk on the PATH, nothing is sent: the run says why and ends after a study timeout, not at --timeout.
    const noDcmtk = runCli([join(EXAMPLES, '04 DICOM in, SEG out.json'), '--input', input, '--out', `${out}-3`, '--via', 'storescu', '--timeout', '120'], { PATH: '/nonexistent' });
    assert.equal(noDcmtk.status, 1, noDcmtk.stderr + noDcmtk.stdout);
    assert.match(noDcmtk.stdout, /storescu could not start \(spawn storescu ENOENT\): install dcmtk, or use --via c-store/);
    const failed = reportOf(`${out}-3`);
    assert.equal(failed.timedOut, false, 'the run stopped when nothing could arrive, not at --timeout');
    assert.deepEqual(failed.jobs, []);
    assert.match(failed.input.skipped.map((s) => s.reason).join('\n'), /storescu could not start/);
  });

  it('runs the "Folder watch → RTSTRUCT" example with its watcher switched off and the input handed to its clara-dicom-in', () => {
    const out = join(scratch.dir, 'rtstruct');
    const run = runCli([join(EXAMPLES, '05 Folder watch, RTSTRUCT.json'), '--input', input, '--out', out]);
    assert.equal(run.status, 0, run.stderr + run.stdout);
    const report = reportOf(out);
    assert.ok(report.jobs[0].outputs.some((f) => f.startsWith('rtstruct/')));
    assert.deepEqual(report.deliveries, []);
    const kept = JSON.parse(readFileSync(join(report.userDir, 'flows.json'), 'utf8')) as FlowNode[];
    assert.equal(kept.find((n) => n.type === 'watch')?.d, true);
  });

  it('exits 1 with the delivery failure when the destination is down, and keeps the results and the task', async () => {
    const flow = JSON.parse(readFileSync(join(EXAMPLES, '04 DICOM in, SEG out.json'), 'utf8')) as FlowNode[];
    const deadPort = await freeLoopbackPort();
    const pointed = flow
      .filter((n) => !(n.type === 'clara-dicom-in' && n.aeTitle === 'MYPACS'))
      .map((n) => (n.type === 'clara-dicom-destination' ? { ...n, port: deadPort, connectTimeout: 2 } : n.type === 'clara-scu-out' ? { ...n, maxAttempts: 1 } : n));
    const file = join(scratch.dir, 'dead-pacs.json');
    writeFileSync(file, JSON.stringify(pointed));
    const out = join(scratch.dir, 'dead');
    const run = runCli([file, '--input', input, '--out', out]);
    assert.equal(run.status, 1, run.stdout);
    const report = reportOf(out);
    assert.equal(report.ok, false);
    assert.equal(report.deliveries.length, 1);
    assert.equal(report.deliveries[0].state, 'failed');
    assert.match(report.deliveries[0].error ?? '', new RegExp(`127\\.0\\.0\\.1:${deadPort}`));
    assert.match(run.stdout, /delivery +MYPACS .* failed: 0\/1 instance\(s\)/);
    assert.match(run.stdout, /FAILED/);
    assert.ok(existsSync(report.deliveries[0].taskFile), 'the task stays in the job for a later resume');
    assert.ok(report.jobs[0].outputs.some((f) => f.startsWith('seg/')), 'the SEG written is kept');
  });

  it('refuses a flow with no clara-dicom-in, an input with no DICOM file, and wrong usage', () => {
    const noIn = join(scratch.dir, 'no-in.json');
    writeFileSync(noIn, JSON.stringify([{ id: 't1', type: 'tab', label: 'x' }, { id: 'p1', type: 'clara-dicom-parser', z: 't1', wires: [[]] }]));
    let run = runCli([noIn, '--input', input, '--out', join(scratch.dir, 'x1')]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /no clara-dicom-in to take the study/);

    const empty = join(scratch.dir, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, 'notes.txt'), 'not DICOM');
    run = runCli([join(EXAMPLES, '04 DICOM in, SEG out.json'), '--input', empty, '--out', join(scratch.dir, 'x2')]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /no DICOM instances in .*empty \(1 file\(s\)\)/);
    assert.ok(!existsSync(join(scratch.dir, 'x2', 'node-red')), 'nothing was started');

    run = runCli([join(EXAMPLES, '04 DICOM in, SEG out.json'), '--input', input]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--out <dir> is required/);
    run = runCli([join(EXAMPLES, '04 DICOM in, SEG out.json'), '--input', input, '--out', join(scratch.dir, 'x3'), '--via', 'smoke-signals']);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--via must be one of ingest, c-store, storescu/);
    assert.deepEqual(readdirSync(scratch.dir).filter((n) => n === 'x3'), [], 'nothing written on wrong usage');
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CompletedJob } from '../../lib/ingest';
import { writePhantomStudy } from '../../lib/phantom';
import { scratchDir } from '../support/tools';
import { dicomFilesUnder, runProcess, storeResponses, storescu } from './helpers';

const MAIN = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');

describe('clara-dicom listen (CLI)', function () {
  this.timeout(60000);
  const scratch = scratchDir('cli-listen');
  after(() => scratch.cleanup());

  it('prints one JSON line per completed job, and on SIGTERM completes what is still receiving and exits 0', async () => {
    const study = writePhantomStudy(join(scratch.dir, 'study'), { size: 16, slices: 8, seed: 31 });
    const files = dicomFilesUnder(join(scratch.dir, 'study', 'dicom'));
    const workRoot = join(scratch.dir, 'work');
    const child = spawn(process.execPath, [MAIN, 'listen', workRoot, '--port', '0', '--host', '127.0.0.1', '--timeout', '30', '--ae', 'CLI_SCP', '--allow', 'STORESCU@127.0.0.1,OTHER'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        const m = /listening (\{.*\})/.exec(stderr);
        if (m) resolve((JSON.parse(m[1]) as { port: number }).port);
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    const result = await storescu(port, files, { calledAE: 'CLI_SCP' });
    assert.ok(storeResponses(result).every((r) => r === 'Success'));
    assert.equal(stdout, '', 'a 30 s study timeout has not passed yet');
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exit, 0, stderr);
    const lines = stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const job = JSON.parse(lines[0]) as CompletedJob;
    assert.equal(job.summary.studyInstanceUID, study.studyInstanceUID);
    assert.equal(job.summary.instances, files.length);
    assert.equal(job.summary.completedBy, 'close');
    assert.equal(readdirSync(join(job.job.dir, 'dicom')).length, files.length);
  });

  it('exits 2 with a usage line on wrong options, 1 on a port in use', async () => {
    const bad = await runProcess(process.execPath, [MAIN, 'listen', scratch.dir, '--grouping', 'nonsense']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--grouping must be one of study, study-calling-ae, association/);
    const badAe = await runProcess(process.execPath, [MAIN, 'listen', scratch.dir, '--allow', 'A\\B']);
    assert.equal(badAe.code, 2);
    const missing = await runProcess(process.execPath, [MAIN, 'listen']);
    assert.equal(missing.code, 2);
    const first = spawn(process.execPath, [MAIN, 'listen', join(scratch.dir, 'w1'), '--port', '0', '--host', '127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      const port = await new Promise<number>((resolve) => {
        let err = '';
        first.stderr.on('data', (d) => {
          err += d;
          const m = /listening (\{.*\})/.exec(err);
          if (m) resolve((JSON.parse(m[1]) as { port: number }).port);
        });
      });
      const second = await runProcess(process.execPath, [MAIN, 'listen', join(scratch.dir, 'w2'), '--port', String(port), '--host', '127.0.0.1']);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /already in use/);
    } finally {
      first.kill('SIGTERM');
    }
  });
});

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { readDicomHeader } from '../../lib/dicom/reader';
import { Tag } from '../../lib/dicom/tags';
import { writePhantomStudy } from '../../lib/phantom';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { allFilesUnder, delay, scratchDir } from '../support/tools';

const EXAMPLE = join(__dirname, '..', '..', '..', 'examples', '05 Folder watch, RTSTRUCT.json');
const RTSTRUCT_STORAGE = '1.2.840.10008.5.1.4.1.1.481.3';

interface FlowNode {
  id: string;
  type: string;
  env?: Array<{ name: string; value: string; type: string }>;
  [key: string]: unknown;
}

/**
 * The "Folder watch → RTSTRUCT" example as a user runs it: Node-RED (red.js) with the example flow, the drop
 * folder set in the tab's environment, a study copied in; the flow waits for the folder to be quiet, takes the
 * study (deleting what it stored), and writes the RTSTRUCT.
 */
describe('the "Folder watch → RTSTRUCT" example in a real Node-RED', function () {
  this.timeout(300000);
  const scratch = scratchDir('folder-watch');
  let red: HeadlessRed | undefined;
  after(async () => {
    await red?.stop();
    scratch.cleanup();
  });

  it('ingests a study dropped into the watched folder once it is quiet, removes what it stored, and writes the RTSTRUCT', async () => {
    const incoming = join(scratch.dir, 'incoming');
    const jobs = join(scratch.dir, 'jobs');
    mkdirSync(incoming);
    const flow = JSON.parse(readFileSync(EXAMPLE, 'utf8')) as FlowNode[];
    const tab = flow.find((n) => n.type === 'tab')!;
    tab.env = [{ name: 'CLARA_INCOMING', value: incoming, type: 'str' }];
    Object.assign(flow.find((n) => n.type === 'clara-dicom-in')!, { workRoot: jobs });
    red = await startHeadlessRed(join(scratch.dir, 'node-red'), flow);

    const study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 96, slices: 60, seed: 3 });
    const sources = allFilesUnder(join(scratch.dir, 'phantom', 'dicom'));
    // A study as someone copies it in: series folders, and a file that is not DICOM.
    for (const file of sources) {
      const target = join(incoming, 'study-1', relative(join(scratch.dir, 'phantom', 'dicom'), file));
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(file, target);
    }
    writeFileSync(join(incoming, 'README.txt'), 'sent by the scanner console');

    const deadline = Date.now() + 240000;
    let rtstructs: string[] = [];
    while (rtstructs.length === 0) {
      if (Date.now() > deadline) throw new Error(`no RTSTRUCT written:\n${red.log().slice(-4000)}`);
      await delay(1000);
      rtstructs = existsSync(jobs) ? allFilesUnder(jobs).filter((f) => /[\\/]rtstruct[\\/][^\\/]+\.dcm$/.test(f)) : [];
    }
    assert.equal(rtstructs.length, 1);
    const header = readDicomHeader(rtstructs[0]);
    assert.equal(header.dataset.string(Tag.SOPClassUID), RTSTRUCT_STORAGE);
    assert.equal(header.dataset.string(Tag.StudyInstanceUID), study.studyInstanceUID);
    const jobDirs = readdirSync(jobs).filter((n) => existsSync(join(jobs, n, 'job.json')));
    assert.equal(jobDirs.length, 1, 'one job for the study, taken once');
    const job = JSON.parse(readFileSync(join(jobs, jobDirs[0], 'job.json'), 'utf8')) as { counts: { instances: number } };
    assert.equal(job.counts.instances, sources.length, 'every instance dropped is in the job');
    // Drop-folder mode: what was stored is gone from the folder (with its emptied folders); the rest stays.
    assert.deepEqual(allFilesUnder(incoming).map((f) => relative(incoming, f)), ['README.txt'], red.log().slice(-3000));
    assert.deepEqual(readdirSync(incoming), ['README.txt'], 'emptied folders removed');
    assert.match(red.log(), /README\.txt: not readable as DICOM/);
    assert.doesNotMatch(red.log(), /\[error\]/);
  });
});

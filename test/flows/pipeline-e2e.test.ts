import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type FlowNode, pipelineToFlow } from '../../flows/mapping';
import { parsePipeline } from '../../flows/pipeline';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { writePhantomStudy } from '../../lib/phantom';
import { CLARA_PIPELINE_YAML } from '../support/clara';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { type OrthancInstance, startOrthanc } from '../support/orthanc';
import { allFilesUnder, delay, runTool, scratchDir } from '../support/tools';

const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');

interface OrthancSeries {
  MainDicomTags: { Modality?: string; SeriesInstanceUID?: string };
  Instances: string[];
}

/**
 * Issue 7's end-to-end acceptance: Clara's own pipeline YAML, imported, deployed with `clara-dicom deploy`
 * into a real Node-RED with adminAuth (red.js in its own process), processes a phantom study sent over
 * C-STORE, and the SEG and the RTSTRUCT it writes arrive in Orthanc (as MYPACS) in the source study.
 */
describe('the imported Advanced DICOM Integration pipeline, end to end into Orthanc', function () {
  this.timeout(300000);
  const scratch = scratchDir('pipeline-e2e');
  let orthanc: OrthancInstance;
  let red: HeadlessRed;
  after(async () => {
    await red?.stop();
    await orthanc?.stop();
    scratch.cleanup();
  });

  it('is deployed to an edge Node-RED, receives the study, segments it, and stores its SEG and RTSTRUCT in the source study in Orthanc', async () => {
    orthanc = await startOrthanc({ callingAETs: ['ClaraSCU'] });
    const dicomPort = await freeLoopbackPort();
    const { flow, warnings } = pipelineToFlow(parsePipeline(readFileSync(CLARA_PIPELINE_YAML, 'utf8')), {
      dicomPort,
      dicomHost: '127.0.0.1',
      destinations: { MYPACS: { calledAE: orthanc.aet, host: '127.0.0.1', port: orthanc.dicomPort } },
      triton: 'embedded',
    });
    assert.deepEqual(warnings, []);
    const dicomIn = flow.find((n) => n.type === 'clara-dicom-in') as FlowNode;
    Object.assign(dicomIn, { studyTimeout: 1, workRoot: join(scratch.dir, 'jobs') });
    // The edge box: a Node-RED with adminAuth and nothing deployed; the flow reaches it through clara-dicom deploy.
    red = await startHeadlessRed(join(scratch.dir, 'node-red'), [], { users: [{ username: 'deployer', password: 'deploy-pass', permissions: '*' }] });
    const flowFile = join(scratch.dir, 'flow.json');
    writeFileSync(flowFile, JSON.stringify(flow));
    const deployed = spawnSync(process.execPath, [CLI, 'deploy', flowFile, '--target', red.url, '--user', 'deployer', '--password', 'deploy-pass'], { encoding: 'utf8' });
    assert.equal(deployed.status, 0, deployed.stderr);
    const listening = Date.now() + 60000;
    while (!new RegExp(`listening as CLARA on 127\\.0\\.0\\.1:${dicomPort}`).test(red.log())) {
      if (Date.now() > listening) throw new Error(`the deployed flow did not start:\n${red.log().slice(-3000)}`);
      await delay(200);
    }

    const study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 96, slices: 60, seed: 3 });
    runTool('storescu', ['-aet', 'PACS', '-aec', 'CLARA', '127.0.0.1', String(dicomPort), ...allFilesUnder(join(scratch.dir, 'phantom', 'dicom'))], { TCP_NODELAY: '1' });

    const deadline = Date.now() + 180000;
    let modalities: string[] = [];
    for (;;) {
      const studies = await orthanc.rest<Array<{ ID: string; MainDicomTags: { StudyInstanceUID: string } }>>('/studies?expand');
      const ours = studies.find((s) => s.MainDicomTags.StudyInstanceUID === study.studyInstanceUID);
      if (ours) {
        const series = await orthanc.rest<OrthancSeries[]>(`/studies/${ours.ID}/series?expand`);
        modalities = series.map((s) => s.MainDicomTags.Modality ?? '?').sort();
        if (modalities.includes('SEG') && modalities.includes('RTSTRUCT')) break;
      }
      if (Date.now() > deadline) throw new Error(`no SEG and RTSTRUCT in Orthanc's copy of the study (series there: ${modalities.join(', ') || 'none'}):\n${red.log().slice(-4000)}`);
      await delay(1000);
    }
    assert.deepEqual(modalities, ['RTSTRUCT', 'SEG'], 'only the results were sent, each once');
    assert.doesNotMatch(red.log(), /\[error\]/, 'the runtime logged no error');
  });
});

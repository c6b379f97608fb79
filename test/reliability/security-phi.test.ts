import assert from 'node:assert/strict';
import { join } from 'node:path';
import { LOG_PATIENT_IDENTITY_SETTING, maskIdentifier, maskPersonName, patientForLog } from '../../lib/dicom/phi';
import { type PhantomStudy, writePhantomStudy } from '../../lib/phantom';
import { dicomFilesUnder, storescu } from '../dimse/helpers';
import { type LogEvent, collectMessages, helper, listeningPort, waitFor } from '../support/node-red';
import { hasTool, scratchDir } from '../support/tools';

const nodeFile = (type: string) => join(__dirname, '..', '..', 'nodes', type, `${type}.js`);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const packNodes = ['clara-dicom-in', 'clara-dicom-parser', 'clara-series-selector'].map((t) => require(nodeFile(t)) as unknown);

/** Every line Node-RED's log received since the flow was loaded, at every level, as text. */
function logLines(): Array<{ level: number; text: string }> {
  return helper.log().getCalls().map((c) => {
    const event = c.args[0] as LogEvent;
    const text = typeof event?.msg === 'string' ? event.msg : event?.msg instanceof Error ? `${event.msg.message}\n${event.msg.stack ?? ''}` : JSON.stringify(event?.msg);
    return { level: event?.level ?? 0, text: `${event?.type ?? ''} ${text}` };
  });
}

describe('reliability: no patient identity in the log unless settings.js asks for it', function () {
  this.timeout(120000);
  const scratch = scratchDir('security-phi');
  let study: PhantomStudy;
  let files: string[];
  let flowCounter = 0;

  before(() => {
    assert.ok(hasTool('storescu'), 'dcmtk (Debian) is needed: .ci/run installs it');
    study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 32, slices: 8, seed: 11 });
    files = dicomFilesUnder(join(scratch.dir, 'phantom', 'dicom'));
  });
  afterEach(async () => {
    await helper.unload();
    helper.settings({});
  });
  after(() => scratch.cleanup());

  it('masks names and identifiers: initials of each name component, the first character of an ID', () => {
    assert.equal(maskPersonName('DOE^JOHN^Q'), 'D***^J***^Q***');
    assert.equal(maskPersonName('Müller^Jürgen=ミュラー^ユルゲン'), 'M***^J***=ミ***^ユ***');
    assert.equal(maskPersonName('^^'), '');
    assert.equal(maskIdentifier(' 12345678 '), '1***');
    assert.equal(patientForLog({ name: 'DOE^JOHN', id: '12345678' }), 'patient D***^J*** (ID 1***)');
    assert.equal(patientForLog({ name: 'DOE^JOHN', id: '12345678' }, true), 'patient DOE^JOHN (ID 12345678)');
    assert.equal(patientForLog({}), 'patient (none)');
  });

  /** Receives the phantom over C-STORE and runs it through the parser and the selector; gives the log. */
  async function processPhantom(): Promise<Array<{ level: number; text: string }>> {
    const workRoot = join(scratch.dir, `work-${++flowCounter}`);
    await helper.load(packNodes, [
      { id: 'in', type: 'clara-dicom-in', aeTitle: 'CLARA', port: 0, host: '127.0.0.1', allow: '', studyTimeout: 0.5, grouping: 'study', workRoot, wires: [['parse']] },
      { id: 'parse', type: 'clara-dicom-parser', format: 'nifti-gz', spacingPolicy: 'warn', wires: [['select']] },
      { id: 'select', type: 'clara-series-selector', rulesType: 'json', rules: JSON.stringify({ selections: [{ name: 'ANY', conditions: { Modality: 'MR' } }] }), wires: [['out'], ['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const out = collectMessages<{ job: { id: string } }>(helper.getNode('out'));
    const port = await listeningPort(helper.getNode('in'));
    const sent = await storescu(port, files);
    assert.equal(sent.code, 0, sent.stderr);
    await waitFor(() => out[0], 60000, () => `the study through the parser and the selector; log: ${logLines().filter((l) => l.level <= helper.log().WARN).map((l) => l.text).join(' | ')}`);
    return logLines();
  }

  it('at the default setting the phantom\'s PatientName and PatientID appear nowhere in the log; the job line shows them masked', async () => {
    const lines = await processPhantom();
    const { name, id } = study.patient;
    const leaks = lines.filter((l) => l.text.includes(name) || l.text.includes(id) || l.text.includes(name.replace('^', ' ')));
    assert.deepEqual(leaks, [], 'no line names the patient');
    const jobLine = lines.find((l) => / job \S+: study /.test(l.text));
    assert.ok(jobLine, `a job line at info level: ${lines.map((l) => l.text).join('\n')}`);
    assert.equal(jobLine.level, helper.log().INFO);
    assert.match(jobLine.text, new RegExp(`patient ${maskPersonName(name).replace(/[*^]/g, '\\$&')} \\(ID ${maskIdentifier(id).replace(/\*/g, '\\*')}\\)`));
  });

  it(`with ${LOG_PATIENT_IDENTITY_SETTING}: true in settings.js the job line names the patient in full`, async () => {
    helper.settings({ [LOG_PATIENT_IDENTITY_SETTING]: true });
    const lines = await processPhantom();
    const jobLine = lines.find((l) => / job \S+: study /.test(l.text));
    assert.ok(jobLine, 'a job line');
    assert.ok(jobLine.text.includes(`patient ${study.patient.name} (ID ${study.patient.id})`), jobLine.text);
  });
});

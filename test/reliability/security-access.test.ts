import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJob } from '../../lib/job';
import { echoscu, mrInstanceFile, storeResponses, storescu } from '../dimse/helpers';
import { callsOn, collectMessages, helper, listeningPort, statusTexts, waitFor } from '../support/node-red';
import { allFilesUnder, hasTool, scratchDir } from '../support/tools';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const claraDicomIn = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-in', 'clara-dicom-in.js')) as unknown;

interface JobMsg {
  payload: { instances: number; rejected: number };
  job: { id: string; dir: string };
}

/**
 * Who may store into clara-dicom-in, and what a sender can make it write, through the node in a Node-RED
 * runtime. The library-level cases are in test/dimse/scp.test.ts (allow-list, host binding, crafted SOP
 * Instance UIDs) and test/dimse/units.test.ts (allow-list parsing and decisions).
 */
describe('reliability: access control of clara-dicom-in (allow-list with peer address, crafted UIDs)', function () {
  this.timeout(120000);
  const scratch = scratchDir('security-access');
  let flowCounter = 0;

  before(() => assert.ok(hasTool('storescu'), 'dcmtk (Debian) is needed: .ci/run installs it'));
  afterEach(() => helper.unload());
  after(() => scratch.cleanup());

  const flow = (props: Record<string, unknown>) => {
    const workRoot = join(scratch.dir, `work-${++flowCounter}`);
    return {
      workRoot,
      nodes: [
        { id: 'in', type: 'clara-dicom-in', aeTitle: 'CLARA', port: 0, host: '127.0.0.1', allow: '', studyTimeout: 0.5, grouping: 'study', workRoot, wires: [['out']], ...props },
        { id: 'out', type: 'helper' },
      ],
    };
  };

  it('an allow-list entry bound to an address (AE@IP) admits that AE from that address only', async () => {
    const { nodes, workRoot } = flow({ allow: 'STORESCU@127.0.0.2\nECHOSCU@127.0.0.1' });
    await helper.load(claraDicomIn, nodes);
    const node = helper.getNode('in');
    const port = await listeningPort(node);
    const file = join(scratch.dir, 'one.dcm');
    writeFileSync(file, mrInstanceFile({ SOPInstanceUID: '1.2.826.0.1.3680043.10.9.1' }));
    const wrongAddress = await storescu(port, [file]);
    assert.notEqual(wrongAddress.code, 0);
    assert.match(wrongAddress.stdout + wrongAddress.stderr, /Calling AE Title Not Recognized/);
    const warning = await waitFor(() => callsOn('warn', node).map((c) => String(c[0])).find((m) => /STORESCU/.test(m)), 5000, 'the rejection in the log');
    assert.match(warning, /calling AE "STORESCU" is allowed only from 127\.0\.0\.2, not from 127\.0\.0\.1/);
    await waitFor(() => statusTexts(node).find((t) => /rejected STORESCU@127\.0\.0\.1/.test(t)), 5000, () => statusTexts(node).join(' | '));
    // An AE that is not listed at all, and the one listed for this address.
    const stranger = await echoscu(port, { callingAE: 'STRANGER' });
    assert.notEqual(stranger.code, 0);
    const allowed = await echoscu(port);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.deepEqual(readdirSync(workRoot).filter((n) => n !== '.incoming'), []);
  });

  it('refuses C-STORE of instances whose SOP, Study or Series Instance UID tries path traversal (0xA900); nothing lands outside the job', async () => {
    const { nodes, workRoot } = flow({});
    await helper.load(claraDicomIn, nodes);
    const node = helper.getNode('in');
    const msgs = collectMessages<JobMsg>(helper.getNode('out'));
    const port = await listeningPort(node);
    const crafted = join(scratch.dir, 'crafted');
    mkdirSync(crafted, { recursive: true });
    const study = '1.2.826.0.1.3680043.10.9.2';
    const cases = [
      { SOPInstanceUID: '../../../evil', StudyInstanceUID: study },
      { SOPInstanceUID: '1.2.826.0.1.3680043.10.9.3', StudyInstanceUID: '../../evil-study' },
      { SOPInstanceUID: '1.2.826.0.1.3680043.10.9.4', StudyInstanceUID: study, SeriesInstanceUID: '1.2/../../evil-series' },
    ];
    const files = cases.map((uids, i) => {
      const path = join(crafted, `bad${i}.dcm`);
      writeFileSync(path, mrInstanceFile(uids));
      return path;
    });
    const good = join(crafted, 'good.dcm');
    writeFileSync(good, mrInstanceFile({ SOPInstanceUID: '1.2.826.0.1.3680043.10.9.5', StudyInstanceUID: study }));
    const before = new Set(allFilesUnder(scratch.dir));
    const result = await storescu(port, [...files, good]);
    assert.deepEqual(storeResponses(result), ['Error: DataSetDoesNotMatchSOPClass', 'Error: DataSetDoesNotMatchSOPClass', 'Error: DataSetDoesNotMatchSOPClass', 'Success']);
    const msg = await waitFor(() => msgs[0], 10000, 'the job of the good instance');
    assert.equal(msg.payload.instances, 1);
    const created = allFilesUnder(scratch.dir).filter((p) => !before.has(p));
    assert.deepEqual(created.sort(), [join(msg.job.dir, 'dicom', '1.2.826.0.1.3680043.10.9.5.dcm'), join(msg.job.dir, 'job.json')].sort());
    for (const name of ['evil', 'evil-study', 'evil-series']) {
      assert.ok(!existsSync(join(scratch.dir, name)) && !existsSync(join(workRoot, name)), `${name} must not exist`);
    }
    const warnings = callsOn('warn', node).map((c) => String(c[0]));
    assert.ok(warnings.some((m) => /invalid SOP Instance UID "\.\.\/\.\.\/\.\.\/evil"/.test(m)), warnings.join('\n'));
    assert.ok(warnings.some((m) => /invalid Study Instance UID "\.\.\/\.\.\/evil-study"/.test(m)), warnings.join('\n'));
    assert.ok(warnings.some((m) => /invalid Series Instance UID "1\.2\/\.\.\/\.\.\/evil-series"/.test(m)), warnings.join('\n'));
    assert.ok(statusTexts(node).some((t) => /3 refused/.test(t)), statusTexts(node).join(' | '));
    assert.ok(readJob(msg.job.dir).errors.length >= 1, 'refusals counted against the job they arrived with');
  });
});

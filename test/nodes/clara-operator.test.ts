import assert from 'node:assert/strict';
import { join } from 'node:path';
import { collectMessages, helper, logOf, statusTexts, waitFor } from '../support/node-red';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const operatorNode = require(join(__dirname, '..', '..', 'nodes', 'clara-operator', 'clara-operator.js')) as unknown;

describe('clara-operator placeholder in a Node-RED 4 runtime', () => {
  afterEach(async () => {
    await helper.unload();
  });

  it('says it is not executable here, warns once, and passes messages through unchanged', async () => {
    await helper.load(operatorNode, [
      { id: 'op', type: 'clara-operator', name: 'lung-report', image: 'acme/lung-report', tag: '1.2', command: ['python', 'report.py'], wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const op = helper.getNode('op');
    assert.deepEqual(statusTexts(op), ['not executable here: acme/lung-report:1.2']);
    assert.ok(logOf(op).some((l) => /the Clara operator acme\/lung-report:1\.2 is not executable here; messages pass through unchanged/.test(l.message)));
    const got = collectMessages<{ job: { id: string }; payload: number }>(helper.getNode('out'));
    op.receive({ job: { id: 'j1' }, payload: 7 });
    const msg = await waitFor(() => got[0], 5000, 'the message passed through');
    assert.deepEqual([msg.job, msg.payload], [{ id: 'j1' }, 7]);
  });
});

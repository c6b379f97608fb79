import assert from 'node:assert/strict';
import { JobStore, failInterruptedJobs, readJob, updateJob } from '../../lib/job';
import { scratchDir } from '../support/tools';

describe('reliability: jobs a stopped process left half-done are marked failed at the next start', () => {
  const scratch = scratchDir('interrupted');
  after(() => scratch.cleanup());

  it('marks working states updated before this process started, and leaves the rest alone', () => {
    const store = new JobStore(scratch.dir);
    const make = (state: 'parsing' | 'inferring' | 'writing' | 'received' | 'receiving') => {
      const record = store.create({ studyInstanceUID: '1.2.3', state });
      return store.ref(record).dir;
    };
    const parsing = make('parsing');
    const inferring = make('inferring');
    const writing = make('writing');
    const received = make('received');
    const receiving = make('receiving');
    // As seen by a process that started after all of them were written.
    const marked = failInterruptedJobs(store, Date.now() + 1000);
    assert.deepEqual(marked.map((r) => r.id).sort(), [parsing, inferring, writing].map((d) => readJob(d).id).sort());
    for (const dir of [parsing, inferring, writing]) {
      const record = readJob(dir);
      assert.equal(record.state, 'failed');
      assert.match(record.errors.at(-1)!.message, /^interrupted: /);
    }
    assert.equal(readJob(received).state, 'received');
    assert.equal(readJob(receiving).state, 'receiving', 'receiving jobs are resumed by the SCP, not failed');
    // Work in progress in this very process (updated after it started) is never touched.
    updateJob(parsing, (r) => {
      r.state = 'parsing';
    });
    assert.deepEqual(failInterruptedJobs(store, Date.now() - 60000), []);
    assert.equal(readJob(parsing).state, 'parsing');
  });
});

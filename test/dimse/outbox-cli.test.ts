import assert from 'node:assert/strict';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { hasTool, scratchDir } from '../support/tools';
import { runProcess } from './helpers';
import { receivedUids, startStorescp, writeMrSeries } from './storescp';

/** `clara-dicom send` through lib/cli/send's run(), in a process of its own, as main.ts will call it. */
function send(args: string[]) {
  const sendJs = join(__dirname, '..', '..', 'lib', 'cli', 'send.js');
  const argsJs = join(__dirname, '..', '..', 'lib', 'cli', 'args.js');
  // The same mapping of errors to exit codes as lib/cli/main.ts.
  const script = `
    const { UsageError } = require(${JSON.stringify(argsJs)});
    require(${JSON.stringify(sendJs)}).run(process.argv.slice(1)).then((c) => process.exit(c), (e) => {
      process.stderr.write('clara-dicom send: ' + e.message + '\\n');
      process.exit(e instanceof UsageError ? 2 : 1);
    });`;
  return runProcess(process.execPath, ['-e', script, '--', ...args]);
}

describe('clara-dicom send', function () {
  before(() => assert.ok(hasTool('storescp'), 'dcmtk (Debian) is needed: .ci/run installs it'));
  this.timeout(60000);
  let scratch: ReturnType<typeof scratchDir>;
  beforeEach(() => {
    scratch = scratchDir('send-cli');
  });
  afterEach(() => scratch.cleanup());

  it('sends a folder to AE@host:port: exit 0 and a one-line summary', async () => {
    const port = await freeLoopbackPort();
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      const mr = writeMrSeries(join(scratch.dir, 'in'), 12);
      const r = await send([join(scratch.dir, 'in'), '--to', `PACS@127.0.0.1:${port}`, '--calling-ae', 'NODE']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^sent 12 of 12 instance\\(s\\) to PACS@127\\.0\\.0\\.1:${port} in \\d+\\.\\d+ s \\(1 attempt\\(s\\)\\)\\n$`));
      assert.deepEqual(receivedUids(peer.dir).sort(), [...mr.uids].sort());
    } finally {
      await peer.stop();
    }
  });

  it('--json reports every instance', async () => {
    const port = await freeLoopbackPort();
    const peer = await startStorescp(port, join(scratch.dir, 'received'));
    try {
      const mr = writeMrSeries(join(scratch.dir, 'in'), 2);
      const r = await send([...mr.files, '--to', `PACS@127.0.0.1:${port}`, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { delivered: number; instances: Array<{ state: string; status: number }> };
      assert.equal(out.delivered, 2);
      assert.ok(out.instances.every((i) => i.state === 'succeeded' && i.status === 0));
    } finally {
      await peer.stop();
    }
  });

  it('exit 1 when the peer is down or refuses, naming the reason; exit 2 for wrong usage', async () => {
    const port = await freeLoopbackPort();
    const mr = writeMrSeries(join(scratch.dir, 'in'), 1);
    const down = await send([mr.files[0], '--to', `PACS@127.0.0.1:${port}`]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /connection refused/);
    const peer = await startStorescp(port, join(scratch.dir, 'received'), { extra: ['--refuse'] });
    try {
      const refused = await send([mr.files[0], '--to', `PACS@127.0.0.1:${port}`]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /association rejected/);
    } finally {
      await peer.stop();
    }
    assert.equal((await send([mr.files[0]])).code, 2);
    assert.equal((await send([mr.files[0], '--to', 'nonsense'])).code, 2);
    assert.equal((await send(['--to', `PACS@127.0.0.1:${port}`])).code, 2);
    const missing = await send([join(scratch.dir, 'nope'), '--to', `PACS@127.0.0.1:${port}`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not exist/);
  });
});

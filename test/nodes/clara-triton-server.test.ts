import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { openEmbeddedModel } from '../../lib/infer/model-repository';
import type { ClaraTritonServerNode } from '../../nodes/clara-triton-server/server-node';
import { startKServeTestServer } from '../support/kserve-server';
import { callsOn, helper } from '../support/node-red';
import { runTool, scratchDir } from '../support/tools';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const serverNode = require(join(__dirname, '..', '..', 'nodes', 'clara-triton-server', 'clara-triton-server.js')) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tlsNode = require(join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'network', '05-tls.js')) as unknown;
const REPOSITORY = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'models');

interface TestAnswer {
  ok: boolean;
  description?: string;
  live?: boolean;
  ready?: boolean;
  modelReady?: boolean;
  detail?: string;
  message?: string;
  inputs?: Array<{ name: string }>;
}
interface SupertestRequest {
  post(path: string): { send(body: unknown): Promise<{ status: number; body: TestAnswer }> };
}

describe('clara-triton-server config node in a Node-RED 4 runtime', function () {
  this.timeout(30000);
  afterEach(async () => {
    await helper.unload();
  });

  it('holds an embedded server that runs the repository\'s models', async () => {
    await helper.load(serverNode, [{ id: 'srv', type: 'clara-triton-server', name: '', mode: 'embedded', repository: REPOSITORY, threads: 1 }]);
    const node = helper.getNode('srv') as unknown as ClaraTritonServerNode;
    assert.ok(node.server);
    assert.match(node.server.description, /^embedded onnxruntime, repository .*fixtures\/models$/);
    const model = await node.server.model('doubler');
    const [out] = await model.run([{ name: 'image', datatype: 'FP32', shape: [1, 1, 1, 1, 2], data: Float32Array.from([1.5, -2]) }]);
    assert.deepEqual(Array.from(out.data as Float32Array), [3, -4]);
  });

  it('reports bad settings with an error, and keeps no server', async () => {
    await helper.load(serverNode, [{ id: 'srv', type: 'clara-triton-server', mode: 'triton', protocol: 'grpc', host: '', port: 8001 }]);
    const node = helper.getNode('srv') as unknown as ClaraTritonServerNode;
    assert.equal(node.server, undefined);
    assert.equal(node.settingsError, 'a Triton server needs a host');
    assert.match(String(callsOn('error', helper.getNode('srv'))[0]?.[0]), /clara-triton-server: a Triton server needs a host/);
  });

  it('tests unsaved settings through its admin endpoint: embedded, Triton over gRPC, unreachable, invalid', async () => {
    await helper.load(serverNode, [{ id: 'srv', type: 'clara-triton-server', mode: 'embedded', repository: REPOSITORY }]);
    const request = (helper as unknown as { request(): SupertestRequest }).request();
    const embedded = await request.post('/clara-triton-server/test').send({ mode: 'embedded', repository: REPOSITORY, model: 'doubler' });
    assert.equal(embedded.body.ok, true);
    assert.deepEqual(embedded.body.inputs?.map((t) => t.name), ['image']);
    const missing = await request.post('/clara-triton-server/test').send({ mode: 'embedded', repository: REPOSITORY, model: 'brats' });
    assert.equal(missing.body.ok, false);
    assert.match(String(missing.body.detail), /holds no <version>\/model\.onnx/);

    const model = await openEmbeddedModel(REPOSITORY, 'doubler');
    const triton = await startKServeTestServer({ doubler: { metadata: model.metadata, ready: true, run: (i) => model.run(i) } });
    try {
      const remote = await request.post('/clara-triton-server/test').send({ mode: 'triton', protocol: 'grpc', host: '127.0.0.1', port: String(triton.port), model: 'doubler' });
      assert.equal(remote.body.ok, true, JSON.stringify(remote.body));
      assert.equal(remote.body.description, `Triton gRPC 127.0.0.1:${triton.port}`);
      assert.deepEqual([remote.body.live, remote.body.ready, remote.body.modelReady], [true, true, true]);
    } finally {
      triton.kill();
      await model.close();
    }
    const dead = await request.post('/clara-triton-server/test').send({ mode: 'triton', protocol: 'http', host: '127.0.0.1', port: await freeLoopbackPort(), deadline: 3 });
    assert.equal(dead.body.ok, false);
    assert.equal(dead.body.live, false);
    assert.match(String(dead.body.detail), /is unreachable \(ECONNREFUSED\)/);
    const invalid = await request.post('/clara-triton-server/test').send({ mode: 'triton', protocol: 'grpc', host: 'x', port: 70000 });
    assert.deepEqual(invalid.body, { ok: false, message: 'port must be an integer from 1 to 65535, not 70000' });
  });

  it('talks gRPC over TLS through a tls-config node, and refuses a server its CA did not sign', async () => {
    const certs = scratchDir('triton-tls');
    const ssl = (...args: string[]) => runTool('openssl', args);
    const at = (name: string) => join(certs.dir, name);
    // A test CA, a server certificate for 127.0.0.1 signed by it, and a second CA that signed nothing here.
    for (const ca of ['ca', 'other-ca']) ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=clara test ${ca}`, '-keyout', at(`${ca}.key`), '-out', at(`${ca}.pem`));
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', at('server.key'), '-out', at('server.csr'));
    writeFileSync(at('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    ssl('x509', '-req', '-in', at('server.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', at('san.ext'), '-out', at('server.pem'));
    const model = await openEmbeddedModel(REPOSITORY, 'doubler');
    const triton = await startKServeTestServer({ doubler: { metadata: model.metadata, ready: true, run: (i) => model.run(i) } }, 0, { cert: readFileSync(at('server.pem')), key: readFileSync(at('server.key')) });
    try {
      await helper.load([serverNode, tlsNode], [
        { id: 'trust', type: 'tls-config', name: 'test CA', cert: '', key: '', ca: at('ca.pem'), verifyservercert: true },
        { id: 'distrust', type: 'tls-config', name: 'other CA', cert: '', key: '', ca: at('other-ca.pem'), verifyservercert: true },
        { id: 'srv', type: 'clara-triton-server', mode: 'triton', protocol: 'grpc', host: '127.0.0.1', port: triton.port, tls: 'trust', retries: 0, deadline: 5 },
        { id: 'bad', type: 'clara-triton-server', mode: 'triton', protocol: 'grpc', host: '127.0.0.1', port: triton.port, tls: 'distrust', retries: 0, deadline: 5 },
      ]);
      const trusted = helper.getNode('srv') as unknown as ClaraTritonServerNode;
      assert.equal(trusted.server?.description, `Triton gRPC 127.0.0.1:${triton.port} (TLS)`);
      const handle = await trusted.server!.model('doubler');
      const [out] = await handle.run([{ name: 'image', datatype: 'FP32', shape: [1, 1, 1, 1, 2], data: Float32Array.from([1, -3]) }]);
      assert.deepEqual(Array.from(out.data as Float32Array), [2, -6]);
      const untrusted = helper.getNode('bad') as unknown as ClaraTritonServerNode;
      const health = await untrusted.server!.health('doubler');
      assert.equal(health.live, false);
      assert.match(String(health.detail), /unreachable|certificate|handshake|SSL/i);
      // Plaintext to a TLS-only server gets nowhere either.
      const request = (helper as unknown as { request(): SupertestRequest }).request();
      const plain = await request.post('/clara-triton-server/test').send({ mode: 'triton', protocol: 'grpc', host: '127.0.0.1', port: String(triton.port), deadline: 3, model: 'doubler' });
      assert.equal(plain.body.ok, false);
      const viaTls = await request.post('/clara-triton-server/test').send({ mode: 'triton', protocol: 'grpc', host: '127.0.0.1', port: String(triton.port), tls: 'trust', model: 'doubler' });
      assert.equal(viaTls.body.ok, true, JSON.stringify(viaTls.body));
    } finally {
      triton.kill();
      await model.close();
      certs.cleanup();
    }
  });
});

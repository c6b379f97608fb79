import assert from 'node:assert/strict';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { InferenceError } from '../../lib/infer/kserve/types';
import { openEmbeddedModel } from '../../lib/infer/model-repository';
import { connectInferenceServer, serverSettingsFromUrl } from '../../lib/infer/server';
import { startKServeHttpTestServer, startKServeTestServer } from '../support/kserve-server';

const REPOSITORY = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'models');
const WINDOW = { name: 'image', datatype: 'FP32' as const, shape: [1, 1, 2, 2, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) };

describe('lib/infer inference server: embedded or Triton behind one interface', function () {
  this.timeout(30000);

  it('reads server settings from a URL or a folder', () => {
    assert.deepEqual(serverSettingsFromUrl('grpc://triton.local'), { mode: 'triton', protocol: 'grpc', host: 'triton.local', port: 8001, tls: undefined, deadlineMs: undefined });
    assert.deepEqual(serverSettingsFromUrl('https://10.0.0.7:9000', { deadlineMs: 5000 }), { mode: 'triton', protocol: 'http', host: '10.0.0.7', port: 9000, tls: {}, deadlineMs: 5000 });
    assert.equal((serverSettingsFromUrl('grpc://[::1]:8001') as { host: string }).host, '::1');
    assert.deepEqual(serverSettingsFromUrl('/srv/models'), { mode: 'embedded', repository: '/srv/models' });
    assert.throws(() => serverSettingsFromUrl('ftp://x'), /not grpc:\/\/host:port or http:\/\/host:port/);
  });

  it('embedded: reports model health, runs the model, and keeps one session per model', async () => {
    const server = connectInferenceServer({ mode: 'embedded', repository: REPOSITORY, intraOpThreads: 1 });
    try {
      assert.deepEqual(await server.health('doubler'), { live: true, ready: true, modelReady: true });
      const missing = await server.health('nosuch');
      assert.equal(missing.modelReady, false);
      assert.match(missing.detail ?? '', /holds no <version>\/model\.onnx/);
      const first = await server.model('doubler');
      const second = await server.model('doubler');
      assert.equal(first.metadata, second.metadata, 'the session is reused');
      const [out] = await first.run([WINDOW]);
      assert.deepEqual(Array.from(out.data as Float32Array), [2, 4, 6, 8, 10, 12, 14, 16]);
      await assert.rejects(server.model('nosuch'), (err: Error) => err instanceof InferenceError && err.kind === 'not-found');
    } finally {
      await server.close();
    }
  });

  for (const [protocol, start] of [['grpc', startKServeTestServer], ['http', startKServeHttpTestServer]] as const) {
    it(`Triton over ${protocol}: health of server and model, metadata, inference, a model that is not ready`, async () => {
      const embedded = await openEmbeddedModel(REPOSITORY, 'doubler');
      const test = await start({
        doubler: { metadata: embedded.metadata, ready: true, run: (i) => embedded.run(i) },
        loading: { metadata: { ...embedded.metadata, name: 'loading' }, ready: false, run: (i) => embedded.run(i) },
      });
      const server = connectInferenceServer({ mode: 'triton', protocol, host: '127.0.0.1', port: test.port, retries: 0 });
      try {
        assert.match(server.description, new RegExp(`^Triton ${protocol === 'grpc' ? 'gRPC' : 'HTTP'} 127\\.0\\.0\\.1:${test.port}$`));
        assert.deepEqual(await server.health('doubler'), { live: true, ready: false, modelReady: true, detail: undefined });
        const loading = await server.health('loading');
        assert.deepEqual([loading.modelReady, loading.detail], [false, 'model loading is not ready']);
        const model = await server.model('doubler');
        assert.equal(model.metadata.inputs[0].name, 'image');
        const [out] = await model.run([WINDOW]);
        assert.deepEqual(Array.from(out.data as Float32Array), [2, 4, 6, 8, 10, 12, 14, 16]);
        await assert.rejects(server.model('loading'), /model loading is not ready on Triton/);
      } finally {
        await server.close();
        test.kill();
        await embedded.close();
      }
    });
  }

  it('Triton unreachable: health says so in words instead of throwing', async () => {
    const server = connectInferenceServer({ mode: 'triton', protocol: 'grpc', host: '127.0.0.1', port: await freeLoopbackPort(), retries: 0, deadlineMs: 2000 });
    try {
      const health = await server.health('doubler');
      assert.deepEqual([health.live, health.ready, health.modelReady], [false, false, false]);
      assert.match(health.detail ?? '', /is unreachable/);
    } finally {
      await server.close();
    }
  });
});

import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { JobStore } from '../../lib/job';
import { CLARA_PIPELINE_YAML, selectedPhantomJob } from '../support/clara';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { delay, scratchDir } from '../support/tools';

/** The sources that may register admin endpoints: every node and the editor plugin. */
const SOURCE_ROOT = join(__dirname, '..', '..', '..');

function sourcesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourcesUnder(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Every `RED.httpAdmin.<verb>(\`/path\`` in the pack's sources, as "VERB /path" with ${TYPE} filled in. */
function registeredAdminRoutes(): string[] {
  const routes: string[] = [];
  for (const file of [...sourcesUnder(join(SOURCE_ROOT, 'nodes')), ...sourcesUnder(join(SOURCE_ROOT, 'flows'))]) {
    const text = readFileSync(file, 'utf8');
    const type = /const TYPE = '([^']+)'/.exec(text)?.[1];
    for (const m of text.matchAll(/RED\.httpAdmin\.(get|post|put|delete)\(\s*[`'"]([^`'"]+)[`'"]/g)) {
      routes.push(`${m[1].toUpperCase()} ${m[2].replace('${TYPE}', type ?? '?')}`);
    }
  }
  return routes.sort();
}

interface Endpoint {
  route: string;
  /** The path to call (parameters filled in). */
  path: string;
  body: unknown;
  /** The permission the endpoint needs: read-only users may call "read" ones. */
  needs: 'read' | 'write';
  /** What an authorised call answers. */
  expect: (status: number, body: unknown) => void;
}

const SELECTOR_ID = 'sel1';

/**
 * Every admin endpoint of the pack against a real Node-RED (red.js) with adminAuth: refused without a
 * token (401), refused with a read-only token where it needs write (403), served with the right token. The
 * viewer on httpNode is covered the same way in test/render/viewer-browser.test.ts ("is behind httpNodeAuth").
 */
describe('reliability: every admin endpoint needs Node-RED permissions under adminAuth (401 without, 401 for a read-only user where write is needed)', function () {
  this.timeout(180000);
  const scratch = scratchDir('security-admin');
  let red: HeadlessRed;
  let adminToken: string;
  let readerToken: string;

  const endpoints: Endpoint[] = [
    {
      route: 'POST /clara-dicom-destination/verify', path: '/clara-dicom-destination/verify', needs: 'write',
      // A port nothing listens on: the server tries, and says so.
      body: { name: 'X', calledAE: 'PACS', host: '127.0.0.1', port: '1', connectTimeout: '2' },
      expect: (status, body) => {
        assert.equal(status, 200);
        assert.equal((body as { ok: boolean }).ok, false);
      },
    },
    {
      route: 'POST /clara-triton-server/test', path: '/clara-triton-server/test', needs: 'write',
      body: { mode: 'embedded', repository: '', model: 'brain-tumor-tc' },
      expect: (status, body) => {
        assert.equal(status, 200);
        assert.equal((body as { ok: boolean }).ok, true, JSON.stringify(body));
      },
    },
    {
      route: 'POST /clara-dicom/import', path: '/clara-dicom/import', needs: 'write',
      body: { yaml: readFileSync(CLARA_PIPELINE_YAML, 'utf8') },
      expect: (status, body) => {
        assert.equal(status, 200);
        assert.ok(Array.isArray((body as { flow?: unknown[] }).flow) && (body as { flow: unknown[] }).flow.length > 0);
      },
    },
    {
      route: 'POST /clara-series-selector/validate', path: '/clara-series-selector/validate', needs: 'read',
      body: { rulesType: 'json', rules: JSON.stringify({ selections: [{ name: 'ANY', conditions: { Modality: 'MR' } }] }) },
      expect: (status, body) => {
        assert.equal(status, 200);
        assert.equal((body as { ok: boolean }).ok, true, JSON.stringify(body));
      },
    },
    {
      route: 'POST /clara-series-selector/:id/preview', path: `/clara-series-selector/${SELECTOR_ID}/preview`, needs: 'read',
      body: { rulesType: 'json', rules: JSON.stringify({ selections: [{ name: 'ANY', conditions: { Modality: 'MR' } }] }) },
      expect: (status, body) => {
        assert.equal(status, 200, JSON.stringify(body));
      },
    },
  ];

  before(async () => {
    // The selector previews against the last job it handled: one goes through it as the flow starts.
    const store = new JobStore(join(scratch.dir, 'jobs'));
    const { job } = await selectedPhantomJob(store, join(scratch.dir, 'phantom'), { size: 32, slices: 8, seed: 3 });
    const flow = [
      { id: 'tab1', type: 'tab', label: 'admin endpoints' },
      { id: 'inj', z: 'tab1', type: 'inject', name: 'job', props: [{ p: 'job', v: JSON.stringify(job), vt: 'json' }], repeat: '', once: true, onceDelay: 0.1, x: 100, y: 60, wires: [[SELECTOR_ID]] },
      { id: SELECTOR_ID, z: 'tab1', type: 'clara-series-selector', rulesType: 'json', rules: JSON.stringify({ selections: [{ name: 'ANY', conditions: { Modality: 'MR' } }] }), x: 300, y: 60, wires: [[], []] },
    ];
    red = await startHeadlessRed(join(scratch.dir, 'red'), flow, {
      users: [
        { username: 'admin', password: 'admin-pass', permissions: '*' },
        { username: 'reader', password: 'reader-pass', permissions: 'read' },
      ],
    });
    adminToken = await red.token('admin', 'admin-pass', '*');
    readerToken = await red.token('reader', 'reader-pass', 'read');
    // The injected job reaches the selector shortly after the flows start; until then preview answers 404.
    const preview = endpoints.find((e) => e.path.endsWith('/preview'))!;
    for (let tries = 0; (await call(preview, adminToken)).status !== 200; tries++) {
      if (tries > 100) throw new Error(`the selector never handled the injected job:\n${red.log()}`);
      await delay(200);
    }
  });
  after(async () => {
    await red?.stop();
    scratch.cleanup();
  });

  const call = async (endpoint: Endpoint, token?: string): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${red.url}${endpoint.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(endpoint.body),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON (Node-RED's 401 is plain text)
    }
    return { status: res.status, body };
  };

  it('the read-only user\'s token is valid: it reads the flows, and may not deploy', async () => {
    assert.equal((await fetch(`${red.url}/flows`, { headers: { authorization: `Bearer ${readerToken}` } })).status, 200);
    const deploy = await fetch(`${red.url}/flows`, { method: 'POST', headers: { authorization: `Bearer ${readerToken}`, 'content-type': 'application/json' }, body: '[]' });
    assert.equal(deploy.status, 401);
  });

  it('tests exactly the endpoints the pack registers', () => {
    assert.deepEqual(registeredAdminRoutes(), endpoints.map((e) => e.route).sort());
  });

  for (const endpoint of endpoints) {
    it(`${endpoint.route}: 401 without a token, ${endpoint.needs === 'write' ? 'refused (401) to a read-only user' : 'served to a read-only user'}, served with the right permission`, async () => {
      assert.equal((await call(endpoint)).status, 401, 'no token');
      assert.equal((await call(endpoint, 'not-a-token')).status, 401, 'a made-up token');
      const asReader = await call(endpoint, readerToken);
      // Node-RED answers a valid token that lacks the permission with 401 too (editor-api's needsPermission),
      // not 403; that the reader's token itself is good is checked below.
      if (endpoint.needs === 'write') assert.equal(asReader.status, 401, `read-only user: ${JSON.stringify(asReader.body)}`);
      else endpoint.expect(asReader.status, asReader.body);
      const asAdmin = await call(endpoint, adminToken);
      endpoint.expect(asAdmin.status, asAdmin.body);
    });
  }

  it('the import endpoint refuses an alias bomb and an oversized document with the reason, for an authorised user, without expanding them', async () => {
    const bomb = ['api-version: 0.4.0', 'name: lol', 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const [n, prev] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd'], ['f', 'e'], ['g', 'f'], ['h', 'g'], ['i', 'h']]) bomb.push(`${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]`);
    bomb.push('operators:\n- name: x\n  container: {image: x}\n  variables: {V: *i}\n');
    const answer = await call({ ...endpoints[2], body: { yaml: bomb.join('\n') } }, adminToken);
    assert.equal(answer.status, 400);
    assert.match(String((answer.body as { error?: string }).error), /expands too many aliases/);
    // Over the importer's 1 MiB limit, under Node-RED's request limit: the importer's own refusal.
    const huge = await call({ ...endpoints[2], body: { yaml: `api-version: 0.4.0\nname: big\n# ${'x'.repeat(2 * 1024 * 1024)}\noperators: []\n` } }, adminToken);
    assert.equal(huge.status, 400);
    assert.match(String((huge.body as { error?: string }).error), /a pipeline may be at most 1\.0 MiB/);
    assert.doesNotMatch(red.log(), /FATAL|Unhandled/i);
  });
});

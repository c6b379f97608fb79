import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyPeer } from '../../lib/dimse/association';
import { writePhantomStudy } from '../../lib/phantom';
import { dicomFilesUnder, storeResponses, storescu } from '../dimse/helpers';
import { callsOn, collectMessages, helper, listeningPort, logOf, statusTexts, waitFor } from '../support/node-red';
import { delay, hasTool, runTool, scratchDir } from '../support/tools';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const claraDicomIn = require(join(__dirname, '..', '..', 'nodes', 'clara-dicom-in', 'clara-dicom-in.js')) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tlsNode = require(join(require.resolve('@node-red/nodes/package.json'), '..', 'core', 'network', '05-tls.js')) as unknown;

interface JobMsg {
  payload: { instances: number; callingAE?: string };
  job: { id: string; dir: string };
}

/**
 * A test CA and the certificates the cases need, made by openssl: the SCP's (signed by the CA, for
 * 127.0.0.1), a client's signed by the CA, and a stranger's that signs itself.
 */
function makeCertificates(dir: string): Record<'ca' | 'server' | 'client' | 'stranger', { key: string; crt: string }> {
  mkdirSync(dir, { recursive: true });
  const file = (name: string) => ({ key: join(dir, `${name}.key`), crt: join(dir, `${name}.crt`) });
  const ca = file('ca');
  runTool('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', ca.key, '-out', ca.crt, '-days', '2', '-subj', '/CN=Clara test CA']);
  const signed = (name: string, subject: string, san?: string) => {
    const out = file(name);
    const csr = join(dir, `${name}.csr`);
    runTool('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', out.key, '-out', csr, '-subj', subject]);
    const args = ['x509', '-req', '-in', csr, '-CA', ca.crt, '-CAkey', ca.key, '-CAcreateserial', '-out', out.crt, '-days', '2'];
    if (san) {
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, `subjectAltName=${san}\n`);
      args.push('-extfile', ext);
    }
    runTool('openssl', args);
    return out;
  };
  const server = signed('server', '/CN=127.0.0.1', 'IP:127.0.0.1');
  const client = signed('client', '/CN=STORESCU');
  const stranger = file('stranger');
  runTool('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', stranger.key, '-out', stranger.crt, '-days', '2', '-subj', '/CN=STORESCU']);
  return { ca, server, client, stranger };
}

describe('reliability: DICOM TLS on the clara-dicom-in SCP (certificates made by openssl)', function () {
  this.timeout(120000);
  const scratch = scratchDir('security-tls');
  let certs: ReturnType<typeof makeCertificates>;
  let files: string[];

  before(() => {
    assert.ok(hasTool('storescu') && hasTool('openssl'), 'dcmtk and openssl (Debian) are needed: .ci/run installs them');
    certs = makeCertificates(join(scratch.dir, 'certs'));
    writePhantomStudy(join(scratch.dir, 'phantom'), { size: 32, slices: 8, seed: 7 });
    files = dicomFilesUnder(join(scratch.dir, 'phantom', 'dicom')).slice(0, 4);
  });
  afterEach(() => helper.unload());
  after(() => scratch.cleanup());

  const flow = (workRoot: string, props: Record<string, unknown> = {}) => [
    { id: 'tls', type: 'tls-config', cert: certs.server.crt, key: certs.server.key, ca: certs.ca.crt, verifyservercert: false },
    { id: 'in', type: 'clara-dicom-in', aeTitle: 'CLARA', port: 0, host: '127.0.0.1', allow: '', studyTimeout: 0.5, grouping: 'study', workRoot, tls: 'tls', wires: [['out']], ...props },
    { id: 'out', type: 'helper' },
  ];
  const tlsArgs = (who: { key: string; crt: string }) => ['+tls', who.key, who.crt, '+cf', certs.ca.crt];

  it('stores from a peer with a certificate the CA signed; refuses one without, a stranger\'s, and plain DICOM; keeps serving', async () => {
    const workRoot = join(scratch.dir, 'jobs');
    await helper.load([tlsNode, claraDicomIn], flow(workRoot));
    const node = helper.getNode('in');
    const msgs = collectMessages<JobMsg>(helper.getNode('out'));
    const port = await listeningPort(node);

    // Plain DICOM on the TLS port: the handshake fails, nothing is stored, the refusal is shown and logged.
    const plain = await storescu(port, files);
    assert.notEqual(plain.code, 0, 'plain DICOM must not get through');
    assert.deepEqual(storeResponses(plain), []);
    await waitFor(() => statusTexts(node).find((t) => /refused 127\.0\.0\.1: TLS handshake refused/.test(t)), 5000, () => `the refusal in the status: ${statusTexts(node).join(' | ')}`);
    assert.ok(callsOn('warn', node).some((c) => /connection from 127\.0\.0\.1 refused: TLS handshake refused/.test(String(c[0]))), 'a warning in the log');

    // TLS without a client certificate (dcmtk's anonymous TLS), and with a certificate the CA did not sign.
    const anonymous = await storescu(port, files, {}, ['+tla', '+cf', certs.ca.crt]);
    assert.notEqual(anonymous.code, 0, 'no client certificate must not get through');
    assert.deepEqual(storeResponses(anonymous), []);
    const stranger = await storescu(port, files, {}, tlsArgs(certs.stranger));
    assert.notEqual(stranger.code, 0, 'a self-signed client certificate must not get through');
    assert.deepEqual(storeResponses(stranger), []);
    const warnings = callsOn('warn', node).map((c) => String(c[0])).filter((m) => /TLS handshake refused/.test(m));
    assert.ok(warnings.length >= 3, `each refusal logged: ${warnings.join(' | ')}`);
    await delay(800);
    assert.equal(msgs.length, 0);
    assert.deepEqual(readdirSync(workRoot).filter((n) => n !== '.incoming'), [], 'no job folder for any refused peer');

    // The peer with a certificate the CA signed is served, on the same node, after all of that.
    const good = await storescu(port, files, {}, tlsArgs(certs.client));
    assert.equal(good.code, 0, good.stderr + good.stdout);
    assert.deepEqual(storeResponses(good), files.map(() => 'Success'));
    const msg = await waitFor(() => msgs[0], 10000, 'the job of the TLS peer');
    assert.equal(msg.payload.instances, files.length);
    assert.deepEqual(readdirSync(join(msg.job.dir, 'dicom')).length, files.length);
    assert.ok(logOf(node).some((e) => /TLS with client certificates/.test(e.message)), 'the listening line says TLS');
  });

  it('our own SCU over TLS: C-ECHO with the client certificate succeeds, without it is refused', async () => {
    await helper.load([tlsNode, claraDicomIn], flow(join(scratch.dir, 'jobs-scu')));
    const port = await listeningPort(helper.getNode('in'));
    const target = { host: '127.0.0.1', port, calledAE: 'CLARA', callingAE: 'CLARASCU', connectTimeoutMs: 5000, pduTimeoutMs: 5000 };
    const ca = readFileSync(certs.ca.crt);
    const withCert = await verifyPeer({ ...target, tls: { ca, cert: readFileSync(certs.client.crt), key: readFileSync(certs.client.key) } });
    assert.equal(withCert.ok, true, withCert.message);
    const withoutCert = await verifyPeer({ ...target, tls: { ca } });
    assert.equal(withoutCert.ok, false);
    const strangerCert = await verifyPeer({ ...target, tls: { ca, cert: readFileSync(certs.stranger.crt), key: readFileSync(certs.stranger.key) } });
    assert.equal(strangerCert.ok, false);
    const plain = await verifyPeer(target);
    assert.equal(plain.ok, false);
  });

  it('client certificates "not asked for": any TLS peer, still no plain DICOM', async () => {
    await helper.load([tlsNode, claraDicomIn], flow(join(scratch.dir, 'jobs-open'), { tlsClientAuth: 'none' }));
    const port = await listeningPort(helper.getNode('in'));
    const anonymous = await storescu(port, files.slice(0, 1), {}, ['+tla', '+cf', certs.ca.crt]);
    assert.equal(anonymous.code, 0, anonymous.stderr + anonymous.stdout);
    assert.deepEqual(storeResponses(anonymous), ['Success']);
    const plain = await storescu(port, files.slice(0, 1));
    assert.notEqual(plain.code, 0);
  });

  it('refuses a TLS configuration it cannot use, at deploy, with a red status', async () => {
    await helper.load([tlsNode, claraDicomIn], [
      { id: 'tls', type: 'tls-config', cert: certs.server.crt, key: certs.server.key, ca: '', verifyservercert: false },
      { id: 'in', type: 'clara-dicom-in', aeTitle: 'CLARA', port: 0, host: '127.0.0.1', workRoot: join(scratch.dir, 'jobs-bad'), tls: 'tls', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const node = helper.getNode('in');
    await waitFor(() => statusTexts(node).find((t) => /client certificates are required/.test(t)), 5000, () => statusTexts(node).join(' | '));
    assert.ok(callsOn('error', node).some((c) => /client certificates are required, but the TLS configuration has no CA/.test(String(c[0]))));
  });
});

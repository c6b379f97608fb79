import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { writePhantomStudy } from '../../lib/phantom';
import { CLARA_PIPELINE_YAML } from '../support/clara';
import { type OrthancInstance, startOrthanc } from '../support/orthanc';
import { allFilesUnder, delay, runTool, scratchDir } from '../support/tools';

const ROOT = join(__dirname, '..', '..', '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const TARBALL = `${PACKAGE.name}-${PACKAGE.version}.tgz`;

/** The fenced blocks of the README section that starts with `heading`, in order. */
function blocksOf(heading: string): string[] {
  const start = README.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `README has a "${heading}" section`);
  const end = README.indexOf('\n## ', start + 4);
  const section = README.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```\w*\n([\s\S]*?)```/g)].map((m) => m[1].replace(/^ {3}/gm, ''));
}

function npmCache(): string {
  return spawnSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8' }).stdout.trim();
}

/**
 * The README's "Deploying to an edge device", followed as written: the package packed, installed with Node-RED
 * into a fresh user folder, the settings file of the README (with real hashes), Node-RED started headless with
 * it, the seed pipeline deployed with `clara-dicom deploy` (MYPACS: a real Orthanc), a study sent; the results
 * must reach Orthanc, and the viewer must ask for the httpNodeAuth login.
 */
describe('README: deploying to an edge device, step by step', function () {
  this.timeout(600000);
  const scratch = scratchDir('readme-edge');
  const home = join(scratch.dir, 'home');
  const userDir = join(home, '.node-red');
  let red: ChildProcess | undefined;
  let redLog = '';
  let orthanc: OrthancInstance | undefined;
  after(async () => {
    if (red && red.exitCode === null) {
      // npx runs node-red as its child: stop the whole process group, and make sure after 15 s.
      const exited = new Promise((done) => red!.once('exit', done));
      process.kill(-red.pid!, 'SIGINT');
      const timer = setTimeout(() => process.kill(-red!.pid!, 'SIGKILL'), 15000);
      await exited;
      clearTimeout(timer);
    }
    await orthanc?.stop();
    scratch.cleanup();
  });

  it('installs the packed tarball, runs headless with adminAuth and httpNodeAuth, takes a deploy and processes a study', async () => {
    const [install, settings, unit, deploy] = blocksOf('Deploying to an edge device');
    assert.ok(unit.includes('ExecStart=/usr/bin/env npx node-red --settings'), 'the systemd unit starts Node-RED as the test does');

    // Step 1: npm pack (dist is built by npm test's pretest), then the README's install commands, run as written.
    runTool('npm', ['pack', '--ignore-scripts', '--pack-destination', scratch.dir], { npm_config_loglevel: 'error' });
    assert.ok(install.includes(TARBALL), `the README installs ${TARBALL}`);
    mkdirSync(userDir, { recursive: true });
    writeFileSync(join(userDir, TARBALL), readFileSync(join(scratch.dir, TARBALL)));
    const script = install.replace(/\\\n/g, ' ');
    // --prefer-offline: the packages npm ci fetched are in the cache; the commands are the README's.
    const installed = spawnSync('bash', ['-euo', 'pipefail', '-c', script], {
      encoding: 'utf8',
      env: { ...process.env, HOME: home, npm_config_cache: npmCache(), npm_config_prefer_offline: 'true', npm_config_loglevel: 'error' },
      maxBuffer: 64 << 20,
    });
    assert.equal(installed.status, 0, installed.stderr);
    assert.ok(existsSync(join(userDir, 'node_modules', PACKAGE.name, 'dist', 'nodes')), 'the pack is installed');

    // Step 2: the README's settings.js, with its placeholders filled in as the reader would.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const bcrypt = require('bcryptjs') as { hashSync(text: string, rounds: number): string };
    const uiPort = await freeLoopbackPort();
    const filled = settings
      .replace("uiHost: '0.0.0.0'", "uiHost: '127.0.0.1'")
      .replace('uiPort: 1880', `uiPort: ${uiPort}`)
      .replace(/'\$2b\$08\$…bcrypt hash…'/g, () => JSON.stringify(bcrypt.hashSync('edge-pass', 8)));
    assert.notEqual(filled, settings);
    assert.doesNotMatch(filled, /…/, 'every placeholder filled');
    writeFileSync(join(userDir, 'settings.js'), filled);

    // Step 3: headless, as the systemd unit runs it.
    red = spawn('npx', ['node-red', '--settings', join(userDir, 'settings.js')], { cwd: userDir, env: { ...process.env, HOME: home, NODE_RED_CREDENTIAL_SECRET: 'readme-secret' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    red.stdout!.on('data', (d: Buffer) => (redLog += d.toString()));
    red.stderr!.on('data', (d: Buffer) => (redLog += d.toString()));
    const started = Date.now() + 60000;
    while (!/Started flows/.test(redLog)) {
      if (red.exitCode !== null || Date.now() > started) throw new Error(`Node-RED did not start:\n${redLog}`);
      await delay(200);
    }
    const url = `http://127.0.0.1:${uiPort}`;
    assert.equal((await fetch(`${url}/flows`)).status, 401, 'the Admin API is locked');

    // Step 4: the README's deploy command, with the edge box, the password and the PACS filled in.
    orthanc = await startOrthanc({ callingAETs: ['ClaraSCU'] });
    const dicomPort = await freeLoopbackPort();
    const command = deploy.replace(/\s*\\\n\s*/g, ' ').trim();
    assert.match(command, /^npx clara-dicom deploy \.\.\/shared\/clara\/advanced-dicom-integration-pipeline\.yaml --target http:\/\/edge-box:1880 --user admin --password '…' --set MYPACS=PACS@10\.0\.0\.5:104 --dicom-port 104$/);
    const args = command
      .replace('../shared/clara/advanced-dicom-integration-pipeline.yaml', CLARA_PIPELINE_YAML)
      .replace('http://edge-box:1880', url)
      .replace("'…'", 'edge-pass')
      .replace('PACS@10.0.0.5:104', `${orthanc.aet}@127.0.0.1:${orthanc.dicomPort}`)
      .replace('--dicom-port 104', `--dicom-port ${dicomPort} --dicom-host 127.0.0.1`)
      .split(' ')
      .slice(2);
    const deployed = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    assert.equal(deployed.status, 0, deployed.stderr);
    const listening = Date.now() + 60000;
    while (!new RegExp(`listening as CLARA on 127\\.0\\.0\\.1:${dicomPort}`).test(redLog)) {
      if (Date.now() > listening) throw new Error(`the deployed pipeline did not start:\n${redLog.slice(-3000)}`);
      await delay(200);
    }

    // The scanner sends a study; the results land in the PACS.
    const study = writePhantomStudy(join(scratch.dir, 'phantom'), { size: 96, slices: 60, seed: 3 });
    runTool('storescu', ['-aet', 'SCANNER', '-aec', 'CLARA', '127.0.0.1', String(dicomPort), ...allFilesUnder(join(scratch.dir, 'phantom', 'dicom'))], { TCP_NODELAY: '1' });
    const deadline = Date.now() + 240000;
    let modalities: string[] = [];
    while (!(modalities.includes('SEG') && modalities.includes('RTSTRUCT'))) {
      if (Date.now() > deadline) throw new Error(`no SEG and RTSTRUCT in Orthanc (${modalities.join(', ') || 'nothing'}):\n${redLog.slice(-4000)}`);
      await delay(1000);
      const studies = await orthanc.rest<Array<{ ID: string; MainDicomTags: { StudyInstanceUID: string } }>>('/studies?expand');
      const ours = studies.find((s) => s.MainDicomTags.StudyInstanceUID === study.studyInstanceUID);
      if (ours) modalities = (await orthanc.rest<Array<{ MainDicomTags: { Modality?: string } }>>(`/studies/${ours.ID}/series?expand`)).map((s) => s.MainDicomTags.Modality ?? '?');
    }
    assert.equal((await fetch(`${url}/clara-dicom/viewer`)).status, 401, 'the viewer asks for the httpNodeAuth login');
    const viewer = await fetch(`${url}/clara-dicom/viewer`, { headers: { authorization: `Basic ${Buffer.from('viewer:edge-pass').toString('base64')}` } });
    assert.equal(viewer.status, 200);
    assert.ok(existsSync(join(userDir, 'clara-dicom', 'jobs')), 'job folders under ~/.node-red/clara-dicom/jobs, as the README says');
    assert.doesNotMatch(redLog, /\[error\]/);
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { openEmbeddedModel, type EmbeddedModel } from '../../lib/infer/model-repository';
import { readNifti, writeNifti } from '../../lib/volume/nifti';
import { type KServeTestServer, startKServeHttpTestServer, startKServeTestServer } from '../support/kserve-server';
import { scratchDir } from '../support/tools';
import { sphereVolume } from './helpers';

const CLI = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const REPOSITORY = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'models');

/** Runs the CLI in a child process without blocking this one (the test servers live here). */
function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'infer', ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('clara-dicom infer (CLI): embedded, over gRPC and over HTTP, with the same result', function () {
  this.timeout(60000);
  const scratch = scratchDir('infer-cli');
  const input = join(scratch.dir, 'sphere.nii.gz');
  const common = ['--model', 'doubler', '--spacing', '2', '--roi', '16', '--batch', '8', '--keep-largest'];
  let model: EmbeddedModel;
  let grpcServer: KServeTestServer;
  let httpServer: KServeTestServer;

  before(async () => {
    writeNifti(input, sphereVolume().volume);
    model = await openEmbeddedModel(REPOSITORY, 'doubler');
    const served = { doubler: { metadata: model.metadata, ready: true, run: (inputs: Parameters<EmbeddedModel['run']>[0]) => model.run(inputs) } };
    grpcServer = await startKServeTestServer(served);
    httpServer = await startKServeHttpTestServer(served);
  });
  after(async () => {
    grpcServer.kill();
    httpServer.kill();
    await model.close();
    scratch.cleanup();
  });

  it('writes a uint8 label volume on the input grid, and the same bytes whichever way the model runs', async () => {
    const embedded = await cli(input, join(scratch.dir, 'embedded.nii.gz'), '--model-repo', REPOSITORY, ...common);
    assert.equal(embedded.code, 0, embedded.stderr);
    assert.match(embedded.stdout, /label 1: \d+ voxels/);
    assert.match(embedded.stdout, /window\(s\) of 16×16×16 on a \d+×\d+×\d+ crop of a \d+×\d+×\d+ grid via model doubler on embedded onnxruntime, repository .*fixtures\/models;/);
    const labels = readNifti(join(scratch.dir, 'embedded.nii.gz'));
    const source = readNifti(input);
    assert.equal(labels.type, 'uint8');
    assert.deepEqual(labels.dims, source.dims);
    assert.deepEqual(labels.affine, source.affine);

    const overGrpc = await cli(input, join(scratch.dir, 'grpc.nii.gz'), '--server', `grpc://127.0.0.1:${grpcServer.port}`, ...common);
    assert.equal(overGrpc.code, 0, overGrpc.stderr);
    const overHttp = await cli(input, join(scratch.dir, 'http.nii.gz'), '--server', `http://127.0.0.1:${httpServer.port}`, ...common);
    assert.equal(overHttp.code, 0, overHttp.stderr);
    const bytes = (name: string) => {
      const { data } = readNifti(join(scratch.dir, name));
      return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    };
    assert.ok(bytes('grpc.nii.gz').equals(bytes('embedded.nii.gz')), 'gRPC equals embedded');
    assert.ok(bytes('http.nii.gz').equals(bytes('embedded.nii.gz')), 'HTTP equals embedded');
    assert.ok(grpcServer.requests > 0 && httpServer.requests > 0);
  });

  it('fails clearly on an unreachable server, an unknown model, wrong tensor names and wrong usage', async () => {
    const unreachable = await cli(input, join(scratch.dir, 'x.nii.gz'), '--server', `grpc://127.0.0.1:${await freeLoopbackPort()}`, '--model', 'doubler', '--deadline', '5');
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /^clara-dicom infer: the inference server at 127\.0\.0\.1:\d+ is unreachable/);
    const unknown = await cli(input, join(scratch.dir, 'x.nii.gz'), '--server', `http://127.0.0.1:${httpServer.port}`, '--model', 'nosuch');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /Request for unknown model: 'nosuch'/);
    const wrongName = await cli(input, join(scratch.dir, 'x.nii.gz'), '--model-repo', REPOSITORY, '--model', 'doubler', '--input', 'INPUT__0');
    assert.equal(wrongName.code, 1);
    assert.match(wrongName.stderr, /model doubler has no input "INPUT__0"; its inputs are "image"/);
    // Without --model, the demo preset's model is looked for in the repository given.
    const presetModel = await cli(input, join(scratch.dir, 'x.nii.gz'), '--model-repo', REPOSITORY);
    assert.equal(presetModel.code, 1);
    assert.match(presetModel.stderr, /brain-tumor-tc/);
    assert.equal((await cli(input, join(scratch.dir, 'x.nii.gz'), '--model-repo', REPOSITORY, '--blend', 'cubic', '--model', 'doubler')).code, 2);
    assert.equal((await cli(input, join(scratch.dir, 'x.nii.gz'), '--model-repo', REPOSITORY, '--server', 'grpc://x', '--model', 'doubler')).code, 2);
    const missing = await cli(join(scratch.dir, 'nope.nii.gz'), join(scratch.dir, 'x.nii.gz'), '--model-repo', REPOSITORY, '--model', 'doubler');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope\.nii\.gz does not exist/);
    assert.equal(readFileSync(input).length > 0, true);
  });
});
